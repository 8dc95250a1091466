"""Adding and dropping topics on an open bus subscription (the gateway's one per node)."""

from __future__ import annotations

import uuid

import pytest
from redis_support import REDIS, cut_off, named

from tidings.bus.base import Bus
from tidings.bus.memory import MemoryBus
from tidings.bus.redis import RedisBus

pytestmark = pytest.mark.redis


def make_bus(kind: str) -> Bus:
    return MemoryBus() if kind == "memory" else RedisBus(REDIS)


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_topics_added_later_are_heard_and_dropped_ones_are_not(kind: str) -> None:
    bus = make_bus(kind)
    tag = uuid.uuid4().hex[:8]
    anchor, first, second = f"test.{tag}.anchor", f"test.{tag}.one", f"test.{tag}.two"
    try:
        async with bus.subscribe(anchor) as subscription:
            await subscription.add(first, second)
            await subscription.add(first)  # already followed: a no-op
            await bus.publish(first, {"n": 1})
            await bus.publish(second, {"n": 2})
            assert await subscription.get(timeout=5) == {"n": 1}
            assert await subscription.get(timeout=5) == {"n": 2}
            await subscription.discard(first)
            await subscription.discard(first)  # not followed any more: a no-op
            await bus.publish(first, {"n": 3})
            await bus.publish(anchor, {"n": 4})
            # Messages arrive in publish order, so the dropped topic's one would come first.
            assert await subscription.get(timeout=5) == {"n": 4}
    finally:
        await bus.close()


async def test_a_redis_subscription_keeps_its_added_topics_after_a_reconnect() -> None:
    tag = uuid.uuid4().hex[:8]
    bus = RedisBus(named(REDIS, f"test.{tag}"))
    anchor, added = f"test.{tag}.anchor", f"test.{tag}.added"
    try:
        async with bus.subscribe(anchor) as subscription:
            await subscription.add(added)
            assert await cut_off(f"test.{tag}") >= 1
            assert await subscription.get(timeout=10) == {"reconnected": True}
            await bus.publish(added, {"after": "reconnect"})
            assert await subscription.get(timeout=5) == {"after": "reconnect"}
    finally:
        await bus.close()


@pytest.mark.parametrize("kind", ["memory", "redis"])
async def test_a_zero_timeout_answers_at_once(kind: str) -> None:
    """`get(timeout=0)` never waits: a worker empties the doorbells queued during its pass
    this way, since the next pass answers all of them."""
    bus = make_bus(kind)
    topic = f"test.{uuid.uuid4().hex[:8]}.zero"
    try:
        async with bus.subscribe(topic) as subscription:
            assert await subscription.get(timeout=0) is None
            for n in range(3):
                await bus.publish(topic, {"n": n})
            assert await subscription.get(timeout=5) == {"n": 0}
            if kind == "memory":  # delivered in process: the rest is already here
                assert await subscription.get(timeout=0) == {"n": 1}
                assert await subscription.get(timeout=0) == {"n": 2}
            else:  # over the network they may still be on the way: none is lost waiting
                assert [await subscription.get(timeout=5) for _ in range(2)] == [
                    {"n": 1},
                    {"n": 2},
                ]
            assert await subscription.get(timeout=0) is None
    finally:
        await bus.close()
