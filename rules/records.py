"""The record contract (what `kodex import` reads): JSON Lines, one record a line.

Every record has `type` and `library`. Unknown fields and wrong types are
rejected with the line number and the field; messages never repeat the value
they reject, so no personal data reaches an error message or a log.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, TypeAdapter

from kodex.rules.policy import INCIDENT_KINDS, IncidentKind, PersonalKey
from kodex.rules.values import NoNul, RecordDay

__all__ = [
    "INCIDENT_KINDS",
    "RECORD",
    "SUBJECT",
    "CameraRecording",
    "ExceptionGrant",
    "Incident",
    "LegalHold",
    "Loan",
    "Reader",
    "Record",
    "Subject",
]

Id = Annotated[str, StringConstraints(min_length=1, max_length=200), NoNul]
Text = Annotated[str, StringConstraints(min_length=1), NoNul]
Day = RecordDay  # a date without time is 00:00 in the library's time zone
Count = Annotated[int, Field(ge=0)]


def _number(value: object) -> object:
    if isinstance(value, (str, bool)):
        raise ValueError("must be a number, not text")  # JSON "10" is text; an amount is written 10
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    return value


Money = Annotated[Decimal, BeforeValidator(_number), Field(ge=0)]
PersonalData = dict[PersonalKey, str | None]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    library: Id
    id: Id


class LegalHold(BaseModel):
    """Data that must not be erased; active while `until` is null or not yet past."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    reason: Text
    until: date | None


class Reader(_Record):
    type: Literal["reader"]
    kind: Literal["person", "legal_entity"]
    category: Annotated[str, NoNul] | None = None
    birth_date: date | None = None
    renewed_at: Day | None = None
    valid_until: Day | None = None
    last_activity_at: Day | None = None
    one_time: bool | None = None
    debt: Money | None = None
    obligations_settled_at: Day | None = None
    active_loans: Count | None = None
    reminded_loans: Count | None = None
    reminded_ill_loans: Count | None = None
    guardian: PersonalData | None = None
    legal_hold: LegalHold | None = None
    erasure_requested_at: Day | None = None
    history_erasure_requested_at: Day | None = None
    personal: PersonalData | None = None


class Loan(_Record):
    type: Literal["loan"]
    reader: Id | None
    item: Id
    borrowed_at: Day
    due_at: Day | None = None
    returned_at: Day | None = None
    ill: bool = False


class CameraRecording(_Record):
    type: Literal["camera_recording"]
    camera: Id
    start: Day
    end: Day
    location: Annotated[str, NoNul]
    legal_hold: LegalHold | None = None


class Incident(_Record):
    type: Literal["incident"]
    reader: Id
    kind: IncidentKind
    at: Day


class ExceptionGrant(_Record):
    """A director's time-limited, justified suspension of one rule for one subject."""

    type: Literal["exception"]
    subject: Id
    rule: Id
    role: Id
    granted_by: Text
    reason: Text
    from_: date = Field(alias="from")
    until: date


Record = Annotated[
    Reader | Loan | CameraRecording | Incident | ExceptionGrant,
    Field(discriminator="type"),
]
RECORD: TypeAdapter[Reader | Loan | CameraRecording | Incident | ExceptionGrant] = TypeAdapter(Record)
Subject = Annotated[Reader | CameraRecording, Field(discriminator="type")]  # what the rules decide on
SUBJECT: TypeAdapter[Reader | CameraRecording] = TypeAdapter(Subject)
