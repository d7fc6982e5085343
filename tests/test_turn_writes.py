"""A turn costs a handful of database writes, whatever the length of the answer."""

from typing import Any

from sqlalchemy import event

from tests.fixtures.engine import Harness


def count_writes(harness: Harness) -> list[str]:
    statements: list[str] = []

    @event.listens_for(harness.store.engine.sync_engine, "before_cursor_execute")
    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            statements.append(statement)

    return statements


async def test_writes_per_turn_do_not_grow_with_the_answer(harness: Harness) -> None:
    await harness.ask("warm up")  # the conversation row exists from here on
    statements = count_writes(harness)
    await harness.ask("short")
    short = len(statements)
    statements.clear()
    outcome, _ = await harness.ask("[[len=8000]] long answer")
    long = len(statements)
    continuations = len(outcome.message_ids) - 1
    # The durable turn (bot/engine.py): dedupe keys and turn, the conversation's lease taken and let go,
    # question and answer rows with the turn's state, the posted message's id, a usage row, the final answer
    # with the turn's end, two message links.
    assert short <= 13
    # Per continuation message: its id on the turn and its link; never anything per token.
    assert continuations >= 1 and long <= short + 2 * continuations
    assert len(harness.kimi.stream_marks[-1][0]) >= 8000
