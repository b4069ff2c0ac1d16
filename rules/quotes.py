"""Every quote in the policy is verbatim from its regulation's text.

A fragment matches when it occurs in the seed after both are reduced to
single spaces; an ellipsis (…) inside a fragment separates parts that must
each occur. The caller hands in the texts; nothing here reads files.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from kodex.rules.loading import LoadedPolicy, PolicyProblem

__all__ = ["check_quotes"]


def check_quotes(loaded: LoadedPolicy, seeds: Mapping[str, str]) -> list[PolicyProblem]:
    problems = []
    for li, library in enumerate(loaded.policy.libraries):
        at: tuple[str | int, ...] = ("libraries", li)
        text = seeds.get(library.regulation.seed)
        if text is None:
            problems.append(loaded.problem((*at, "regulation", "seed"), "no such seed text"))
            continue
        haystack = _normal(text)
        quoted: list[tuple[tuple[str | int, ...], list[str]]] = [
            ((*at, "regulation", "quote"), library.regulation.quote),
            ((*at, "exceptions", "quote"), library.exceptions.quote),
            ((*at, "inventory", "quote"), library.inventory.quote),
            ((*at, "categories", "quote"), library.categories.quote or []),
        ]
        quoted += [((*at, "rules", ri, "quote"), rule.quote) for ri, rule in enumerate(library.rules)]
        for loc, fragments in quoted:
            for fi, fragment in enumerate(fragments):
                for part in _parts(fragment):
                    if part not in haystack:
                        problems.append(
                            loaded.problem((*loc, fi), f"not verbatim in {library.regulation.seed}: {part[:60]!r}…")
                        )
    return problems


def _parts(fragment: str) -> Iterator[str]:
    for part in fragment.split("…"):
        normal = _normal(part)
        if normal:
            yield normal


def _normal(text: str) -> str:
    return " ".join(text.split())
