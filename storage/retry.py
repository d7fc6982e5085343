"""Riding out a busy or briefly unreachable database: which errors clear by themselves, and the retry loop.

SQLite answers "database is locked" when another process holds the write lock past the busy timeout;
PostgreSQL restarts, fails over or drops off the network for a few seconds. Each store operation is one short
transaction that either committed or did not, so repeating it after such an error is safe. Errors that will not
clear (a constraint, a bad statement) are raised at once.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# asyncpg's SQLSTATE classes that mean "the server is not able to take this right now".
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "53", "57P", "40001", "40P01")


class StoreUnavailable(Exception):
    """The database did not take an operation within the retry window; the cause is chained."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    window: float = 30.0  # seconds an operation keeps trying
    first_delay: float = 0.1
    max_delay: float = 2.0


def is_transient(error: BaseException) -> bool:
    """Busy, locked, disconnected or restarting: errors worth retrying; never a logic or constraint error."""
    if isinstance(error, sa_exc.IntegrityError | sa_exc.ProgrammingError | sa_exc.DataError):
        return False
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated or isinstance(error, sa_exc.OperationalError):
            return True
        state = str(getattr(error.orig, "sqlstate", "") or "")
        if state.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
            return True
        text = str(error.orig).lower()
        return any(hint in text for hint in ("locked", "connection", "closed", "terminat", "timeout"))
    if isinstance(error, sa_exc.TimeoutError):  # the pool had no connection to give
        return True
    # asyncpg raises connection failures raw, before SQLAlchemy can wrap them.
    return isinstance(error, OSError | ConnectionError | TimeoutError)


async def call_with_retry(operation: Callable[[], Awaitable[T]], *, policy: RetryPolicy, what: str) -> T:
    deadline = time.monotonic() + policy.window
    delay = policy.first_delay
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as error:
            if not is_transient(error):
                raise
            attempt += 1
            left = deadline - time.monotonic()
            if left <= 0:
                log.error("database unavailable; giving up", extra={
                    "operation": what, "attempts": attempt, "error": type(error).__name__})
                raise StoreUnavailable(f"{what}: {type(error).__name__}") from error
            if attempt == 1:
                log.warning("database busy or unreachable; retrying", extra={
                    "operation": what, "error": type(error).__name__})
            await asyncio.sleep(min(delay * random.uniform(0.8, 1.2), left))
            delay = min(delay * 2, policy.max_delay)


def retrying_methods(cls: type[T]) -> type[T]:
    """Class decorator: every public coroutine method retries transient database errors under
    `self.retry_policy`. One mechanism for the whole store, so no caller can forget it."""
    for name, member in inspect.getmembers(cls, inspect.iscoroutinefunction):
        if name.startswith("_") or name in {"close", "open", "ping"}:
            continue
        setattr(cls, name, _wrap(member, name))
    return cls


def _wrap(method: Callable[..., Awaitable[Any]], name: str) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        # Shielded: a caller cancelled mid-statement (a user's stop, a shutdown) must not cut the transaction
        # off half-way; an abandoned aiosqlite connection can keep SQLite's write lock for every other writer.
        operation = asyncio.ensure_future(
            call_with_retry(lambda: method(self, *args, **kwargs), policy=self.retry_policy, what=name))
        try:
            return await asyncio.shield(operation)
        except asyncio.CancelledError:
            operation.add_done_callback(_settled)
            raise

    return wrapper


def _settled(operation: asyncio.Future[Any]) -> None:
    """An operation whose caller left: it finished on its own; its outcome is noted, never lost in a task."""
    if not operation.cancelled() and operation.exception() is not None:
        log.warning("database operation failed after its caller left",
                    extra={"error": type(operation.exception()).__name__})
