"""Write budgets shared through a real Redis: replicas draw from one bucket, a 429 seen by one blocks all,
an outage falls back to each replica's share and recovers, and replicas count each other."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis

from bot.metrics import Metrics
from bot.replica_census import ReplicaCensus
from bot.shared_budgets import RedisBudgets, SharedBudget
from tests.fakes.tcp_proxy import TcpProxy
from tests.fixtures.redis import RedisServer


@pytest.fixture
async def clients(redis_server: RedisServer) -> AsyncIterator[Callable[..., Redis]]:
    made: list[Redis] = []

    def make(url: str | None = None) -> Redis:
        client = Redis.from_url(url or redis_server.url, socket_timeout=0.5, socket_connect_timeout=0.5)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


def replica(client: Redis, prefix: str, *, replicas: int = 1, metrics: Metrics | None = None,
            retry_seconds: float = 2.0, member: str | None = None) -> RedisBudgets:
    return RedisBudgets(client, prefix=prefix, member=member or f"replica-{id(client)}", replicas=lambda: replicas,
                        metrics=metrics,
                        retry_seconds=retry_seconds)


async def test_replicas_share_one_bucket_and_its_reserve(redis_server: RedisServer,
                                                         clients: Callable[..., Redis]) -> None:
    a = replica(clients(), redis_server.prefix).bucket("slack:T1:chat.update", rate=0.2, burst=4, reserve=1)
    b = replica(clients(), redis_server.prefix).bucket("slack:T1:chat.update", rate=0.2, burst=4, reserve=1)
    other = replica(clients(), redis_server.prefix).bucket("slack:T2:chat.update", rate=0.2, burst=4, reserve=1)
    assert await a.try_acquire() and await a.try_acquire()
    assert await b.try_acquire()
    # Three interim writes between them: the fourth token is the reserve, for a final write only.
    assert not await b.try_acquire() and not await a.try_acquire()
    assert await b.try_acquire(final=True)
    assert not await a.try_acquire(final=True)
    assert a.next_available_in(final=True) > 1.0  # a refill at 0.2/s, as Redis reported it
    assert await other.try_acquire()  # another workspace's limit is its own


async def test_a_429_seen_by_one_replica_blocks_every_replica(redis_server: RedisServer,
                                                              clients: Callable[..., Redis]) -> None:
    a = replica(clients(), redis_server.prefix).bucket("discord:channel:1", rate=40.0, burst=5, reserve=1)
    b = replica(clients(), redis_server.prefix).bucket("discord:channel:1", rate=40.0, burst=5, reserve=1)
    started = time.monotonic()
    await a.penalize(0.3)
    assert not await b.try_acquire(final=True)
    assert 0 < b.next_available_in(final=True) <= 0.3
    await b.acquire(final=True)
    assert time.monotonic() - started >= 0.29  # held until Retry-After passed on Redis's clock


async def test_writers_on_two_replicas_stay_within_one_rate(redis_server: RedisServer,
                                                            clients: Callable[..., Redis]) -> None:
    rate, burst = 20.0, 4
    buckets = [replica(clients(), redis_server.prefix).bucket("slack:T1:chat.postMessage:C1", rate=rate,
                                                              burst=burst) for _ in range(2)]
    granted: list[float] = []

    async def writer(bucket: SharedBudget) -> None:
        await bucket.acquire()
        granted.append(time.monotonic())

    await asyncio.wait_for(asyncio.gather(*(writer(b) for b in buckets for _ in range(15))), 20)
    assert len(granted) == 30
    # One bucket: the burst at once, then 26 more at 20/s take at least 1.3 s (two buckets of their own: 0.55 s).
    # A stalled event loop only spreads the grants further.
    assert max(granted) - min(granted) >= (30 - burst) / rate - 0.05


async def test_an_outage_falls_back_to_a_share_warns_once_and_recovers(
        redis_server: RedisServer, clients: Callable[..., Redis], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bot.shared_budgets")
    metrics = Metrics()
    async with TcpProxy(redis_server.host, redis_server.port) as proxy:
        hub = replica(clients(f"redis://127.0.0.1:{proxy.port}/0"), redis_server.prefix, replicas=2,
                      metrics=metrics, retry_seconds=0.2)
        direct = replica(clients(), redis_server.prefix).bucket("slack:T1:chat.update", rate=0.5, burst=6, reserve=1)
        bucket = hub.bucket("slack:T1:chat.update", rate=0.5, burst=6, reserve=1)
        assert await bucket.try_acquire()
        proxy.cut()
        # Redis is gone: this replica may still write, within half the limit (two replicas were seen).
        taken = 0
        while await bucket.try_acquire():
            taken += 1
            assert taken < 10
        assert taken == 2  # a burst of 6 // 2 = 3, less the one-token reserve
        assert await bucket.try_acquire(final=True)
        assert not hub.reachable
        warnings = [r for r in caplog.records if "redis unreachable" in r.getMessage()]
        assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
        assert metrics.registry.get_sample_value("kimibot_budget_fallbacks_total") == 1
        proxy.restore()
        await asyncio.sleep(0.25)
        assert await bucket.try_acquire()  # through Redis again: the shared bucket had 5 interim tokens left
        assert hub.reachable
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        # The grant came out of the bucket every replica sees.
        assert direct.available() == pytest.approx(6, abs=0.01)  # this replica has not asked Redis yet
        left = 0
        while await direct.try_acquire():
            left += 1
        assert left == 3  # 6 - 2 taken through Redis - the reserve


async def test_a_silent_redis_costs_one_timeout_then_the_share_serves_at_once(
        redis_server: RedisServer, clients: Callable[..., Redis]) -> None:
    """Redis that accepts and never answers (frozen, or a blackholed route): a write waits for the client's socket
    timeout once, then the replica's share answers without asking Redis until retry_seconds pass."""
    async with TcpProxy(redis_server.host, redis_server.port) as proxy:
        hub = replica(clients(f"redis://127.0.0.1:{proxy.port}/0"), redis_server.prefix, replicas=2,
                      retry_seconds=30.0)
        bucket = hub.bucket("discord:channel:42", rate=1.0, burst=4, reserve=1)
        assert await bucket.try_acquire()
        proxy.stall()
        assert await bucket.try_acquire()  # from the fallback share, once the request timed out
        assert proxy.held >= 1 and not hub.reachable
        asked = proxy.held
        assert await bucket.try_acquire(final=True)
        assert proxy.held == asked  # the silent server was not asked (and waited on) again
        proxy.restore()


async def test_replicas_count_each_other_and_forget_the_gone(redis_server: RedisServer,
                                                             clients: Callable[..., Redis]) -> None:
    census = [ReplicaCensus(clients(), prefix=redis_server.prefix, member=f"host/{i}/n", every=0.1, ttl=1.0)
              for i in range(3)]
    for member in census:
        await member.announce()
    assert await census[0].announce() == 3
    await census[2].withdraw()  # a clean shutdown leaves at once
    assert await census[0].announce() == 2
    await asyncio.sleep(1.1)  # census[1] is silent (killed): its entry expires
    assert await census[0].announce() == 1


async def test_commitments_are_counted_over_live_replicas(redis_server: RedisServer,
                                                           clients: Callable[..., Redis]) -> None:
    hubs, census = [], []
    for i in range(3):
        client = clients()
        hubs.append(replica(client, redis_server.prefix, member=f"r{i}"))
        census.append(ReplicaCensus(client, prefix=redis_server.prefix, member=f"r{i}"))
        await census[-1].announce()
    tallies = [hub.tally("slack:T1:edit-streams") for hub in hubs]
    tallies[0].add(2)
    tallies[1].add(1)
    for hub in hubs:
        await hub.exchange_tallies()
    await hubs[0].exchange_tallies()  # r0 reported before r1 had
    assert [t.total for t in tallies] == [3, 3, 3]
    assert hubs[2].tally("slack:T2:edit-streams").total == 0  # another workspace
    tallies[1].add(-1)
    await census[0].withdraw()  # r0 is gone: its two commitments no longer hold anyone back
    for hub in hubs[1:]:
        await hub.exchange_tallies()
    assert tallies[2].total == 0


async def test_an_outage_stops_counting_the_others(redis_server: RedisServer,
                                                   clients: Callable[..., Redis]) -> None:
    async with TcpProxy(redis_server.host, redis_server.port) as proxy:
        other = replica(clients(), redis_server.prefix, member="other")
        await ReplicaCensus(clients(), prefix=redis_server.prefix, member="other").announce()
        me = replica(clients(f"redis://127.0.0.1:{proxy.port}/0"), redis_server.prefix, member="me")
        other.tally("slack:T1:hungry-posts:C1").add(1)
        await other.exchange_tallies()
        waiting = me.tally("slack:T1:hungry-posts:C1")
        await me.exchange_tallies()
        assert waiting.total == 1
        proxy.cut()
        await me.exchange_tallies()
        # Redis is away: a stale count from the other replica must not hold this one's answers back.
        assert waiting.total == 0


async def test_a_failed_announcement_keeps_the_last_count(redis_server: RedisServer,
                                                          clients: Callable[..., Redis]) -> None:
    async with TcpProxy(redis_server.host, redis_server.port) as proxy:
        others = [ReplicaCensus(clients(), prefix=redis_server.prefix, member=f"other/{i}/n") for i in range(2)]
        census = ReplicaCensus(clients(f"redis://127.0.0.1:{proxy.port}/0"), prefix=redis_server.prefix,
                               member="me/1/n")
        for member in others:
            await member.announce()
        assert await census.announce() == 3
        proxy.cut()
        assert await census.announce() == 3  # what the fallback budgets divide by
