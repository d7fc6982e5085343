"""Engines and migrations: URL normalisation, SQLite connection setup, `alembic upgrade head` from code."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from storage.retry import RetryPolicy, StoreUnavailable, call_with_retry

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

SQLITE_BUSY_TIMEOUT_MS = 5000
# Arbitrary constant shared by every replica so concurrent `migrate` calls on PostgreSQL run one at a time.
_PG_MIGRATION_LOCK_ID = 0x6B696D69626F74  # "kimibot"

_SYNC_SQLITE_DRIVERS = {"sqlite", "sqlite+pysqlite"}
_SYNC_POSTGRES_DRIVERS = {"postgres", "postgresql", "postgres+psycopg2", "postgresql+psycopg2"}


def normalize_url(url: str) -> str:
    """Turn the URL a user configured into one with an async driver.

    "sqlite:///path" → "sqlite+aiosqlite:///path"; "postgres(ql)://" → "postgresql+asyncpg://"; a bare path
    (no scheme) is a SQLite file. libpq's `sslmode` becomes asyncpg's `ssl`, since managed PostgreSQL
    offerings hand out URLs with it and asyncpg rejects the unknown keyword.
    """
    url = url.strip()
    if "://" not in url:
        return f"sqlite+aiosqlite:///{url}"
    parsed = make_url(url)
    if parsed.drivername in _SYNC_SQLITE_DRIVERS:
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in _SYNC_POSTGRES_DRIVERS:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername == "postgresql+asyncpg" and "sslmode" in parsed.query:
        sslmode = parsed.query["sslmode"]
        parsed = parsed.difference_update_query(["sslmode"]).update_query_dict({"ssl": sslmode})
    return parsed.render_as_string(hide_password=False)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _configure_sqlite_connection(dbapi_connection: object, _record: ConnectionPoolEntry) -> None:
    # Runs for every new pooled connection: these pragmas are per connection, not per database file
    # (except journal_mode, which persists but is cheap to re-assert).
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        # NORMAL is durable across application crashes in WAL mode and avoids an fsync per commit.
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def make_engine(url: str) -> AsyncEngine:
    """An async engine for a (normalised) URL.

    SQLite gets WAL, busy_timeout and foreign keys on every connection. Errors never carry their statement's
    parameters (message text) into exception messages, and so into logs.
    """
    sa_url = make_url(normalize_url(url))
    if sa_url.get_backend_name() == "sqlite":
        path = _sqlite_file(sa_url)
        if path is not None:
            # Called once at startup before any connection exists; a tiny blocking mkdir is acceptable here.
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(sa_url, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
        return engine
    # pre_ping: replicas outlive database restarts and failovers without serving a dead pooled connection.
    return create_async_engine(sa_url, pool_pre_ping=True, hide_parameters=True)


def alembic_config(url: str | None = None) -> Config:
    """An alembic Config built in code (no alembic.ini), usable from an installed wheel.

    With `url`, alembic commands can also be run directly, e.g. to autogenerate a new revision:
    `command.revision(alembic_config("sqlite:///dev.db"), "add x", autogenerate=True)`.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if url is not None:
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return config


def _upgrade_head(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def _take_migration_lock(conn: AsyncConnection) -> None:
    """Serialise concurrent migrators (several replicas starting at once) for the rest of the transaction."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        await conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK_ID})")
    elif dialect == "sqlite":
        # pysqlite would otherwise run DDL outside any transaction; an IMMEDIATE transaction takes the write
        # lock up front, so a second migrator waits (busy_timeout) and then sees the schema at head.
        await conn.exec_driver_sql("BEGIN IMMEDIATE")


def safe_url(url: str) -> str:
    """The URL as an operator may see it in a log or an error: the password hidden."""
    try:
        return make_url(normalize_url(url)).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can read: say nothing of it beyond its scheme
        return url.split(":", 1)[0] + ":…"


def describe_failure(url: str, error: BaseException) -> str:
    """One line: which database, and what its driver said (SQLAlchemy's own wrapping and SQL left out)."""
    cause: BaseException = error
    while isinstance(cause, StoreUnavailable | sa_exc.DBAPIError):
        inner = getattr(cause, "orig", None) or cause.__cause__
        if inner is None:
            break
        cause = inner
    detail = " ".join(str(cause).split()) or cause.__class__.__name__
    if isinstance(cause, ModuleNotFoundError) and cause.name == "asyncpg":
        detail += "; PostgreSQL needs the postgres extra: pip install 'kimibot[postgres]'"
    return f"cannot open the database at {safe_url(url)}: {type(cause).__name__}: {detail[:300]}"


async def migrate_when_up(engine: AsyncEngine, wait: float) -> None:
    """migrate(), waiting up to `wait` seconds for a PostgreSQL server that is not up yet (a container
    started beside it). A SQLite file is local: waiting cannot help it, so its errors come at once."""
    if wait <= 0 or engine.dialect.name != "postgresql":
        await migrate(engine)
        return
    await call_with_retry(lambda: migrate(engine), policy=RetryPolicy(window=wait, max_delay=5.0),
                          what="connect to the database")


async def migrate(url_or_engine: str | AsyncEngine) -> None:
    """Bring the database to the newest schema (alembic upgrade head). Safe to call on every start."""
    owned = isinstance(url_or_engine, str)
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        async with engine.connect() as conn:
            await _take_migration_lock(conn)
            await conn.run_sync(_upgrade_head)
            await conn.commit()
        log.info("database schema at head", extra={"backend": engine.dialect.name})
    finally:
        if owned:
            await engine.dispose()
