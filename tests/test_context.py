from datetime import UTC, datetime
from typing import Any

from bot.context import ContextBuilder, estimate_text_tokens, group_turns, render_system_prompt
from storage.store import StoredAttachment, StoredMessage

NOW = datetime(2026, 11, 21, tzinfo=UTC)


def msg(seq: int, role: str, text: str = "", **kw: Any) -> StoredMessage:
    values: dict[str, Any] = {
        "id": seq, "conversation_id": 1, "seq": seq, "role": role, "text": text, "media_ids": [],
        "tool_calls": None, "tool_call_id": None, "tool_name": None, "reasoning": None, "author": None,
        "platform_message_ids": [], "status": "complete", "prompt_tokens": None, "completion_tokens": None,
        "error": None, "created_at": NOW,
    }
    values.update(kw)
    return StoredMessage(**values)


async def no_attachment(attachment_id: int) -> StoredAttachment | None:
    return None


def builder(max_prompt_tokens: int = 100_000, max_images: int = 8, images: dict[int, StoredAttachment] | None = None
            ) -> ContextBuilder:
    store = images or {}

    async def load(attachment_id: int) -> StoredAttachment | None:
        return store.get(attachment_id)

    return ContextBuilder(load, max_prompt_tokens=max_prompt_tokens, max_images=max_images)


def test_system_prompt_date_and_braces() -> None:
    assert render_system_prompt("Today is {date}. Use {json}.", NOW) == "Today is Saturday, 21 November 2026 (UTC). " \
                                                                        "Use {json}."


async def test_history_in_order_with_tool_round() -> None:
    call = {"id": "functions.current_time:0", "type": "function",
            "function": {"name": "current_time", "arguments": "{}"}}
    history = [
        msg(1, "user", "what time?"),
        msg(2, "assistant", "", tool_calls=[call], reasoning="need the clock"),
        msg(3, "tool", "12:00", tool_call_id="functions.current_time:0", tool_name="current_time"),
        msg(4, "assistant", "It is noon."),
        msg(5, "user", "thanks"),
    ]
    built = await builder().build(history, system_prompt="sys", summary=None, tools=[], multi_author=False)
    roles = [m["role"] for m in built.messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert built.messages[2]["tool_calls"] == [call]
    assert built.messages[2]["reasoning_content"] == "need the clock"
    assert built.messages[3] == {"role": "tool", "tool_call_id": "functions.current_time:0",
                                 "name": "current_time", "content": "12:00"}
    assert not built.dropped


async def test_orphaned_tool_call_is_not_sent() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "x_tool", "arguments": "{}"}}
    history = [msg(1, "user", "q"), msg(2, "assistant", "Let me check.", tool_calls=[call]), msg(3, "user", "q2")]
    built = await builder().build(history, system_prompt="s", summary=None, tools=[], multi_author=False)
    assert all("tool_calls" not in m for m in built.messages)
    assert [m["content"] for m in built.messages] == ["s", "q", "Let me check.", "q2"]


async def test_trims_oldest_whole_turns_and_always_keeps_the_question() -> None:
    history = []
    for turn in range(10):
        history.append(msg(turn * 2 + 1, "user", f"question {turn} " + "x" * 350))
        history.append(msg(turn * 2 + 2, "assistant", f"answer {turn} " + "y" * 350))
    history.append(msg(99, "user", "final question " + "z" * 2000))
    budget = estimate_text_tokens("s") + 8 + 3 * 2 * 130 + 700
    built = await builder(max_prompt_tokens=budget).build(
        history, system_prompt="s", summary=None, tools=[], multi_author=False)
    assert built.messages[-1]["content"].startswith("final question")
    assert built.dropped and built.dropped[0].seq == 1
    kept_users = [m["content"] for m in built.messages if m["role"] == "user"]
    assert kept_users[0].startswith("question") and int(kept_users[0].split()[1]) > 0
    # Whole turns: every kept question is followed by its answer.
    assert built.messages[1]["role"] == "user"
    assert built.estimated_tokens <= budget or len(kept_users) == 1


async def test_summary_goes_after_the_system_prompt() -> None:
    built = await builder().build([msg(5, "user", "hi")], system_prompt="s", summary="We talked about cats.",
                                  tools=[], multi_author=False)
    assert built.messages[1]["role"] == "system" and "cats" in built.messages[1]["content"]


async def test_images_newest_first_and_capped() -> None:
    images = {i: StoredAttachment(id=i, sha256=str(i), mime="image/png", width=56, height=28, size=3, data=b"png")
              for i in range(1, 4)}
    history = [msg(1, "user", "old", media_ids=[1]), msg(2, "assistant", "ok"),
               msg(3, "user", "new", media_ids=[2, 3])]
    built = await builder(max_images=2, images=images).build(
        history, system_prompt="s", summary=None, tools=[], multi_author=False)
    old, new = built.messages[1], built.messages[3]
    assert isinstance(new["content"], list)
    assert [p["type"] for p in new["content"]] == ["image_url", "image_url", "text"]
    assert new["content"][0]["image_url"]["url"] == "data:image/png;base64,cG5n"
    assert "not resent" in old["content"]
    assert built.images_omitted == 1


async def test_multi_author_prefixes_names() -> None:
    history = [msg(1, "user", "hello", author="alice"), msg(2, "assistant", "hi"), msg(3, "user", "yo", author="bob")]
    built = await builder().build(history, system_prompt="s", summary=None, tools=[], multi_author=True)
    assert built.messages[1]["content"] == "[alice] hello"
    assert built.messages[3]["content"] == "[bob] yo"


def test_group_turns() -> None:
    turns = group_turns([msg(1, "user"), msg(2, "assistant"), msg(3, "user")])
    assert [[m.seq for m in t.messages] for t in turns] == [[1, 2], [3]]


def test_token_estimate_counts_non_ascii_characters_one_each() -> None:
    assert estimate_text_tokens("abcdefg") == 2
    assert estimate_text_tokens("日本語") == 3
    assert estimate_text_tokens("ab日") == 2
