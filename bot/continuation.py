"""Answers cut by the output limit: said so plainly, and carried on with one word.

A completion that ends with `finish_reason: "length"` stopped because it ran out of output tokens, not because
it was done. The answer then ends with a note and is stored as `truncated`; the user's reply `continue` makes
the next turn pick it up: with Kimi's partial mode (the cut answer sent back as an assistant prefix that Kimi
continues, reference §9.1) where the model supports it, else as a plain follow-up request.
"""

from __future__ import annotations

from typing import Any

CONTINUE_WORDS = frozenset({"continue", "go on", "keep going", "continue please", "please continue"})
FOLLOW_UP = "Continue exactly where your previous answer stopped, without repeating anything."


def asks_to_continue(text: str) -> bool:
    """`continue` as a reply, or as a command (`!continue`, `/continue` in the terminal)."""
    return text.strip().lstrip("!/").strip(".! ").lower() in CONTINUE_WORDS


def cut_note(*, thinking_only: bool, max_tokens: int, prefix: str) -> str:
    if thinking_only:
        return (f"I used the whole output budget ({max_tokens:,} tokens) thinking and had none left to answer. "
                f"Reply `continue` to let me go on, turn thinking off with `{prefix}think off`, or ask an admin "
                "to raise `max_output_tokens`.")
    return (f"This answer hit the output limit ({max_tokens:,} tokens) and is not finished. Reply `continue` and "
            "I'll carry on where it stopped.")


def continuation_request(messages: list[dict[str, Any]], *, partial: bool) -> list[dict[str, Any]]:
    """The request that continues the cut answer. The answer so far (its parts joined, when it was already
    continued before) becomes one assistant message: the prefix Kimi continues in partial mode, or, without it,
    what an explicit follow-up instruction refers to. The user's "continue"s between the parts are left out."""
    out = list(messages)
    if out and _is_continue(out[-1]):
        out.pop()
    parts: list[str] = []
    while out and _plain_answer(out[-1]):
        parts.insert(0, _text(out.pop()))
        if len(out) >= 2 and _is_continue(out[-1]) and _plain_answer(out[-2]):
            out.pop()
            continue
        break
    if not parts:
        return [*out, {"role": "user", "content": FOLLOW_UP}]
    answer = {"role": "assistant", "content": "".join(parts)}
    if partial:
        return [*out, {**answer, "partial": True}]
    return [*out, answer, {"role": "user", "content": FOLLOW_UP}]


def _is_continue(message: dict[str, Any]) -> bool:
    return message.get("role") == "user" and asks_to_continue(_text(message))


def _plain_answer(message: dict[str, Any]) -> bool:
    return message.get("role") == "assistant" and not message.get("tool_calls")


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""
