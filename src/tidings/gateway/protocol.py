"""uvicorn's websockets-sansio protocol, trimmed for connections that stay open for hours.

`tidings serve` runs it (the default `server.websocket_implementation`). It behaves as the
protocol it extends (same parser, pings, close handshake, back-pressure); it only holds less for
each connection while it is open:
- the handshake: uvicorn keeps the parsed request and the response (two `Headers` and their
  lists) after the upgrade, and websockets' server parser keeps the request in its generator's
  frame; past the upgrade this one runs the base frame parser and drops both;
- the receive queue: an `asyncio.Queue` is three deques (2.3 KB); `Inbox` is a list and, while
  the app waits, one future;
- the write gate: an `asyncio.Event` carries a deque of waiters; `WriteGate` is one slot, with a
  future only while the transport is paused.
With the gateway's own trims (gateway/routes.py), tracemalloc over 400 idle `/v1/ws`
connections: 19.7 KB of Python heap each on uvicorn's protocol, 9.3 KB on this one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import Protocol


class Inbox:
    """What `asyncio.Queue` does for the protocol's receive events, for one reader (ASGI has one
    `receive` caller at a time)."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._waiter: asyncio.Future[None] | None = None

    def put_nowait(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def empty(self) -> bool:
        return not self._items

    async def get(self) -> Any:
        while not self._items:
            if self._waiter is not None:
                raise RuntimeError("Inbox has one reader; a second one is waiting")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._items.pop(0)


class WriteGate:
    """The `asyncio.Event` the protocol uses as "the transport accepts writes": set unless
    `pause_writing` cleared it. Any number of senders may wait."""

    __slots__ = ("_paused",)

    def __init__(self) -> None:
        self._paused: asyncio.Future[None] | None = None  # None while writable

    def is_set(self) -> bool:
        return self._paused is None

    def set(self) -> None:
        paused, self._paused = self._paused, None
        if paused is not None and not paused.done():
            paused.set_result(None)

    def clear(self) -> None:
        if self._paused is None:
            self._paused = asyncio.get_running_loop().create_future()

    async def wait(self) -> bool:
        paused = self._paused
        if paused is not None:
            # Shielded: one cancelled sender must not cancel the future the others wait on.
            await asyncio.shield(paused)
        return True


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Inbox()  # type: ignore[assignment]
        self.writable = WriteGate()  # type: ignore[assignment]

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        self.request = None  # type: ignore[assignment]  # the scope has what the app needs
        conn = self.conn
        if self.response.status_code == 101 and not conn.reader.buffer:
            # The server's parser generator keeps the parsed request in its frame for the life
            # of the connection. Past the request it only reads frames, as the base parser
            # does: start that one instead. Only with nothing buffered, so no frame is half
            # read (a client sends none before the 101 anyway).
            conn.parser = Protocol.parse(conn)
            next(conn.parser)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if self.handshake_complete:
            self.response = None  # type: ignore[assignment]  # sent; never read again
