"""The action vocabulary of a decision (the README, "Decisions"), in one registry.

Each action names the subject it acts on, the effects a rule may give it
(applied automatically, reported as a finding, or proposed for a director's
decision) and whether it destroys data. A destructive action is blocked by an
active legal hold (e.g. SVK PK čl. 9 odst. 6) and by an exception on its rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["ACTIONS", "EXCLUDE", "INSTRUCTED", "RETAIN", "Action", "Effect", "Instructed", "action"]


class Effect(StrEnum):
    """How a decision is carried out."""

    APPLY = "apply"
    REPORT = "report"
    PROPOSE = "propose"


@dataclass(frozen=True, slots=True)
class Action:
    name: str
    subjects: frozenset[str]
    effects: frozenset[Effect]
    destructive: bool
    meaning: str


def _action(name: str, subjects: str, effects: str, destructive: bool, meaning: str) -> Action:
    return Action(
        name,
        frozenset(subjects.split()),
        frozenset(Effect(e) for e in effects.split()),
        destructive,
        meaning,
    )


RETAIN = "retain"

ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        _action("anonymise", "reader", "apply", True, "destroy identity, keep what statistics need"),
        _action("erase_guardian_data", "reader", "apply", True, "erase the guardian's data"),
        _action("erase_loan_history", "reader", "apply", True, "erase the loan history; registration stays"),
        _action("registration_expired", "reader", "apply report", False, "registration has lapsed"),
        _action("require_guardian", "reader", "report", False, "guardian's data must be recorded"),
        _action("reject_registration", "reader", "report propose", False, "registration is not allowed"),
        _action("missing_mandatory_data", "reader", "report", False, "mandatory data are missing"),
        _action("flag_excess_data", "reader", "report", False, "data beyond the regulation's inventory are held"),
        _action("block_services", "reader", "apply", False, "services suspended"),
        _action("lift_block", "reader", "apply", False, "suspension lifted"),
        _action("propose_exclusion", "reader", "propose", False, "exclusion proposed to the deciding role"),
        _action("revoke_reservations", "reader", "propose", False, "right to reserve withdrawn (a proposal)"),
        _action("purge", "camera_recording", "apply", True, "delete the recording"),
    )
}


def action(name: str) -> Action:
    """The registered action called `name` (KeyError when there is none)."""
    return ACTIONS[name]


@dataclass(frozen=True, slots=True)
class Instructed:
    """What the library system must do to mirror an applied action, in plain words (English and Czech)."""

    en: str
    cs: str


# An accepted exclusion (the rule's action is propose_exclusion) reaches the library system as `exclude`.
EXCLUDE = "exclude"

# Every applied action the library system must mirror, and what it must do: the instruction's `what`
# (services.instructions). kodex changes its own copy; these say what the library system still holds.
INSTRUCTED: dict[str, Instructed] = {
    "anonymise": Instructed(
        "remove name, address, contacts, document numbers, birth date and guardian data; keep category, birth year, "
        "dates and counts (statistics); detach the loan history from the reader",
        "odstraňte jméno, adresu, kontakty, čísla dokladů, datum narození a údaje zákonného zástupce; ponechte "
        "kategorii, rok narození, data a počty (statistika); odpojte historii výpůjček od čtenáře",
    ),
    "erase_guardian_data": Instructed(
        "remove the guardian's name, address and contacts from the reader's record; keep the rest",
        "odstraňte ze záznamu čtenáře jméno, adresu a kontakty zákonného zástupce; ostatní ponechte",
    ),
    "erase_loan_history": Instructed(
        "delete the reader's returned loans (loan history); loans still out stay; keep the registration",
        "smažte vrácené výpůjčky čtenáře (historii výpůjček); nevrácené výpůjčky ponechte; registrace zůstává",
    ),
    "registration_expired": Instructed(
        "mark the registration as expired (lapsed); the reader must renew it before using services again",
        "označte registraci jako propadlou; čtenář ji musí obnovit, než znovu využije služby",
    ),
    "block_services": Instructed(
        "block the reader's services (loans, reservations, renewals) until kodex lifts the block",
        "zablokujte čtenáři služby (výpůjčky, rezervace, prodlužování), dokud kodex blokaci nezruší",
    ),
    "lift_block": Instructed(
        "lift the block on the reader's services that kodex set",
        "zrušte blokaci služeb čtenáře, kterou kodex nastavil",
    ),
    "purge": Instructed(
        "delete the camera recording and every copy of it",
        "smažte kamerový záznam a všechny jeho kopie",
    ),
    EXCLUDE: Instructed(
        "exclude the reader from services for good (the deciding role accepted the exclusion); the block stays",
        "vylučte čtenáře ze služeb natrvalo (rozhodující osoba vyloučení schválila); blokace zůstává",
    ),
}
