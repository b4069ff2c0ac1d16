"""agreements keep their history (the current one of each library carried over), and users record who issued
their token

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("created_by", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("created_by_role", sa.String(length=20), nullable=True))
    op.create_table(
        "agreements",
        sa.Column("aid", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("library", sa.String(length=64), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=36), nullable=True),
        sa.Column("recorded_by_role", sa.String(length=20), nullable=True),
        sa.ForeignKeyConstraint(["library"], ["libraries.id"], name=op.f("fk_agreements_library_libraries")),
        sa.PrimaryKeyConstraint("aid", name=op.f("pk_agreements")),
    )
    op.create_index("ix_agreements_library", "agreements", ["library", "aid"], unique=False)
    # each library's current agreement is the first of its history; when and by whom it was recorded is not known
    op.execute(
        "INSERT INTO agreements (library, signed_on, reference) "
        "SELECT id, agreement_signed_on, COALESCE(agreement_reference, '') FROM libraries "
        "WHERE agreement_signed_on IS NOT NULL ORDER BY id"
    )


def downgrade() -> None:
    op.drop_index("ix_agreements_library", table_name="agreements")
    op.drop_table("agreements")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("created_by_role")
        batch_op.drop_column("created_by")
