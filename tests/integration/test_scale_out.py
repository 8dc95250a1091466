"""Several nodes: PostgreSQL as the store, Redis as the bus and for exact rate limits.

Uses the Redis service on 127.0.0.1:6379 (TIDINGS_TEST_REDIS to override), each test under its
own key prefix and topics, so runs never see each other's traffic. The nodes' own topics are
named after database ids, the same in every run: marked `redis`, these tests share one xdist
worker with the other tests that use Redis.
"""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
import websockets
from core_helpers import envelope, register
from redis_support import REDIS, cut_off, named

from conftest import ServerThread, _truncate_pg, issue_invite
from tidings.bus.redis import RedisBus
from tidings.config import load_settings
from tidings.db.ratelimit_redis import RedisRateLimiter
from tidings.kit.clock import FrozenClock
from tidings.runtime import build_runtime

pytestmark = pytest.mark.redis


def topic(name: str) -> str:
    return f"test.{uuid.uuid4().hex[:8]}.{name}"


async def test_redis_bus_carries_json_between_instances_and_times_out() -> None:
    sender, receiver = RedisBus(REDIS), RedisBus(REDIS)
    bell, other = topic("bell"), topic("other")
    try:
        async with receiver.subscribe(bell) as subscription:
            await sender.publish(other, {"not": "mine"})
            await sender.publish(bell, {"device": 7, "text": "é"})
            assert await subscription.get(timeout=5) == {"device": 7, "text": "é"}
            assert await subscription.get(timeout=0.05) is None
    finally:
        await sender.close()
        await receiver.close()


async def test_a_subscriber_cut_off_by_redis_resubscribes_and_says_so() -> None:
    name = topic("subscriber")
    bus = RedisBus(named(REDIS, name))
    bell = topic("bell")
    try:
        async with bus.subscribe(bell) as subscription:
            killed = await cut_off(name)
            assert killed >= 1
            # The reader learns it reconnected (and so must re-read the database).
            assert await subscription.get(timeout=10) == {"reconnected": True}
            await bus.publish(bell, {"after": "reconnect"})
            assert await subscription.get(timeout=5) == {"after": "reconnect"}
    finally:
        await bus.close()


async def test_redis_rate_limit_is_exact_under_concurrency() -> None:
    clock = FrozenClock()
    limiters = [
        RedisRateLimiter(REDIS, clock, prefix=f"test:{uuid.uuid4().hex}:") for _ in range(2)
    ]
    prefix_key = "claims"
    # Both "nodes" share one prefix: same counter.
    limiters[1]._prefix = limiters[0]._prefix
    try:
        verdicts = await asyncio.gather(
            *(limiters[i % 2].hit(prefix_key, limit=50, period=60) for i in range(200))
        )
        assert sum(v.allowed for v in verdicts) == 50
        refused = [v for v in verdicts if not v.allowed]
        assert all(0 < v.retry_after <= 60 for v in refused)
        assert not (await limiters[0].peek(prefix_key, limit=50, period=60)).allowed
        clock.advance(seconds=60 / 50)
        assert (await limiters[1].hit(prefix_key, limit=50, period=60)).allowed
    finally:
        for limiter in limiters:
            await limiter.close()


@pytest.fixture
def two_nodes(pg_database, tmp_path):
    """Two server processes' worth of runtimes on one PostgreSQL, talking through Redis."""
    _truncate_pg(pg_database)
    clock = FrozenClock()
    threads = []
    for name in ("a", "b"):
        settings = load_settings(
            tmp_path / name,
            database={"url": pg_database},
            bus={"kind": "redis", "redis_url": REDIS},
            secret_key="shared-secret-of-the-cluster",
        )
        thread = ServerThread(build_runtime(settings, clock=clock))
        thread.start()
        threads.append(thread)
    yield [f"http://127.0.0.1:{t.port}" for t in threads], threads[0]
    for thread in threads:
        thread.stop()


def invite_on(thread: ServerThread, phone: str) -> str:
    return issue_invite(thread.server.config.app.state.settings, phone)


async def test_a_device_on_node_b_receives_what_node_a_accepted(two_nodes) -> None:
    (node_a, node_b), first = two_nodes
    alice_phone, bob_phone = "+15550100001", "+15550100002"
    with httpx.Client(base_url=node_a) as a:
        alice = await asyncio.to_thread(
            register, a, alice_phone, await asyncio.to_thread(invite_on, first, alice_phone)
        )
    with httpx.Client(base_url=node_b) as b:
        bob = await asyncio.to_thread(
            register, b, bob_phone, await asyncio.to_thread(invite_on, first, bob_phone)
        )
    ws_b = node_b.replace("http://", "ws://")
    async with websockets.connect(f"{ws_b}/v1/ws", additional_headers=bob.headers) as socket:
        async with httpx.AsyncClient(base_url=node_a) as a:
            for n in range(3):
                body = {
                    "message_id": f"cross-{n}",
                    "to": bob_phone,
                    "envelopes": [envelope(bob_phone, bob.device_id)],
                }
                assert (
                    await a.post("/v1/messages", json=body, headers=alice.headers)
                ).status_code == 200
        seen: list[str] = []
        while len(seen) < 3:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
            if frame["type"] == "envelopes":
                seen += [e["message_id"] for e in frame["envelopes"] if e["kind"] == "message"]
        assert seen == ["cross-0", "cross-1", "cross-2"]
