"""kimibot installed to a person's account: "Ask Kimi" on a message in a group DM the bot is not in, answered
through the interaction alone, and an answer that outlives the 15-minute token ending with a clear note."""

from __future__ import annotations

from storage.store import Store
from tests.discord_support import make_services, running_bot
from tests.fakes.discord import FakeDiscord, FakeFile
from tests.fakes.kimi import FakeKimi
from tests.fixtures.discord import discord_fake
from tests.test_discord_messages import last_user_text
from tests.test_slack_files import png

__all__ = ["discord_fake"]
WAIT = 10.0


def channel_calls(fake: FakeDiscord, channel_id: int) -> list[object]:
    return [c for c in fake.calls if f"/channels/{channel_id}" in c.path]


async def test_ask_kimi_about_a_message_in_a_group_dm(discord_fake: FakeDiscord, kimi: FakeKimi,
                                                      store: Store) -> None:
    fake = discord_fake
    bob = fake.add_user("bob")
    group = fake.add_group_dm(fake.user, bob)
    shot = FakeFile("trace.png", png(64, 48), "image/png")
    asked = await fake.post_unseen(group.id, "Why does the build fail with this trace?", author=bob, files=[shot])
    async with running_bot(make_services(fake, kimi, store), fake):
        menu = await fake.invoke_message_command("Ask Kimi", fake.message(asked.id), user_install=True)
        await fake.wait_for(lambda: fake.components.modal_of(menu) is not None, WAIT)
        [field] = [f for row in fake.components.modal_of(menu)["components"]  # type: ignore[index]
                   for f in row.get("components", [row.get("component")])]
        form = await fake.components.submit(menu, {field["custom_id"]: "explain it briefly"}, user=fake.user)
        await fake.wait_for(lambda: form.original_message_id is not None
                            and fake.message(form.original_message_id).text.startswith("I see 1 image"), WAIT)
    said = last_user_text(kimi)
    assert said.startswith("About this message from bob:\n> Why does the build fail with this trace?")
    assert said.endswith("explain it briefly")
    answer = fake.message(form.original_message_id)  # type: ignore[arg-type]
    assert answer.components, "no feedback buttons under the answer"
    assert channel_calls(fake, group.id) == []  # everything went through the interaction
    assert not [c for c in fake.calls if c.status == 403]


async def test_an_answer_outliving_the_token_where_the_bot_has_no_access_says_so(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    group = fake.add_group_dm(fake.user, fake.add_user("bob"))
    kimi.tokens_per_second = 200
    async with running_bot(make_services(fake, kimi, store), fake):
        record = await fake.invoke_command("kimi ask", {"prompt": "slow [[len=3000]]"}, channel_id=group.id,
                                           guild_id=None, user_install=True)
        await fake.wait_for(lambda: record.original_message_id is not None
                            and fake.message(record.original_message_id).text != "", WAIT)
        fake.clock.advance(15 * 60 - 30)  # within a minute of the token's end
        await fake.wait_for(lambda: any("ran out of time" in (c.body or {}).get("content", "")
                                        for c in record.followups), WAIT)
    assert channel_calls(fake, group.id) == []
    assert not [c for c in fake.calls if c.status in (401, 403)]


async def test_a_long_answer_in_a_group_dm_stops_at_five_followups_and_says_so(
        discord_fake: FakeDiscord, kimi: FakeKimi, store: Store) -> None:
    fake = discord_fake
    group = fake.add_group_dm(fake.user, fake.add_user("bob"))
    kimi.tokens_per_second = 4000
    async with running_bot(make_services(fake, kimi, store), fake):
        record = await fake.invoke_command("kimi ask", {"prompt": "everything [[len=16000]]"}, channel_id=group.id,
                                           guild_id=None, user_install=True)
        await fake.wait_for(lambda: len(record.followup_message_ids) == 5, WAIT)
        await fake.wait_for(lambda: "only five follow-up" in fake.message(record.followup_message_ids[-1]).text,
                            WAIT)
    assert all(c.status == 200 for c in record.calls)  # no sixth followup was tried
    assert channel_calls(fake, group.id) == []
