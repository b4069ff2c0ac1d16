"""the readers' review index holds only readers not anonymised: anonymised readers (never reviewed again, their
next review None) sat in the never-reviewed range of the index, which every night read through

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_LIVE = "state != 'anonymised'"  # store.schema.LIVE_READER_SQL as of this revision


def upgrade() -> None:
    op.drop_index("ix_readers_review", table_name="readers")
    op.create_index(
        "ix_readers_review", "readers", ["library", "next_review", "rid"],
        sqlite_where=sa.text(_LIVE), postgresql_where=sa.text(_LIVE),
    )  # fmt: skip


def downgrade() -> None:
    op.drop_index("ix_readers_review", table_name="readers")
    op.create_index("ix_readers_review", "readers", ["library", "next_review", "rid"])
