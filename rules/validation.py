"""Validating a stream of record-contract lines against the policy.

Structural errors come from the record models; then the checks that need the
policy and `as_of`: unknown library, duplicate id, a birth date after `as_of`,
a registration that ends before it starts, an exception on a rule that allows
none or from a role the regulation does not empower. Every problem names the
line and the field, and never the rejected value.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date

from pydantic import ValidationError

from kodex.rules.facts import local_day, local_time
from kodex.rules.nesting import json_too_deep
from kodex.rules.periods import Period, add_period
from kodex.rules.policy import DatedValue
from kodex.rules.records import RECORD, CameraRecording, ExceptionGrant, Incident, Loan, Reader
from kodex.rules.ruleset import Ruleset

__all__ = ["RecordProblem", "RecordSet", "read_records"]

AnyRecord = Reader | Loan | CameraRecording | Incident | ExceptionGrant


@dataclass(frozen=True, slots=True)
class RecordProblem:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}" if self.field else f"line {self.line}: {self.message}"


@dataclass
class RecordSet:
    readers: list[Reader] = field(default_factory=list)
    recordings: list[CameraRecording] = field(default_factory=list)
    loans: list[Loan] = field(default_factory=list)
    incidents: list[Incident] = field(default_factory=list)
    exceptions: list[ExceptionGrant] = field(default_factory=list)
    _grants: dict[tuple[str, str], list[ExceptionGrant]] = field(default_factory=lambda: defaultdict(list))
    _incidents: dict[tuple[str, str], list[Incident]] = field(default_factory=lambda: defaultdict(list))

    def add(self, record: AnyRecord) -> None:
        if isinstance(record, Reader):
            self.readers.append(record)
        elif isinstance(record, CameraRecording):
            self.recordings.append(record)
        elif isinstance(record, Loan):
            self.loans.append(record)
        elif isinstance(record, Incident):
            self.incidents.append(record)
            self._incidents[(record.library, record.reader)].append(record)
        else:
            self.exceptions.append(record)
            self._grants[(record.library, record.subject)].append(record)

    def grants_for(self, library: str, subject: str) -> list[ExceptionGrant]:
        return self._grants.get((library, subject), [])

    def incidents_for(self, library: str, reader: str) -> list[Incident]:
        """One reader's incidents, in input order (incident rules count per reader)."""
        return self._incidents.get((library, reader), [])


def read_records(
    lines: Iterable[str],
    ruleset: Ruleset,
    as_of: date,
    *,
    first_line: int = 1,
    first_seen: dict[tuple[str, str, str], int] | None = None,
    check: Callable[[int, AnyRecord], Iterable[RecordProblem]] | None = None,
) -> tuple[RecordSet, list[RecordProblem]]:
    """Valid records, and a problem for every invalid line (its records are left out).

    A long file may be read in chunks: pass each chunk's first line number and
    one `first_seen` mapping for all chunks, so a duplicate id is found across them.
    `check(line, record)`: the caller's own checks of a valid record (their line is filled in), e.g.
    where a recording's file lies, which needs the file system this package never touches.
    """
    records, problems = RecordSet(), list[RecordProblem]()
    first_seen = {} if first_seen is None else first_seen
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        if json_too_deep(line):  # refused unparsed: parsing it would recurse as deep as it nests
            problems.append(RecordProblem(number, "", "nested too deeply"))
            continue
        try:
            record = RECORD.validate_json(line)
        except ValidationError as error:
            problems.extend(_structural(number, error))
            continue
        found = list(_semantic(record, ruleset, as_of))
        if check is not None and not found:
            found.extend(check(number, record))
        key = (record.type, record.library, record.id)
        if key in first_seen:
            found.append(
                RecordProblem(
                    number,
                    "id",
                    f"duplicate {record.type} id in library {record.library!r}; first on line {first_seen[key]}",
                )
            )
        if found:
            problems.extend(RecordProblem(number, p.field, p.message) for p in found)
            continue
        first_seen[key] = number
        records.add(record)
    return records, problems


def _structural(number: int, error: ValidationError) -> Iterator[RecordProblem]:
    for detail in error.errors(include_input=False, include_url=False):
        raw = [str(p) for p in detail["loc"]]
        if "[key]" in raw:  # a key of personal/guardian data outside the vocabulary: the key itself may be personal
            at = raw.index("[key]") - 1
            yield RecordProblem(
                number,
                ".".join(p for p in raw[:at] if p not in _MODEL_TAGS),
                "unknown key (see the personal-data vocabulary)",
            )
            continue
        loc = [p for p in raw if p not in _MODEL_TAGS]
        message = detail["msg"]
        if detail["type"] == "extra_forbidden":
            message = "unknown field"
            if not _FIELD_LIKE.fullmatch(loc[-1]):  # not a misspelt field: the key may be a value (a name)
                loc, message = loc[:-1], "unknown field (its key is not repeated: it is not a field name)"
        elif detail["type"] == "value_error":
            message = message.removeprefix("Value error, ")
        elif detail["type"] == "missing":
            message = "required field is missing"
        elif detail["type"] in {"union_tag_invalid", "union_tag_not_found"}:
            loc, message = ["type"], "type must be one of: reader, loan, camera_recording, incident, exception"
        yield RecordProblem(number, ".".join(loc), message)


_FIELD_LIKE = re.compile(r"[a-z][a-z0-9_]{0,39}")  # the record contract's field names are snake_case ASCII
_MODEL_TAGS = {"reader", "loan", "camera_recording", "incident", "exception", "[key]"}


def _semantic(record: AnyRecord, ruleset: Ruleset, as_of: date) -> Iterator[RecordProblem]:
    library = ruleset.libraries.get(record.library)
    if library is None:
        known = ", ".join(sorted(ruleset.libraries))
        yield RecordProblem(0, "library", f"unknown library; the policy has: {known}")
        return
    zone = library.zone
    if isinstance(record, Reader):
        categories = library.library.categories.values
        if record.category is not None and record.category not in categories:
            yield RecordProblem(0, "category", f"not a category of this library ({', '.join(categories)})")
        if record.birth_date is not None and record.birth_date > as_of:
            yield RecordProblem(0, "birth_date", "birth date is after as_of")
        start, end = local_day(record.renewed_at, zone), local_day(record.valid_until, zone)
        if start is not None and end is not None and end < start:
            yield RecordProblem(0, "valid_until", "registration ends before renewed_at")
    elif isinstance(record, CameraRecording):
        if local_time(record.end, zone) < local_time(record.start, zone):
            yield RecordProblem(0, "end", "recording ends before it starts")
    elif isinstance(record, ExceptionGrant):
        yield from _exception_problems(record, ruleset)


def _exception_problems(grant: ExceptionGrant, ruleset: Ruleset) -> Iterator[RecordProblem]:
    library = ruleset.library(grant.library)
    versions = library.versions(grant.rule)
    if grant.until < grant.from_:
        yield RecordProblem(0, "until", "exception ends before it starts")
    if not versions:
        yield RecordProblem(0, "rule", f"library {grant.library!r} has no rule with this id")
        return
    rule = versions[-1].rule
    allowed = set(rule.exception_by)
    authority = library.library.exceptions
    limit = _in_force(authority.max_period, grant.from_)
    longest = Period.parse(str(limit.value))
    if grant.until > add_period(grant.from_, longest):
        yield RecordProblem(0, "until", f"an exception lasts at most {longest} from its first day ({limit.cite})")
    if rule.subject == "camera_recording":
        yield RecordProblem(0, "rule", f"rule {grant.rule} is about camera recordings: keep one longer by a legal hold")
    elif not allowed:
        yield RecordProblem(0, "rule", f"rule {grant.rule} allows no exceptions")
    elif grant.role not in allowed or grant.role not in authority.roles:
        yield RecordProblem(
            0,
            "role",
            f"role may not grant exceptions to {grant.rule}; empowered: {', '.join(sorted(allowed))} ({authority.cite})",
        )


def _in_force(values: Mapping[date, DatedValue], day: date) -> DatedValue:
    """The value in force on `day`; before the first date, the first value (an exception is never unlimited)."""
    dates = [d for d in values if d <= day]
    return values[max(dates) if dates else min(values)]
