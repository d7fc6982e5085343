"""The account's model list (`GET /v1/models`): default fallback, the `model` command, hints in errors."""

from __future__ import annotations

import logging

import pytest

from storage.store import Store
from tests.fakes.kimi import FakeKimi
from tests.fixtures.engine import build_harness


async def test_a_default_the_account_lacks_falls_back_to_the_best_k2_once(store: Store,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    async with FakeKimi(models=("kimi-k2.6", "kimi-k3")) as kimi:
        harness = await build_harness(kimi, store, kimi={"model": "kimi-k2.5"})
        try:
            with caplog.at_level(logging.WARNING, logger="bot.models"):
                assert await harness.engine.models.refresh()
                assert await harness.engine.models.refresh()
            warnings = [r for r in caplog.records if "not available to this Kimi account" in r.getMessage()]
            assert len(warnings) == 1
            assert warnings[0].__dict__["using"] == "kimi-k2.6"
            _, surface = await harness.ask("hello")
            assert kimi.requests[-1]["model"] == "kimi-k2.6"
            assert "not available" not in surface.visible_text()
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()


async def test_model_command_accepts_only_listed_models_and_lists_them(store: Store) -> None:
    async with FakeKimi(models=("kimi-k2.6", "kimi-k3")) as kimi:
        harness = await build_harness(kimi, store)
        try:
            await harness.engine.models.refresh()
            _, refused = await harness.ask("!model kimi-k2.5")
            assert "not available" in refused.visible_text()
            assert "`kimi-k2.6`, `kimi-k3`" in refused.visible_text()
            await harness.ask("hi")
            assert kimi.requests[-1]["model"] == "kimi-k2.6"
            _, accepted = await harness.ask("!model kimi-k3")
            assert "now uses `kimi-k3`" in accepted.visible_text()
            await harness.ask("hi again")
            assert kimi.requests[-1]["model"] == "kimi-k3"
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()


async def test_without_a_list_nothing_is_refused(store: Store) -> None:
    """Kimi unreachable at start: the configured model and any `model` choice apply until a list is read."""
    async with FakeKimi() as kimi:
        harness = await build_harness(kimi, store, kimi={"model": "kimi-k2.5"})
        await kimi.stop()
        try:
            assert not await harness.engine.models.refresh()
            assert harness.engine.models.default == "kimi-k2.5"
            assert harness.engine.models.allows("kimi-k9")
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()


async def test_a_model_withdrawn_later_gets_a_hint_with_the_surface_prefix_and_the_list(store: Store) -> None:
    async with FakeKimi(models=("kimi-k2.5", "kimi-k2.6")) as kimi:
        harness = await build_harness(kimi, store)
        try:
            await harness.engine.models.refresh()
            await harness.ask("!model kimi-k2.5")
            kimi.retired = ("kimi-k2.5",)
            await harness.engine.models.refresh()
            surface = harness.surface()
            await harness.engine.handle(harness.message("hello"), surface, command_prefix="/")
            text = surface.visible_text()
            assert "`kimi-k2.5` is not available" in text
            assert "`/model <id>`" in text
            assert "Available: `kimi-k2.6`." in text
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()


async def test_the_context_window_comes_from_the_list(store: Store) -> None:
    async with FakeKimi(context_window=131072) as kimi:
        harness = await build_harness(kimi, store)
        try:
            assert harness.engine.models.context_window("kimi-k2.6") == harness.config.kimi.context_window
            await harness.engine.models.refresh()
            assert harness.engine.models.context_window("kimi-k2.6") == 131072
        finally:
            await harness.engine.shutdown()
            await harness.client.aclose()
