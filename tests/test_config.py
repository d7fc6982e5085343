from pathlib import Path
from typing import get_args

import pytest

from bot.cli import main
from bot.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.toml"


def test_example_config_is_valid_and_documents_defaults() -> None:
    config = load_config(EXAMPLE, env={})
    assert config.kimi.model == "kimi-k2.6"
    assert config.kimi.base_url == "https://api.moonshot.ai/v1"
    assert config.storage.url.startswith("sqlite")
    assert [t.path for t in config.tools.custom] == ["bot.tools.clock:current_time", "bot.tools.web:fetch_page"]
    assert not config.slack.active and not config.discord.active


def test_every_option_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    config = load_config(EXAMPLE, env={})
    secrets = {"api_key", "bot_token", "app_token", "signing_secret", "client_secret", "token", "enabled",
               "shard_ids", "shard_count"}
    for section_name, section in config:
        assert f"[{section_name}" in text, section_name
        # An array of tables ([[limits]]) documents the fields of its entries.
        model = (get_args(Config.model_fields[section_name].annotation)[0] if isinstance(section, list)
                 else type(section))
        for key in model.model_fields:
            if key in secrets:
                continue
            assert f"{key} =" in text or f"{key}=" in text or f"[{section_name}.{key}" in text, f"{section_name}.{key}"


def test_environment_overrides_and_secrets(tmp_path: Path) -> None:
    path = tmp_path / "k.toml"
    path.write_text('[kimi]\nmodel = "kimi-k2.5"\n[storage]\nurl = "sqlite:///a.db"\n')
    config = load_config(path, env={
        "MOONSHOT_API_KEY": "sk-secret",
        "KIMIBOT_KIMI__MODEL": "kimi-k2.6",
        "KIMIBOT_KIMI__THINKING": "true",
        "KIMIBOT_KIMI__BASE_URL": "http://127.0.0.1:9/v1",
        "KIMIBOT_DISCORD__ACCESS__ADMINS": '["42"]',
        "DATABASE_URL": "postgresql://u@h/db",
        "SLACK_BOT_TOKEN": "xoxb-1",
    })
    assert config.kimi.model == "kimi-k2.6"
    assert config.kimi.thinking is True
    assert config.kimi.base_url == "http://127.0.0.1:9/v1"
    assert config.discord.access.admins == ["42"]
    assert config.storage.url == "postgresql://u@h/db"
    assert config.require_kimi_key() == "sk-secret"
    assert "sk-secret" not in repr(config)
    assert config.slack.active


def test_spending_limits_from_the_environment(tmp_path: Path) -> None:
    """[[limits]] has no section to name, so KIMIBOT_LIMITS carries the whole array (replacing the file's)."""
    path = tmp_path / "k.toml"
    path.write_text('[[limits]]\nscope = "workspace"\nperiod = "month"\nusd = 500\n')
    config = load_config(path, env={"KIMIBOT_LIMITS": '[{"scope": "user", "period": "day", "tokens": 200000}]'})
    assert [(lim.scope, lim.period, lim.tokens) for lim in config.limits] == [("user", "day", 200000)]
    with pytest.raises(ConfigError, match=r"^limits\.0\.period: "):
        load_config(path, env={"KIMIBOT_LIMITS": '[{"scope": "user", "period": "week", "usd": 1}]'})
    with pytest.raises(ConfigError, match=r"^limits: "):
        load_config(path, env={"KIMIBOT_LIMITS": '[{"scope": "user",'})  # broken JSON


@pytest.mark.parametrize(("content", "env", "expected"), [
    ("[kimi]\nmodle = 'x'\n", {}, "kimi.modle: unknown key"),
    ("[kimi]\nmax_tool_rounds = 0\n", {}, "kimi.max_tool_rounds:"),
    ("", {"KIMIBOT_KIMI__MAX_OUTPUT_TOKENS": "lots"}, "kimi.max_output_tokens:"),
    ("[storage]\nurl = 'mysql://x'\n", {}, "storage.url:"),
    ("[slack]\nmode = 'carrier-pigeon'\n", {}, "slack.mode:"),
    ("", {"KIMIBOT_REDIS__URL": "http://cache:6379"}, "redis.url:"),
    ("[storage]\nretention_days = -1\n", {}, "storage.retention_days:"),
    ("[kimi\n", {}, "not valid TOML"),
    ("", {"KIMIBOT_NOPE__X": "1"}, "nope: unknown key"),
])
def test_bad_config_names_the_key(tmp_path: Path, content: str, env: dict[str, str], expected: str) -> None:
    path = tmp_path / "k.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_key_is_reported_at_start(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOONSHOT_API_KEY", raising=False)
    monkeypatch.setenv("KIMIBOT_STORAGE__URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.chdir(tmp_path)
    assert main(["chat"]) == 2
    err = capsys.readouterr().err
    assert "kimi.api_key" in err and "MOONSHOT_API_KEY" in err


def test_missing_config_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(tmp_path / "absent.toml"), "migrate"]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_run_without_platforms_says_what_to_configure(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SLACK_BOT_TOKEN", "DISCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["run"]) == 2
    err = capsys.readouterr().err
    assert "SLACK_BOT_TOKEN" in err and "DISCORD_TOKEN" in err and "kimibot chat" in err
