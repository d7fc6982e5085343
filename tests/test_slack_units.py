"""Pure parts of the Slack adapter: rendering, event routing facts, the lane arithmetic."""

from __future__ import annotations

from adapters.slack.events import ignore_reason, parse_event, without_own_mention
from adapters.slack.limits import Allowances, SlackLimits
from adapters.slack.render import message_fields, to_mrkdwn
from bot.budget import LocalBudgets


def test_mrkdwn_conversion_keeps_code_and_converts_markup() -> None:
    md = ("# Title\n**bold** and *italic* and ~~gone~~, a [link](https://x.example/a?b=1) & <tag>\n"
          "- one\n- two\n```python\nif a < b and c:\n    print('**not bold**')\n```\nuse `x < y`")
    assert to_mrkdwn(md).split("\n") == [
        "*Title*",
        "*bold* and _italic_ and ~gone~, a <https://x.example/a?b=1|link> &amp; &lt;tag&gt;",
        "• one", "• two",
        "```", "if a &lt; b and c:", "    print('**not bold**')", "```",
        "use `x &lt; y`",
    ]


def test_message_fields_prefer_markdown_and_guard_the_update_limit() -> None:
    assert message_fields("**hi**", "markdown") == {"markdown_text": "**hi**"}
    assert message_fields("**hi**", "mrkdwn") == {"text": "*hi*"}
    # Escaping makes this longer than chat.update accepts as text: send Markdown instead of failing.
    assert message_fields("<" * 3000, "mrkdwn") == {"markdown_text": "<" * 3000}


def test_events_are_filtered_and_cleaned() -> None:
    own = {"type": "message", "user": "UBOT", "bot_id": "BBOT", "text": "x", "channel": "C1", "ts": "1.1"}
    other_bot = {"type": "message", "bot_id": "BOTHER", "user": "U2", "text": "x", "channel": "C1", "ts": "1.2"}
    edited = {"type": "message", "subtype": "message_changed", "channel": "C1", "ts": "1.3"}
    user = {"type": "message", "user": "U1", "text": "<@UBOT> hi &lt;b&gt;", "channel": "C1", "ts": "1.4",
            "channel_type": "channel", "thread_ts": "1.0"}
    kw = {"bot_user_id": "UBOT", "bot_id": "BBOT"}
    assert ignore_reason(own, ignore_bots=False, **kw) == "own message"
    assert ignore_reason(other_bot, ignore_bots=True, **kw) == "bot message"
    assert ignore_reason(other_bot, ignore_bots=False, **kw) is None
    assert ignore_reason(edited, ignore_bots=True, **kw) == "subtype message_changed"
    assert ignore_reason(user, ignore_bots=True, **kw) is None
    ev = parse_event({"team_id": "T1", "event_id": "Ev1"}, user, "UBOT")
    assert ev.mentioned and ev.in_thread and ev.key_thread == "1.0" and ev.reply_thread("thread") == "1.0"
    assert ev.dedupe_keys == ("event:Ev1", "C1:1.4")
    assert without_own_mention(user["text"], "UBOT") == "hi &lt;b&gt;"
    dm = parse_event({"team_id": "T1"}, {**user, "channel": "D1", "channel_type": "im", "thread_ts": None}, "UBOT")
    assert dm.is_dm and dm.key_thread == "dm" and dm.reply_thread("thread") is None
    own = parse_event({"team_id": "T1"}, {**user, "channel": "D1", "channel_type": "im", "thread_ts": None}, "UBOT",
                      dm_threads=True)
    assert own.key_thread == "1.4" and own.reply_thread("thread") == "1.4"


def test_lanes_admit_streams_only_while_final_writes_stay_prompt() -> None:
    limits = SlackLimits()
    allowances = Allowances(limits, LocalBudgets(), "T1")
    capacity = limits.capacity(limits.update)
    # chat.update: a reserve of 2 tokens plus 0.675/s for 2 s: three answers may show partial text at once.
    assert capacity == 3
    for _ in range(capacity):
        assert allowances.can_stream_edit()
        allowances.edit_streams.add(1)
    assert not allowances.can_stream_edit()
    # Native: two starts in the bucket (Tier 2 burst 3, minus one); admitted-but-unstarted answers count.
    assert allowances.can_stream_native()
    allowances.pending_starts = 2
    assert not allowances.can_stream_native()
