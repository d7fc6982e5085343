"""The platform sections of the configuration: [slack], [slack.assistant], [discord] and their [*.access]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from bot.config_base import Section, check_url


class AccessConfig(Section):
    """Who may talk to the bot. Empty allow lists allow everyone; an empty admin list makes everyone an admin."""

    allow_workspaces: list[str] = Field(default_factory=list)
    allow_channels: list[str] = Field(default_factory=list)
    allow_users: list[str] = Field(default_factory=list)
    allow_roles: list[str] = Field(default_factory=list)
    block_users: list[str] = Field(default_factory=list)
    admins: list[str] = Field(default_factory=list)
    allow_dms: bool = True
    ignore_bots: bool = True


class SuggestedPrompt(Section):
    title: str = Field(min_length=1, max_length=75)
    message: str = Field(min_length=1, max_length=2000)


DEFAULT_PROMPTS = [
    SuggestedPrompt(title="Explain a screenshot", message="What does the error in this screenshot mean?"),
    SuggestedPrompt(title="Search the web", message="What changed in the latest release of "),
    SuggestedPrompt(title="Draft a message", message="Help me write a short, friendly announcement about "),
]
DEFAULT_CHANNEL_PROMPTS = [
    SuggestedPrompt(title="About this channel", message="What is {channel} for, going by its name?"),
]
DEFAULT_LOADING = ["Reading your question…", "Thinking it through…", "Checking what I know…",
                   "Putting the answer together…"]


class SlackAssistantConfig(Section):
    """Slack's agent surface: the app in the top bar and split view, each conversation its own thread."""

    enabled: bool = True
    # Offered when a user opens a new conversation with the app (at most 4 are shown).
    suggested_prompts: list[SuggestedPrompt] = Field(default_factory=lambda: list(DEFAULT_PROMPTS), max_length=4)
    # Offered first when the conversation is opened beside a channel; `{channel}` names that channel.
    channel_prompts: list[SuggestedPrompt] = Field(default_factory=lambda: list(DEFAULT_CHANNEL_PROMPTS),
                                                   max_length=4)
    # Rotated under the app's name while Kimi works (Slack shows at most 10).
    loading_messages: list[str] = Field(default_factory=lambda: list(DEFAULT_LOADING), max_length=10)
    # Stream answers in assistant conversations natively, with Slack's Stop button (falls back to edits).
    streaming: Literal["edit", "native"] = "native"


# The bot scopes of adapters/slack/manifest.yaml: what an OAuth install asks each workspace for.
DEFAULT_BOT_SCOPES = ["app_mentions:read", "assistant:write", "chat:write", "channels:history", "groups:history",
                      "im:history", "mpim:history", "files:read", "commands", "users:read"]


class SlackOAuthConfig(Section):
    """Multi-workspace installs through Slack's OAuth flow: on when `client_id` is set. Each workspace's bot
    token is kept in kimibot's database; `bot_token` is then not used."""

    client_id: str | None = None
    client_secret: SecretStr | None = None
    scopes: list[str] = Field(default_factory=lambda: list(DEFAULT_BOT_SCOPES), min_length=1)
    # Served on the Slack HTTP listener ([slack] http_host/http_port), in Socket Mode too.
    install_path: str = Field(default="/slack/install", pattern=r"^/\S*$")
    redirect_path: str = Field(default="/slack/oauth_redirect", pattern=r"^/\S*$")
    # The full public URL of redirect_path, when the app has several redirect URLs (else Slack uses its own).
    redirect_uri: str | None = None
    authorize_url: str = "https://slack.com/oauth/v2/authorize"
    # How long an install link stays valid between /slack/install and Slack's redirect back.
    state_expiration_seconds: int = Field(default=600, ge=60, le=86400)

    @field_validator("authorize_url", "redirect_uri")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return check_url(value) if value is not None else None

    @property
    def enabled(self) -> bool:
        return bool(self.client_id)


class SlackConfig(Section):
    enabled: bool | None = None  # None: on when a bot token (or an OAuth client id) is set
    bot_token: SecretStr | None = None
    app_token: SecretStr | None = None
    signing_secret: SecretStr | None = None
    api_url: str = "https://slack.com/api/"
    mode: Literal["socket", "http"] = "socket"
    http_host: str = "0.0.0.0"
    http_port: int = Field(default=3000, ge=1, le=65535)
    slash_command: str = "/kimi"
    reply_in: Literal["thread", "channel"] = "thread"
    streaming: Literal["edit", "native"] = "edit"
    # "markdown": send Kimi's Markdown as markdown_text; "mrkdwn": convert to classic mrkdwn text.
    text_format: Literal["markdown", "mrkdwn"] = "markdown"
    # Longer answers continue in new thread messages (chat.update refuses text over 4,000 characters).
    max_message_chars: int = Field(default=3900, ge=500, le=4000)
    # Multiplies Slack's documented per-minute limits the write scheduler plans with (raise only if granted).
    rate_scale: float = Field(default=1.0, gt=0)
    # When first mentioned in a thread: its first message and most recent ones, up to this many, are read once.
    backfill_limit: int = Field(default=200, ge=1, le=1000)
    # An answer the workspace's chat.update allowance cannot stream: "paragraphs" posts each finished
    # paragraph as a thread message as it is written; "whole" posts the complete answer once at the end.
    overflow: Literal["paragraphs", "whole"] = "paragraphs"
    # Each top-level direct message starts its own conversation, answered in its thread (as Slack's agent view
    # shows them); false keeps one running conversation per DM.
    dm_threads: bool = True
    assistant: SlackAssistantConfig = Field(default_factory=SlackAssistantConfig)
    oauth: SlackOAuthConfig = Field(default_factory=SlackOAuthConfig)
    access: AccessConfig = Field(default_factory=AccessConfig)

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @property
    def active(self) -> bool:
        configured = self.bot_token is not None or self.oauth.enabled
        return configured if self.enabled is None else self.enabled


class DiscordConfig(Section):
    enabled: bool | None = None  # None: on when a token is set
    token: SecretStr | None = None
    api_url: str = "https://discord.com/api/v10"
    gateway_url: str = "wss://gateway.discord.gg"
    reply_in: Literal["thread", "channel"] = "thread"
    sync_guilds: list[int] = Field(default_factory=list)
    shard_ids: list[int] | None = None
    shard_count: int | None = Field(default=None, ge=1)
    # The slash-command group: /kimi ask, /kimi reset, ...
    command_name: str = Field(default="kimi", pattern=r"^[-_a-z0-9]{1,32}$")
    # Offer /kimi and "Ask Kimi" to people who install the app to their own account (any DM or group DM).
    user_install: bool = True
    # After downtime (a new gateway session), answer what was missed in the channels asked in within this many
    # minutes (0: off), reading at most `catch_up_channels` channels and answering at most `catch_up_max`.
    catch_up_minutes: int = Field(default=60, ge=0, le=7 * 24 * 60)
    catch_up_channels: int = Field(default=50, ge=1, le=500)
    catch_up_max: int = Field(default=20, ge=0, le=500)
    thread_archive_minutes: Literal[60, 1440, 4320, 10080] = 1440
    # Discord's per-channel message bucket (sends and edits share it); answers are paced to stay inside it.
    message_rate_limit: int = Field(default=5, ge=3)
    message_rate_window: float = Field(default=5.0, gt=0)
    # Earlier messages read once when the bot is mentioned in a thread it has not seen.
    backfill_limit: int = Field(default=50, ge=0, le=500)
    access: AccessConfig = Field(default_factory=AccessConfig)

    @field_validator("api_url", "gateway_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @property
    def active(self) -> bool:
        return self.token is not None if self.enabled is None else self.enabled
