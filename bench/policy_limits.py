"""How long kodex takes to refuse a deep or huge policy or record line (prints figures; not a test).

    python -m bench.policy_limits [--repeat 5]

The issue's attack was `a: [[[[…]]]]` 5,000 levels deep: 4 s of CPU and a 500 per request. Reports the median
time of parse_policy (rules/loading.py) to refuse it, and the same for a block-nested policy, aliases of aliases,
a policy over the size limit, and one import line nested 5,000 levels (read_records); then, for comparison, the
time to parse and check the three libraries' policy (which passes the same measurements first).
"""

from __future__ import annotations

import argparse
import platform
from collections.abc import Callable
from datetime import date
from pathlib import Path

from bench.timing import cpu_model, median_seconds
from kodex.errors import InvalidPolicy
from kodex.rules.loading import load_policy, parse_policy
from kodex.rules.nesting import MAX_POLICY_BYTES
from kodex.rules.ruleset import Ruleset
from kodex.rules.validation import read_records
from kodex.services.policy_source import bundled_path

DEEP_FLOW = "a: " + "[" * 5000 + "]" * 5000 + "\n"
DEEP_BLOCK = "a:\n" + "".join(" " * level + "- \n" for level in range(200)) + " " * 200 + "- x\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
    for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
)
HUGE = "# a comment\n" * (MAX_POLICY_BYTES // 12 + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    policy = bundled_path("policies.yaml")
    ruleset = Ruleset(load_policy(policy))
    line = '{"type": "reader", "library": "svkpk", "id": "X", "personal": ' + "[" * 5000 + "]" * 5000 + "}"
    print(f"machine: {cpu_model()}, Python {platform.python_version()}; median of {repeat}")
    cases: dict[str, Callable[[], None]] = {
        "policy 5,000 levels deep in flow style (10 KB)": lambda: _refused(DEEP_FLOW),
        "policy 200 levels deep in block style (20 KB)": lambda: _refused(DEEP_BLOCK),
        "policy of aliases of aliases (387 million nodes expanded)": lambda: _refused(LAUGHS),
        f"policy over {MAX_POLICY_BYTES // 1024} KiB": lambda: _refused(HUGE),
        "import line 5,000 levels deep": lambda: _refused_line(line, ruleset),
        "the three libraries' policy, parsed and checked (accepted)": lambda: _accepted(policy),
    }
    for name, work in cases.items():
        print(f"{name:62} {median_seconds(work, repeat) * 1000:8.1f} ms")


def _refused(text: str) -> None:
    try:
        parse_policy(text)
    except InvalidPolicy:
        return
    raise SystemExit("a policy that should be refused was accepted")


def _accepted(policy: Path) -> None:
    load_policy(policy)


def _refused_line(line: str, ruleset: Ruleset) -> None:
    problems = read_records([line], ruleset, date(2026, 11, 22))[1]
    assert [p.message for p in problems] == ["nested too deeply"], problems


if __name__ == "__main__":
    main()
