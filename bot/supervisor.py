"""Runs each platform under a supervisor: a crash is logged (one record, with its traceback, through the
logger) and the platform restarts with backoff, while the other platform keeps answering. Only a configuration
error on the very first start ends `kimibot run`: nothing will fix itself there, and the operator must see it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from bot.config import ConfigError

log = logging.getLogger(__name__)

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
# A run this long resets the backoff: the crash was not part of a loop.
HEALTHY_RUN = 120.0


async def supervise(name: str, serve: Callable[[], Awaitable[None]], stopping: asyncio.Event, *,
                    backoff: Sequence[float] = BACKOFF, clock: Callable[[], float] = time.monotonic) -> None:
    """Run `serve` until `stopping` is set and it returns; restart it whenever it fails or returns early."""
    failures = 0
    first = True
    while True:
        started = clock()
        try:
            await serve()
            if stopping.is_set():
                return
            log.error("platform stopped on its own; restarting", extra={"platform": name})
        except asyncio.CancelledError:
            raise
        except ConfigError:
            if first:
                raise
            log.exception("platform refused its configuration; retrying", extra={"platform": name})
        except Exception:
            log.exception("platform crashed; restarting", extra={"platform": name})
        first = False
        if stopping.is_set():
            return
        failures = 1 if clock() - started > HEALTHY_RUN else failures + 1
        delay = backoff[min(failures, len(backoff)) - 1]
        log.info("platform restart scheduled", extra={"platform": name, "delay_s": delay})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await stopping.wait()
        if stopping.is_set():
            return
