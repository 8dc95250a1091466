"""Receipts riding on a websocket ack: filed in the ack's unit of work, each answered in the
`acked` reply under the frame's ref; a malformed frame changes nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import websockets
from core_helpers import envelope, registered

from tidings.kit.ids import b64decode

ALICE, BOB, NOBODY = "+15550100001", "+15550100002", "+15550100009"


async def _alice_and_bob(server, invite):  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url) as client:
        return await registered(client, invite, ALICE, BOB)


async def _send(client: httpx.AsyncClient, sender, to: str, device_id: int, message_id: str):  # type: ignore[no-untyped-def]
    body = {"message_id": message_id, "to": to, "envelopes": [envelope(to, device_id)]}
    answer = await client.post("/v1/messages", json=body, headers=sender.headers)
    assert answer.status_code == 200, answer.text


def _socket(server, device):  # type: ignore[no-untyped-def]
    return websockets.connect(f"{server.ws_url}/v1/ws", additional_headers=device.headers)


async def _pushed(socket: Any) -> list[dict[str, Any]]:
    frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
    assert frame["type"] == "envelopes", frame
    return [e for e in frame["envelopes"] if e["kind"] == "message"]


async def _receipts_for(client: httpx.AsyncClient, device) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    page = (await client.get("/v1/mailbox", headers=device.headers)).json()
    return [json.loads(b64decode(e["body"])) for e in page["envelopes"] if e["kind"] == "receipt"]


async def test_an_ack_files_the_receipts_it_carries_and_answers_each(server, invite) -> None:
    alice, bob = await _alice_and_bob(server, invite)
    async with httpx.AsyncClient(base_url=server.url) as client:
        async with _socket(server, bob) as socket:
            await _send(client, alice, BOB, bob.device_id, "m1")
            [pushed] = await _pushed(socket)
            frame = {
                "type": "ack",
                "seqs": [pushed["seq"]],
                "receipts": [
                    {"to": ALICE, "type": "delivered", "message_ids": ["m1"]},
                    {"to": NOBODY, "type": "delivered", "message_ids": ["m0"]},
                ],
                "ref": "r1",
                "client_hint": "ignored, as unknown fields always were",
            }
            await socket.send(json.dumps(frame))
            acked = json.loads(await asyncio.wait_for(socket.recv(), 10))
        assert acked["type"] == "acked" and acked["ref"] == "r1"
        assert acked["deleted"] == 1 and acked["seqs"] == [pushed["seq"]]
        filed, refused = acked["receipts"]
        assert filed == {"filed": 1}
        assert refused["error"]["code"] == "unknown_account"
        assert (await client.get("/v1/mailbox", headers=bob.headers)).json()["envelopes"] == []
        [receipt] = await _receipts_for(client, alice)
        assert receipt["type"] == "delivered" and receipt["message_ids"] == ["m1"]
        assert receipt["by"] == BOB and receipt["by_device"] == bob.device_id


async def test_receipts_ride_without_seqs_and_a_plain_ack_echoes_its_ref(server, invite) -> None:
    alice, bob = await _alice_and_bob(server, invite)
    async with httpx.AsyncClient(base_url=server.url) as client:
        async with _socket(server, bob) as socket:
            read = {"to": ALICE, "type": "read", "message_ids": ["m1", "m2"]}
            await socket.send(json.dumps({"type": "ack", "receipts": [read]}))
            acked = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert acked == {"type": "acked", "deleted": 0, "receipts": [{"filed": 1}], "seqs": []}
            await _send(client, alice, BOB, bob.device_id, "m3")
            [pushed] = await _pushed(socket)
            await socket.send(json.dumps({"type": "ack", "seqs": [pushed["seq"]], "ref": "x"}))
            acked = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert acked == {"type": "acked", "deleted": 1, "seqs": [pushed["seq"]], "ref": "x"}
        [receipt] = await _receipts_for(client, alice)
        assert receipt["type"] == "read" and receipt["message_ids"] == ["m1", "m2"]


async def test_a_malformed_ack_is_refused_and_changes_nothing(server, invite) -> None:
    alice, bob = await _alice_and_bob(server, invite)
    good = {"to": ALICE, "type": "delivered", "message_ids": ["m1"]}
    async with httpx.AsyncClient(base_url=server.url) as client:
        await _send(client, alice, BOB, bob.device_id, "m1")
        async with _socket(server, bob) as socket:
            [pushed] = await _pushed(socket)
            seq = pushed["seq"]
            bad_frames = [
                {"type": "ack"},  # neither seqs nor receipts
                {"type": "ack", "seqs": [], "receipts": []},
                {"type": "ack", "seqs": [seq], "receipts": [good, {"to": ALICE}]},
                {"type": "ack", "seqs": [seq], "receipts": [{**good, "type": "seen"}]},
                {"type": "ack", "seqs": [seq], "receipts": [{**good, "message_ids": []}]},
                {"type": "ack", "seqs": [seq], "receipts": [{**good, "extra": 1}]},
                {"type": "ack", "seqs": [seq], "receipts": [good] * 101},
                {"type": "ack", "seqs": [seq], "receipts": good},
                {"type": "ack", "seqs": [seq], "receipts": [good], "ref": "r" * 65},
                {"type": "ack", "seqs": [seq], "receipts": [good], "ref": 7},
            ]
            for bad in bad_frames:
                await socket.send(json.dumps(bad))
                answer = json.loads(await asyncio.wait_for(socket.recv(), 10))
                assert answer["type"] == "error", (bad, answer)
                assert answer["code"] == "validation_failed"
        # Nothing was deleted or filed.
        page = (await client.get("/v1/mailbox", headers=bob.headers)).json()
        assert [e["seq"] for e in page["envelopes"] if e["kind"] == "message"] == [seq]
        assert await _receipts_for(client, alice) == []
