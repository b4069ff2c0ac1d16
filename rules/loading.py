"""Strict loading of policies.yaml: every problem names file, line, column and key.

YAML duplicate keys are errors (ruamel.yaml refuses them); the structure is
checked by the pydantic models of rules.policy; the meaning (known facts and
actions, citations, overlapping rule versions…) by rules.checks. The policy
revision is the SHA-256 of the canonical JSON form of the validated policy, so
comments and layout do not change it and any change of substance does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from io import StringIO
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from kodex.errors import InvalidPolicy, NotAPolicyDocument, PolicyTooDeep, PolicyTooLarge
from kodex.rules.checks import check_policy
from kodex.rules.nesting import MAX_POLICY_BYTES, yaml_too_deep
from kodex.rules.policy import Policy

__all__ = [
    "LoadedPolicy", "PolicyProblem", "load_policy", "parse_policy", "revision_of",
]  # fmt: skip

Loc = Sequence[str | int]


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class LoadedPolicy:
    policy: Policy
    revision: str
    file: str
    tree: Any

    def problem(self, loc: Loc, message: str) -> PolicyProblem:
        line, column = _locate(self.tree, loc)
        where = ".".join(str(part) for part in loc)
        return PolicyProblem(self.file, line, column, f"{where}: {message}" if where else message)


def load_policy(path: Path | str) -> LoadedPolicy:
    """Read, validate and check a policy file; raise InvalidPolicy listing every problem."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:  # not read at all: parse_policy would refuse it
            raise _too_large(str(path))
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise InvalidPolicy([PolicyProblem(str(path), 0, 0, f"cannot read policy: {error.strerror}")]) from None
    return parse_policy(text, str(path))


def parse_policy(text: str, file: str = "<policy>") -> LoadedPolicy:
    """Validate and check a policy's text; its size and nesting are measured before it is parsed."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_POLICY_BYTES:
        raise _too_large(file)
    too_deep = yaml_too_deep(text)
    if too_deep is not None:
        raise PolicyTooDeep([PolicyProblem(file, 0, 0, too_deep)])
    tree = _parse_yaml(text, file)
    if not isinstance(tree, CommentedMap):
        what = "the policy is a YAML mapping (kodex: 1, libraries: …); this document is not one"
        raise NotAPolicyDocument([PolicyProblem(file, 1, 1, what)])
    try:
        policy = Policy.model_validate(tree)
    except ValidationError as error:
        raise InvalidPolicy(list(_problems(error, tree, file))) from None
    loaded = LoadedPolicy(policy, revision_of(policy), file, tree)
    problems = [loaded.problem(loc, message) for loc, message in check_policy(policy)]
    if problems:
        raise InvalidPolicy(problems)
    return loaded


def revision_of(policy: Policy) -> str:
    canonical = json.dumps(
        policy.model_dump(mode="json", by_alias=True), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _too_large(file: str) -> PolicyTooLarge:
    limit = MAX_POLICY_BYTES // 1024
    return PolicyTooLarge([PolicyProblem(file, 0, 0, f"the policy is over {limit} KiB; no policy needs that much")])


def _parse_yaml(text: str, file: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(StringIO(text))
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        message = " ".join(part for part in (error.context, error.problem) if part)
        raise InvalidPolicy([PolicyProblem(file, line, column, message or "invalid YAML")]) from None
    except ReaderError as error:  # a character YAML does not allow (YAML 1.2, 5.1), e.g. a control character
        before = text[: error.position]
        line, column = before.count("\n") + 1, error.position - (before.rfind("\n") + 1) + 1
        code = error.character if isinstance(error.character, int) else ord(str(error.character)[:1] or "\0")
        message = f"character U+{code:04X} is not allowed in YAML"
        raise InvalidPolicy([PolicyProblem(file, line, column, message)]) from None
    except YAMLError as error:
        raise InvalidPolicy([PolicyProblem(file, 0, 0, f"invalid YAML ({type(error).__name__})")]) from None


def _problems(error: ValidationError, tree: Any, file: str) -> Iterable[PolicyProblem]:
    for detail in error.errors(include_input=False, include_url=False):
        loc = _real_path(tree, [_plain(part) for part in detail["loc"]])
        line, column = _locate(tree, loc)
        where = ".".join(str(part) for part in loc)
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown key"
        elif detail["type"] == "missing":
            message = "required key is missing"
        yield PolicyProblem(file, line, column, f"{where}: {message}")


def _plain(part: str | int) -> str | int:
    """pydantic writes a date key as its repr; show it as the YAML does."""
    match = _DATE_REPR.fullmatch(str(part))
    return date(*map(int, match.groups())).isoformat() if match else part


_DATE_REPR = re.compile(r"datetime\.date\((\d+), (\d+), (\d+)\)")


def _real_path(tree: Any, loc: Loc) -> list[str | int]:
    """The keys of `loc` that exist in the YAML tree (pydantic adds union member tags), plus a missing last key."""
    path: list[str | int] = []
    node = tree
    for index, part in enumerate(loc):
        if isinstance(node, CommentedMap) and (key := _find_key(node, part)) is not None:
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        elif index < len(loc) - 1:
            continue
        path.append(part)
    return path


def _locate(tree: Any, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the deepest node of `loc` present in the YAML tree."""
    node, line, column = tree, 1, 1
    for part in loc:
        if isinstance(node, CommentedMap):
            key = _find_key(node, part)
            if key is None:
                break
            line, column = node.lc.key(key)[0] + 1, node.lc.key(key)[1] + 1
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line, column = node.lc.item(part)[0] + 1, node.lc.item(part)[1] + 1
            node = node[part]
        else:
            break
    return line, column


def _find_key(node: CommentedMap, part: str | int) -> Any:
    if part in node:
        return part
    for key in node:
        if str(key) == str(part):
            return key
    return None
