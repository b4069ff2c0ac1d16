"""The policy language: libraries, their regulations, parameters and rules.

policies.yaml is validated against these models, strictly: unknown keys are
errors, and every legal value (period, age, role) is written in the file —
nothing here supplies a default for it. Parameters that come from the law are
dated values with their citation (OpenFisca style), so a later regulation adds
a dated value instead of rewriting history.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from kodex.rules.actions import INSTRUCTED, Effect
from kodex.rules.periods import Period

__all__ = [
    "INCIDENT_KINDS",
    "PERSONAL_KEYS",
    "ROLES",
    "Categories",
    "DatedValue",
    "Example",
    "ExampleException",
    "ExceptionAuthority",
    "IncidentPattern",
    "InstructionDeadlines",
    "Inventory",
    "Library",
    "Policy",
    "Regulation",
    "Rule",
]

Role = Literal["director", "authorised_employee"]
ROLES: tuple[str, ...] = ("director", "authorised_employee")

PersonalKey = Literal[
    "first_name",
    "last_name",
    "address",
    "contact_address",
    "email",
    "phone",
    "id_document",
    "id_issuing_state",
    "citizenship",
    "residence_permit",
    "employer",
    "department",
    "titles",
    "ztp",
]
PERSONAL_KEYS: tuple[str, ...] = PersonalKey.__args__  # type: ignore[attr-defined]
InventoryKey = PersonalKey | Literal["birth_date"]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Quote = Annotated[list[Text], Field(min_length=1)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")]
ParamValue = int | list[str] | str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DatedValue(_Strict):
    """A value of the law from a date on, with the article that sets it."""

    value: ParamValue
    cite: Text


Params = dict[Identifier, Annotated[dict[date, DatedValue], Field(min_length=1)]]


class Regulation(_Strict):
    title: Text
    reference: Text | None
    effective: date
    seed: Text
    quote: Quote


class ExceptionAuthority(_Strict):
    """Who the regulation empowers to grant exceptions to its rules, and for how long one may last at most.

    `max_period` is a dated period counted from an exception's first day (`from`): its `until` may be no later.
    """

    roles: Annotated[list[Role], Field(min_length=1)]
    cite: Text
    quote: Quote
    max_period: Annotated[dict[date, DatedValue], Field(min_length=1)]


def _instructed(action: str) -> str:
    if action not in INSTRUCTED:
        raise ValueError(f"{action!r} is not an instructed action; one of: {', '.join(INSTRUCTED)}")
    return action


InstructedAction = Annotated[str, AfterValidator(_instructed)]


class InstructionDeadlines(_Strict):
    """How long the library system has to carry out each kind of instruction (services.instructions).

    `due` is a dated period per instructed action, counted from the day the action is applied in kodex; an
    instruction that carries out a data-subject request is due no later than the request itself (GDPR Art. 12(3)).
    An action without a period has no `due_on` and is never overdue.
    """

    cite: Text
    due: dict[InstructedAction, Annotated[dict[date, DatedValue], Field(min_length=1)]]

    @field_validator("due")
    @classmethod
    def _periods(cls, value: dict[str, dict[date, DatedValue]]) -> dict[str, dict[date, DatedValue]]:
        for action, dated in value.items():
            for day, item in dated.items():
                if not isinstance(item.value, str):
                    raise ValueError(f"due.{action} on {day}: a period such as '7 days' is expected")
                Period.parse(item.value)
        return value


class Categories(_Strict):
    """The reader categories the library uses; a record with any other is an invalid line.

    `quote` is the regulation's text where it names them, null where it names none (then `cite` says whence).
    """

    values: Annotated[list[Identifier], Field(min_length=1)]
    cite: Text
    quote: Quote | None


class Inventory(_Strict):
    """The personal data the regulation lets the library hold (and must hold)."""

    cite: Text
    quote: Quote
    mandatory: list[InventoryKey]
    optional: list[InventoryKey]
    mandatory_when: dict[InventoryKey, Text] = {}

    @model_validator(mode="after")
    def _disjoint(self) -> Inventory:
        both = set(self.mandatory) & set(self.optional)
        if both:
            raise ValueError(f"{', '.join(sorted(both))} listed as both mandatory and optional")
        return self


IncidentKind = Literal[
    "card_lost",
    "item_lost",
    "item_damaged",
    "unauthorised_removal",
    "damage_refused",
    "expelled_from_premises",
    "reservation_not_collected",
    "gross_misconduct",
]
INCIDENT_KINDS: tuple[str, ...] = IncidentKind.__args__  # type: ignore[attr-defined]


class IncidentPattern(_Strict):
    """A pattern in a reader's stream of incidents: at least `at_least` of `kinds`, optionally within a window.

    Counted per reader. With `within` (a period such as P1Y), only incidents in
    the window ending on `as_of` count: from the day after `as_of - within` to
    `as_of`, both inclusive. Incidents dated after the day of `as_of` never
    count; days are compared in the library's time zone, like every reader rule.
    """

    kinds: Annotated[list[IncidentKind], Field(min_length=1)]
    at_least: Annotated[int, Field(ge=1)]
    within: Text | None = None


class ExampleIncident(_Strict):
    """An incident in an example's history; `reader: other` puts it on another reader (it must not count)."""

    kind: IncidentKind
    at: date | datetime
    reader: Literal["self", "other"] = "self"


class ExampleException(_Strict):
    """A director's exception on the example's rule, for the example's subject."""

    role: Text
    from_: date = Field(alias="from")
    until: date


class Example(_Strict):
    """A case stated like a test: at `as_of`, this subject gets `expect`."""

    name: Text
    as_of: date | datetime
    reader: dict[str, Any] | None = None
    recording: dict[str, Any] | None = None
    exceptions: list[ExampleException] = []
    incidents: list[ExampleIncident] = []
    expect: Identifier

    @model_validator(mode="after")
    def _one_subject(self) -> Example:
        if (self.reader is None) == (self.recording is None):
            raise ValueError("an example gives exactly one of 'reader' or 'recording'")
        return self


class Rule(_Strict):
    id: RuleId
    title: Text
    cite: Text
    quote: Quote
    effective_from: date
    effective_to: date | None = None
    subject: Literal["reader", "camera_recording"]
    effect: Effect
    action: Identifier
    exception_by: list[Role]
    params: Params = {}
    decided_by: Role | None = None  # for a proposal: the role the regulation lets decide it
    derive: dict[Literal["valid_until"], Text] = {}
    when: Annotated[list[Text], Field(min_length=1)] | None = None
    incidents: IncidentPattern | None = None
    examples: Annotated[list[Example], Field(min_length=1)]

    @model_validator(mode="after")
    def _period_in_order(self) -> Rule:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        if (self.when is None) == (self.incidents is None):
            raise ValueError("a rule gives exactly one of 'when' (conditions on facts) or 'incidents' (a pattern)")
        if self.incidents is not None and self.subject != "reader":
            raise ValueError("incident rules count a reader's incidents; their subject is reader")
        if (self.decided_by is None) == (self.effect is Effect.PROPOSE):
            raise ValueError("a proposal names the role that decides it ('decided_by'); other effects do not")
        return self

    @property
    def conditions(self) -> list[str]:
        """The conditions on facts (none for an incident rule)."""
        return self.when or []

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


class Library(_Strict):
    id: Identifier
    name: Text
    sigla: Text | None
    time_zone: Text
    regulation: Regulation
    exceptions: ExceptionAuthority
    categories: Categories
    inventory: Inventory
    params: Params = {}
    instructions: InstructionDeadlines | None = None  # None: instructions have no deadline (never overdue)
    rules: Annotated[list[Rule], Field(min_length=1)]

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value not in _ZONES:
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as Europe/Prague")
        return value


class Policy(_Strict):
    kodex: Literal[1]
    libraries: Annotated[list[Library], Field(min_length=1)]


_ZONES = available_timezones()
