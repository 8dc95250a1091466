"""Several nodes: a node that queues webhook deliveries wakes the other nodes' dispatchers."""

from __future__ import annotations

import asyncio
import os

import pytest

from tidings.bus.redis import RedisBus
from tidings.runtime import build_runtime
from tidings.webhooks.service import WEBHOOK_DOORBELL, relay_doorbell

REDIS = os.environ.get("TIDINGS_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def test_queueing_an_event_rings_the_bus_after_commit(settings, clock) -> None:
    runtime = build_runtime(settings, clock=clock)
    try:
        async with runtime.bus.subscribe(WEBHOOK_DOORBELL) as doorbell:
            async with runtime.database.unit_of_work() as uow:
                await runtime.webhooks.enqueue(
                    uow, waba_id="1", phone_number_id=None, field="messages", value={"n": 1}
                )
                assert await doorbell.get(timeout=0.05) is None  # not before the commit
            assert await doorbell.get(timeout=5) == {}
    finally:
        await runtime.close()


@pytest.mark.redis
async def test_another_nodes_doorbell_wakes_this_dispatcher(settings, clock) -> None:
    here, there = RedisBus(REDIS), RedisBus(REDIS)
    runtime = build_runtime(settings, clock=clock, bus=here)
    dispatcher = runtime.webhooks.dispatcher
    dispatcher.doorbell.clear()
    stop = asyncio.Event()
    relay = asyncio.create_task(relay_doorbell(here, dispatcher, stop))
    try:
        # The relay subscribes asynchronously: keep ringing until this node hears it.
        async def ring_until_heard() -> None:
            while not dispatcher.doorbell.is_set():
                await there.publish(WEBHOOK_DOORBELL, {})
                await asyncio.wait_for(asyncio.shield(dispatcher.doorbell.wait()), 0.2)

        await asyncio.wait_for(_retrying(ring_until_heard), 10)
        assert dispatcher.doorbell.is_set()
    finally:
        stop.set()
        await relay
        await there.close()
        await runtime.close()


async def _retrying(action) -> None:  # type: ignore[no-untyped-def]
    while True:
        try:
            await action()
            return
        except TimeoutError:
            continue
