"""A tool that tells the model the current date and time, which it cannot know on its own."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.tools.schema import ToolError


async def current_time(timezone: str = "UTC") -> str:
    """Get the current date and time, with the weekday and UTC offset, in a given time zone.

    Args:
        timezone: An IANA time zone name such as "Europe/Paris", "America/New_York" or "Asia/Tokyo".
    """
    name = timezone.strip() or "UTC"
    try:
        # ZoneInfo reads the zone file from disk on first use.
        zone = await asyncio.to_thread(ZoneInfo, name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ToolError(
            f"unknown time zone {name[:80]!r}; use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from exc
    now = datetime.now(UTC).astimezone(zone)
    offset = now.strftime("%z")
    offset = f"UTC{offset[:3]}:{offset[3:]}"
    abbreviation = now.tzname() or ""
    label = f"{abbreviation}, {offset}" if abbreviation and abbreviation[0] not in "+-" else offset
    return f"{now:%A, %Y-%m-%d %H:%M:%S} in {name} ({label}); ISO 8601: {now.isoformat(timespec='seconds')}"
