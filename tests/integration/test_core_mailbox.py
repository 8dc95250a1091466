"""Mailboxes: fan-out checks, bad input, commit-ordered cursors, acks, restarts, the gateway."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets
from core_helpers import (
    device_keys,
    envelope,
    error_code,
    link_companion,
    publish,
    register,
    registered,
)
from sqlalchemy import event

from conftest import ServerThread, run_in_thread
from tidings.crypto import DeviceCrypto
from tidings.crypto.encoding import b64
from tidings.devices.repository import DeviceRepository
from tidings.errors import AppError
from tidings.kit.ids import b64decode
from tidings.mailbox.service import mailbox_topic
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode
from tidings.runtime import build_runtime
from tidings.sdk.errors import SdkError
from tidings.sdk.http import ServerApi

ALICE, BOB = "+15550100001", "+15550100002"


def people(client: httpx.Client, invite):
    alice = register(client, ALICE, invite(ALICE))
    bob = register(client, BOB, invite(BOB))
    return alice, bob


def mailbox(client: httpx.Client, device, after: int = 0) -> list[dict]:
    """The message envelopes waiting for `device` (device-list notices left out)."""
    response = client.get("/v1/mailbox", params={"after": after}, headers=device.headers)
    assert response.status_code == 200, response.text
    return [e for e in response.json()["envelopes"] if e["kind"] == "message"]


def test_send_files_one_envelope_per_device_and_acks_delete_them(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        laptop = link_companion(client, alice)
        response = client.post(
            "/v1/messages",
            json={
                "message_id": "m1",
                "to": BOB,
                "envelopes": [
                    envelope(BOB, bob.device_id, b"for bob"),
                    envelope(ALICE, laptop.device_id, b"copy"),
                ],
            },
            headers=alice.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["delivered_to"] == 2
        [for_bob] = mailbox(client, bob)
        assert (for_bob["sender"], for_bob["sender_device"], for_bob["message_id"]) == (
            ALICE,
            1,
            "m1",
        )
        assert b64decode(for_bob["body"]) == b"for bob"
        assert [b64decode(e["body"]) for e in mailbox(client, laptop)] == [b"copy"]
        # Another device cannot delete Bob's envelope; Bob's ack does.
        client.post("/v1/mailbox/ack", json={"seqs": [for_bob["seq"]]}, headers=laptop.headers)
        assert len(mailbox(client, bob)) == 1
        acked = client.post("/v1/mailbox/ack", json={"seqs": [for_bob["seq"]]}, headers=bob.headers)
        assert acked.json() == {"deleted": 1}
        assert mailbox(client, bob) == []


def test_a_retried_send_is_filed_once(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        body = {"message_id": "same", "to": BOB, "envelopes": [envelope(BOB, bob.device_id)]}
        assert (
            client.post("/v1/messages", json=body, headers=alice.headers).json()["delivered_to"]
            == 1
        )
        assert (
            client.post("/v1/messages", json=body, headers=alice.headers).json()["delivered_to"]
            == 0
        )
        assert len(mailbox(client, bob)) == 1


def test_a_batch_files_its_sends_in_order_and_refuses_each_on_its_own(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        stranger = "+15550100009"  # no account
        sends = [
            {"message_id": "b1", "to": BOB, "envelopes": [envelope(BOB, bob.device_id, b"1")]},
            {"message_id": "b2", "to": stranger, "envelopes": [envelope(stranger, 1)]},
            {"message_id": "b3", "to": BOB, "envelopes": [envelope(BOB, 99)]},  # no such device
            {"message_id": "b4", "to": BOB, "envelopes": [envelope(BOB, bob.device_id, b"4")]},
        ]
        response = client.post("/v1/messages/batch", json={"sends": sends}, headers=alice.headers)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [r["sent"]["delivered_to"] if r["sent"] else None for r in results] == [
            1,
            None,
            None,
            1,
        ]
        assert [(r["status"], r["error"]["code"]) for r in results[1:3]] == [
            (404, "unknown_account"),
            (409, "mismatched_devices"),
        ]
        assert results[2]["error"]["details"]["accounts"][BOB]["extra"] == [99]
        assert [(e["message_id"], b64decode(e["body"])) for e in mailbox(client, bob)] == [
            ("b1", b"1"),
            ("b4", b"4"),
        ]
        # The same batch again (a retry): every accepted send is filed once.
        again = client.post("/v1/messages/batch", json={"sends": sends}, headers=alice.headers)
        assert [r["sent"]["delivered_to"] for r in again.json()["results"] if r["sent"]] == [0, 0]
        assert len(mailbox(client, bob)) == 2


def test_device_mismatches_are_answered_with_missing_extra_and_stale(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        phone = link_companion(client, bob)
        laptop = link_companion(client, alice)
        publish(client, alice, [alice.entry()])  # laptop removed: now stale
        response = client.post(
            "/v1/messages",
            json={
                "message_id": "m",
                "to": BOB,
                "envelopes": [
                    envelope(BOB, bob.device_id),
                    envelope(BOB, 77),
                    envelope(ALICE, laptop.device_id),
                ],
            },
            headers=alice.headers,
        )
        assert response.status_code == 409
        assert error_code(response) == "mismatched_devices"
        assert response.json()["error"]["details"]["accounts"] == {
            BOB: {"missing": [phone.device_id], "extra": [77], "stale": []},
            ALICE: {"missing": [], "extra": [], "stale": [laptop.device_id]},
        }
        assert mailbox(client, bob) == []  # nothing was filed


def test_malformed_sends_get_clear_errors_and_change_nothing(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        good = {"message_id": "ok", "to": BOB, "envelopes": [envelope(BOB, bob.device_id)]}
        cases = [
            ({**good, "to": "+1555"}, 400, "invalid_phone_number"),
            (
                {**good, "to": "+15550100099", "envelopes": [envelope("+15550100099", 1)]},
                404,
                "unknown_account",
            ),
            ({**good, "envelopes": []}, 400, "validation_failed"),
            ({**good, "message_id": "has spaces"}, 400, "validation_failed"),
            (
                {**good, "envelopes": [{**envelope(BOB, bob.device_id), "body": "!!notbase64!!"}]},
                400,
                "validation_failed",
            ),
            (
                {**good, "envelopes": [{**envelope(BOB, bob.device_id), "type": 7}]},
                400,
                "validation_failed",
            ),
            (
                {**good, "envelopes": [{**envelope(BOB, bob.device_id), "body": "A" * 70000}]},
                400,
                "validation_failed",
            ),
            ({**good, "envelopes": [envelope(BOB, bob.device_id)] * 2}, 400, "validation_failed"),
            ({**good, "envelopes": [envelope("+15550100003", 1)]}, 400, "validation_failed"),
        ]
        for body, status, code in cases:
            response = client.post("/v1/messages", json=body, headers=alice.headers)
            assert (response.status_code, error_code(response)) == (status, code), (
                body,
                response.text,
            )
        huge = client.post(
            "/v1/messages",
            content=b"x" * (3 * 1024 * 1024),
            headers={**alice.headers, "content-type": "application/json"},
        )
        assert (huge.status_code, error_code(huge)) == (413, "payload_too_large")
        assert mailbox(client, bob) == []
        assert client.post("/v1/messages", json=good, headers=alice.headers).status_code == 200


async def test_cursors_follow_commit_order_under_concurrent_writers(server, invite) -> None:
    """A reader taking "everything after N" while many senders commit never skips a message."""
    senders_phones = [f"+155501000{n:02d}" for n in range(20, 24)]
    with httpx.Client(base_url=server.url) as client:
        bob = register(client, BOB, await asyncio.to_thread(invite, BOB))
        senders = [register(client, p, await asyncio.to_thread(invite, p)) for p in senders_phones]
    per_sender = 15
    expected = {f"{s.phone[1:]}-{i}" for s in senders for i in range(per_sender)}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def send_all(sender) -> None:
            for i in range(per_sender):
                response = await client.post(
                    "/v1/messages",
                    json={
                        "message_id": f"{sender.phone[1:]}-{i}",
                        "to": BOB,
                        "envelopes": [envelope(BOB, bob.device_id)],
                    },
                    headers=sender.headers,
                )
                assert response.status_code == 200, response.text

        seen: list[tuple[int, str]] = []
        writers = asyncio.gather(*(send_all(s) for s in senders))
        cursor = 0
        while True:
            finished = writers.done()
            page = (
                await client.get("/v1/mailbox", params={"after": cursor}, headers=bob.headers)
            ).json()
            for item in page["envelopes"]:
                seen.append((item["seq"], item["message_id"] if item["kind"] == "message" else ""))
                cursor = item["seq"]
            if finished and not page["envelopes"]:
                break
            await asyncio.sleep(0)  # yield to the writers; not a wait for time to pass
        await writers
    seqs = [seq for seq, _ in seen]
    assert seqs == list(range(1, len(seen) + 1))  # gapless and strictly increasing
    messages = [mid for _, mid in seen if mid]
    assert len(messages) == len(expected)
    assert set(messages) == expected


def test_accepted_envelopes_survive_a_server_restart(server, invite, settings, clock) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        body = {
            "message_id": "durable",
            "to": BOB,
            "envelopes": [envelope(BOB, bob.device_id, b"kept")],
        }
        assert client.post("/v1/messages", json=body, headers=alice.headers).status_code == 200
    server_thread = ServerThread(build_runtime(settings, clock=clock))
    server_thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{server_thread.port}") as client:
            [kept] = mailbox(client, bob)
            assert b64decode(kept["body"]) == b"kept"
    finally:
        server_thread.stop()


async def test_gateway_pushes_backlog_then_live_envelopes_and_takes_acks(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = await asyncio.to_thread(people, client, invite)
    async with httpx.AsyncClient(base_url=server.url) as client:

        async def send(message_id: str) -> None:
            body = {
                "message_id": message_id,
                "to": BOB,
                "envelopes": [envelope(BOB, bob.device_id)],
            }
            assert (
                await client.post("/v1/messages", json=body, headers=alice.headers)
            ).status_code == 200

        await send("before")
        async with websockets.connect(
            f"{server.ws_url}/v1/ws", additional_headers=bob.headers
        ) as socket:
            backlog = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert [e["message_id"] for e in backlog["envelopes"]] == ["before"]
            await send("live")
            live = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert [e["message_id"] for e in live["envelopes"]] == ["live"]
            seqs = [backlog["envelopes"][0]["seq"], live["envelopes"][0]["seq"]]
            await socket.send(json.dumps({"type": "ack", "seqs": seqs}))
            acked = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert acked == {"type": "acked", "deleted": 2, "seqs": seqs}
            await socket.send("garbage")
            error = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert error["type"] == "error"
        page = (await client.get("/v1/mailbox", headers=bob.headers)).json()
        assert page["envelopes"] == []


async def test_gateway_refuses_bad_credentials_and_drops_removed_devices(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        [alice] = await registered(client, invite, ALICE)
        laptop = await asyncio.to_thread(link_companion, client, alice)
    try:
        async with websockets.connect(
            f"{server.ws_url}/v1/ws", additional_headers={"Authorization": "Bearer wrong"}
        ) as socket:
            await socket.recv()
        raise AssertionError("a bad token must not connect")
    except websockets.ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == 4401
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403
    async with websockets.connect(
        f"{server.ws_url}/v1/ws", additional_headers=laptop.headers
    ) as socket:
        with httpx.Client(base_url=server.url) as client:
            await asyncio.to_thread(publish, client, alice, [alice.entry()])
        frames = []
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), 10)))
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 4403
        assert {"type": "removed"} in frames


async def test_a_batch_refused_whole_is_posted_send_by_send(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
    good = api.SendRequest(
        message_id="fine", to=BOB, envelopes=[api.OutgoingEnvelope(**envelope(BOB, bob.device_id))]
    )
    # Over the envelope size limit: the server refuses a request holding it outright (400).
    huge = api.OutgoingEnvelope.model_construct(
        phone=BOB, device_id=bob.device_id, type=1, body="A" * (api.MAX_ENVELOPE_BYTES + 4)
    )
    bad = api.SendRequest.model_construct(message_id="too-big", to=BOB, envelopes=[huge])
    network = ServerApi(server.url, alice.token)
    try:
        sent, refused = await network.send_batch([good, bad])
    finally:
        await network.close()
    assert isinstance(sent, api.SendResponse) and sent.delivered_to == 1
    assert isinstance(refused, SdkError) and refused.status == 400
    with httpx.Client(base_url=server.url) as client:
        assert [e["message_id"] for e in mailbox(client, bob)] == ["fine"]


# -- batches: filed set-wise, with each send's own semantics ---------------------------------

CAROL = "+15550100003"


def post_batch(client: httpx.Client, sender, sends: list[dict]) -> list[object]:
    """Each send's `delivered_to`, or its error code."""
    response = client.post("/v1/messages/batch", json={"sends": sends}, headers=sender.headers)
    assert response.status_code == 200, response.text
    return [
        r["sent"]["delivered_to"] if r["sent"] else r["error"]["code"]
        for r in response.json()["results"]
    ]


def filed(client: httpx.Client, device) -> list[tuple[int, str, bytes]]:
    return [(e["seq"], e["message_id"], b64decode(e["body"])) for e in mailbox(client, device)]


def test_a_retry_in_a_batch_is_filed_only_for_the_devices_that_lack_it(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        assert post_batch(
            client,
            alice,
            [
                {
                    "message_id": "m1",
                    "to": BOB,
                    "envelopes": [envelope(BOB, bob.device_id, b"first")],
                }
            ],
        ) == [1]
        # Bob links a phone before Alice learns the send went through: she encrypts again for
        # both devices and sends the same id, beside a new message.
        phone = link_companion(client, bob)
        both = [bob.device_id, phone.device_id]
        sends = [
            {
                "message_id": "m1",
                "to": BOB,
                "envelopes": [envelope(BOB, d, b"again %d" % d) for d in both],
            },
            {"message_id": "m2", "to": BOB, "envelopes": [envelope(BOB, d, b"m2") for d in both]},
        ]
        assert post_batch(client, alice, sends) == [1, 2]
        assert [(m, body) for _, m, body in filed(client, bob)] == [
            ("m1", b"first"),
            ("m2", b"m2"),
        ]
        assert [(m, body) for _, m, body in filed(client, phone)] == [
            ("m1", b"again %d" % phone.device_id),
            ("m2", b"m2"),
        ]
        assert post_batch(client, alice, sends) == [0, 0]  # and again: nothing new


def test_a_message_id_repeated_in_a_batch_is_filed_once_per_device(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        carol = register(client, CAROL, invite(CAROL))
        laptop = link_companion(client, alice)

        def send(to: str, device_id: int, copy: bytes) -> dict:
            return {
                "message_id": "dup",
                "to": to,
                "envelopes": [
                    envelope(to, device_id, b"to " + to.encode()),
                    envelope(ALICE, laptop.device_id, copy),
                ],
            }

        sends = [
            send(BOB, bob.device_id, b"copy 1"),
            send(BOB, bob.device_id, b"copy 2"),  # the same send twice: filed already
            send(CAROL, carol.device_id, b"copy 3"),  # the laptop has this id: Carol only
        ]
        assert post_batch(client, alice, sends) == [2, 0, 1]
        assert [(m, body) for _, m, body in filed(client, bob)] == [("dup", b"to " + BOB.encode())]
        assert [(m, body) for _, m, body in filed(client, carol)] == [
            ("dup", b"to " + CAROL.encode())
        ]
        assert [(m, body) for _, m, body in filed(client, laptop)] == [("dup", b"copy 1")]


def test_refusals_in_a_batch_leave_the_others_filed_in_order_without_gaps(server, invite) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = people(client, invite)
        carol = register(client, CAROL, invite(CAROL))
        laptop = link_companion(client, alice)
        blocked = client.put(f"/v1/blocks/{ALICE}", headers=carol.headers)
        assert blocked.status_code == 200, blocked.text
        stranger = "+15550100009"

        def send(message_id: str, to: str, *devices: tuple[str, int]) -> dict:
            return {
                "message_id": message_id,
                "to": to,
                "envelopes": [envelope(p, d, message_id.encode()) for p, d in devices],
            }

        to_bob = ((BOB, bob.device_id), (ALICE, laptop.device_id))
        sends = [
            send("a", BOB, *to_bob),
            send("b", CAROL, (CAROL, carol.device_id), (ALICE, laptop.device_id)),
            send("c", BOB, (BOB, bob.device_id)),  # the laptop left out
            send("d", BOB, *to_bob),
            send("e", stranger, (stranger, 1), (ALICE, laptop.device_id)),
            send("f", BOB, *to_bob),
            send("g", BOB, (BOB, bob.device_id), (ALICE, laptop.device_id), (ALICE, 9)),
        ]
        assert post_batch(client, alice, sends) == [
            2,
            "blocked",
            "mismatched_devices",
            2,
            "unknown_account",
            2,
            "mismatched_devices",
        ]
        for device in (bob, laptop):
            got = filed(client, device)
            assert [(m, body) for _, m, body in got] == [(m, m.encode()) for m in "adf"]
            seqs = [seq for seq, _, _ in got]
            assert seqs == list(range(seqs[0], seqs[0] + 3))  # contiguous, in request order
        assert filed(client, carol) == []


async def test_concurrent_batches_to_the_same_mailboxes_follow_commit_order(server, invite) -> None:
    """Readers taking "everything after N" while several senders post batches that address
    the same two mailboxes (in opposite orders) never skip an envelope, and each sender's
    messages arrive in the order it sent them."""
    phones = [f"+155501000{n:02d}" for n in range(30, 34)]
    with httpx.Client(base_url=server.url) as client:
        bob = register(client, BOB, await asyncio.to_thread(invite, BOB))
        carol = register(client, CAROL, await asyncio.to_thread(invite, CAROL))
        senders = [register(client, p, await asyncio.to_thread(invite, p)) for p in phones]
    batches, per_batch = 5, 10
    recipients = {BOB: bob, CAROL: carol}

    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def send_all(n: int, sender) -> None:
            order = [BOB, CAROL] if n % 2 else [CAROL, BOB]
            for b in range(batches):
                sends = []
                for i in range(per_batch):
                    to = order[i % 2]
                    sends.append(
                        {
                            "message_id": f"{sender.phone[1:]}-{b * per_batch + i:03d}",
                            "to": to,
                            "envelopes": [envelope(to, recipients[to].device_id)],
                        }
                    )
                response = await client.post(
                    "/v1/messages/batch", json={"sends": sends}, headers=sender.headers
                )
                assert response.status_code == 200, response.text
                assert [r["sent"]["delivered_to"] for r in response.json()["results"]] == [
                    1
                ] * per_batch

        async def read_all(device, writers: asyncio.Future) -> list[tuple[int, str]]:
            seen: list[tuple[int, str]] = []
            cursor = 0
            while True:
                finished = writers.done()
                page = (
                    await client.get(
                        "/v1/mailbox", params={"after": cursor}, headers=device.headers
                    )
                ).json()
                for item in page["envelopes"]:
                    seen.append((item["seq"], item["message_id"]))
                    cursor = item["seq"]
                if finished and not page["envelopes"]:
                    return seen
                await asyncio.sleep(0)  # yield to the writers; not a wait for time to pass

        writers = asyncio.gather(*(send_all(n, s) for n, s in enumerate(senders)))
        bob_seen, carol_seen = await asyncio.gather(
            read_all(bob, writers), read_all(carol, writers)
        )
        await writers
    for seen in (bob_seen, carol_seen):
        seqs = [seq for seq, _ in seen]
        assert seqs == list(range(1, len(seen) + 1))  # gapless and strictly increasing
        for sender in senders:
            mine = [m for _, m in seen if m.startswith(sender.phone[1:] + "-")]
            assert len(mine) == batches * per_batch // 2
            assert mine == sorted(mine)  # in the order the sender sent them


async def test_a_batch_rings_each_mailbox_once_after_commit(server, invite, local) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice, bob = await asyncio.to_thread(people, client, invite)
        [carol] = await registered(client, invite, CAROL)
    # The batch goes through a runtime on this test's loop (another node on the same store),
    # whose in-process bus this test can listen to.
    ctx = await local.devices.authenticate(alice.token)
    sends = [
        api.SendRequest(
            message_id=f"r{n}",
            to=to.phone,
            envelopes=[api.OutgoingEnvelope(**envelope(to.phone, to.device_id))],
        )
        for n, to in enumerate([bob, carol, bob, bob])
    ]
    pks = [(await local.devices.authenticate(d.token)).device_pk for d in (bob, carol)]
    topics = {mailbox_topic(pk): pk for pk in pks}
    async with local.bus.subscribe(*topics) as doorbells:
        results = await local.mailbox.send_batch(ctx, sends)
        assert [r.delivered_to for r in results if isinstance(r, api.SendResponse)] == [1] * 4
        # The doorbells were rung (after the commit) before send_batch returned.
        rung = [(await doorbells.get(timeout=5) or {}).get("device") for _ in topics]
        assert sorted(rung) == sorted(pks)
        assert doorbells.queue.empty()  # once per mailbox, not once per envelope


# -- batches to many recipients: looked up set-wise, refused send by send ---------------------


def recipients(client: httpx.Client, invite, count: int, start: int = 0) -> list:
    phones = [f"+15550101{n:03d}" for n in range(start, start + count)]
    return [register(client, phone, invite(phone)) for phone in phones]


def remove_every_device(settings, device) -> None:
    """Leave an account without an active device (the API never does; the check exists)."""

    async def remove() -> None:
        runtime = build_runtime(settings)
        try:
            async with runtime.database.unit_of_work() as uow:
                ctx = await runtime.devices.authenticate(device.token)
                row = await DeviceRepository(uow.session).by_pk(ctx.device_pk)
                assert row is not None
                row.status = "removed"
        finally:
            await runtime.close()

    run_in_thread(remove)


def test_a_batch_to_many_recipients_refuses_each_send_as_a_single_send_would(
    server, invite
) -> None:
    with httpx.Client(base_url=server.url) as client:
        alice = register(client, ALICE, invite(ALICE))
        laptop = link_companion(client, alice)
        good = recipients(client, invite, 4)
        blocker, partial, shrunk, waiting, lonely = recipients(client, invite, 5, start=10)
        assert client.put(f"/v1/blocks/{ALICE}", headers=blocker.headers).status_code == 200
        partial_phone = link_companion(client, partial)  # Alice leaves it out: missing
        tablet = link_companion(client, shrunk)
        publish(client, shrunk, [shrunk.entry()])  # the tablet is removed: stale
        link = client.post("/v1/links", headers=waiting.headers).json()
        joined = client.post(  # joined, never approved: a pending device
            f"/v1/links/{link['link_id']}/join",
            json={"device": device_keys(DeviceCrypto.create()), "proof": b64(b"p" * 32)},
        )
        assert joined.status_code == 201, joined.text
        pending = joined.json()["device_id"]
        remove_every_device(server.settings, lonely)
        strangers = ["+15550101090", "+15550101091"]  # no account

        def send(message_id: str, to: str, *devices: tuple[str, int]) -> dict:
            return {
                "message_id": message_id,
                "to": to,
                "envelopes": [envelope(p, d, message_id.encode()) for p, d in devices],
            }

        copy = (ALICE, laptop.device_id)

        def to(person, message_id: str) -> dict:
            return send(message_id, person.phone, (person.phone, person.device_id), copy)

        sends = [
            to(good[0], "g0"),
            send("s0", strangers[0], (strangers[0], 1), copy),
            to(good[1], "g1"),
            to(blocker, "bl"),
            to(partial, "pa"),
            to(good[2], "g2"),
            send(
                "sh",
                shrunk.phone,
                (shrunk.phone, shrunk.device_id),
                (shrunk.phone, tablet.device_id),
                copy,
            ),
            to(waiting, "wa"),  # the pending device is not part of the set
            send("wp", waiting.phone, (waiting.phone, waiting.device_id), (waiting.phone, pending)),
            send("lo", lonely.phone, copy),
            to(good[0], "g4"),
            send("s1", strangers[1], (strangers[1], 1), copy),
            send("nc", good[3].phone, (good[3].phone, good[3].device_id)),  # no copy to laptop
            {**to(good[3], "bad"), "to": "+1555"},
            send("fo", good[3].phone, (good[3].phone, good[3].device_id), copy, (BOB, 1)),
            to(good[3], "g3"),
        ]
        response = client.post("/v1/messages/batch", json={"sends": sends}, headers=alice.headers)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert [
            r["sent"]["delivered_to"] if r["sent"] else r["error"]["code"] for r in results
        ] == [
            2,
            "unknown_account",
            2,
            "blocked",
            "mismatched_devices",
            2,
            "mismatched_devices",
            2,
            "mismatched_devices",
            "unknown_account",
            2,
            "unknown_account",
            "mismatched_devices",
            "invalid_phone_number",
            "validation_failed",
            2,
        ]
        details = {s["message_id"]: r["error"] for s, r in zip(sends, results, strict=True)}
        assert details["pa"]["details"]["accounts"] == {
            partial.phone: {"missing": [partial_phone.device_id], "extra": [], "stale": []}
        }
        assert details["sh"]["details"]["accounts"] == {
            shrunk.phone: {"missing": [], "extra": [], "stale": [tablet.device_id]}
        }
        assert details["wp"]["details"]["accounts"] == {
            waiting.phone: {"missing": [], "extra": [pending], "stale": []},
            ALICE: {"missing": [laptop.device_id], "extra": [], "stale": []},
        }
        assert details["nc"]["details"]["accounts"] == {
            ALICE: {"missing": [laptop.device_id], "extra": [], "stale": []}
        }
        assert details["lo"]["message"] == f"{lonely.phone} has no active device"
        assert [r["status"] for r in results if r["error"]] == [
            404,
            403,
            409,
            409,
            409,
            409,
            404,
            409,
            400,
            400,
        ]
        # The accepted ones are filed, in order and contiguous; the refused ones nowhere.
        accepted = ["g0", "g1", "g2", "wa", "g4", "g3"]
        got = filed(client, laptop)
        assert [m for _, m, _ in got] == accepted
        assert [seq for seq, _, _ in got] == list(range(got[0][0], got[0][0] + len(accepted)))
        assert [m for _, m, _ in filed(client, good[0])] == ["g0", "g4"]
        for person, expected in [(good[1], ["g1"]), (good[2], ["g2"]), (good[3], ["g3"])]:
            assert [m for _, m, _ in filed(client, person)] == expected
        assert [m for _, m, _ in filed(client, waiting)] == ["wa"]
        for person in (blocker, partial, partial_phone, shrunk):
            assert filed(client, person) == []

        # Each refusal is exactly what the send gets when posted alone: status, code, message
        # and details. (Posted alone, they still file nothing.)
        for send_, result in zip(sends, results, strict=True):
            if result["sent"]:
                continue
            alone = client.post("/v1/messages", json=send_, headers=alice.headers)
            assert (alone.status_code, alone.json()) == (
                result["status"],
                {"error": result["error"]},
            )
        assert [m for _, m, _ in filed(client, laptop)] == accepted


async def test_a_batch_looks_its_recipients_up_in_the_same_statements_whatever_their_number(
    server, invite, local
) -> None:
    with httpx.Client(base_url=server.url) as client:
        [alice] = await registered(client, invite, ALICE)
        people_ = await asyncio.to_thread(recipients, client, invite, 12)
        assert (
            await asyncio.to_thread(client.put, f"/v1/blocks/{ALICE}", headers=people_[-1].headers)
        ).status_code == 200
    ctx = await local.devices.authenticate(alice.token)
    statements: list[str] = []

    def count(_conn, _cursor, statement: str, *_: object) -> None:
        statements.append(statement)

    def sends(prefix: str, to: list) -> list[api.SendRequest]:
        return [
            api.SendRequest(
                message_id=f"{prefix}{n}",
                to=person.phone,
                envelopes=[api.OutgoingEnvelope(**envelope(person.phone, person.device_id))],
            )
            for n, person in enumerate(to)
        ]

    engine = local.database.statement_engines[0]
    event.listen(engine, "before_cursor_execute", count)
    try:
        counts = []
        for prefix, to in [("a", people_[:2]), ("b", people_), ("c", people_ * 3)]:
            statements.clear()
            unknown = api.SendRequest(
                message_id=f"{prefix}-x",
                to="+15550101099",
                envelopes=[api.OutgoingEnvelope(**envelope("+15550101099", 1))],
            )
            results = await local.mailbox.send_batch(ctx, [*sends(prefix, to), unknown])
            codes = [r.code if isinstance(r, AppError) else r.delivered_to for r in results]
            blocked = [ErrorCode.BLOCKED if p is people_[-1] else 1 for p in to]
            assert codes == [*blocked, ErrorCode.UNKNOWN_ACCOUNT]
            counts.append(len(statements))
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # Accounts, blocks and devices: one query each, then the three of the filing.
    assert counts[0] == counts[1] == counts[2] <= 8, counts
