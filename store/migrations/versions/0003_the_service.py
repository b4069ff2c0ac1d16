"""the service: users with hashed tokens, onboarding agreements, data-subject requests, legal holds, exclusions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 05:20:00
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context, op

from kodex.store.migrations.frozen import require_master_key, wrap  # frozen: the wrapping as of this revision

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _seal_exception_texts()
    with op.batch_alter_table("decision_log", schema=None) as batch_op:  # pages of a query in log order
        batch_op.drop_index("ix_decision_log_rule")
        batch_op.drop_index("ix_decision_log_day")
        batch_op.create_index("ix_decision_log_day_seq", ["library", "day", "seq"], unique=False)
        batch_op.create_index("ix_decision_log_library_seq", ["library", "seq"], unique=False)
        batch_op.create_index("ix_decision_log_rule_seq", ["library", "rule", "seq"], unique=False)
        batch_op.create_index("ix_decision_log_action_seq", ["library", "action", "seq"], unique=False)
        batch_op.create_index("ix_decision_log_outcome_seq", ["library", "outcome", "seq"], unique=False)
        batch_op.create_index("ix_decision_log_kind_seq", ["library", "kind", "seq"], unique=False)
    with op.batch_alter_table("libraries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("agreement_signed_on", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("agreement_reference", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("onboarded_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("excluded_as_of", sa.String(length=40), nullable=True))
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.LargeBinary(), nullable=True))
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("name", sa.LargeBinary(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_users_library_libraries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_users_token_hash")),
    )
    op.create_index("ix_users_library", "users", ["library"], unique=False)
    op.create_table(
        "subject_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("reader", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_subject_requests_library_libraries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subject_requests")),
    )
    op.create_index("ix_subject_requests_due", "subject_requests", ["library", "status", "due_on"], unique=False)
    op.create_index("ix_subject_requests_reader", "subject_requests", ["library", "reader"], unique=False)
    op.create_table(
        "legal_holds",
        sa.Column("hid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.LargeBinary(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_legal_holds_library_libraries")),
        sa.PrimaryKeyConstraint("hid", name=op.f("pk_legal_holds")),
        sa.UniqueConstraint(
            "library", "subject_type", "subject", name=op.f("uq_legal_holds_library_subject_type_subject")
        ),
    )


def _seal_exception_texts() -> None:
    """exceptions.granted_by (a person's name) and reason were kept in clear: wrap each by the master key."""
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT eid, library, id, granted_by, reason FROM exceptions")).all()
    sealed: list[dict[str, object]] = []
    if rows:
        key = require_master_key(
            connection, context.config.attributes.get("master_key"), "the exceptions' grantors and reasons"
        )
        sealed = [
            {"eid": row.eid, **{f"{field}_sealed": _sealed(key, row, field) for field in ("granted_by", "reason")}}
            for row in rows
        ]
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("granted_by_sealed", sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column("reason_sealed", sa.LargeBinary(), nullable=True))
    for values in sealed:
        connection.execute(
            sa.text("UPDATE exceptions SET granted_by_sealed = :granted_by_sealed, reason_sealed = :reason_sealed "
                    "WHERE eid = :eid"),
            values,
        )  # fmt: skip
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.drop_column("granted_by")
        batch_op.drop_column("reason")
    with op.batch_alter_table("exceptions", schema=None) as batch_op:
        batch_op.alter_column("granted_by_sealed", new_column_name="granted_by", nullable=False)
        batch_op.alter_column("reason_sealed", new_column_name="reason", nullable=False)


def _sealed(key: bytes, row: sa.Row[Any], field: str) -> bytes:
    return wrap(key, str(getattr(row, field)).encode(), f"exception/{row.library}/{row.id}/{field}".encode())


def downgrade() -> None:
    with op.batch_alter_table("decision_log", schema=None) as batch_op:
        for name in ("library_seq", "rule_seq", "action_seq", "outcome_seq", "kind_seq"):
            batch_op.drop_index(f"ix_decision_log_{name}")
        batch_op.create_index("ix_decision_log_rule", ["library", "rule"], unique=False)
        batch_op.drop_index("ix_decision_log_day_seq")
        batch_op.create_index("ix_decision_log_day", ["library", "day"], unique=False)
    op.drop_table("legal_holds")
    op.drop_index("ix_subject_requests_reader", table_name="subject_requests")
    op.drop_index("ix_subject_requests_due", table_name="subject_requests")
    op.drop_table("subject_requests")
    op.drop_index("ix_users_library", table_name="users")
    op.drop_table("users")
    with op.batch_alter_table("findings", schema=None) as batch_op:
        batch_op.drop_column("reason")
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.drop_column("excluded_as_of")
    with op.batch_alter_table("libraries", schema=None) as batch_op:
        batch_op.drop_column("onboarded_at")
        batch_op.drop_column("agreement_reference")
        batch_op.drop_column("agreement_signed_on")
