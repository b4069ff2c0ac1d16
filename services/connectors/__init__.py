"""Adapters that carry instructions out in the library system themselves, behind one interface.

A library whose system has an API (Koha, FOLIO) is named in the config (`[connectors.<library>]`,
kodex.config.ConnectorConfig); its adapter declares which actions it can carry out (`can`), and the relay
(services.delivery) hands it those. What it cannot do stays for the webhook, the pull API and the work list.

An adapter answers each instruction with a `Carried` result: done, rejected (the system says it cannot, with its
code: Koha's has_debt, FOLIO's haveAssociatedFeesAndFines), failed (it tried and could not), or retry (the system
was not reached or answered 5xx/429: try again later, after `retry_after` seconds when it said). `check` tries the
connection and the permissions without changing anything (`kodex connectors test`). Credentials come from the
config and are never logged, printed, or put in an error message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from kodex.config import ConnectorConfig
from kodex.services.instructions import Instruction

__all__ = ["Carried", "Check", "Connector", "connector_for"]


@dataclass(frozen=True)
class Carried:
    """What the library system did with one instruction."""

    state: Literal["done", "rejected", "failed", "retry"]
    code: str | None = None  # the system's machine code (has_debt, 422, …); never free text from a record
    detail: str | None = None  # plain words for the dpo (stored wrapped); never a credential
    retry_after: float | None = None  # seconds, when the system said (Retry-After)


@dataclass(frozen=True)
class Check:
    """One thing `kodex connectors test` checked: the connection, a permission, an endpoint."""

    name: str
    ok: bool
    detail: str


class Connector(Protocol):
    """An adapter for one library's system."""

    system: str  # koha, folio

    def can(self, action: str) -> bool:
        """Whether it carries `action` out itself (else the work list does)."""
        ...

    def carry_out(self, instruction: Instruction) -> Carried: ...

    def check(self) -> list[Check]:
        """Connection and permissions, changing nothing."""
        ...

    def close(self) -> None: ...


def connector_for(config: ConnectorConfig) -> Connector:
    """The adapter the config names."""
    if config.type == "folio":
        from kodex.services.connectors.folio import FolioAdapter  # noqa: PLC0415 - only the configured system's

        return FolioAdapter(config)
    from kodex.services.connectors.koha import KohaAdapter  # noqa: PLC0415

    return KohaAdapter(config)
