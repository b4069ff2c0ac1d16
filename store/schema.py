"""The store's tables (SQLAlchemy Core), one schema for SQLite and PostgreSQL.

Personal data never sits in a column in clear: a reader's personal data,
guardian data, birth date and legal-hold reason are one AES-GCM blob
(`sealed`) under the reader's data key, and the data key is stored only
wrapped by the master key (`wrapped_key`). Anonymising deletes both; what
statistics need (category, birth year, dates, counts) stays in `facts`.

Subjects are referred to across tables by library and record id (the
contract's `id`); decisions and findings refer to them by `pseudonym` only, a
random value that is not derived from the record and is erased on
anonymisation, so nothing links the log to the person afterwards.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "camera_recordings",
    "decisions",
    "erased_loans",
    "exceptions",
    "findings",
    "incidents",
    "keyring",
    "libraries",
    "loans",
    "metadata",
    "plan_items",
    "purged_recordings",
    "readers",
    "run_leases",
    "runs",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = String(200)
Iso = String(40)  # an ISO 8601 date or date-time exactly as the record gave it

libraries = Table(
    "libraries",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("time_zone", String(64), nullable=False),
)

keyring = Table(
    "keyring",
    metadata,
    Column("name", String(64), primary_key=True),
    # AES-GCM of a fixed text under the master key: tells a wrong master key apart before anything is touched
    Column("check_value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

readers = Table(
    "readers",
    metadata,
    Column("rid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("id", Id, nullable=False),
    Column("pseudonym", String(32), unique=True),  # None once anonymised
    Column("state", String(16), nullable=False),  # active, lapsed (registration expired), anonymised
    Column("blocked", Boolean, nullable=False, default=False),  # services suspended (block_services / lift_block)
    Column("facts", JSON, nullable=False),  # the record without personal data (statistics survive anonymising)
    Column("wrapped_key", LargeBinary),  # the reader's data key, wrapped by the master key; None once anonymised
    Column("sealed", LargeBinary),  # personal, guardian, birth date, legal-hold reason under the data key
    Column("digest", LargeBinary),  # keyed digest of the imported record: importing it again changes nothing
    Column("next_review", Date),  # the earliest day a rule could change its outcome; None: review at the next run
    Column("reviewed_as_of", Iso),
    Column("anonymised_at", DateTime(timezone=True)),
    UniqueConstraint("library", "id"),
    Index("ix_readers_review", "library", "next_review"),
)

loans = Table(
    "loans",
    metadata,
    Column("lid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("id", Id, nullable=False),
    Column("reader", Id),  # None: detached (the reader was anonymised)
    Column("item", Id, nullable=False),
    Column("borrowed_at", Iso, nullable=False),
    Column("due_at", Iso),
    Column("returned_at", Iso),
    Column("ill", Boolean, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    UniqueConstraint("library", "id"),
    Index("ix_loans_reader", "library", "reader"),
)

camera_recordings = Table(
    "camera_recordings",
    metadata,
    Column("cid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("id", Id, nullable=False),
    Column("pseudonym", String(32), unique=True, nullable=False),
    Column("camera", Id, nullable=False),
    Column("start", Iso, nullable=False),
    Column("end", Iso, nullable=False),
    Column("location", Text, nullable=False),
    Column("legal_hold", JSON),
    Column("digest", LargeBinary, nullable=False),
    Column("next_review", Date),
    Column("reviewed_as_of", Iso),
    Column("purge_failures", Integer, nullable=False, default=0),
    UniqueConstraint("library", "id"),
    Index("ix_camera_recordings_review", "library", "next_review"),
)

purged_recordings = Table(  # what was purged is never taken in again from an import
    "purged_recordings",
    metadata,
    Column("library", String(64), primary_key=True),
    Column("id", Id, primary_key=True),
    Column("purged_at", DateTime(timezone=True), nullable=False),
)

erased_loans = Table(  # a loan history erased is never taken in again from an import
    "erased_loans",
    metadata,
    Column("library", String(64), primary_key=True),
    Column("id", Id, primary_key=True),
    Column("erased_at", DateTime(timezone=True), nullable=False),
)

incidents = Table(
    "incidents",
    metadata,
    Column("iid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("id", Id, nullable=False),
    Column("reader", Id),  # None: detached (the reader was anonymised)
    Column("kind", String(40), nullable=False),
    Column("at", Iso, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    UniqueConstraint("library", "id"),
    Index("ix_incidents_reader", "library", "reader"),
)

exceptions = Table(
    "exceptions",
    metadata,
    Column("eid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("id", Id, nullable=False),
    Column("subject", Id, nullable=False),
    Column("rule", String(200), nullable=False),
    Column("role", String(40), nullable=False),
    Column("granted_by", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("from", Date, nullable=False),
    Column("until", Date, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    UniqueConstraint("library", "id"),
    Index("ix_exceptions_subject", "library", "subject"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("as_of", Iso, nullable=False),
    Column("as_of_day", Date, nullable=False),
    Column("dry_run", Boolean, nullable=False),
    Column("full", Boolean, nullable=False),
    Column("policy_revision", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # running, finished, interrupted (killed; a later run took over)
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("summary", JSON),
    Index("ix_runs_library_day", "library", "as_of_day"),
)

decisions = Table(
    "decisions",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("run_id", String(36), ForeignKey("runs.id"), nullable=False),
    Column("library", String(64), nullable=False),
    Column("as_of", Iso, nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject", String(32), nullable=False),  # the subject's pseudonym, never its record id
    Column("rule", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("outcome", String(16), nullable=False),  # applied, reported, proposed, retained, failed, error
    Column("decision", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # one decision per subject, rule, action, outcome and as_of: a rerun (or a run racing another) records nothing
    # twice, and a purge that fails and then succeeds at the same as_of is recorded both times
    UniqueConstraint("library", "subject_type", "subject", "rule", "action", "outcome", "as_of"),
    Index("ix_decisions_run", "run_id"),
)

findings = Table(
    "findings",
    metadata,
    Column("fid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject", String(32), nullable=False),  # pseudonym
    Column("rule", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("effect", String(16), nullable=False),  # report or propose: for people to act on, never applied here
    Column("status", String(16), nullable=False),  # open, resolved (the rule no longer holds)
    Column("basis", String(250)),  # for a retained action: what blocks it (an exception id, a legal hold)
    Column("decided_by", String(40)),
    Column("decision_id", String(36), nullable=False),
    Column("opened_as_of", Iso, nullable=False),
    Column("closed_as_of", Iso),
    UniqueConstraint("library", "subject_type", "subject", "rule"),
)

plan_items = Table(
    "plan_items",
    metadata,
    Column("pid", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(36), ForeignKey("runs.id"), nullable=False),
    Column("library", String(64), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject", String(32), nullable=False),  # pseudonym
    Column("rule", String(200), nullable=False),
    Column("action", String(40), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("decision", JSON, nullable=False),
    Index("ix_plan_items_run", "run_id"),
)

run_leases = Table(
    "run_leases",
    metadata,
    Column("library", String(64), primary_key=True),
    Column("run_id", String(36), nullable=False),
    Column("holder", String(200), nullable=False),  # host and process id
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)
