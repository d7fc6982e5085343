"""Shared plumbing of the store's parts: the engine, the session factory and the race-safe insert."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from storage.retry import RetryPolicy


class StoreBase:
    """Holds the engine; the parts of Store (mixins of this class) each run one short transaction per call."""

    def __init__(self, engine: AsyncEngine, retry_policy: RetryPolicy | None = None) -> None:
        self._engine = engine
        self.retry_policy = retry_policy or RetryPolicy()
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database backend {self._dialect!r}; use SQLite or PostgreSQL")

    async def close(self) -> None:
        await self._engine.dispose()

    async def ping(self) -> None:
        """One round trip to the database, not retried (readiness checks want the answer now)."""
        async with self._engine.connect() as connection:
            await connection.exec_driver_sql("SELECT 1")

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    def _insert_ignoring(self, model: Any, conflict: Sequence[str], values: Any) -> Insert:
        """INSERT ... ON CONFLICT DO NOTHING: the loser of a race inserts nothing and raises nothing."""
        if self._dialect == "postgresql":
            return pg_insert(model).values(values).on_conflict_do_nothing(index_elements=list(conflict))
        return sqlite_insert(model).values(values).on_conflict_do_nothing(index_elements=list(conflict))
