"""Alembic environment: migrations run on the connection kodex hands over (store.database.upgrade).

The migrations themselves import nothing of kodex (store.migrations.frozen excepted): the master key reaches them
as its 32 bytes in the attribute `master_key`, None when the upgrade was given none.
"""

from __future__ import annotations

from alembic import context

from kodex.store.schema import metadata  # what autogenerate compares the migrated schema with

attributes = context.config.attributes
master = attributes.get("master")  # a store.crypto.MasterKey, or None
attributes["master_key"] = None if master is None else master.key_bytes
context.configure(connection=attributes["connection"], target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
