"""Rating answers on Discord: 👍/👎 buttons under a finished answer, a 👎's reason form, what admins read."""

from __future__ import annotations

import pytest

from adapters.discord.client import KimiDiscordClient
from storage.store import Rating, Store
from tests.discord_support import make_services, running_bot, turns
from tests.fakes.discord import FakeDiscord, StoredMessage
from tests.fakes.discord_errors import component_errors
from tests.fakes.kimi import FakeKimi
from tests.fixtures.discord import discord_fake

__all__ = ["discord_fake"]


def buttons(message: object) -> list[str]:
    return [b["custom_id"] for row in message.components for b in row["components"]]  # type: ignore[attr-defined]


async def answered(fake: FakeDiscord, client: KimiDiscordClient, question: str) -> tuple[StoredMessage, int]:
    """Mention the bot with `question`; its answer in the new thread, and that thread's id."""
    await fake.dispatch_message(content=f"{fake.bot_user.mention} {question}")
    await turns(client, 1)
    [thread] = fake.threads_created
    [answer] = fake.bot_messages(thread.thread_id)
    return answer, thread.thread_id


async def test_buttons_under_the_answer_store_ratings_and_a_reason(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                                    store: Store) -> None:
    fake = discord_fake
    other = fake.add_user("bob")
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        answer, _ = await answered(fake, client, "explain [[len=300]]")
        up, down = buttons(answer)
        assert (up.rsplit(":", 2)[1], down.rsplit(":", 2)[1]) == ("up", "down")

        liked = await fake.components.press(answer, up, user=fake.user)
        await fake.wait_for(lambda: bool(liked.callbacks))
        assert liked.callbacks[0].body["data"]["content"].startswith("Thanks")  # type: ignore[index]
        assert liked.callbacks[0].body["data"]["flags"] & 64  # type: ignore[index]  # only the presser sees it

        disliked = await fake.components.press(answer, down, user=other)
        await fake.wait_for(lambda: fake.components.modal_of(disliked) is not None)
        [reason_input] = [f for row in fake.components.modal_of(disliked)["components"]  # type: ignore[index]
                          for f in row.get("components", [row.get("component")])]
        submitted = await fake.components.submit(disliked, {reason_input["custom_id"]: "It cited a 2019 doc"},
                                                 user=other)
        await fake.wait_for(lambda: bool(submitted.callbacks))

    [entry_up, entry_down] = sorted(await store.recent_feedback("discord", str(fake.guild_id)),
                                    key=lambda e: e.rating.value, reverse=True)
    assert (entry_up.user, entry_up.rating, entry_up.reason) == (str(fake.user.id), Rating.UP, None)
    assert (entry_down.user, entry_down.rating, entry_down.reason) == (str(other.id), Rating.DOWN,
                                                                       "It cited a 2019 doc")
    assert entry_up.turn_id == entry_down.turn_id


async def test_a_changed_mind_replaces_the_rating_and_admins_see_the_totals(discord_fake: FakeDiscord,
                                                                            kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    services = make_services(fake, kimi, store)
    async with running_bot(services, fake) as client:
        answer, thread_id = await answered(fake, client, "hello")
        up, down = buttons(answer)
        first = await fake.components.press(answer, down, user=fake.user)
        await fake.wait_for(lambda: fake.components.modal_of(first) is not None)
        second = await fake.components.press(answer, up, user=fake.user)  # dismissed the form, changed their mind
        await fake.wait_for(lambda: bool(second.callbacks))
        await fake.dispatch_message(content="!usage", channel_id=thread_id)
        await turns(client, 2)
    counts = await store.feedback_counts("discord", str(fake.guild_id))
    assert (counts.up, counts.down) == (1, 0)
    report = fake.bot_messages(thread_id)[-1].text
    assert "👍 1 · 👎 0" in report


@pytest.mark.parametrize("components, problem", [
    ([{"type": 1, "components": [{"type": 2, "style": 2, "custom_id": "a", "label": "x"}] * 2}], "duplicated"),
    ([{"type": 1, "components": [{"type": 2, "style": 2, "custom_id": "a" * 101, "label": "x"}]}], "custom_id"),
    ([{"type": 1, "components": [{"type": 2, "style": 2, "custom_id": "a"}]}], "label or an emoji"),
    ([{"type": 1, "components": []}], "1 to 5"),
])
def test_the_fake_refuses_buttons_discord_refuses(components: list[dict[str, object]], problem: str) -> None:
    assert problem in str(component_errors(components))
