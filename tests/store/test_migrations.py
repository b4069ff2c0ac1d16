"""The migrations are frozen and build the schema the models describe.

A migration runs years after it was written, on a store that stood still at its revision: it must write then
what it wrote when it was released. So it uses only its own table definitions and the standard library,
SQLAlchemy, Alembic and cryptography (store/migrations/frozen.py, which never changes, holds what several share),
never kodex's live code. And the models (store/schema.py) and the migration head are written twice: Alembic's
autogenerate comparison proves on the engine CI chose that they describe the same schema.
"""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Column, Connection, Index, MetaData, String, inspect, text

from kodex.store.database import _MIGRATIONS, connect, upgrade
from kodex.store.migrations.frozen import require_master_key, wrap
from kodex.store.schema import metadata

MIGRATIONS = sorted((_MIGRATIONS / "versions").glob("0*.py"))
FROZEN = _MIGRATIONS / "frozen.py"
THIRD_PARTY = {"sqlalchemy", "alembic", "cryptography"}


@pytest.fixture
def migrated(database_url: str) -> Iterator[Connection]:
    """A connection to a store built by the migrations alone, from nothing to the head."""
    engine = connect(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        yield connection
    engine.dispose()


def test_the_models_and_the_migrated_schema_agree(migrated: Connection) -> None:
    assert schema_differences(migrated, metadata) == []


def test_the_comparison_reports_a_column_and_a_partial_index_no_migration_made(migrated: Connection) -> None:
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(drifted)
    readers = drifted.tables["readers"]
    readers.append_column(Column("nickname", String(40)))
    readers.indexes.remove(next(index for index in readers.indexes if index.name == "ix_readers_review"))
    active = text("state = 'active'")
    Index("ix_readers_review", readers.c.library, readers.c.next_review, readers.c.rid, sqlite_where=active,
          postgresql_where=active)  # fmt: skip

    differences = schema_differences(migrated, drifted)

    assert [(d[0], d[2], d[3].name) for d in differences if d[0] == "add_column"] == [
        ("add_column", "readers", "nickname")
    ]
    assert [d for d in differences if d[0] == "partial_index_predicate"] == [
        (
            "partial_index_predicate",
            "ix_readers_review",
            predicate(migrated, readers.c.library, "state != 'anonymised'"),
            predicate(migrated, readers.c.library, "state = 'active'"),
        )
    ]


@pytest.mark.parametrize("migration", [*MIGRATIONS, FROZEN], ids=lambda path: path.stem)
def test_a_migration_imports_only_the_standard_library_sqlalchemy_alembic_cryptography_and_frozen(
    migration: Path,
) -> None:
    allowed_kodex = set() if migration == FROZEN else {"kodex.store.migrations.frozen"}
    imported = imports_of(migration)

    assert imported, "an import-free migration file: the parser read nothing"
    assert [
        name
        for name in imported
        if name not in allowed_kodex and name.split(".")[0] not in THIRD_PARTY | set(sys.stdlib_module_names)
    ] == []


def test_the_frozen_wrapping_is_aes_256_gcm_nonce_first_bound_to_its_associated_data() -> None:
    key = bytes(range(32))
    wrapped = wrap(key, b"Jana", b"exception/kntb/E-1/granted_by")
    assert AESGCM(key).decrypt(wrapped[:12], wrapped[12:], b"exception/kntb/E-1/granted_by") == b"Jana"


def test_the_frozen_upgrade_refuses_a_key_that_is_not_the_stores(migrated: Connection) -> None:
    key, other = os.urandom(32), os.urandom(32)
    nonce = os.urandom(12)
    check = nonce + AESGCM(key).encrypt(nonce, b"kodex master key check v1", b"check")
    migrated.execute(text("DELETE FROM keyring"))
    migrated.execute(
        text("INSERT INTO keyring (name, check_value, created_at) VALUES ('master', :c, CURRENT_TIMESTAMP)"),
        {"c": check},
    )

    assert require_master_key(migrated, key, "x") == key
    with pytest.raises(RuntimeError, match="encrypts the grantors: run `kodex init` with the store's master key"):
        require_master_key(migrated, other, "the grantors")
    with pytest.raises(RuntimeError, match="master key"):
        require_master_key(migrated, None, "the grantors")


# -- helpers -----------------------------------------------------------------------------------------------------


def schema_differences(connection: Connection, models: MetaData) -> list[tuple[Any, ...]]:
    """Alembic's differences between the database and `models`, and the partial indexes' predicates compared.

    Autogenerate compares tables, columns (types, nullability, server defaults), indexes, unique and foreign keys,
    but not the WHERE of a partial index (alembic ignores `sqlite_where` / `postgresql_where`): a partial index
    whose predicate drifted would pass unseen, so each is compared here, both predicates as the engine
    itself renders them (PostgreSQL rewrites `state != 'anonymised'` to `((state)::text <> 'anonymised'::text)`).
    """
    context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
    differences: list[tuple[Any, ...]] = list(compare_metadata(context, models))
    dialect = connection.dialect.name
    for table in models.sorted_tables:
        reflected = {index["name"]: index for index in inspect(connection).get_indexes(table.name)}
        for index in table.indexes:
            where = index.dialect_options[dialect].get("where")
            if where is None or index.name not in reflected:
                continue
            wanted = predicate(connection, index.columns[0], str(where))
            found = str(reflected[index.name].get("dialect_options", {}).get(f"{dialect}_where"))
            if wanted != found:
                differences.append(("partial_index_predicate", index.name, found, wanted))
    return differences


def predicate(connection: Connection, column: Column[Any], where: str) -> str:
    """The engine's own text of a partial index's WHERE: a scratch index made with it on `column`, read back, dropped."""
    table, dialect = column.table.name, connection.dialect.name
    connection.execute(text(f"CREATE INDEX ix_scratch_predicate ON {table} ({column.name}) WHERE {where}"))
    try:
        found = next(i for i in inspect(connection).get_indexes(table) if i["name"] == "ix_scratch_predicate")
        return str(found.get("dialect_options", {}).get(f"{dialect}_where"))
    finally:
        connection.execute(text("DROP INDEX ix_scratch_predicate"))


def imports_of(path: Path) -> list[str]:
    """Every module a file imports, at any depth (a function's import counts), relative ones marked by dots."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in {
            "__import__",
            "import_module",
        }:
            names.append("(a dynamic import)")
    return names
