"""The network failing after a device stored what it received but before it acknowledged it.

The envelopes come back (they were never acknowledged) and the seen set recognises them, so
they are acknowledged without being shown again: the first delivery's events are the only
ones the application will ever get, and they must reach it. The failure is made where it
happens in life: a relay on loopback between the device and the server drops the websocket
connection right after passing on a push, or the acknowledgement's HTTP request fails.
"""

from __future__ import annotations

import asyncio
import contextlib

from network_support import WAIT, await_receipts, messages, register, texts

from tidings.sdk import DeviceClient, IncomingMessage, SdkError
from tidings.sdk import errors as sdk_errors

ALICE = "+15550100001"
BOB = "+15550100002"


class DroppingRelay:
    """A TCP relay to the server. Once armed, it ends the next websocket connection (a FIN,
    as when a phone leaves a network) right after relaying a frame of envelopes to the
    device; every other connection, and the websocket connections after that, pass."""

    def __init__(self, server_url: str) -> None:
        host, port = server_url.removeprefix("http://").split(":")
        self._target = (host, int(port))
        self.armed = False
        self.dropped = 0
        self.websocket_open = asyncio.Event()  # a websocket handshake was answered
        self._server: asyncio.Server | None = None
        self._ends: list[asyncio.StreamWriter] = []
        self._relays: list[asyncio.Task[None]] = []

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        """Stop accepting, end every relayed connection and wait for the relays to finish."""
        if self._server is not None:
            self._server.close()
        for end in self._ends:
            end.close()
        await asyncio.gather(*self._relays)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._relays.append(task)
        self._ends.append(writer)
        with contextlib.suppress(ConnectionError):
            await self._pass(reader, writer)
        writer.close()

    async def _pass(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._ends.append(up_writer)
        head = await reader.read(65536)
        websocket = b"upgrade: websocket" in head.lower()
        up_writer.write(head)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, *, to_device: bool
        ) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
                    if to_device and websocket and b" 101 " in data:
                        self.websocket_open.set()
                    if to_device and websocket and self.armed and b'"envelopes"' in data:
                        self.armed = False
                        self.dropped += 1
                        break
            for end in (sink, writer, up_writer):
                end.close()

        await asyncio.gather(
            pump(reader, up_writer, to_device=False), pump(up_reader, writer, to_device=True)
        )


async def _bob_behind_a_relay(  # type: ignore[no-untyped-def]
    server, invite, tmp_path
) -> tuple[DroppingRelay, DeviceClient, DeviceClient]:
    """Alice on the server, and Bob whose every connection to it goes through a relay."""
    relay = DroppingRelay(server.url)
    relay_url = await relay.start()
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await DeviceClient.register(
        relay_url, BOB, invite(BOB), tmp_path / "bob", "bob", clock=server.clock
    )
    return relay, alice, bob


async def test_a_listener_shows_a_message_whose_connection_dropped_before_the_ack(
    server, invite, tmp_path
) -> None:
    relay, alice, bob = await _bob_behind_a_relay(server, invite, tmp_path)
    shown: asyncio.Queue[IncomingMessage] = asyncio.Queue()

    async def listen() -> None:
        async for event in bob.listen():
            if isinstance(event, IncomingMessage):
                await shown.put(event)

    listening = asyncio.create_task(listen())
    try:
        warm = await alice.send_text(BOB, "before")  # the websocket is up once this arrives
        assert (await asyncio.wait_for(shown.get(), WAIT)).id == warm
        relay.armed = True
        dropped = await alice.send_text(BOB, "pushed as the connection drops")
        assert (await asyncio.wait_for(shown.get(), WAIT)).id == dropped
        assert relay.dropped == 1
        # The listener reconnected: the dropped envelope came back, was recognised and
        # acknowledged without being shown again, and the conversation goes on.
        after = await alice.send_text(BOB, "after")
        assert (await asyncio.wait_for(shown.get(), WAIT)).id == after
        # Every delivered receipt reached Alice: the dropped frame's rode on an ack that
        # never left, so the listener posted it once the connection had ended.
        await await_receipts(alice, "delivered", {warm, dropped, after})
        await _stop(listening)
        assert shown.empty()
        assert texts(await bob.sync()) == []  # nothing left to show, whatever was acknowledged
        assert (await bob.api.mailbox()).envelopes == []
        assert [m.id for m in bob.history()] == [warm, dropped, after]
    finally:
        await _stop(listening)
        await alice.close()
        await bob.close()
        await relay.close()


async def test_receive_once_returns_what_it_stored_when_the_connection_drops(
    server, invite, tmp_path
) -> None:
    relay, alice, bob = await _bob_behind_a_relay(server, invite, tmp_path)
    try:
        relay.armed = True
        waiting = asyncio.create_task(bob.receive_once(timeout=WAIT))
        # Sent once bob's websocket is open (its empty sync came first), so it is pushed.
        await asyncio.wait_for(relay.websocket_open.wait(), WAIT)
        sent = await alice.send_text(BOB, "pushed as the connection drops")
        assert [m.id for m in messages(await asyncio.wait_for(waiting, WAIT))] == [sent]
        assert relay.dropped == 1
        assert texts(await bob.sync()) == []  # redelivered, recognised, acknowledged
        assert (await bob.api.mailbox()).envelopes == []
    finally:
        await alice.close()
        await bob.close()
        await relay.close()


async def test_sync_returns_a_stored_page_whose_ack_failed(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    real_ack = bob.api.ack
    failed: list[list[int]] = []

    async def unreachable_once(seqs: list[int]) -> None:
        if not failed:
            failed.append(seqs)
            raise SdkError(sdk_errors.NETWORK_ERROR, "cannot reach the server")
        await real_ack(seqs)

    bob.api.ack = unreachable_once  # type: ignore[method-assign]
    try:
        sent = await alice.send_text(BOB, "stored, then the ack fails")
        assert [m.id for m in messages(await bob.sync())] == [sent]
        assert failed and bob.receiver.deferred
        assert texts(await bob.sync()) == []  # redelivered, recognised, acknowledged now
        assert (await bob.api.mailbox()).envelopes == [] and not bob.receiver.deferred
        assert [m.id for m in bob.history()] == [sent]
    finally:
        await alice.close()
        await bob.close()


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
