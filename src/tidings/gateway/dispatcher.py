"""One node's live device connections: one bus subscription for all of them, one push per device.

An idle connection costs a small `Connection` object (the ASGI `send` of its socket, its group and
its cursor) in its device's `DeviceGroup` and the gateway handler's coroutine, which reads the
client's frames. There is no task, queue or
bus subscription per connection: the node subscribes once and adds each device's topics while
the device has a connection here. A doorbell for a device starts one push task for the device,
which reads the mailbox once per page for every connection of it (connections at the same cursor
also share the encoded frame). The bus is only a doorbell: every push is re-read from the
database after each connection's cursor, and a bus reconnect wakes every device.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

from starlette.types import Send

from tidings.bus.base import Bus, Subscription
from tidings.devices.service import DeviceContext
from tidings.mailbox.service import MailboxService, device_topic, mailbox_topic
from tidings.protocol import api

log = logging.getLogger(__name__)

CLOSE_REMOVED = 4403
REMOVED_FRAME = json.dumps({"type": "removed"}, separators=(",", ":"))
# The node subscription always holds this topic (nobody publishes on it), so adding and dropping
# device topics never leaves it empty (see RedisSubscription._send).
ANCHOR_TOPIC = "gateway.node"


class Connection:
    __slots__ = ("cursor", "group", "send")

    def __init__(self, send: Send, group: DeviceGroup, cursor: int) -> None:
        self.send = send  # the socket's ASGI `send`
        self.group = group
        self.cursor = cursor  # the last seq this connection was sent (or the client's `after`)


class DeviceGroup:
    """The connections of one device on this node and its single push in flight."""

    __slots__ = ("connections", "ctx", "pusher", "rung")

    def __init__(self, ctx: DeviceContext) -> None:
        self.ctx = ctx
        self.connections: set[Connection] = set()
        self.pusher: asyncio.Task[None] | None = None
        self.rung = False  # a doorbell came while the push was running: read again

    def topics(self) -> tuple[str, str]:
        return mailbox_topic(self.ctx.device_pk), device_topic(self.ctx.device_pk)


class Dispatcher:
    def __init__(self, bus: Bus, mailbox: MailboxService) -> None:
        self._bus = bus
        self._mailbox = mailbox
        self._groups: dict[int, DeviceGroup] = {}
        self._followed: set[int] = set()  # devices whose topics the subscription holds
        self._lock = asyncio.Lock()
        self._stack: AsyncExitStack | None = None
        self._subscription: Subscription | None = None
        self._listener: asyncio.Task[None] | None = None

    async def attach(self, ctx: DeviceContext, send: Send, cursor: int) -> Connection:
        """Follow `ctx`'s device and push its backlog after `cursor` to the accepted socket
        `send` writes to. The device's connections share the group's context (the first one)."""
        group = self._groups.get(ctx.device_pk)
        if group is None:
            group = self._groups[ctx.device_pk] = DeviceGroup(ctx)
        connection = Connection(send, group, cursor)
        group.connections.add(connection)
        await self._follow(group)
        self._ring(group)
        return connection

    async def detach(self, connection: Connection) -> None:
        group = connection.group
        group.connections.discard(connection)
        if not group.connections and self._groups.get(group.ctx.device_pk) is group:
            del self._groups[group.ctx.device_pk]
        await self._follow(group)

    async def _follow(self, group: DeviceGroup) -> None:
        """Bring the node subscription in line with whether the device has connections here."""
        device_pk = group.ctx.device_pk
        async with self._lock:
            wanted = device_pk in self._groups
            if wanted and self._subscription is None:
                await self._open()
            assert self._subscription is not None
            if wanted and device_pk not in self._followed:
                self._followed.add(device_pk)
                await self._subscription.add(*group.topics())
            elif not wanted and device_pk in self._followed:
                self._followed.discard(device_pk)
                await self._subscription.discard(*group.topics())
            if not self._groups:
                await self._close()

    async def _open(self) -> None:
        self._stack = AsyncExitStack()
        self._subscription = await self._stack.enter_async_context(
            self._bus.subscribe(ANCHOR_TOPIC)
        )
        self._listener = asyncio.create_task(self._listen(self._subscription))

    async def _close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._subscription = self._listener = None
        self._followed.clear()

    async def _listen(self, subscription: Subscription) -> None:
        while True:
            try:
                message = await subscription.get()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("gateway bus subscription failed; waking every device")
                message = {"reconnected": True}
                await asyncio.sleep(1.0)
            if not message:
                continue
            if message.get("reconnected"):
                for each in list(self._groups.values()):
                    self._ring(each)
                continue
            found = self._group_for(message)
            if found is None:
                continue
            if message.get("event") == "removed":
                self._spawn(self._remove(found))
            else:
                self._ring(found)

    def _group_for(self, message: dict[str, Any]) -> DeviceGroup | None:
        device_pk = message.get("device")
        return self._groups.get(device_pk) if isinstance(device_pk, int) else None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        _running.add(task)
        task.add_done_callback(_running.discard)

    def _ring(self, group: DeviceGroup) -> None:
        if group.pusher is not None and not group.pusher.done():
            group.rung = True
            return
        group.rung = False
        group.pusher = asyncio.create_task(self._push(group))

    async def _push(self, group: DeviceGroup) -> None:
        try:
            while True:
                await self._push_pages(group)
                if not group.rung:
                    return
                group.rung = False
        except Exception:
            log.exception("push to device %s failed", group.ctx.device_pk)

    async def _push_pages(self, group: DeviceGroup) -> None:
        """Page through the mailbox from the lowest cursor of the device's connections; each
        connection gets the envelopes after its own cursor, in order. The first page goes out
        as soon as it is read (what a ring brings is usually one page: new messages, on the
        e2e path); a backlog's further pages pass the loop on between them, as other units
        of work do."""
        first = True
        while group.connections:
            start = min(c.cursor for c in group.connections)
            page = await self._mailbox.fetch(group.ctx, start, push=first)
            first = False
            if page.envelopes:
                await self._deliver(group, page, start)
            if not page.more:
                return

    async def _deliver(self, group: DeviceGroup, page: api.MailboxPage, start: int) -> None:
        """Send the page to each connection it covers. A connection that joined during the read
        with a lower cursor is skipped: its `attach` rang again, so the next round reads for it."""
        last = page.envelopes[-1].seq
        wire = [e.model_dump() for e in page.envelopes]
        frames: dict[int, str] = {}
        sends = []
        for connection in list(group.connections):
            if connection.cursor < start or connection.cursor >= last:
                continue
            frame = frames.get(connection.cursor)
            if frame is None:
                after = [
                    w
                    for w, e in zip(wire, page.envelopes, strict=True)
                    if e.seq > connection.cursor
                ]
                frame = frames[connection.cursor] = json.dumps(
                    {
                        "type": "envelopes",
                        "envelopes": after,
                        "one_time_key_count": page.one_time_key_count,
                    }
                )
            connection.cursor = last
            sends.append(self._send(group, connection, frame))
        await asyncio.gather(*sends)

    async def _send(self, group: DeviceGroup, connection: Connection, frame: str) -> None:
        try:
            await connection.send({"type": "websocket.send", "text": frame})
        except Exception:
            # Gone: its handler sees the disconnect and detaches it; stop pushing to it now.
            group.connections.discard(connection)

    async def _remove(self, group: DeviceGroup) -> None:
        async def close(connection: Connection) -> None:
            with contextlib.suppress(Exception):
                await connection.send({"type": "websocket.send", "text": REMOVED_FRAME})
                await connection.send(
                    {"type": "websocket.close", "code": CLOSE_REMOVED, "reason": "device removed"}
                )

        connections = list(group.connections)
        group.connections.clear()
        await asyncio.gather(*(close(c) for c in connections))


_running: set[asyncio.Task[None]] = set()  # keeps fire-and-forget tasks referenced until done
