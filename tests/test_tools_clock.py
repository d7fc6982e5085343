from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from bot.tools import tool_from_function
from bot.tools.clock import current_time


def _iso(content: str) -> datetime:
    match = re.search(r"ISO 8601: (\S+)$", content)
    assert match, content
    return datetime.fromisoformat(match.group(1))


async def test_current_time_in_tokyo() -> None:
    result = await tool_from_function(current_time).run('{"timezone": "Asia/Tokyo"}')
    assert result.ok, result.content
    stamp = _iso(result.content)
    assert stamp.utcoffset() == timedelta(hours=9)
    assert "Asia/Tokyo" in result.content
    assert "UTC+09:00" in result.content and "JST" in result.content
    assert result.content.startswith(stamp.strftime("%A, %Y-%m-%d %H:%M:%S"))
    # Sanity bound against a wrong zone or a stale clock, not a timing assertion.
    assert abs(stamp - datetime.now(UTC)) < timedelta(minutes=10)


async def test_default_is_utc() -> None:
    result = await tool_from_function(current_time).run("{}")
    assert result.ok
    assert _iso(result.content).utcoffset() == timedelta(0)
    assert "in UTC" in result.content


async def test_negative_offset_zone() -> None:
    result = await tool_from_function(current_time).run('{"timezone": "America/St_Johns"}')
    assert result.ok
    assert _iso(result.content).utcoffset() in (
        timedelta(hours=-3, minutes=-30),
        timedelta(hours=-2, minutes=-30),
    )
    assert re.search(r"UTC-0[23]:30", result.content)


async def test_unknown_zone_is_a_clear_error() -> None:
    for bad in ("Mars/Olympus_Mons", "../../etc/passwd", "Europe"):
        result = await tool_from_function(current_time).run(f'{{"timezone": "{bad}"}}')
        assert not result.ok
        assert "unknown time zone" in result.content and bad in result.content
