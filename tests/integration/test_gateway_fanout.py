"""The gateway's node dispatcher: one device, several live connections at different cursors."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets
from core_helpers import envelope, link_companion, publish, register

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
        alice = await asyncio.to_thread(
            register, client, ALICE, await asyncio.to_thread(invite, ALICE)
        )
        bob = await asyncio.to_thread(register, client, BOB, await asyncio.to_thread(invite, BOB))
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
        alice = await asyncio.to_thread(
            register, client, ALICE, await asyncio.to_thread(invite, ALICE)
        )
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
