"""Two people, one with a linked companion, over real HTTP and websockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from network_support import (
    WAIT,
    Listener,
    await_receipts,
    link_companion,
    messages,
    receipts,
    register,
    texts,
)

from tidings.protocol import api
from tidings.sdk import DeviceClient, IncomingMessage, ReceiptEvent, SdkError, SecurityNotice
from tidings.sdk import errors as sdk_errors
from tidings.sdk.store import RECEIPT_OUTBOX, STATE_FILE

ALICE = "+15550100001"
BOB = "+15550100002"


async def test_register_send_and_sync(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        message_id = await alice.send_text(BOB, "hello bob")
        events = await bob.sync()
        (message,) = messages(events)
        assert (message.id, message.sender, message.text, message.own) == (
            message_id,
            ALICE,
            "hello bob",
            False,
        )
        await bob.send_text(ALICE, "hello alice")
        alice_events = await alice.sync()
        assert texts(alice_events) == ["hello alice"]
        assert [r.type for r in receipts(alice_events)] == ["delivered"]
        assert [m.status for m in alice.history()] == ["delivered", "received"]
    finally:
        await alice.close()
        await bob.close()


async def test_every_device_sees_every_message_and_receipt(server, invite, tmp_path) -> None:
    """Alice has a phone and a laptop; Bob a phone. Bob's phone listens live on the websocket."""
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    laptop = await link_companion(alice, tmp_path, "alice-laptop")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    bob_live = Listener(bob)
    try:
        # Alice's phone -> Bob: Bob gets it live, Alice's laptop gets the own copy.
        first = await alice.send_text(BOB, "hi bob, from the phone")
        got = await bob_live.next_where(lambda e: isinstance(e, IncomingMessage))
        assert isinstance(got, IncomingMessage)
        assert (got.id, got.sender, got.sender_device, got.to) == (
            first,
            ALICE,
            alice.device_id,
            BOB,
        )
        laptop_events = await laptop.sync()
        (copy,) = messages(laptop_events)
        assert (copy.id, copy.own, copy.to, copy.conversation) == (first, True, BOB, BOB)

        # Bob's delivered receipt (on the ack behind `got`), then his read receipt (on his
        # live socket), reach both of Alice's devices: `post_receipts` returns once every
        # receipt queued is filed, those on frames not yet answered too.
        await bob.mark_read(ALICE, [first])
        await bob.post_receipts()
        for device, earlier in ((alice, []), (laptop, laptop_events)):
            events = earlier + await device.sync()
            kinds = {(r.type, r.message_ids, r.by) for r in receipts(events)}
            assert kinds == {("delivered", (first,), BOB), ("read", (first,), BOB)}
            assert [m.status for m in device.history() if m.id == first] == ["read"]

        # Alice's laptop -> Bob: Bob gets it, Alice's phone gets the own copy.
        second = await laptop.send_text(BOB, "and this from the laptop")
        got = await bob_live.next_where(lambda e: isinstance(e, IncomingMessage))
        assert isinstance(got, IncomingMessage)
        assert (got.id, got.sender_device, got.text) == (
            second,
            laptop.device_id,
            "and this from the laptop",
        )
        (copy,) = messages(await alice.sync())
        assert (copy.id, copy.own, copy.sender_device) == (second, True, laptop.device_id)

        # Bob -> Alice: both of Alice's devices get it; both send delivered receipts to Bob.
        reply = await bob.send_text(ALICE, "hello both of you")
        for device in (alice, laptop):
            (message,) = messages(await device.sync())
            assert (message.id, message.text, message.own) == (reply, "hello both of you", False)
        delivered = await bob_live.next_where(lambda e: isinstance(e, ReceiptEvent))
        assert isinstance(delivered, ReceiptEvent)
        assert (delivered.type, delivered.message_ids, delivered.by) == (
            "delivered",
            (reply,),
            ALICE,
        )

        # The laptop reads it: Bob hears, and Alice's phone marks the chat read too.
        await laptop.mark_read(BOB, [reply])
        read = await bob_live.next_where(lambda e: isinstance(e, ReceiptEvent) and e.type == "read")
        assert isinstance(read, ReceiptEvent) and read.by_device == laptop.device_id
        await alice.sync()
        assert [m.status for m in alice.history() if m.id == reply] == ["read"]
    finally:
        await bob_live.stop()
        for client in (alice, laptop, bob):
            await client.close()


async def test_offline_device_catches_up(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    await bob.close()  # Bob is offline
    try:
        sent = [await alice.send_text(BOB, f"message {n}") for n in range(5)]
        bob = await DeviceClient.open(tmp_path / "bob", clock=server.clock)
        events = await bob.sync()
        assert [m.id for m in messages(events)] == sent
        assert texts(events) == [f"message {n}" for n in range(5)]
        assert messages(await bob.sync()) == []  # everything was acknowledged
        (delivered,) = receipts(await alice.sync())  # one batched receipt for the catch-up
        assert (delivered.type, list(delivered.message_ids)) == ("delivered", sent)
    finally:
        await alice.close()
        await bob.close()


async def test_crash_between_decrypt_and_ack_delivers_exactly_once(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        first = await alice.send_text(BOB, "do not lose me")
        page = await bob.api.mailbox()
        events, acks = await bob.receiver.process(page.envelopes)  # decrypted and persisted...
        assert [m.id for m in messages(events)] == [first] and acks
        await bob.close()  # ...and the process dies before the ack

        bob = await DeviceClient.open(tmp_path / "bob", clock=server.clock)
        assert messages(await bob.sync()) == []  # redelivered, recognised, acknowledged
        assert (await bob.api.mailbox()).envelopes == []
        assert [m.id for m in bob.history()] == [first]

        # The ratchet state survived: the conversation goes on in both directions.
        await alice.send_text(BOB, "still there?")
        assert texts(await bob.sync()) == ["still there?"]
        await bob.send_text(ALICE, "yes")
        assert texts(await alice.sync()) == ["yes"]
    finally:
        await alice.close()
        await bob.close()


async def test_wedged_session_is_reset_and_recovers(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        await alice.send_text(BOB, "before")
        assert texts(await bob.sync()) == ["before"]
        await bob.send_text(ALICE, "reply")
        assert texts(await alice.sync()) == ["reply"]

        with bob.store.transaction() as state:  # Bob loses his session state with Alice
            state.delete_peer(ALICE, alice.device_id)
        await alice.send_text(BOB, "lost in the wedge")
        events = await bob.sync()
        assert texts(events) == []  # Olm cannot recover it...
        assert any(isinstance(e, SecurityNotice) for e in events)  # ...but Bob resets

        assert texts(await alice.sync()) == []  # the reset itself shows nothing
        await alice.send_text(BOB, "after the reset")
        assert texts(await bob.sync()) == ["after the reset"]
        await bob.send_text(ALICE, "all good")
        assert texts(await alice.sync()) == ["all good"]

        # A second wedge within the hour is not reset again (rate limit); later it is.
        with bob.store.transaction() as state:
            peer = state.peer(ALICE, alice.device_id)
            peer.sessions.clear()
            state.save_peer(ALICE, alice.device_id, peer)
        await alice.send_text(BOB, "wedged again")
        assert not any(isinstance(e, SecurityNotice) for e in await bob.sync())
        server.clock.advance(hours=2)
        await alice.send_text(BOB, "and again")
        assert any(isinstance(e, SecurityNotice) for e in await bob.sync())
        await alice.sync()
        await alice.send_text(BOB, "recovered")
        assert texts(await bob.sync()) == ["recovered"]
    finally:
        await alice.close()
        await bob.close()


async def test_no_plaintext_reaches_the_server_or_the_disk(
    server, invite, tmp_path, backend
) -> None:
    secret = "zebra-quantum-marmalade-7741"
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        await alice.send_text(BOB, secret)
        # Before Bob fetches: the envelope sits in the server's database.
        if backend == "sqlite":
            folder = server.settings.database_url.removeprefix("sqlite+aiosqlite:///")
            raw = b"".join(
                open(folder + suffix, "rb").read()  # noqa: SIM115, ASYNC230
                for suffix in ("", "-wal")
                if __import__("os").path.exists(folder + suffix)
            )
            assert secret.encode() not in raw
        else:
            dump = await _postgres_text_dump(server.settings.database_url)
            assert secret not in dump
        assert texts(await bob.sync()) == [secret]
        # The clients' own stores keep history sealed too.
        for name in ("alice", "bob"):
            for path in (tmp_path / name).iterdir():
                assert secret.encode() not in path.read_bytes(), path
    finally:
        await alice.close()
        await bob.close()


async def _postgres_text_dump(url: str) -> str:
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        bodies = await connection.fetch("SELECT body FROM envelopes")
        assert bodies, "the envelope should be waiting in the mailbox"
        parts = [bytes(row["body"]).decode("latin-1") for row in bodies]
        columns = await connection.fetch(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public'"
            " AND data_type IN ('text', 'character varying', 'bytea', 'json', 'jsonb')"
        )
        for column in columns:
            rows = await connection.fetch(
                f'SELECT "{column["column_name"]}"::text AS v FROM "{column["table_name"]}"'
            )
            parts.extend(str(row["v"]) for row in rows if row["v"] is not None)
        return "\n".join(parts)
    finally:
        await connection.close()


async def test_a_run_of_receipts_is_filed_in_one_profile_commit(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    bob_laptop = await link_companion(bob, tmp_path, "bob-laptop")
    try:
        costs = []
        for run in (1, 3):
            sent = await alice.send_text(BOB, f"a run of {run}")
            assert texts(await bob.sync()) == [f"a run of {run}"]  # delivered (1)
            if run == 3:
                await bob.mark_read(ALICE, [sent])  # read (2)
                # delivered (3): the laptop's one request covers both runs' messages
                assert texts(await bob_laptop.sync()) == ["a run of 1", "a run of 3"]
            before = alice.store.commits
            events = await alice.sync()
            costs.append(alice.store.commits - before)
            assert len(receipts(events)) == run
            assert [m.status for m in alice.history() if m.id == sent] == [
                "read" if run == 3 else "delivered"
            ]
        # Three receipts cost Alice's profile what one does: one commit for the run.
        assert costs[0] == costs[1]
    finally:
        await alice.close()
        await bob.close()
        await bob_laptop.close()


async def test_a_run_of_messages_is_decrypted_in_one_profile_commit(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        await alice.send_text(BOB, "hello")  # the first one starts the session
        assert texts(await bob.sync()) == ["hello"]
        account = _sealed_record(tmp_path / "bob", "account")
        costs = []
        for run in (["one"], ["two", "three", "four"]):
            for text in run:
                await alice.send_text(BOB, text)
            before = bob.store.commits
            assert texts(await bob.sync()) == run
            costs.append(bob.store.commits - before)
        # Three messages cost Bob's profile what one does: their ratchets, the seen set and
        # the history are written in one transaction, before any of them is acknowledged.
        assert costs[0] == costs[1]
        # Only the first message used up a one-time key: the account was not written again
        # (each write seals under a fresh nonce, so any rewrite would change the bytes).
        assert _sealed_record(tmp_path / "bob", "account") == account
        # Acknowledged: nothing comes back on the next sync.
        assert texts(await bob.sync()) == []
    finally:
        await alice.close()
        await bob.close()


def _sealed_record(profile: Path, name: str) -> bytes:
    with contextlib.closing(sqlite3.connect(profile / STATE_FILE)) as db:
        (blob,) = db.execute("SELECT blob FROM records WHERE name = ?", (name,)).fetchone()
    return bytes(blob)


async def test_a_listener_sends_its_receipts_on_its_websocket(server, invite, tmp_path) -> None:
    """A live device shows a message as soon as it is stored and acknowledged; its delivered
    receipt rides on the websocket ack, and a read goes out on the same socket (no request
    of its own for either); the server's replies take them out of the outbox."""
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    posted: list[api.ReceiptRequest] = []
    real_receipt = bob.api.receipt

    async def counted_receipt(request: api.ReceiptRequest) -> int:
        posted.append(request)
        return await real_receipt(request)

    bob.api.receipt = counted_receipt  # type: ignore[method-assign]
    replies: asyncio.Queue[dict] = asyncio.Queue()
    real_answered = bob.receiver.outbox.answered

    def answered(frame: dict) -> None:
        real_answered(frame)
        replies.put_nowait(frame)

    bob.receiver.outbox.answered = answered  # type: ignore[method-assign]
    bob_live = Listener(bob)
    try:
        sent = [await alice.send_text(BOB, text) for text in ("one", "two", "three")]
        for message_id in sent:
            got = await bob_live.next_where(lambda e: isinstance(e, IncomingMessage))
            assert isinstance(got, IncomingMessage) and got.id == message_id
        await await_receipts(alice, "delivered", set(sent))
        while _outbox(bob):  # each ack's reply settles the receipts it carried
            await asyncio.wait_for(replies.get(), WAIT)
        await bob.mark_read(ALICE, sent[:2])
        await await_receipts(alice, "read", set(sent[:2]))
        while _outbox(bob):
            await asyncio.wait_for(replies.get(), WAIT)
        assert posted == []
        assert [m.status for m in alice.history()] == ["read", "read", "delivered"]
    finally:
        await bob_live.stop()
        await alice.close()
        await bob.close()


def _no_ride_along(client: DeviceClient) -> None:
    """The client's acks carry no receipts, so its listener posts them in the background."""
    outbox = client.receiver.outbox

    def left_behind() -> tuple[list[dict], None]:
        outbox.loose = True
        return [], None

    outbox.ride_along = left_behind  # type: ignore[method-assign,assignment]


def _outbox(client: DeviceClient) -> list[dict]:
    with client.store.snapshot() as state:
        return state.get_json(RECEIPT_OUTBOX) or []


async def test_listen_fetches_a_deferred_envelope_again_without_another_frame(
    server, invite, tmp_path
) -> None:
    """An envelope left unacknowledged because the network failed comes back by itself: the
    listener fetches the mailbox again after a short delay, rather than waiting for another
    message or a reconnect that may never come."""
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    real_lookup = bob.receiver._sender_device
    failed: list[tuple[str, int]] = []

    async def flaky_lookup(phone: str, device_id: int):  # type: ignore[no-untyped-def]
        if not failed:
            failed.append((phone, device_id))
            raise SdkError(sdk_errors.NETWORK_ERROR, "cannot reach the server")
        return await real_lookup(phone, device_id)

    bob.receiver._sender_device = flaky_lookup  # type: ignore[method-assign]
    bob.receiver.deferred_retry_seconds = 0.05
    bob_live = Listener(bob)
    try:
        sent = await alice.send_text(BOB, "once the network is back")
        got = await bob_live.next_where(lambda e: isinstance(e, IncomingMessage))
        assert isinstance(got, IncomingMessage) and got.id == sent
        assert failed == [(ALICE, alice.device_id)] and not bob.receiver.deferred
        await bob_live.stop()
        assert texts(await bob.sync()) == []  # acknowledged once read
    finally:
        await bob_live.stop()
        await alice.close()
        await bob.close()


UNREACHABLE = SdkError(sdk_errors.NETWORK_ERROR, "cannot reach the server")


def _failing(call, times: int, error: SdkError = UNREACHABLE):  # type: ignore[no-untyped-def]
    """`call`, failing its first `times` calls with `error` (by default as an unreachable
    server would); the calls."""
    seen: list[object] = []

    async def flaky(request):  # type: ignore[no-untyped-def]
        seen.append(request)
        if len(seen) <= times:
            raise error
        return await call(request)

    return flaky, seen


@pytest.mark.parametrize(
    "error",
    [
        UNREACHABLE,
        SdkError("internal_error", "internal error; the server logged the details", 500),
        SdkError("http_error", "HTTP 503: Service Unavailable", 503),
    ],
    ids=["unreachable", "server-error", "proxy-unavailable"],
)
async def test_a_read_receipt_the_network_refused_is_posted_later(
    server, invite, tmp_path, error: SdkError
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        sent = await alice.send_text(BOB, "read me")
        assert [m.id for m in messages(await bob.sync())] == [sent]
        await bob.post_receipts()  # the delivered receipt
        bob.api.receipt, seen = _failing(bob.api.receipt, 1, error)  # type: ignore[method-assign]
        await bob.mark_read(ALICE, [sent])  # queued; the post fails, nothing is raised
        assert [r.type for r in receipts(await alice.sync())] == ["delivered"]
        await bob.sync()  # posts what is queued
        assert [(r.type, r.message_ids) for r in receipts(await alice.sync())] == [
            ("read", (sent,))
        ]
        assert len(seen) == 2
    finally:
        await alice.close()
        await bob.close()


async def test_listen_posts_a_receipt_the_network_refused_without_another_message(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    # The receipt left to the background post, as when the connection its ack went out on
    # ended before the reply. Two failures: the posts the message's frame and the ack's
    # confirmation ask for. After them no frame comes; only the listener's own retry can
    # post the receipt.
    _no_ride_along(bob)
    bob.api.receipt, seen = _failing(bob.api.receipt, 2)  # type: ignore[method-assign]
    bob.receiver.deferred_retry_seconds = 0.05
    bob_live, alice_live = Listener(bob), Listener(alice)
    try:
        sent = await alice.send_text(BOB, "deliver me")
        got = await bob_live.next_where(lambda e: isinstance(e, IncomingMessage))
        assert isinstance(got, IncomingMessage) and got.id == sent
        receipt = await alice_live.next_where(lambda e: isinstance(e, ReceiptEvent))
        assert isinstance(receipt, ReceiptEvent)
        assert (receipt.type, receipt.message_ids) == ("delivered", (sent,))
        assert len(seen) == 3  # two failed posts, then the retry that got through
    finally:
        await bob_live.stop()
        await alice_live.stop()
        await alice.close()
        await bob.close()


async def test_closing_a_listening_client_keeps_its_unposted_receipts(
    server, invite, tmp_path, caplog
) -> None:
    """A client closed while its listener's receipt request is still out stops posting at
    once; the receipt stays in the sealed outbox and the next session posts it."""
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    held, released = asyncio.Event(), asyncio.Event()

    async def answered_late(request: api.ReceiptRequest) -> int:
        held.set()
        await released.wait()
        return 1  # as if the server filed it: a flush still running would now clear the outbox

    bob.api.receipt = answered_late  # type: ignore[method-assign]
    _no_ride_along(bob)  # the receipt left to the background post
    bob_live = Listener(bob)
    try:
        sent = await alice.send_text(BOB, "one")
        await bob_live.next_where(lambda e: isinstance(e, IncomingMessage))
        await asyncio.wait_for(held.wait(), 15)
        await bob.close()  # the listener task is still running, its flush still waiting
        released.set()
        for _ in range(10):  # let anything still scheduled run (a yield, not a timed wait)
            await asyncio.sleep(0)
        await bob_live.stop()
        assert "posting receipts failed" not in caplog.text
        again = await DeviceClient.open(tmp_path / "bob", clock=server.clock)
        try:
            await again.post_receipts()
        finally:
            await again.close()
        delivered = [r for r in receipts(await alice.sync()) if r.type == "delivered"]
        assert [r.message_ids for r in delivered] == [(sent,)]
    finally:
        await bob_live.stop()
        await alice.close()
