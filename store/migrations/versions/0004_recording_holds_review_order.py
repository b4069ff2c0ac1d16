"""a camera recording's own legal-hold reason sealed by the master key (it was kept in clear in the hold's JSON);
the review indexes end with the primary key, so a night's due subjects are read in key order from the index

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 03:40:00
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import context, op

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
    master = context.config.attributes.get("master")
    if any(row.legal_hold not in (None, "null") for row in rows):
        check = connection.execute(sa.text("SELECT check_value FROM keyring WHERE name = 'master'")).scalar()
        if master is None or check is None or not master.matches(check):
            raise RuntimeError(
                "this upgrade encrypts the camera recordings' legal-hold reasons: run `kodex init` with the store's "
                "master key (KODEX_MASTER_KEY_FILE)"
            )
    with op.batch_alter_table("camera_recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("legal_hold_reason", sa.LargeBinary(), nullable=True))
        batch_op.drop_index("ix_camera_recordings_review")
        batch_op.create_index("ix_camera_recordings_review", ["library", "next_review", "cid"], unique=False)
    with op.batch_alter_table("readers", schema=None) as batch_op:
        # PostgreSQL's indexes do not carry the key as SQLite's do: without it, the never-reviewed range of a night
        # was read in key order from the primary key, filtering every reader (8.8 s at 1,000,000 readers)
        batch_op.drop_index("ix_readers_review")
        batch_op.create_index("ix_readers_review", ["library", "next_review", "rid"], unique=False)
    for row in rows:
        assert master is not None  # checked above
        hold = row.legal_hold if isinstance(row.legal_hold, dict | None) else json.loads(row.legal_hold)
        if hold is None:  # JSON null: no hold
            continue
        aad = f"recording/{row.library}/{row.id}/legal_hold".encode()  # store.codec.recording_hold_aad
        connection.execute(
            sa.update(_RECORDINGS)
            .where(_RECORDINGS.c.cid == row.cid)
            .values(
                legal_hold={"until": hold.get("until")},
                legal_hold_reason=master.wrap(str(hold.get("reason", "")).encode(), aad),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("readers", schema=None) as batch_op:
        batch_op.drop_index("ix_readers_review")
        batch_op.create_index("ix_readers_review", ["library", "next_review"], unique=False)
    with op.batch_alter_table("camera_recordings", schema=None) as batch_op:
        batch_op.drop_index("ix_camera_recordings_review")
        batch_op.create_index("ix_camera_recordings_review", ["library", "next_review"], unique=False)
        batch_op.drop_column("legal_hold_reason")
