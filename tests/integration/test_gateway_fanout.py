"""The gateway's node dispatcher: one device, several live connections at different cursors."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os

import httpx
import pytest
import websockets
from core_helpers import envelope, link_companion, publish, register, registered

from conftest import ServerThread, invite_code, issue_invite, serving
from tidings.config import load_settings
from tidings.gateway.protocol import LeanWebSocketProtocol
from tidings.runtime import build_runtime

ALICE, BOB = "+15550100001", "+15550100002"


async def ids(socket) -> list[str]:
    """The message ids of the next envelopes frame (device-list notices left out)."""
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert frame["type"] == "envelopes", frame
        found = [e["message_id"] for e in frame["envelopes"] if e["kind"] == "message"]
        if found:
            return found


async def test_each_connection_gets_what_follows_its_own_cursor(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = await registered(client, invite, ALICE, BOB)
    url = f"{server.ws_url}/v1/ws"
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def send(message_id: str) -> None:
            body = {
                "message_id": message_id,
                "to": BOB,
                "envelopes": [envelope(BOB, bob.device_id)],
            }
            response = await client.post("/v1/messages", json=body, headers=alice.headers)
            assert response.status_code == 200, response.text

        await send("one")
        async with websockets.connect(url, additional_headers=bob.headers) as first:
            assert await ids(first) == ["one"]
            page = (await client.get("/v1/mailbox", headers=bob.headers)).json()
            one_seq = next(e["seq"] for e in page["envelopes"] if e["message_id"] == "one")
            await send("two")
            assert await ids(first) == ["two"]
            async with (
                websockets.connect(
                    f"{url}?after={one_seq}", additional_headers=bob.headers
                ) as second,
                websockets.connect(url, additional_headers=bob.headers) as third,
            ):
                assert await ids(second) == ["two"]
                assert await ids(third) == ["one", "two"]
                await send("three")
                for socket in (first, second, third):
                    assert await ids(socket) == ["three"]
            # The others left; the one still open keeps getting pushes.
            await send("four")
            assert await ids(first) == ["four"]


async def test_a_removed_device_loses_every_connection_with_4403(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        [alice] = await registered(client, invite, ALICE)
        laptop = await asyncio.to_thread(link_companion, client, alice)
    url = f"{server.ws_url}/v1/ws"
    async with (
        websockets.connect(url, additional_headers=laptop.headers) as one,
        websockets.connect(url, additional_headers=laptop.headers) as two,
        websockets.connect(url, additional_headers=alice.headers) as phone,
    ):
        with httpx.Client(base_url=server.url) as client:
            await asyncio.to_thread(publish, client, alice, [alice.entry()])
        for socket in (one, two):
            frames = []
            try:
                while True:
                    frames.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4403
            assert {"type": "removed"} in frames
        # The account's remaining device stays connected.
        await phone.send("not a frame")
        while (reply := json.loads(await asyncio.wait_for(phone.recv(), 10)))["type"] != "error":
            assert reply["type"] == "envelopes"


async def test_heartbeats_keep_a_live_client_and_drop_a_silent_one(database_url, tmp_path, clock):
    """The served websocket implementation pings; a peer that never answers is dropped."""
    settings = load_settings(
        tmp_path / "data",
        database={"url": database_url},
        server={"websocket_heartbeat_seconds": 0.2},
    )
    with serving(settings, clock) as running:
        with httpx.Client(base_url=running.url) as client:
            alice = await asyncio.to_thread(
                register, client, ALICE, await asyncio.to_thread(invite_code, running, ALICE)
            )
        host, port = running.url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(os.urandom(16)).decode()
        headers = "".join(f"{k}: {v}\r\n" for k, v in alice.headers.items())
        writer.write(
            (
                f"GET /v1/ws HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{headers}\r\n"
            ).encode()
        )
        assert (await asyncio.wait_for(reader.readline(), 10)).startswith(b"HTTP/1.1 101")
        while await reader.readline() != b"\r\n":
            pass  # the rest of the handshake response
        # This raw peer reads frames but never answers a ping, so the server must hang up.
        opcodes = []
        with contextlib.suppress(asyncio.IncompleteReadError):
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), 10)
                size = head[1] & 0x7F
                if size >= 126:
                    extra = await reader.readexactly(2 if size == 126 else 8)
                    size = int.from_bytes(extra, "big")
                await reader.readexactly(size)
                opcodes.append(head[0] & 0x0F)
        writer.close()
        assert 0x9 in opcodes  # a ping came, then the server gave up on the silent peer
        # A real client answers pings and outlives several heartbeat periods.
        async with websockets.connect(
            f"{running.ws_url}/v1/ws", additional_headers=alice.headers, ping_interval=None
        ) as socket:
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(socket.recv(), 1.0)
            await socket.send("not a frame")
            while (reply := json.loads(await asyncio.wait_for(socket.recv(), 10)))[
                "type"
            ] != "error":
                assert reply["type"] == "envelopes"


async def test_a_bad_cursor_is_refused_and_unreadable_frames_get_an_error(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        [alice] = await registered(client, invite, ALICE)
    url = f"{server.ws_url}/v1/ws"
    try:
        async with websockets.connect(f"{url}?after=soon", additional_headers=alice.headers) as ws:
            await ws.recv()
        raise AssertionError("a cursor that is not an integer must not connect")
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 4400
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403
    async with websockets.connect(f"{url}?after=-5", additional_headers=alice.headers) as socket:
        for frame in (b"\x00binary", json.dumps({"type": "ack", "seqs": "all"})):
            await socket.send(frame)
            while (reply := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != (
                "error"
            ):
                assert reply["type"] == "envelopes"
        await socket.send(json.dumps({"type": "ack", "seqs": [987654]}))
        while (reply := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != "acked":
            assert reply["type"] == "envelopes"
        assert reply == {"type": "acked", "deleted": 0, "seqs": [987654]}


async def test_an_open_connection_keeps_nothing_of_its_handshake(settings, clock) -> None:
    """Idle connections are what a node holds most of: past the upgrade, the served protocol
    drops the parsed request, the response and the scope's headers (gateway/protocol.py)."""
    assert settings.server.websocket_implementation.endswith(":LeanWebSocketProtocol")
    thread = ServerThread(build_runtime(settings, clock=clock))
    thread.start()
    try:
        url = f"http://127.0.0.1:{thread.port}"
        with httpx.Client(base_url=url) as client:
            code = await asyncio.to_thread(issue_invite, settings, ALICE, clock)
            alice = await asyncio.to_thread(register, client, ALICE, code)
        ws_url = url.replace("http://", "ws://") + "/v1/ws"
        async with websockets.connect(ws_url, additional_headers=alice.headers) as socket:
            await socket.send("not a frame")
            while (reply := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != (
                "error"
            ):
                assert reply["type"] == "envelopes"
            [protocol] = [
                c
                for c in thread.server.server_state.connections
                if isinstance(c, LeanWebSocketProtocol)
            ]
            assert protocol.request is None and protocol.response is None
            assert protocol.scope["headers"] == []
            assert "request" not in protocol.conn.parser.gi_frame.f_locals
            # It still reads frames: an ack gets its answer.
            await socket.send(json.dumps({"type": "ack", "seqs": [987654]}))
            while (reply := json.loads(await asyncio.wait_for(socket.recv(), 10)))["type"] != (
                "acked"
            ):
                assert reply["type"] == "envelopes"
    finally:
        thread.stop()
