"""What every command shares: the two consoles, the one wrapper that maps errors to exit codes, --as-of's reading."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from kodex.errors import failure_for

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["err", "out", "parse_as_of", "run_body"]

T = TypeVar("T")


class _Console:
    """A rich Console made on first use: importing rich costs more than `kodex --help` may (bench/cli_startup.py)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console  # noqa: PLC0415

            self._console = Console(**self._options)
        return getattr(self._console, name)


out: Any = _Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err: Any = _Console(stderr=True, highlight=False, soft_wrap=True)


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


def parse_as_of(text: str) -> date | datetime:
    """A day (YYYY-MM-DD) or a moment with offset; anything else, or a moment without one, is wrong usage."""
    from kodex.rules.values import aware  # noqa: PLC0415

    try:
        moment = date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            "write a day as YYYY-MM-DD or a moment as 2026-11-22T02:00:00+01:00", param_hint="--as-of"
        ) from None
    try:
        return aware(moment)  # a moment without offset would be read in whatever zone this machine is in
    except ValueError as naive:
        raise typer.BadParameter(str(naive), param_hint="--as-of") from None


def configure_logging() -> None:
    """The service's log lines (kodex serve and its workers), in one format. HTTP clients' own request lines stay
    out: httpx logs each URL it calls at INFO, and a connector's URLs name readers by the library system's id."""
    import logging  # noqa: PLC0415

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
