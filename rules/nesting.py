"""How large and how deeply nested a policy or a record line may be, checked before it is parsed.

YAML and JSON parsers build nested values by recursion: a text of a few kilobytes nested five thousand levels
deep (`a: [[[[…]]]]`) costs seconds of CPU and ends in a RecursionError. So a text is measured first, without
recursing and without building anything, and refused when it passes a limit. Each limit is far above what real
texts need; the reasons are beside them.
"""

from __future__ import annotations

import re
from io import StringIO

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.tokens import (
    AliasToken,
    BlockEndToken,
    BlockMappingStartToken,
    BlockSequenceStartToken,
    FlowMappingEndToken,
    FlowMappingStartToken,
    FlowSequenceEndToken,
    FlowSequenceStartToken,
)

__all__ = [
    "MAX_POLICY_ALIASES", "MAX_POLICY_BYTES", "MAX_POLICY_DEPTH", "MAX_RECORD_DEPTH", "json_too_deep",
    "yaml_too_deep",
]  # fmt: skip

# The three libraries' policy (policies.yaml) is about 55 KB; parsing costs about 3 ms per KB, so the largest policy
# accepted (ten times theirs) parses in under two seconds.
MAX_POLICY_BYTES = 512 * 1024
# policies.yaml nests 9 levels (library, rules, a rule, its examples, an example, its reader, …); the YAML composer
# and the policy models recurse once per level.
MAX_POLICY_DEPTH = 32
# The policy language has no use for YAML aliases, and each alias is validated again wherever it is used: a few
# aliases of aliases grow into billions of nodes. A handful is allowed for an author's convenience.
MAX_POLICY_ALIASES = 64
# A record nests at most three levels (a reader's guardian or legal hold inside the record).
MAX_RECORD_DEPTH = 16

_OPEN = (BlockMappingStartToken, BlockSequenceStartToken, FlowMappingStartToken, FlowSequenceStartToken)
_CLOSE = (BlockEndToken, FlowMappingEndToken, FlowSequenceEndToken)
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # a whole string (skipped), or a bracket


def yaml_too_deep(text: str, limit: int = MAX_POLICY_DEPTH, aliases: int = MAX_POLICY_ALIASES) -> str | None:
    """What is wrong when the YAML text nests deeper than `limit` or uses more than `aliases` aliases, else None.

    Counts the scanner's tokens (the scanner keeps a stack of its own, it does not recurse) and stops at the first
    level past the limit. A text the scanner cannot read is left to the parser, which reports where.
    """
    depth, seen = 0, 0
    try:
        for token in YAML(typ="rt").scan(StringIO(text)):
            if isinstance(token, _OPEN):
                depth += 1
                if depth > limit:
                    return f"nested too deeply (more than {limit} levels)"
            elif isinstance(token, _CLOSE):
                depth -= 1
            elif isinstance(token, AliasToken):
                seen += 1
                if seen > aliases:
                    return f"too many aliases (more than {aliases})"
    except YAMLError:
        return None
    return None


def json_too_deep(line: str, limit: int = MAX_RECORD_DEPTH) -> bool:
    """Whether the JSON text nests arrays and objects deeper than `limit`, counted without parsing it."""
    if line.count("[") + line.count("{") <= limit:  # the usual line: too few brackets to be too deep
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(line):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        elif bracket in "]}":
            depth -= 1
    return False
