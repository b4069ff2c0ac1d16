"""the instruction feed: instructions to the library system (a transactional outbox), their per-library sequence,
each library's webhook, and the instruction a data-subject request waits for

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 23:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instructions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.LargeBinary(), nullable=False),
        sa.Column("subject_key", sa.LargeBinary(), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("cite", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("outcome_code", sa.String(length=100), nullable=True),
        sa.Column("outcome_detail", sa.LargeBinary(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome_by", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_instructions_library_libraries")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instructions")),
        sa.UniqueConstraint("decision_id", name=op.f("uq_instructions_decision_id")),
        sa.UniqueConstraint("library", "sequence", name=op.f("uq_instructions_library_sequence")),
    )
    op.create_index("ix_instructions_subject", "instructions", ["library", "subject_key"], unique=False)
    op.create_index(
        "ix_instructions_open", "instructions", ["library", "sequence"], unique=False,
        sqlite_where=sa.text("state IN ('pending', 'delivered')"),
        postgresql_where=sa.text("state IN ('pending', 'delivered')"),
    )  # fmt: skip
    op.create_table(
        "instruction_heads",
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("library", name=op.f("pk_instruction_heads")),
    )
    op.create_table(
        "webhooks",
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("secret", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_webhooks_library_libraries")),
        sa.PrimaryKeyConstraint("library", name=op.f("pk_webhooks")),
    )
    with op.batch_alter_table("subject_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("instruction", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subject_requests", schema=None) as batch_op:
        batch_op.drop_column("instruction")
    op.drop_table("webhooks")
    op.drop_table("instruction_heads")
    op.drop_index("ix_instructions_open", table_name="instructions")
    op.drop_index("ix_instructions_subject", table_name="instructions")
    op.drop_table("instructions")
