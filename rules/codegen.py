"""Checked conditions compiled to Python functions, so a population is decided fast.

rules.expressions parses and checks a condition; this module turns its syntax
tree into Python source — one function per value (`def value(e): return …`)
and one per rule (`def fires(e): …`, True only when every condition is known
to hold) — with null-aware operators: an unknown operand makes the result
unknown. Names become `e['name']` lookups and literals bound constants; only
node kinds the checker accepts are generated.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from kodex.errors import BrokenInvariant
from kodex.rules.periods import Period, add_period, end_of_year

__all__ = ["FUNCTIONS", "compile_rule", "compile_rules", "compile_value"]

Fires = Callable[[Mapping[str, Any]], bool]

_OPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
}


def compile_rule(conditions: Sequence[ast.expr]) -> Fires:
    """`fires(env)`: True when every condition holds; unknown or false is False."""
    generator = _Generator()
    lines = ["def fires(e):"]
    for tree in conditions:
        lines += [f"    v = {generator.expression(tree)}", "    if v is None or not v:", "        return False"]
    lines.append("    return True")
    fires: Fires = _define(lines, generator, "fires")
    return fires


def compile_rules(rules: Sequence[Sequence[ast.expr]]) -> Callable[[Mapping[str, Any]], tuple[bool, ...]]:
    """`fires(env)`: for each rule, whether it fires — one call for a library's whole rule set."""
    generator = _Generator()
    lines = ["def fires(e):"]
    for index, conditions in enumerate(rules):
        lines.append(f"    r{index} = False")
        indent = "    "
        for tree in conditions:
            lines += [f"{indent}v = {generator.expression(tree)}", f"{indent}if v is not None and v:"]
            indent += "    "
        lines.append(f"{indent}r{index} = True")
    lines.append(f"    return ({''.join(f'r{i}, ' for i in range(len(rules)))})")
    fires: Callable[[Mapping[str, Any]], tuple[bool, ...]] = _define(lines, generator, "fires")
    return fires


def compile_value(tree: ast.expr) -> Callable[[Mapping[str, Any]], Any]:
    """`value(env)`: the expression's value, None when an operand is unknown."""
    generator = _Generator()
    value: Callable[[Mapping[str, Any]], Any] = _define(
        ["def value(e):", f"    return {generator.expression(tree)}"], generator, "value"
    )
    return value


def _define(lines: list[str], generator: _Generator, name: str) -> Any:
    namespace: dict[str, Any] = dict(generator.constants) | _RUNTIME
    exec(compile("\n".join(lines), f"<kodex {name}>", "exec"), namespace)  # source generated from a checked tree
    return namespace[name]


class _Generator:
    def __init__(self) -> None:
        self.constants: dict[str, Any] = {}
        self.temporaries = 0

    def expression(self, node: ast.expr) -> str:
        if isinstance(node, ast.Name):
            return f"e[{node.id!r}]"
        if isinstance(node, ast.Constant):
            return repr(node.value)
        if isinstance(node, (ast.List, ast.Tuple)):
            return self._constant(tuple(element.value for element in node.elts if isinstance(element, ast.Constant)))
        if isinstance(node, ast.UnaryOp):
            return f"_not({self.expression(node.operand)})"
        if isinstance(node, ast.BoolOp):
            helper = "_and" if isinstance(node.op, ast.And) else "_or"
            return f"{helper}({', '.join(self.expression(v) for v in node.values)})"
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.BinOp):
            helper = "_minus" if isinstance(node.op, ast.Sub) else "_plus"
            return self._null_safe(f"{helper}({{a}}, {{b}})", node.left, node.right)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id == "__period__":
                argument = node.args[0]
                if not isinstance(argument, ast.Constant):
                    raise BrokenInvariant("a checked condition's period is a constant (rules.expressions)")
                return self._constant(Period.parse(str(argument.value)))
            return f"_f_{node.func.id}({', '.join(self.expression(a) for a in node.args)})"
        raise ValueError(f"{type(node).__name__} is not allowed in a condition")

    def _compare(self, node: ast.Compare) -> str:
        if len(node.ops) != 1:
            operands = ", ".join(self.expression(x) for x in (node.left, *node.comparators))
            ops = self._constant(tuple(_OPS[type(op)] for op in node.ops))
            return f"_chain({ops}, {operands})"
        return self._null_safe(f"{{a}} {_OPS[type(node.ops[0])]} {{b}}", node.left, node.comparators[0])

    def _null_safe(self, template: str, left: ast.expr, right: ast.expr) -> str:
        a, b = self._temporary(), self._temporary()
        test = f"({a} := {self.expression(left)}) is None or ({b} := {self.expression(right)}) is None"
        return f"(None if {test} else {template.format(a=a, b=b)})"

    def _temporary(self) -> str:
        self.temporaries += 1
        return f"_t{self.temporaries}"

    def _constant(self, value: Any) -> str:
        name = f"_k{len(self.constants)}"
        self.constants[name] = value
        return name


@lru_cache(maxsize=65536)
def _shift(day: date, years: int, months: int, days: int) -> date:
    return add_period(day, Period(years, months, days))


def _plus(a: Any, b: Any) -> Any:
    if b.__class__ is Period:
        if a.__class__ is date:
            return _shift(a, b.years, b.months, b.days)
        return add_period(a, b)
    return a + b


def _minus(a: Any, b: Any) -> Any:
    if b.__class__ is Period:
        if a.__class__ is date:
            return _shift(a, -b.years, -b.months, -b.days)
        return add_period(a, -b)
    return a - b


def _truth(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _not(v: Any) -> bool | None:
    return None if v is None else not v


def _and(*values: Any) -> bool | None:
    truths = [_truth(v) for v in values]
    return False if False in truths else None if None in truths else True


def _or(*values: Any) -> bool | None:
    truths = [_truth(v) for v in values]
    return True if True in truths else None if None in truths else False


_CHECKS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}


def _chain(ops: tuple[str, ...], *operands: Any) -> bool | None:
    if any(o is None for o in operands):
        return None
    return all(_CHECKS[op](operands[i], operands[i + 1]) for i, op in enumerate(ops))


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

_RUNTIME: dict[str, Any] = {
    "_plus": _plus,
    "_minus": _minus,
    "_not": _not,
    "_and": _and,
    "_or": _or,
    "_chain": _chain,
    **{f"_f_{name}": function for name, function in FUNCTIONS.items()},
    "__builtins__": {},
}
