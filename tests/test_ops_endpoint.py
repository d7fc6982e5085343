"""The operator's endpoint of a real `kimibot run`: /healthz, /readyz and /metrics (Prometheus text), with the
figures an answer moves; /readyz says when the database is gone."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.health import Health
from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fakes.slack import FakeSlack
from tests.process_support import bot_processes, bot_replies, until


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.timeout(90)
async def test_health_readiness_and_metrics_of_a_running_process(kimi: FakeKimi, tmp_path: Path) -> None:
    db = tmp_path / "ops.db"
    async with FakeSlack() as slack, bot_processes(slack, kimi, f"sqlite:///{db}", tmp_path) as new_process:
        bot = new_process()
        await bot.start()
        event = slack.payloads.app_mention(slack.general, slack.alice, "[[len=300]] hello")
        assert (await slack.send_event(bot.events_url, event)).ok
        await until(lambda: bool(bot_replies(slack, slack.general, event["ts"]))
                    and len(bot_replies(slack, slack.general, event["ts"])[0].text) >= 300)
        forged = await slack.send_event(bot.events_url, event, bad_signature=True)
        assert forged.status == 401
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{bot.ops_url}/healthz") as health:
                assert health.status == 200 and (await health.json())["ok"]
            async with http.get(f"{bot.ops_url}/readyz") as ready:
                body = await ready.json()
                assert ready.status == 200 and body["database"] and body["platforms"] == {"slack": True}

            async def figures() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
                async with http.get(f"{bot.ops_url}/metrics") as response:
                    assert response.status == 200
                    assert response.headers["Content-Type"].startswith("text/plain")
                    return samples(await response.text())

            found = await figures()
            for _ in range(50):  # the answer's bookkeeping (usage row, counters) follows its last write
                if found.get(("kimibot_answers_total", (("outcome", "complete"), ("platform", "slack"))), 0) >= 1:
                    break
                found = await figures()
            assert found[("kimibot_answers_total", (("outcome", "complete"), ("platform", "slack")))] == 1
            assert found[("kimibot_answer_final_seconds_count", (("platform", "slack"),))] == 1
            assert found[("kimibot_answer_first_text_seconds_count", (("platform", "slack"),))] == 1
            assert found[("kimibot_kimi_tokens_total", (("kind", "completion"),))] > 0
            assert found[("kimibot_platform_writes_total", (("method", "chat.update"), ("platform", "slack")))] >= 1
            assert found[("kimibot_events_rejected_total", (("platform", "slack"), ("reason", "401")))] == 1
            assert ("kimibot_questions_waiting", ()) in found
        bot.terminate()
        assert await bot.wait() == 0


async def test_readiness_says_when_the_database_does_not_answer() -> None:
    store = await Store.open("postgresql://kimibot@127.0.0.1:1/nowhere", migrate=False)  # nothing listens there
    draining = False
    health = Health(store, lambda: draining)
    health.platform("slack", lambda: True)
    try:
        state = await health.readiness()
        assert state == {"ready": False, "database": False, "platforms": {"slack": True}, "draining": False}
        draining = True
        assert not health.alive
    finally:
        await store.close()
