"""Commands built only when they are called, so `kodex --help` and the light commands start in a blink.

Typer builds every command's parameters whenever `kodex` starts, and the store's commands need the store's modules
for that (SQLAlchemy, cryptography: a second of imports). Such a command is listed by a stand-in (its name and help,
`stand_in`), and its group, a `Deferring`, builds the real one (importing its module) only when it is called.
tests/api/test_cli.py checks that each stand-in says what the real command says.
"""

from __future__ import annotations

import importlib
from typing import Any

import typer
from typer.core import TyperGroup

__all__ = ["DEFERRED", "Deferring", "real_command", "stand_in"]

# command path below `kodex` -> (module, attribute): a Typer app (a group) or a function (a command)
DEFERRED: dict[str, tuple[str, str]] = {}


def stand_in(parent: typer.Typer, path: str, module: str, attribute: str, help: str) -> None:
    """List `path`'s last word in `parent` with `help`; the command itself is `module.attribute`, built when called."""
    DEFERRED[path] = (module, attribute)
    name = path.rsplit(maxsplit=1)[-1]
    if attribute.endswith("_app"):
        parent.add_typer(typer.Typer(rich_markup_mode=None, help=help), name=name)
    else:
        parent.command(name, help=help)(_never_called)


def real_command(path: str) -> Any:  # a click command (typer's own click, which it does not export)
    """The deferred command at `path`, built from its module (imported now) as its group would have built it."""
    module, attribute = DEFERRED[path]
    target: Any = getattr(importlib.import_module(module), attribute)
    name = path.rsplit(maxsplit=1)[-1]
    wrapper = typer.Typer(rich_markup_mode=None, add_completion=False)
    if isinstance(target, typer.Typer):
        wrapper.add_typer(target, name=name)
        return typer.main.get_command(wrapper).commands[name]  # type: ignore[attr-defined]
    wrapper.command(name)(target)
    return typer.main.get_command(wrapper)


class Deferring(TyperGroup):
    """A group whose deferred commands are their stand-ins until one is called; then it is the real command."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:  # typer.Context; (name, command, the rest of args)
        name, command, rest = super().resolve_command(ctx, args)
        path = " ".join([*ctx.command_path.split()[1:], name or ""])
        if name is not None and path in DEFERRED:
            return name, real_command(path), rest
        return name, command, rest


def _never_called() -> None:  # pragma: no cover - the group resolves the real command before any call
    raise RuntimeError("a deferred command's stand-in was called")
