"""Helpers for the multi-device network tests: people with devices, talking over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tidings.sdk import DeviceClient, Event, IncomingMessage, ReceiptEvent

WAIT = 15.0  # an upper bound for anything awaited; tests never sleep


async def register(
    server: Any, invite: Callable[[str], str], folder: Path, phone: str, name: str
) -> DeviceClient:
    code = invite(phone)
    return await DeviceClient.register(
        server.url, phone, code, folder / name, name, clock=server.clock
    )


async def link_companion(primary: DeviceClient, folder: Path, name: str) -> DeviceClient:
    link = await primary.open_link()
    joining = asyncio.create_task(
        DeviceClient.join(
            primary.api.base_url, link.code, folder / name, name, timeout=WAIT, clock=primary.clock
        )
    )
    linked = await primary.wait_for_join(link, timeout=WAIT)
    companion = await asyncio.wait_for(joining, WAIT)
    assert linked.device_id == companion.device_id
    return companion


def texts(events: list[Event]) -> list[str | None]:
    return [e.text for e in events if isinstance(e, IncomingMessage)]


def messages(events: list[Event]) -> list[IncomingMessage]:
    return [e for e in events if isinstance(e, IncomingMessage)]


def receipts(events: list[Event]) -> list[ReceiptEvent]:
    return [e for e in events if isinstance(e, ReceiptEvent)]


async def await_receipts(client: DeviceClient, kind: str, message_ids: set[str]) -> None:
    """Receive on `client` until its `kind` receipts name exactly `message_ids`; fails after
    WAIT."""

    async def gather() -> None:
        named: set[str] = set()
        while named != message_ids:
            events = await client.receive_once(timeout=WAIT)
            named |= {i for r in receipts(events) if r.type == kind for i in r.message_ids}

    await asyncio.wait_for(gather(), WAIT)


class Listener:
    """Runs `client.listen()` in a task and lets a test await the events it yields."""

    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for event in self.client.listen(reconnect=False):
            await self.queue.put(event)

    async def next_where(self, predicate: Callable[[Event], bool], timeout: float = WAIT) -> Event:
        async def wait() -> Event:
            while True:
                getter = asyncio.ensure_future(self.queue.get())
                done, _ = await asyncio.wait(
                    {getter, self.task}, return_when=asyncio.FIRST_COMPLETED
                )
                if getter in done:
                    event = getter.result()
                    if predicate(event):
                        return event
                    continue
                getter.cancel()
                self.task.result()  # re-raise why listening stopped
                raise AssertionError("listener ended")

        return await asyncio.wait_for(wait(), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.task
