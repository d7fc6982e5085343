"""Tools used by the engine tests: one that fails, one that hangs, one that talks a lot."""

import asyncio


async def explode(reason: str = "boom") -> str:
    """Always fails.

    Args:
        reason: what to fail with.
    """
    raise RuntimeError(reason)


async def hang() -> str:
    """Never returns."""
    await asyncio.sleep(3600)
    return "unreachable"


async def chatty(count: int = 100_000) -> str:
    """Returns a very long text.

    Args:
        count: how many characters.
    """
    return "x" * count
