"""The command line: version, migrate, and what a start does with turns a crash left behind."""

import asyncio
import contextlib
from pathlib import Path

import pytest

from bot.app import build_services
from bot.cli import main
from bot.config import Config, ConfigError
from bot.types import ConversationKey
from storage.store import Store
from tests.fakes.kimi import FakeKimi


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("kimibot 0.")


async def test_migrate_creates_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "data" / "kimibot.db"
    config = tmp_path / "kimibot.toml"
    config.write_text(f'[storage]\nurl = "sqlite:///{db}"\n')
    monkeypatch.chdir(tmp_path)
    # main() runs its own event loop; run it in a thread so this test's loop is not nested.
    assert await asyncio.to_thread(main, ["--config", str(config), "migrate"]) == 0
    assert "up to date" in capsys.readouterr().out
    store = await Store.open(f"sqlite:///{db}", migrate=False)
    assert await store.get_or_create_conversation(ConversationKey("console", "local", "me", "s"))
    await store.close()


async def test_bad_tool_path_is_a_config_error(kimi: FakeKimi, tmp_path: Path) -> None:
    config = Config.model_validate({
        "kimi": {"api_key": "sk-test", "base_url": kimi.base_url},
        "storage": {"url": f"sqlite:///{tmp_path / 'k.db'}"},
        "tools": {"custom": [{"path": "no_such_module:tool"}]},
    })
    with pytest.raises(ConfigError) as info:
        await build_services(config)
    assert "tools.custom" in str(info.value) and "no_such_module" in str(info.value)


async def test_unreachable_database_is_a_config_error(kimi: FakeKimi) -> None:
    config = Config.model_validate({"kimi": {"api_key": "sk-test", "base_url": kimi.base_url},
                                    "storage": {"url": "postgresql://nobody@127.0.0.1:9/none"}})
    with pytest.raises(ConfigError) as info:
        await build_services(config)
    assert str(info.value).startswith("storage.url: cannot open the database")


async def test_maintenance_prunes_old_dedupe_keys(kimi: FakeKimi, tmp_path: Path) -> None:
    from datetime import timedelta

    config = Config.model_validate({"kimi": {"api_key": "sk-test", "base_url": kimi.base_url},
                                    "storage": {"url": f"sqlite:///{tmp_path / 'k.db'}"}})
    services = await build_services(config)
    try:
        assert await services.store.claim_event("slack", ["evt-old"])
        task = asyncio.create_task(services.maintain(every=0.01, keep_events=timedelta(0)))
        for _ in range(100):
            if await services.store.claim_event("slack", ["evt-old"]):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the old key was never pruned")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # a cancelled task still runs until it yields: closing the store under it can hang
    finally:
        await services.aclose()
