"""What every command shares: the two consoles and the one wrapper that maps errors to exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

import typer
from rich.console import Console

from kodex.errors import failure_for

__all__ = ["err", "out", "run_body"]

out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)
T = TypeVar("T")


def run_body(command: Callable[[], T]) -> T:
    """Run a command body; map domain errors to their exit code in one place."""
    try:
        return command()
    except Exception as error:
        failure = failure_for(error)
        if failure is None:
            raise
        err.print(f"[bold red]{failure.title}[/]", markup=True)
        err.print(str(error), markup=False)
        raise typer.Exit(failure.exit_code) from None
