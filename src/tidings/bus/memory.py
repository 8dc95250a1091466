"""In-process bus. Payloads round-trip through JSON so nothing relies on shared objects."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

# A slow subscriber must not hold the publisher up; once its queue is full it misses doorbells,
# which is safe because readers re-read the database after every wake-up.
QUEUE_LIMIT = 1000


class MemorySubscription:
    def __init__(self, bus: MemoryBus) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUE_LIMIT)
        self._bus = bus
        self.topics: set[str] = set()

    async def add(self, *topics: str) -> None:
        self._bus.attach(self, topics)

    async def discard(self, *topics: str) -> None:
        self._bus.detach(self, topics)

    def offer(self, data: str) -> None:
        if not self.queue.full():
            self.queue.put_nowait(data)

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        try:
            if timeout is not None and timeout <= 0:  # only what is already here
                data = self.queue.get_nowait()
            else:
                data = await asyncio.wait_for(self.queue.get(), timeout)
        except (TimeoutError, asyncio.QueueEmpty):
            return None
        message: dict[str, Any] = json.loads(data)
        return message

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self.get()
            if message is not None:
                yield message


class MemoryBus:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[MemorySubscription]] = defaultdict(set)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        data = json.dumps(message)
        for subscription in list(self._subscribers.get(topic, ())):
            subscription.offer(data)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[MemorySubscription]:
        subscription = MemorySubscription(self)
        self.attach(subscription, topics)
        try:
            yield subscription
        finally:
            self.detach(subscription, tuple(subscription.topics))

    def attach(self, subscription: MemorySubscription, topics: tuple[str, ...]) -> None:
        for topic in topics:
            self._subscribers[topic].add(subscription)
            subscription.topics.add(topic)

    def detach(self, subscription: MemorySubscription, topics: tuple[str, ...]) -> None:
        for topic in topics:
            subscription.topics.discard(topic)
            subscribers = self._subscribers.get(topic)
            if subscribers is not None:
                subscribers.discard(subscription)
                if not subscribers:
                    del self._subscribers[topic]

    async def close(self) -> None:
        self._subscribers.clear()
