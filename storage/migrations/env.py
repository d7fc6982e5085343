"""Alembic environment, loaded by alembic from storage.db.alembic_config().

storage.db.migrate passes an open connection in `config.attributes["connection"]` (the async engine's
connection, driven through run_sync). Without one, the URL from `sqlalchemy.url` is used with a throwaway
async engine, which is how developers run `command.revision(..., autogenerate=True)` from a plain script.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from storage.db import make_engine
from storage.models import Base

target_metadata = Base.metadata


def _run_with_connection(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds tables, and is a no-op elsewhere.
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_url(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_with_connection)
            await connection.commit()
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_with_connection(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError(
            "no connection given and no sqlalchemy.url set; use storage.db.alembic_config(url)"
        )
    if context.is_offline_mode():
        _run_offline(url)
    else:
        asyncio.run(_run_with_url(url))


_main()
