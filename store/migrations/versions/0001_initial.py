"""the store: readers, loans, recordings, incidents, exceptions, runs, decisions

Revision ID: 0001
Revises:
Create Date: 2026-11-22 01:42:02.858180
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erased_loans",
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("library", "id", name=op.f("pk_erased_loans")),
    )
    op.create_table(
        "findings",
        sa.Column("fid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("effect", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("basis", sa.String(length=250), nullable=True),
        sa.Column("decided_by", sa.String(length=40), nullable=True),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("opened_as_of", sa.String(length=40), nullable=False),
        sa.Column("closed_as_of", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("fid", name=op.f("pk_findings")),
        sa.UniqueConstraint(
            "library", "subject_type", "subject", "rule", name=op.f("uq_findings_library_subject_type_subject_rule")
        ),
    )
    op.create_table(
        "keyring",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("check_value", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_keyring")),
    )
    op.create_table(
        "libraries",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_libraries")),
    )
    op.create_table(
        "purged_recordings",
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("library", "id", name=op.f("pk_purged_recordings")),
    )
    op.create_table(
        "run_leases",
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("library", name=op.f("pk_run_leases")),
    )
    op.create_table(
        "camera_recordings",
        sa.Column("cid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=False),
        sa.Column("camera", sa.String(length=200), nullable=False),
        sa.Column("start", sa.String(length=40), nullable=False),
        sa.Column("end", sa.String(length=40), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("legal_hold", sa.JSON(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.Column("next_review", sa.Date(), nullable=True),
        sa.Column("reviewed_as_of", sa.String(length=40), nullable=True),
        sa.Column("purge_failures", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_camera_recordings_library_libraries")),
        sa.PrimaryKeyConstraint("cid", name=op.f("pk_camera_recordings")),
        sa.UniqueConstraint("library", "id", name=op.f("uq_camera_recordings_library_id")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_camera_recordings_pseudonym")),
    )
    with op.batch_alter_table("camera_recordings", schema=None) as batch_op:
        batch_op.create_index("ix_camera_recordings_review", ["library", "next_review"], unique=False)

    op.create_table(
        "exceptions",
        sa.Column("eid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=40), nullable=False),
        sa.Column("granted_by", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("from", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_exceptions_library_libraries")),
        sa.PrimaryKeyConstraint("eid", name=op.f("pk_exceptions")),
        sa.UniqueConstraint("library", "id", name=op.f("uq_exceptions_library_id")),
    )
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.create_index("ix_exceptions_subject", ["library", "subject"], unique=False)

    op.create_table(
        "incidents",
        sa.Column("iid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("reader", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("at", sa.String(length=40), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_incidents_library_libraries")),
        sa.PrimaryKeyConstraint("iid", name=op.f("pk_incidents")),
        sa.UniqueConstraint("library", "id", name=op.f("uq_incidents_library_id")),
    )
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.create_index("ix_incidents_reader", ["library", "reader"], unique=False)

    op.create_table(
        "loans",
        sa.Column("lid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("reader", sa.String(length=200), nullable=True),
        sa.Column("item", sa.String(length=200), nullable=False),
        sa.Column("borrowed_at", sa.String(length=40), nullable=False),
        sa.Column("due_at", sa.String(length=40), nullable=True),
        sa.Column("returned_at", sa.String(length=40), nullable=True),
        sa.Column("ill", sa.Boolean(), nullable=False),
        sa.Column("digest", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_loans_library_libraries")),
        sa.PrimaryKeyConstraint("lid", name=op.f("pk_loans")),
        sa.UniqueConstraint("library", "id", name=op.f("uq_loans_library_id")),
    )
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.create_index("ix_loans_reader", ["library", "reader"], unique=False)

    op.create_table(
        "readers",
        sa.Column("rid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("pseudonym", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.LargeBinary(), nullable=True),
        sa.Column("next_review", sa.Date(), nullable=True),
        sa.Column("reviewed_as_of", sa.String(length=40), nullable=True),
        sa.Column("anonymised_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_readers_library_libraries")),
        sa.PrimaryKeyConstraint("rid", name=op.f("pk_readers")),
        sa.UniqueConstraint("library", "id", name=op.f("uq_readers_library_id")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_readers_pseudonym")),
    )
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.create_index("ix_readers_review", ["library", "next_review"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.String(length=40), nullable=False),
        sa.Column("as_of_day", sa.Date(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("full", sa.Boolean(), nullable=False),
        sa.Column("policy_revision", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_runs_library_libraries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index("ix_runs_library_day", ["library", "as_of_day"], unique=False)

    op.create_table(
        "decisions",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("as_of", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_decisions_run_id_runs")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_decisions")),
        sa.UniqueConstraint("id", name=op.f("uq_decisions_id")),
        sa.UniqueConstraint(
            "library",
            "subject_type",
            "subject",
            "rule",
            "action",
            "outcome",
            "as_of",
            name=op.f("uq_decisions_library_subject_type_subject_rule_action_outcome_as_of"),
        ),
    )
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_run", ["run_id"], unique=False)

    op.create_table(
        "plan_items",
        sa.Column("pid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("decision", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_plan_items_run_id_runs")),
        sa.PrimaryKeyConstraint("pid", name=op.f("pk_plan_items")),
    )
    with op.batch_alter_table("plan_items", schema=None) as batch_op:
        batch_op.create_index("ix_plan_items_run", ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan_items", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_items_run")

    op.drop_table("plan_items")
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_decisions_run")

    op.drop_table("decisions")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_library_day")

    op.drop_table("runs")
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.drop_index("ix_readers_review")

    op.drop_table("readers")
    with op.batch_alter_table("loans", schema=None) as batch_op:
        batch_op.drop_index("ix_loans_reader")

    op.drop_table("loans")
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_reader")

    op.drop_table("incidents")
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.drop_index("ix_exceptions_subject")

    op.drop_table("exceptions")
    with op.batch_alter_table("camera_recordings", schema=None) as batch_op:
        batch_op.drop_index("ix_camera_recordings_review")

    op.drop_table("camera_recordings")
    op.drop_table("run_leases")
    op.drop_table("purged_recordings")
    op.drop_table("libraries")
    op.drop_table("keyring")
    op.drop_table("findings")
    op.drop_table("erased_loans")
