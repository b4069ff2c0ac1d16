"""Conditions of the policy language, compiled to null-aware Python closures.

A condition is a small expression over facts and parameters, e.g.
``as_of > max(valid_until, obligations_settled_at) + archive_period``. It is
parsed with Python's own grammar and only a safe subset is accepted: names,
literals, ``and``/``or``/``not``, comparisons (``== != < <= > >= in not in``),
``+``/``-`` and the functions in FUNCTIONS. Periods are written as the law
writes them: ``1 day``, ``24 months``, ``5 years``.

An unknown value (null) propagates: a comparison with an unknown side is
unknown, and a rule fires only when every condition is known to hold. So a
missing date or debt never anonymises anyone (fail closed).
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from rules.periods import Period, add_period, end_of_year

__all__ = ["FUNCTIONS", "Condition", "InvalidExpression", "compile_condition", "truth"]

Env = Mapping[str, Any]
Node = Callable[[Env], Any]


class InvalidExpression(ValueError):
    """A condition uses syntax or names outside the policy language."""

    def __init__(self, message: str, column: int = 0) -> None:
        super().__init__(message)
        self.column = column


def _max(*values: Any) -> Any:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _min(*values: Any) -> Any:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def _end_of_year(value: Any) -> Any:
    return None if value is None else end_of_year(value)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "max": _max,  # the later of known values; unknown only when all are unknown
    "min": _min,
    "end_of_year": _end_of_year,
}

DEADLINE_SUBJECTS = frozenset({"as_of", "as_of_time"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition of a rule's `when` list."""

    text: str
    names: tuple[str, ...]
    evaluate: Node
    deadline: Node | None  # for `as_of > X`: X, the last moment the condition does not hold

    def holds(self, env: Env) -> bool | None:
        return truth(self.evaluate(env))


def truth(value: Any) -> bool | None:
    """Three-valued truth: unknown stays unknown; an empty list is false."""
    return None if value is None else bool(value)


def compile_condition(text: str, known: frozenset[str]) -> Condition:
    """Compile `text`; names must be in `known` (facts and parameters)."""
    source = _PERIOD_LITERAL.sub(lambda m: f'__period__("{m.group(1)} {m.group(2)}")', text)
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise InvalidExpression(f"cannot parse condition: {error.msg}", (error.offset or 1) - 1) from None
    names: list[str] = []
    evaluate = _compile(tree, known, names)
    deadline = None
    if (
        isinstance(tree, ast.Compare)
        and len(tree.ops) == 1
        and isinstance(tree.ops[0], ast.Gt)
        and isinstance(tree.left, ast.Name)
        and tree.left.id in DEADLINE_SUBJECTS
    ):
        deadline = _compile(tree.comparators[0], known, [])
    return Condition(text, tuple(dict.fromkeys(names)), evaluate, deadline)


_PERIOD_LITERAL = re.compile(r"\b(\d+)\s+(days?|months?|years?)\b")

_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def _compile(node: ast.expr, known: frozenset[str], names: list[str]) -> Node:
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise InvalidExpression(f"unknown fact or parameter {node.id!r}", node.col_offset)
        names.append(node.id)
        key = node.id
        return lambda env: env[key]
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        value = node.value
        return lambda env: value
    if isinstance(node, (ast.List, ast.Tuple)):
        items = tuple(_literal(element) for element in node.elts)
        return lambda env: items
    if isinstance(node, ast.BoolOp):
        return _bool_op(node, [_compile(v, known, names) for v in node.values])
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _compile(node.operand, known, names)
        return lambda env: None if (v := truth(inner(env))) is None else not v
    if isinstance(node, ast.Compare):
        return _compare(node, known, names)
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _arithmetic(node, known, names)
    if isinstance(node, ast.Call):
        return _call(node, known, names)
    raise InvalidExpression(f"{type(node).__name__} is not allowed in a condition", node.col_offset)


def _literal(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
        return node.value
    raise InvalidExpression("a list may hold only literal numbers and strings", node.col_offset)


def _bool_op(node: ast.BoolOp, parts: list[Node]) -> Node:
    if isinstance(node.op, ast.And):

        def conjunction(env: Env) -> bool | None:
            unknown = False
            for part in parts:
                value = truth(part(env))
                if value is False:
                    return False
                unknown = unknown or value is None
            return None if unknown else True

        return conjunction

    def disjunction(env: Env) -> bool | None:
        unknown = False
        for part in parts:
            value = truth(part(env))
            if value is True:
                return True
            unknown = unknown or value is None
        return None if unknown else False

    return disjunction


def _compare(node: ast.Compare, known: frozenset[str], names: list[str]) -> Node:
    operands = [_compile(node.left, known, names)] + [_compile(c, known, names) for c in node.comparators]
    ops = [_COMPARE[type(op)] for op in node.ops if type(op) in _COMPARE]
    if len(ops) != len(node.ops):
        raise InvalidExpression("only == != < <= > >= in and not in compare values", node.col_offset)
    if len(ops) == 1:
        left, right, op = operands[0], operands[1], ops[0]

        def single(env: Env) -> bool | None:
            a, b = left(env), right(env)
            return None if a is None or b is None else op(a, b)

        return single

    def chain(env: Env) -> bool | None:
        values = [operand(env) for operand in operands]
        if any(v is None for v in values):
            return None
        return all(op(values[i], values[i + 1]) for i, op in enumerate(ops))

    return chain


def _arithmetic(node: ast.BinOp, known: frozenset[str], names: list[str]) -> Node:
    left, right = _compile(node.left, known, names), _compile(node.right, known, names)
    subtract = isinstance(node.op, ast.Sub)

    def arithmetic(env: Env) -> Any:
        a, b = left(env), right(env)
        if a is None or b is None:
            return None
        if isinstance(b, Period) and isinstance(a, (date, datetime)):
            return add_period(a, -b if subtract else b)
        return a - b if subtract else a + b

    return arithmetic


def _call(node: ast.Call, known: frozenset[str], names: list[str]) -> Node:
    if not isinstance(node.func, ast.Name) or node.keywords:
        raise InvalidExpression("call a function by name with positional arguments", node.col_offset)
    if node.func.id == "__period__":
        period = Period.parse(_literal(node.args[0]))
        return lambda env: period
    function = FUNCTIONS.get(node.func.id)
    if function is None:
        raise InvalidExpression(
            f"unknown function {node.func.id!r}; known: {', '.join(sorted(FUNCTIONS))}", node.col_offset
        )
    arguments = [_compile(a, known, names) for a in node.args]
    return lambda env: function(*(argument(env) for argument in arguments))
