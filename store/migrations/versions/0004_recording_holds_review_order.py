"""a camera recording's own legal-hold reason sealed by the master key (it was kept in clear in the hold's JSON);
the review indexes end with the primary key, so a night's due subjects are read in key order from the index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:40:00
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from kodex.store.migrations.frozen import require_master_key, wrap  # frozen: the wrapping as of this revision

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_RECORDINGS = sa.table(  # the columns this migration writes, typed so the JSON is written as JSON on each engine
    "camera_recordings", sa.column("cid", sa.Integer), sa.column("legal_hold", sa.JSON),
    sa.column("legal_hold_reason", sa.LargeBinary),
)  # fmt: skip


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT cid, library, id, legal_hold FROM camera_recordings WHERE legal_hold IS NOT NULL")
    ).all()
    held = [(row, hold) for row in rows if (hold := _hold(row.legal_hold)) is not None]  # JSON null: no hold
    sealed: list[dict[str, Any]] = []
    if held:
        key = require_master_key(
            connection, context.config.attributes.get("master_key"), "the camera recordings' legal-hold reasons"
        )
        sealed = [
            {
                "cid": row.cid,
                "legal_hold": {"until": hold.get("until")},
                "legal_hold_reason": wrap(key, str(hold.get("reason", "")).encode(), _hold_aad(row)),
            }
            for row, hold in held
        ]
    with op.batch_alter_table("camera_recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_hold_reason", sa.LargeBinary(), nullable=True))
        batch_op.drop_index("ix_camera_recordings_review")
        batch_op.create_index("ix_camera_recordings_review", ["library", "next_review", "cid"], unique=False)
    with op.batch_alter_table("readers", schema=None) as batch_op:
        # PostgreSQL's indexes do not carry the key as SQLite's do: without it, the never-reviewed range of a night
        # was read in key order from the primary key, filtering every reader (8.8 s at 1,000,000 readers)
        batch_op.drop_index("ix_readers_review")
        batch_op.create_index("ix_readers_review", ["library", "next_review", "rid"], unique=False)
    for values in sealed:
        connection.execute(
            sa.update(_RECORDINGS)
            .where(_RECORDINGS.c.cid == values["cid"])
            .values(legal_hold=values["legal_hold"], legal_hold_reason=values["legal_hold_reason"])
        )


def _hold(value: Any) -> dict[str, Any] | None:
    """A recording's legal hold as it was kept: a dict (PostgreSQL), its JSON text (SQLite), or JSON null."""
    return value if isinstance(value, dict | None) else json.loads(value)


def _hold_aad(row: sa.Row[Any]) -> bytes:
    return f"recording/{row.library}/{row.id}/legal_hold".encode()  # store.codec.recording_hold_aad at 0004


def downgrade() -> None:
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.drop_index("ix_readers_review")
        batch_op.create_index("ix_readers_review", ["library", "next_review"], unique=False)
    with op.batch_alter_table("camera_recordings", schema=None) as batch_op:
        batch_op.drop_index("ix_camera_recordings_review")
        batch_op.create_index("ix_camera_recordings_review", ["library", "next_review"], unique=False)
        batch_op.drop_column("legal_hold_reason")
