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

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from rules.actions import Effect

__all__ = [
    "PERSONAL_KEYS",
    "ROLES",
    "DatedValue",
    "Example",
    "ExampleException",
    "ExceptionAuthority",
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
    """Who the regulation empowers to grant exceptions to its rules."""

    roles: Annotated[list[Role], Field(min_length=1)]
    cite: Text
    quote: Quote


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
    derive: dict[Literal["valid_until"], Text] = {}
    when: Annotated[list[Text], Field(min_length=1)]
    examples: Annotated[list[Example], Field(min_length=1)]

    @model_validator(mode="after")
    def _period_in_order(self) -> Rule:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError("effective_to is before effective_from")
        return self

    def in_force(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


class Library(_Strict):
    id: Identifier
    name: Text
    sigla: Text | None
    time_zone: Text
    regulation: Regulation
    exceptions: ExceptionAuthority
    inventory: Inventory
    params: Params = {}
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
