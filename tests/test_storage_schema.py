"""Engine setup and migrations: URL normalisation, SQLite pragmas, the migrated schema equals the models."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
from sqlalchemy import Integer, MetaData, inspect
from sqlalchemy.engine import Connection, make_url

from storage.db import alembic_config, make_engine, migrate, normalize_url
from storage.models import Base

TABLES = {"conversations", "messages", "attachments", "processed_events", "message_refs", "usage", "turns",
          "channel_settings", "feedback", "limit_lifts", "workspace_limits", "slack_installations", "slack_bots",
          "slack_oauth_states"}


def _expected_metadata() -> MetaData:
    """kimibot's models and the tables slack_sdk's OAuth stores use (migration 0008 writes those out): if a
    slack_sdk upgrade changes its tables, the comparison below says so."""
    metadata = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    SQLAlchemyInstallationStore.build_installations_table(metadata, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(metadata, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, "slack_oauth_states")
    return metadata


EXPECTED = _expected_metadata()


def _schema_diff(connection: Connection, metadata: MetaData = EXPECTED) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///data/kimibot.db", "sqlite+aiosqlite:///data/kimibot.db"),
        ("sqlite:////var/lib/kimibot/kimibot.db", "sqlite+aiosqlite:////var/lib/kimibot/kimibot.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("kimibot.db", "sqlite+aiosqlite:///kimibot.db"),
        ("postgresql://u:p@db:5432/kimibot", "postgresql+asyncpg://u:p@db:5432/kimibot"),
        ("postgres://u:p@db/kimibot", "postgresql+asyncpg://u:p@db/kimibot"),
        ("postgresql+asyncpg://u@db/kimibot", "postgresql+asyncpg://u@db/kimibot"),
        ("postgres://u@db/kimibot?sslmode=require", "postgresql+asyncpg://u@db/kimibot?ssl=require"),
    ],
)
def test_normalize_url(given: str, expected: str) -> None:
    assert normalize_url(given) == expected


def test_normalize_url_keeps_special_characters_in_passwords() -> None:
    normalized = make_url(normalize_url("postgresql://bot:p%40ss%2Fw0rd@db/kimibot"))
    assert normalized.password == "p@ss/w0rd"
    assert normalized.drivername == "postgresql+asyncpg"


async def test_migration_creates_schema_matching_models(db_url: str) -> None:
    await migrate(db_url)
    await migrate(db_url)  # a second start finds the schema at head and changes nothing
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(_schema_diff)
            versions = (await conn.exec_driver_sql("SELECT version_num FROM alembic_version")).scalars().all()
    finally:
        await engine.dispose()
    assert tables == TABLES | {"alembic_version"}
    assert diff == []
    assert versions == [ScriptDirectory.from_config(alembic_config()).get_current_head()]


async def test_schema_comparison_detects_drift(db_url: str) -> None:
    """The comparison above is only worth something if it notices a missing index or a changed type."""
    await migrate(db_url)
    altered = _expected_metadata()
    altered.tables["usage"].c.cost_usd.type = Integer()
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            type_diff = await conn.run_sync(_schema_diff, altered)
            await conn.exec_driver_sql("DROP INDEX ix_usage_user")
            index_diff = await conn.run_sync(_schema_diff)
    finally:
        await engine.dispose()
    assert [(d[0][0], d[0][3]) for d in type_diff] == [("modify_type", "cost_usd")]
    assert [(d[0], d[1].name) for d in index_diff] == [("add_index", "ix_usage_user")]


async def test_concurrent_migrations_both_succeed(db_url: str) -> None:
    await asyncio.gather(migrate(db_url), migrate(db_url))
    engine = make_engine(db_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


async def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "kimibot.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()  # created for us
        # Two connections held at once are two pooled DBAPI connections: each must be configured.
        async with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
                assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() == 5000
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        await engine.dispose()
    assert path.exists()
