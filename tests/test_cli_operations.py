"""What an operator sees when a start goes wrong: one line naming the database (password hidden) and the cause;
a container that waits with its one error instead of restarting into it; the config file named by
KIMIBOT_CONFIG."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.cli import NOTHING_TO_RUN, main
from tests.process_support import REPO


async def run_main(args: list[str]) -> int:
    return await asyncio.to_thread(main, args)  # main() runs its own event loop


async def test_a_database_that_cannot_be_opened_is_one_line_naming_it(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's directory should be")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{blocker}/kimibot.db")
    monkeypatch.chdir(tmp_path)
    assert await run_main(["migrate"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"kimibot: config error: storage.url: cannot open the database at sqlite+aiosqlite:///{blocker}")


async def test_the_password_never_reaches_the_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://kimibot:s3cret-pw@127.0.0.1:1/kimibot")  # nothing listens
    monkeypatch.setenv("KIMIBOT_STORAGE__WAIT_SECONDS", "0.5")
    monkeypatch.chdir(tmp_path)
    assert await run_main(["migrate"]) == 2
    err = capsys.readouterr().err.strip()
    *waiting, last = err.splitlines()  # the wait is logged (JSON records), then the one error line
    assert all(line.startswith("{") for line in waiting) and "s3cret-pw" not in err
    assert last.startswith("kimibot: config error: storage.url: cannot open the database at "
                           "postgresql+asyncpg://kimibot:***@127.0.0.1:1/kimibot: ConnectionRefusedError")


async def test_kimibot_config_names_the_file_read(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "from-the-file.db"
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "kimibot.toml").write_text(f'[storage]\nurl = "sqlite:///{db}"\n')
    monkeypatch.setenv("KIMIBOT_CONFIG", str(tmp_path / "etc" / "kimibot.toml"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    assert await run_main(["migrate"]) == 0
    assert db.exists()
    monkeypatch.setenv("KIMIBOT_CONFIG", str(tmp_path / "etc" / "absent.toml"))  # absent: defaults and env
    assert await run_main(["migrate"]) == 0
    assert (tmp_path / "kimibot.db").exists()


@pytest.mark.timeout(60)
async def test_in_a_container_a_config_error_is_said_once_then_it_waits(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KIMIBOT_", "SLACK_", "DISCORD_"))}
    env.update({"MOONSHOT_API_KEY": "sk-test", "PYTHONPATH": str(REPO)})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--on-config-error", "wait", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stderr is not None
    said: list[str] = []
    async with asyncio.timeout(30):
        while not said or "waiting for a stop signal" not in said[-1]:
            said.append((await process.stderr.readline()).decode())
    await asyncio.sleep(1.0)
    assert process.returncode is None  # still there: no exit for a restart policy to turn into a loop
    process.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(process.wait(), 20) == 2
    assert "".join(said).count(NOTHING_TO_RUN.splitlines()[0]) == 1
