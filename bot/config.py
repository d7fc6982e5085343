"""The one validated configuration model: a TOML file, then environment variables on top.

Secrets come from the environment (MOONSHOT_API_KEY, SLACK_*, DISCORD_TOKEN, DATABASE_URL); every other key can
also be set as KIMIBOT_<SECTION>__<KEY>. A wrong key or value becomes a ConfigError whose message names the key.
"""

from __future__ import annotations

import enum
import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator

from bot.config_base import Section, check_url
from bot.config_platforms import (
    AccessConfig,
    DiscordConfig,
    SlackAssistantConfig,
    SlackConfig,
    SuggestedPrompt,
)

__all__ = ["AccessConfig", "Config", "ConfigError", "DiscordConfig", "SlackAssistantConfig", "SlackConfig",
           "SuggestedPrompt", "load_config"]

DEFAULT_CONFIG_PATH = Path("kimibot.toml")

DEFAULT_SYSTEM_PROMPT = (
    "You are Kimi, an assistant in a team chat. Today is {date}. Answer clearly and concisely, "
    "use Markdown for code, and say so when you are not sure."
)

# Environment variables that carry secrets or deployment facts, and the config key each one fills.
SECRET_ENV: dict[str, tuple[str, ...]] = {
    "MOONSHOT_API_KEY": ("kimi", "api_key"),
    "SLACK_BOT_TOKEN": ("slack", "bot_token"),
    "SLACK_APP_TOKEN": ("slack", "app_token"),
    "SLACK_SIGNING_SECRET": ("slack", "signing_secret"),
    "SLACK_CLIENT_ID": ("slack", "oauth", "client_id"),
    "SLACK_CLIENT_SECRET": ("slack", "oauth", "client_secret"),
    "DISCORD_TOKEN": ("discord", "token"),
    "DATABASE_URL": ("storage", "url"),
    "KIMIBOT_DATABASE_URL": ("storage", "url"),
}


TOP_LEVEL_ARRAYS = {"limits"}


class ConfigError(Exception):
    """A configuration problem, phrased as one line an operator can act on."""


class ModelPrice(Section):
    """US dollars per million tokens."""

    input: float = Field(ge=0)
    cached_input: float = Field(ge=0)
    output: float = Field(ge=0)


def _default_prices() -> dict[str, ModelPrice]:
    # kimi-k2.5 and kimi-k3 as Moonshot publishes them; kimi-k2.6 as the providers that serve it at list price
    # publish it (Moonshot's own page for it was not readable here). An operator should check them.
    return {"kimi-k2.5": ModelPrice(input=0.60, cached_input=0.10, output=3.00),
            "kimi-k2.6": ModelPrice(input=0.95, cached_input=0.16, output=4.00),
            "kimi-k3": ModelPrice(input=3.00, cached_input=0.30, output=15.00)}


class PricingConfig(Section):
    # US dollars per built-in $web_search call (documented), and per call of the search/fetch tools (the
    # documented price is CNY 0.01-0.015; this is that, rounded up).
    web_search_call: float = Field(default=0.005, ge=0)
    search_tool_call: float = Field(default=0.002, ge=0)
    models: dict[str, ModelPrice] = Field(default_factory=_default_prices)


class SearchBackend(enum.StrEnum):
    TOOLS = "tools"  # web_search/open_url function tools over /v1/tools/*: works while thinking, cites sources
    BUILTIN = "builtin"  # Kimi's $web_search: no sources, not while K2.5 thinks, marked as going offline
    OFF = "off"


class KimiConfig(Section):
    api_key: SecretStr | None = None
    base_url: str = "https://api.moonshot.ai/v1"
    # kimi-k2.5 is closed to newly registered accounts; when the account lacks the configured model, the best
    # K2 model it has is used instead (bot/models.py).
    model: str = "kimi-k2.6"
    thinking: bool = False
    search: SearchBackend = SearchBackend.TOOLS
    # Models that reject $web_search while thinking is on (search = "builtin" only).
    web_search_needs_thinking_off: list[str] = Field(default_factory=lambda: ["kimi-k2.5"])
    context_window: int = Field(default=262_144, ge=4096)
    max_output_tokens: int = Field(default=16_384, ge=256)
    max_tool_rounds: int = Field(default=6, ge=1, le=50)
    request_timeout: float = Field(default=300.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    # A Kimi that accepts the request and then says nothing fails after first_token_timeout (retried like any
    # failure before output); one that goes quiet mid-answer fails after idle_timeout. After still_working_after
    # seconds of silence the reply says Kimi is still working.
    first_token_timeout: float = Field(default=20.0, gt=0)
    idle_timeout: float = Field(default=30.0, gt=0)
    still_working_after: float = Field(default=5.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=10)
    pricing: PricingConfig = Field(default_factory=PricingConfig)

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "web_search" in data:
            raise ValueError('kimi.web_search was replaced by kimi.search = "tools" (default), "builtin" or "off"')
        return data


class ContextConfig(Section):
    # 0 means: the model's window minus the output budget.
    max_prompt_tokens: int = Field(default=0, ge=0)
    summarize: bool = True
    # Once the prompt budget is reached, compact down to this share of it (a large step keeps the cached
    # prompt start stable for many turns).
    compact_to: float = Field(default=0.5, ge=0.1, le=0.9)
    # Within this share of the budget either side, Kimi's estimate endpoint counts the prompt exactly.
    count_exactly_within: float = Field(default=0.1, ge=0.0, le=0.5)
    max_images: int = Field(default=8, ge=0)
    max_images_per_message: int = Field(default=6, ge=0)
    max_message_chars: int = Field(default=60_000, ge=100)
    max_file_chars: int = Field(default=100_000, ge=1000)


class BotConfig(Section):
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    busy_policy: Literal["queue", "restart"] = "queue"
    max_queued: int = Field(default=5, ge=1)
    edit_interval: float = Field(default=1.0, ge=0.1)
    # One short line under each answer: tokens, cached share, searches and cost. Channels can override it.
    usage_footer: bool = False
    # 👍/👎 under each finished answer (Slack and Discord); ratings are stored and shown to admins.
    feedback_buttons: bool = True


class ImageConfig(Section):
    max_side: int = Field(default=2048, ge=64)
    max_input_bytes: int = Field(default=25_000_000, ge=1024)
    max_output_bytes: int = Field(default=4_000_000, ge=10_000)
    max_pixels: int = Field(default=60_000_000, ge=10_000)
    # Images downloaded and re-encoded at once (each briefly takes ~5x its file size in memory).
    parallel: int = Field(default=2, ge=1, le=32)


class VideoConfig(Section):
    # Kimi takes files up to 100 MB (reference §5.1); larger videos are refused before they are downloaded.
    max_bytes: int = Field(default=100_000_000, ge=1024, le=100_000_000)
    # Up to this size a video rides inline in the request (base64); larger ones are uploaded to Kimi's file
    # store for their answer and deleted after it.
    inline_max_bytes: int = Field(default=8_000_000, ge=0, le=50_000_000)
    max_per_message: int = Field(default=2, ge=0, le=10)


class ToolEntry(Section):
    path: str
    timeout: float = Field(default=30.0, gt=0)
    max_output_chars: int = Field(default=16_000, ge=100)
    options: dict[str, Any] = Field(default_factory=dict)


class McpTransport(enum.StrEnum):
    STDIO = "stdio"
    HTTP = "http"  # streamable HTTP


class McpServerEntry(Section):
    """An MCP server whose tools are offered to Kimi beside the Python ones."""

    # Prefixes its tools' names (`<name>_<tool>`), so two servers' tools cannot collide.
    name: str = Field(pattern=r"^[a-zA-Z][a-zA-Z0-9_-]{0,19}$")
    transport: McpTransport
    command: list[str] = Field(default_factory=list)  # stdio: the program and its arguments
    env: dict[str, str] = Field(default_factory=dict)  # stdio: extra environment for the program
    url: str | None = None  # http: the server's MCP endpoint
    # http: the name of an environment variable holding a bearer token (secrets stay out of the file).
    token_env: str | None = None
    tools: list[str] = Field(default_factory=list)  # only these of its tools; empty = all
    timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=15.0, gt=0)
    max_output_chars: int = Field(default=16_000, ge=100)

    @model_validator(mode="after")
    def _transport_needs(self) -> McpServerEntry:
        if self.transport is McpTransport.STDIO and not self.command:
            raise ValueError("a stdio server needs `command` (the program and its arguments)")
        if self.transport is McpTransport.HTTP and not (self.url or "").startswith(("http://", "https://")):
            raise ValueError("an http server needs `url` (http:// or https://)")
        return self


def _default_tools() -> list[ToolEntry]:
    return [
        ToolEntry(path="bot.tools.clock:current_time", timeout=5),
        ToolEntry(path="bot.tools.web:fetch_page", timeout=20, max_output_chars=20_000),
    ]


class ToolsConfig(Section):
    custom: list[ToolEntry] = Field(default_factory=_default_tools)
    mcp: list[McpServerEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_servers(self) -> ToolsConfig:
        names = [server.name for server in self.mcp]
        if len(names) != len(set(names)):
            raise ValueError("every [[tools.mcp]] server needs its own `name`")
        return self


class TurnsConfig(Section):
    """How acknowledged questions survive crashes, deploys and busy databases."""

    # A process holds each turn it works on for lease_seconds, renewed every third of it; a turn whose holder
    # died is resumed by another process (or the next start) once the lease has run out.
    lease_seconds: float = Field(default=30.0, ge=2)
    # How often every process looks for turns to resume.
    sweep_seconds: float = Field(default=10.0, gt=0)
    # Older unfinished turns are not answered again; their asker gets a notice instead.
    resume_within_seconds: float = Field(default=900.0, gt=0)
    # On SIGTERM: how long answers in flight may take to finish; the rest are resumed by the next process.
    shutdown_grace_seconds: float = Field(default=25.0, ge=0)
    # How long a received question is held and retried while the database cannot store it.
    intake_retry_seconds: float = Field(default=600.0, gt=0)


class StorageConfig(Section):
    url: str = "sqlite:///./kimibot.db"
    # Each database operation retries a busy (locked) or unreachable database for this long.
    retry_seconds: float = Field(default=30.0, ge=0)
    # At start, a PostgreSQL server that is not up yet (a container starting beside kimibot) is waited for this long.
    wait_seconds: float = Field(default=60.0, ge=0)
    # Messages, attachments, finished turns, feedback and dedupe keys older than this many days are deleted (hourly,
    # in batches); usage rows are rolled up to one per day, user and model instead. 0 keeps everything.
    retention_days: int = Field(default=0, ge=0)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value


class RedisConfig(Section):
    """Shared write budgets: replicas (and Discord shards in separate processes) that name the same Redis share
    every Slack and Discord limit, with no rate arithmetic. Empty: budgets are kept in this process."""

    # redis://[:password@]host:6379/0 (rediss:// for TLS); the password may come from KIMIBOT_REDIS__URL.
    url: SecretStr | None = None
    # Keys start with this; two different bots sharing one Redis need different prefixes.
    key_prefix: str = Field(default="kimibot", min_length=1)
    # A Redis call slower than this counts as Redis being unreachable (budgets fall back, one warning).
    timeout_seconds: float = Field(default=0.5, gt=0)
    # While Redis is unreachable, it is tried again this often.
    retry_seconds: float = Field(default=2.0, gt=0)
    # How often each replica announces itself; one silent for three times this stops counting.
    announce_seconds: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and not value.get_secret_value().startswith(
                ("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value if value is not None and value.get_secret_value() else None


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["json", "text"] = "json"


class LimitScope(enum.StrEnum):
    USER = "user"
    CHANNEL = "channel"
    WORKSPACE = "workspace"


class LimitPeriod(enum.StrEnum):
    DAY = "day"
    MONTH = "month"


class SpendingLimit(Section):
    """A cap on what one user, channel or workspace may spend per UTC day or month, in dollars or tokens."""

    scope: LimitScope
    period: LimitPeriod
    usd: float | None = Field(default=None, gt=0)
    tokens: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_unit(self) -> SpendingLimit:
        if (self.usd is None) == (self.tokens is None):
            raise ValueError("give exactly one of usd or tokens")
        return self


class OpsConfig(Section):
    """The operator's endpoint (/healthz, /readyz, /metrics), in every mode."""

    host: str = "0.0.0.0"
    # 0 turns the endpoint off.
    port: int = Field(default=9090, ge=0, le=65535)


class Config(Section):
    kimi: KimiConfig = Field(default_factory=KimiConfig)
    bot: BotConfig = Field(default_factory=BotConfig)
    context: ContextConfig = Field(default_factory=ContextConfig)
    images: ImageConfig = Field(default_factory=ImageConfig)
    video: VideoConfig = Field(default_factory=VideoConfig)
    tools: ToolsConfig = Field(default_factory=ToolsConfig)
    turns: TurnsConfig = Field(default_factory=TurnsConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    slack: SlackConfig = Field(default_factory=SlackConfig)
    discord: DiscordConfig = Field(default_factory=DiscordConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    ops: OpsConfig = Field(default_factory=OpsConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)
    # Checked before every Kimi call; a question over a limit gets a reply naming it and when it resets.
    limits: list[SpendingLimit] = Field(default_factory=list)

    def require_kimi_key(self) -> str:
        if self.kimi.api_key is None or not self.kimi.api_key.get_secret_value():
            raise ConfigError("kimi.api_key: not set; export MOONSHOT_API_KEY=<your key from platform.kimi.ai>")
        return self.kimi.api_key.get_secret_value()


def _env_value(raw: str) -> Any:
    # Lists and tables arrive as JSON; scalars stay strings and pydantic coerces them per field.
    if raw[:1] in "[{":
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            return raw
    return raw


def _set_path(data: dict[str, Any], path: list[str], value: Any) -> None:
    node = data
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(path)}: cannot set a key inside a non-table value")
        node = child
    node[path[-1]] = value


def apply_environment(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for name, path in SECRET_ENV.items():
        if name == "DATABASE_URL" and "KIMIBOT_DATABASE_URL" in env:
            continue
        if env.get(name):
            _set_path(data, list(path), env[name])
    for name, raw in sorted(env.items()):
        if not name.startswith("KIMIBOT_"):
            continue
        if "__" not in name:
            # Top-level arrays of tables ([[limits]]) have no section: KIMIBOT_LIMITS='[{...}]'.
            key = name.removeprefix("KIMIBOT_").lower()
            if key in TOP_LEVEL_ARRAYS:
                data[key] = _env_value(raw)
            continue
        path = [part.lower() for part in name.removeprefix("KIMIBOT_").split("__")]
        if any(not part for part in path):
            raise ConfigError(f"{name}: malformed variable name (use KIMIBOT_<SECTION>__<KEY>)")
        _set_path(data, path, _env_value(raw))
    return data


def _format_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    more = len(error.errors()) - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{key}: {message} [{source}]{suffix}"


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read the TOML file (if any) and the environment; raise ConfigError with one clear line."""
    env = os.environ if env is None else env
    explicit = path is not None
    # KIMIBOT_CONFIG names the file where no --config is given (the container looks in /etc/kimibot); like
    # ./kimibot.toml, it is read when present, so a deployment configured by the environment alone still starts.
    path = path if path is not None else Path(env.get("KIMIBOT_CONFIG") or DEFAULT_CONFIG_PATH)
    data: dict[str, Any] = {}
    source = "defaults and environment"
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        source = f"{path} and environment"
    elif explicit:
        raise ConfigError(f"{path}: config file not found")
    data = apply_environment(data, env)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None
