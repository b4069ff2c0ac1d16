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
    BigInteger,
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
    literal_column,
    text,
)

__all__ = [
    "LIVE_READER",
    "LIVE_READER_SQL",
    "LOG_TABLES",
    "OPEN_INSTRUCTION",
    "OPEN_INSTRUCTION_SQL",
    "OPEN_INSTRUCTION_STATES",
    "agreements",
    "camera_recordings",
    "decision_log",
    "erased_loans",
    "exceptions",
    "findings",
    "incidents",
    "instruction_heads",
    "instructions",
    "keyring",
    "legal_holds",
    "libraries",
    "loans",
    "log_checkpoints",
    "log_heads",
    "log_keys",
    "log_subtrees",
    "metadata",
    "plan_items",
    "purged_recordings",
    "readers",
    "run_leases",
    "runs",
    "subject_requests",
    "users",
    "webhooks",
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
    # onboarding (ZÍSKEJ, seed 000): no personal data is accepted for a library until its data-processing
    # agreement (GDPR Art. 28) is recorded
    Column("agreement_signed_on", Date),
    Column("agreement_reference", Text),
    Column("onboarded_at", DateTime(timezone=True)),
)

users = Table(  # who may call the service: a bearer token, stored only as its SHA-256
    "users",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("library", String(64), ForeignKey("libraries.id")),  # None for the service centre's operators
    Column("role", String(20), nullable=False),
    Column("name", LargeBinary, nullable=False),  # the person's or system's name, wrapped by the master key
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    # who issued the token: a user's id and role, or role "cli" (the server's command line); None before 0006
    Column("created_by", String(36)),
    Column("created_by_role", String(20)),
    Index("ix_users_library", "library"),
)

agreements = Table(  # every data-processing agreement recorded for a library (GDPR Art. 28), replaced ones too
    "agreements",
    metadata,
    Column("aid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("signed_on", Date, nullable=False),
    Column("reference", Text, nullable=False),
    Column("recorded_at", DateTime(timezone=True)),  # None: recorded before the history was kept (0006)
    Column("recorded_by", String(36)),  # a user's id, or None
    Column("recorded_by_role", String(20)),  # that user's role, or "cli"; None before 0006
    Index("ix_agreements_library", "library", "aid"),
)

subject_requests = Table(  # data-subject requests (GDPR Art. 17, 12(3)): received, due a month later, then done
    "subject_requests",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("reader", Id),  # None once the reader is anonymised: the request stays, as proof it was handled
    Column("kind", String(32), nullable=False),  # erasure, loan_history_erasure
    Column("received_on", Date, nullable=False),
    Column("due_on", Date, nullable=False),
    Column("status", String(16), nullable=False),  # open, done
    Column("done_at", DateTime(timezone=True)),
    # the instruction that carries the request out in the library system: the request stays open until it is done
    Column("instruction", String(36)),
    Index("ix_subject_requests_due", "library", "status", "due_on"),
    Index("ix_subject_requests_reader", "library", "reader"),
)

legal_holds = Table(  # holds the dpo sets in kodex (besides those the records carry); they outlast imports
    "legal_holds",
    metadata,
    Column("hid", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject", Id, nullable=False),
    Column("reason", LargeBinary, nullable=False),  # wrapped by the master key: it may say who and why
    Column("until", Date),  # None: until released
    Column("set_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("library", "subject_type", "subject"),
)

keyring = Table(
    "keyring",
    metadata,
    Column("name", String(64), primary_key=True),
    # AES-GCM of a fixed text under the master key: tells a wrong master key apart before anything is touched
    Column("check_value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# A reader not anonymised. The review index holds only these (anonymised readers are never reviewed again, and
# they pile up: in the index their next_review of None sat in the never-reviewed range, which a night then read
# through). A query uses that index only when it implies the index's condition; written out, not bound, it does
# so in every plan (PostgreSQL cannot prove it from a parameter in the generic plan of a prepared statement, which
# psycopg prepares after a few runs): retention.run writes LIVE_READER.
LIVE_READER_SQL = "state != 'anonymised'"

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
    Column("excluded_as_of", Iso),  # an exclusion proposal accepted: services stay blocked, no rule lifts it
    UniqueConstraint("library", "id"),
    # a night's due readers in key order (retention.run), the live ones only
    Index(
        "ix_readers_review",
        "library",
        "next_review",
        "rid",
        sqlite_where=text(LIVE_READER_SQL),
        postgresql_where=text(LIVE_READER_SQL),
    ),
)
LIVE_READER = readers.c.state != literal_column("'anonymised'")

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
    Column("legal_hold", JSON),  # {"until": day or null} when the record carries a hold; its reason is sealed below
    Column(
        "legal_hold_reason", LargeBinary
    ),  # the hold's reason wrapped by the master key (store.codec.seal_hold_reason)
    Column("digest", LargeBinary, nullable=False),
    Column("next_review", Date),
    Column("reviewed_as_of", Iso),
    Column("purge_failures", Integer, nullable=False, default=0),
    UniqueConstraint("library", "id"),
    Index("ix_camera_recordings_review", "library", "next_review", "cid"),
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
    Column(
        "pseudonym", String(32), unique=True, nullable=False
    ),  # what decisions name it by (ids may embed a reader's)
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
    Column("pseudonym", String(32), unique=True, nullable=False),  # what the log names it by
    Column("subject", Id, nullable=False),
    Column("rule", String(200), nullable=False),
    Column("role", String(40), nullable=False),
    Column("granted_by", LargeBinary, nullable=False),  # a person's name: wrapped by the master key
    Column("reason", LargeBinary, nullable=False),  # may say who and why: wrapped by the master key
    Column("from", Date, nullable=False),
    Column("until", Date, nullable=False),
    Column("digest", LargeBinary, nullable=False),
    Column("revoked_as_of", Iso),  # revoked (logged): no longer applies; importing the same record does not revive it
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

decision_log = Table(  # audit/: append-only (a trigger refuses UPDATE and DELETE), one Merkle tree per library
    "decision_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # across libraries: the order queries page by
    Column("library", String(64), nullable=False),
    Column("idx", BigInteger, nullable=False),  # the entry's leaf index in its library's tree, from 0, no gaps
    Column("id", String(36), nullable=False, unique=True),  # the decision (entry) id
    Column("kind", String(32), nullable=False),  # decision, exception_granted, exception_revoked, run_summary, ...
    Column("run_id", String(36)),
    Column("as_of", Iso, nullable=False),
    Column("day", Date, nullable=False),  # as_of's day in the library's zone: what date ranges select on
    Column("subject_type", String(32)),
    Column("subject", String(32)),  # the subject's pseudonym, never its record id
    Column("rule", String(200)),
    Column("action", String(40)),
    Column("outcome", String(16)),  # applied, reported, proposed, retained, failed, error, granted, revoked, ...
    Column("entry", Text, nullable=False),  # the canonical JSON that is hashed; the columns above repeat it
    Column("leaf_hash", LargeBinary, nullable=False),  # SHA-256(0x00 || entry)
    UniqueConstraint("library", "idx"),
    Index("ix_decision_log_run", "run_id"),
    Index("ix_decision_log_subject", "subject"),
    Index("ix_decision_log_day_seq", "library", "day", "seq"),  # a day's first and last position: one seek each
    # a query pages a library's entries in log order (seq), often by one column: each index gives a page
    # without reading and sorting every matching entry
    Index("ix_decision_log_library_seq", "library", "seq"),
    Index("ix_decision_log_rule_seq", "library", "rule", "seq"),
    Index("ix_decision_log_action_seq", "library", "action", "seq"),
    Index("ix_decision_log_outcome_seq", "library", "outcome", "seq"),
    Index("ix_decision_log_kind_seq", "library", "kind", "seq"),
)

log_heads = Table(  # each library's tree as far as it is appended: its size and right edge (audit.merkle.Frontier)
    "log_heads",
    metadata,
    Column("library", String(64), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("frontier", LargeBinary, nullable=False),
)

log_subtrees = Table(  # roots of perfect subtrees of 16 leaves and more: proofs without reading every leaf
    "log_subtrees",
    metadata,
    Column("library", String(64), primary_key=True),
    Column("height", Integer, primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("hash", LargeBinary, nullable=False),
)

log_checkpoints = Table(  # signed tree heads: origin, size, root and time, signed with Ed25519
    "log_checkpoints",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("library", String(64), nullable=False),
    Column("origin", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("root", LargeBinary, nullable=False),
    Column("time", String(40), nullable=False),  # as signed: ISO 8601 UTC
    Column("key_id", String(16), nullable=False),
    Column("signature", LargeBinary, nullable=False),
    Index("ix_log_checkpoints_library", "library", "size"),
)

log_keys = Table(  # checkpoint signing keys; a rotated-out key keeps its public half so old checkpoints verify
    "log_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("public_key", LargeBinary, nullable=False),  # raw Ed25519, 32 bytes
    Column("wrapped_private", LargeBinary),  # wrapped by the master key; None once retired (destroyed)
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("retired_at", DateTime(timezone=True)),
)

LOG_TABLES = (decision_log, log_subtrees, log_checkpoints)  # append-only: no UPDATE, no DELETE

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
    # open; resolved (the rule no longer holds); accepted or rejected (a proposal decided by its deciding role)
    Column("status", String(16), nullable=False),
    Column("basis", String(250)),  # for a retained action: what blocks it (an exception id, a legal hold)
    Column("decided_by", String(40)),
    Column("decision_id", String(36), nullable=False),
    Column("reason", LargeBinary),  # the deciding role's reason for accepting or rejecting, wrapped by the master key
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

# The instruction feed (services.instructions): every applied action the library system must mirror, written in the
# same transaction as its decision (a transactional outbox). The library system's own id of the subject is the one
# thing that leaves kodex, to that library's integration only: at rest it is wrapped by the master key, and found
# by a keyed digest (`subject_key`, MasterKey.digest) when an import shows whether it was carried out.
OPEN_INSTRUCTION_STATES = ("pending", "delivered")  # not yet carried out, as far as kodex knows: may fall overdue
# written out, not bound: the partial index's condition, which a query must repeat word for word to use it
OPEN_INSTRUCTION_SQL = "state IN ({})".format(", ".join(f"'{state}'" for state in OPEN_INSTRUCTION_STATES))

instructions = Table(
    "instructions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("library", String(64), ForeignKey("libraries.id"), nullable=False),
    Column("sequence", BigInteger, nullable=False),  # 1, 2, … per library, in commit order (instruction_heads)
    Column("action", String(40), nullable=False),
    Column("subject_type", String(32), nullable=False),
    Column("subject_id", LargeBinary, nullable=False),  # the library system's id, wrapped by the master key
    Column("subject_key", LargeBinary, nullable=False),  # keyed digest of (library, subject type, id): lookups
    Column("decision_id", String(36), nullable=False, unique=True),  # one decision, one instruction
    Column("rule", String(200), nullable=False),
    Column("cite", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("due_on", Date),  # None: the policy gives the action no deadline
    # pending, delivered (a webhook answered 2xx), done, failed, rejected, not_carried_out
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),  # deliveries tried (webhook or adapter)
    Column("next_attempt_at", DateTime(timezone=True)),  # the next delivery; None: none scheduled
    Column("last_attempt_at", DateTime(timezone=True)),
    Column("last_error", String(200)),  # the last delivery's failure: a status or an error type, never a body
    Column("outcome_code", String(100)),  # the library system's code (e.g. Koha's has_debt)
    Column("outcome_detail", LargeBinary),  # its free text, wrapped by the master key: it may name someone
    Column("outcome_at", DateTime(timezone=True)),
    Column("outcome_by", String(40)),  # integration, connector, cli, import (verification)
    UniqueConstraint("library", "sequence"),
    Index("ix_instructions_subject", "library", "subject_key"),
    # the open ones (to deliver, or overdue) in sequence order: few beside the done, and a night writes hundreds of
    # thousands, so only this partial index is kept for them (each index is paid for at every insert)
    Index(
        "ix_instructions_open",
        "library",
        "sequence",
        sqlite_where=text(OPEN_INSTRUCTION_SQL),
        postgresql_where=text(OPEN_INSTRUCTION_SQL),
    ),
)
OPEN_INSTRUCTION = text(OPEN_INSTRUCTION_SQL)

instruction_heads = Table(  # each library's last instruction sequence: taken under its row lock, so commit order
    "instruction_heads",
    metadata,
    Column("library", String(64), primary_key=True),
    Column("sequence", BigInteger, nullable=False),
)

webhooks = Table(  # where a library's instructions are pushed (Standard Webhooks), one endpoint per library
    "webhooks",
    metadata,
    Column("library", String(64), ForeignKey("libraries.id"), primary_key=True),
    Column("url", Text, nullable=False),
    Column("secret", LargeBinary, nullable=False),  # the signing secret (whsec_…), wrapped by the master key
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled_at", DateTime(timezone=True)),  # the endpoint answered 410 Gone: nothing is pushed to it
)
