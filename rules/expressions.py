"""Conditions of the policy language: parsed, checked, compiled.

A condition is a small expression over facts and parameters, e.g.
``as_of > max(valid_until, obligations_settled_at) + archive_period``. It is
parsed with Python's own grammar and only a safe subset is accepted: names,
literals, ``and``/``or``/``not``, comparisons (``== != < <= > >= in not in``),
``+``/``-`` and the functions in FUNCTIONS. Periods are written as the law
writes them: ``1 day``, ``24 months``, ``5 years``.

An unknown value (null) propagates: a comparison with an unknown side is
unknown, and a rule fires only when every condition is known to hold. So a
missing date or debt never anonymises anyone (fail closed). Checked
expressions are compiled to Python functions by rules.codegen.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kodex.errors import InvalidExpression, InvalidPeriod
from kodex.rules.codegen import compile_value
from kodex.rules.periods import Period

__all__ = ["PERIOD_LITERAL", "Condition", "compile_condition", "parse", "truth"]

Env = Mapping[str, Any]

PERIOD_LITERAL = re.compile(r"\b(\d+)\s+(days?|months?|years?)\b")
DEADLINE_SUBJECTS = frozenset({"as_of", "as_of_time"})
FUNCTION_NAMES = frozenset({"max", "min", "end_of_year"})


@dataclass(frozen=True, slots=True)
class Condition:
    """One compiled condition of a rule's `when` list."""

    text: str
    tree: ast.expr  # the checked syntax tree, compiled again with its rule's siblings by rules.codegen
    names: tuple[str, ...]
    evaluate: Callable[[Env], Any]
    deadline: Callable[[Env], Any] | None  # for `as_of > X`: X, the last moment the condition does not hold

    def holds(self, env: Env) -> bool | None:
        return truth(self.evaluate(env))


def truth(value: Any) -> bool | None:
    """Three-valued truth: unknown stays unknown; an empty list is false."""
    return None if value is None else bool(value)


def parse(text: str, known: frozenset[str]) -> tuple[ast.expr, tuple[str, ...]]:
    """The checked syntax tree of `text` and the facts and parameters it names."""
    source = PERIOD_LITERAL.sub(lambda m: f'__period__("{m.group(1)} {m.group(2)}")', text)
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError as error:
        raise InvalidExpression(f"cannot parse condition: {error.msg}", (error.offset or 1) - 1) from None
    names: list[str] = []
    _check(tree, known, names)
    return tree, tuple(dict.fromkeys(names))


def compile_condition(text: str, known: frozenset[str]) -> Condition:
    """Compile `text`; names must be in `known` (facts and parameters)."""
    tree, names = parse(text, known)
    deadline = None
    if (
        isinstance(tree, ast.Compare)
        and len(tree.ops) == 1
        and isinstance(tree.ops[0], ast.Gt)
        and isinstance(tree.left, ast.Name)
        and tree.left.id in DEADLINE_SUBJECTS
    ):
        deadline = compile_value(tree.comparators[0])
    return Condition(text, tree, names, compile_value(tree), deadline)


_COMPARISONS = (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn)


def _check(node: ast.expr, known: frozenset[str], names: list[str]) -> None:  # noqa: PLR0912 - a branch per node kind
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise InvalidExpression(f"unknown fact or parameter {node.id!r}", node.col_offset)
        names.append(node.id)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)):
            raise InvalidExpression("only numbers, strings and true/false are literals", node.col_offset)
    elif isinstance(node, (ast.List, ast.Tuple)):
        for element in node.elts:
            if not (isinstance(element, ast.Constant) and isinstance(element.value, (int, float, str))):
                raise InvalidExpression("a list may hold only literal numbers and strings", element.col_offset)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, known, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        _check(node.operand, known, names)
    elif isinstance(node, ast.Compare):
        if not all(isinstance(op, _COMPARISONS) for op in node.ops):
            raise InvalidExpression("only == != < <= > >= in and not in compare values", node.col_offset)
        for operand in (node.left, *node.comparators):
            _check(operand, known, names)
    elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        _check(node.left, known, names)
        _check(node.right, known, names)
    elif isinstance(node, ast.Call):
        _check_call(node, known, names)
    else:
        raise InvalidExpression(f"{type(node).__name__} is not allowed in a condition", node.col_offset)


def _check_call(node: ast.Call, known: frozenset[str], names: list[str]) -> None:
    if not isinstance(node.func, ast.Name) or node.keywords:
        raise InvalidExpression("call a function by name with positional arguments", node.col_offset)
    if node.func.id == "__period__":
        argument = node.args[0] if len(node.args) == 1 else None
        if not isinstance(argument, ast.Constant):
            raise InvalidExpression("write a period as the law does, e.g. '24 months'", node.col_offset)
        try:
            Period.parse(str(argument.value))
        except InvalidPeriod as error:
            raise InvalidExpression(str(error), node.col_offset) from None
        return
    if node.func.id not in FUNCTION_NAMES:
        known_functions = ", ".join(sorted(FUNCTION_NAMES))
        raise InvalidExpression(f"unknown function {node.func.id!r}; known: {known_functions}", node.col_offset)
    for argument in node.args:
        _check(argument, known, names)
