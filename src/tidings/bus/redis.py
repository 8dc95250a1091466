"""Redis bus for several nodes: pub/sub carries doorbells and live events between processes.

Redis pub/sub drops what is published while a subscriber is disconnected. That is acceptable
only because the bus is a doorbell: after any (re)connect a reader re-reads the database from
its cursor. `get()` therefore returns a synthetic `{"reconnected": True}` message after the
connection was re-established, so a waiting reader re-checks at once instead of at its next
poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

RECONNECT_DELAY_SECONDS = 0.5
_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisSubscription:
    def __init__(self, client: aioredis.Redis, topics: tuple[str, ...]) -> None:
        self._client = client
        self._topics = set(topics)
        self._pubsub: Any = None
        self._reconnected = False

    async def open(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*self._topics)

    async def add(self, *topics: str) -> None:
        fresh = [t for t in topics if t not in self._topics]
        self._topics.update(fresh)
        await self._send("subscribe", fresh)

    async def discard(self, *topics: str) -> None:
        gone = [t for t in topics if t in self._topics]
        self._topics.difference_update(gone)
        await self._send("unsubscribe", gone)

    async def _send(self, command: str, topics: list[str]) -> None:
        """(Un)subscribe on the open connection; the reader picks up the confirmations. If Redis
        is down the reader reconnects and resubscribes to `_topics`, which is already updated.
        Only call while the subscription has at least one topic: an unsubscribed redis-py
        pubsub health-checks with a PING whose reply would race the reader."""
        if not topics or self._pubsub is None:
            return
        with contextlib.suppress(*_REDIS_DOWN):
            await getattr(self._pubsub, command)(*topics)

    async def close(self) -> None:
        if self._pubsub is not None:
            with contextlib.suppress(*_REDIS_DOWN):
                await self._pubsub.aclose()
            self._pubsub = None

    async def get(self, timeout: float | None = None) -> dict[str, Any] | None:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            if self._reconnected:
                self._reconnected = False
                return {"reconnected": True}
            remaining = None if deadline is None else max(deadline - loop.time(), 0.0)
            try:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True,
                    timeout=remaining if remaining is not None else 3600,
                )
            except _REDIS_DOWN:
                await self._reconnect(deadline)
                continue
            if message is not None and message.get("type") == "message":
                data: dict[str, Any] = json.loads(message["data"])
                return data
            if deadline is not None and loop.time() >= deadline:
                return None

    async def _reconnect(self, deadline: float | None) -> None:
        """Resubscribe after Redis went away; what was published meanwhile is lost (by design)."""
        log.warning("redis bus connection lost; resubscribing")
        await self.close()
        loop = asyncio.get_running_loop()
        while True:
            try:
                await self.open()
                self._reconnected = True
                return
            except _REDIS_DOWN:
                if deadline is not None and loop.time() >= deadline:
                    raise
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            message = await self.get()
            if message is not None:
                yield message


class RedisBus:
    def __init__(self, url: str) -> None:
        self._client = aioredis.from_url(url, decode_responses=True)

    async def publish(self, topic: str, message: dict[str, Any]) -> None:
        try:
            await self._client.publish(topic, json.dumps(message))
        except _REDIS_DOWN:
            # A lost doorbell delays readers until their next poll; it never loses data.
            log.warning("redis bus publish to %s failed", topic)

    @asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[RedisSubscription]:
        subscription = RedisSubscription(self._client, topics)
        await subscription.open()
        try:
            yield subscription
        finally:
            await subscription.close()

    async def close(self) -> None:
        await self._client.aclose()
