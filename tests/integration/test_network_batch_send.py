"""Sending a batch: one profile transaction for every ratchet it advances, delivered in order,
and a batch whose envelopes never left is sent again under the same ids, filed once."""

from __future__ import annotations

import httpx
from network_support import link_companion, register, texts

from tidings.sdk import DeviceClient

ALICE = "+15550100001"
BOB = "+15550100002"


class NoSending(httpx.AsyncBaseTransport):
    """The network as a crash sees it: every request goes through except message posts."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.startswith("/v1/messages"):
            raise httpx.ConnectError("the process died before posting", request=request)
        return await self._inner.handle_async_request(request)


def batch(texts_: list[str], prefix: str) -> list[tuple[str, dict[str, object], str]]:
    return [
        (BOB, {"type": "text", "text": text}, f"{prefix}{n:030d}") for n, text in enumerate(texts_)
    ]


async def test_a_batch_commits_once_for_its_ratchets_and_arrives_in_order(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    laptop = await link_companion(alice, tmp_path, "alice-laptop")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    alice.cache_device_lists = True
    try:
        assert await alice.send_contents(batch(["warm-up"], "a")) == [None]

        before = alice.store.commits
        assert await alice.send_contents(batch(["one"], "b")) == [None]
        one = alice.store.commits - before

        before = alice.store.commits
        words = ["first", "second", "third", "fourth", "fifth"]
        assert await alice.send_contents(batch(words, "c")) == [None] * 5
        five = alice.store.commits - before

        # Five messages cost the profile what one does: the ratchets of all five are sealed
        # and committed together (then one commit marks them sent).
        assert five == one <= 3
        assert texts(await bob.sync()) == ["warm-up", "one", *words]
        # Alice's other device gets her copies too, in the same order.
        assert texts(await laptop.sync()) == ["warm-up", "one", *words]
        assert [m.status for m in alice.history()][-5:] == ["sent"] * 5
    finally:
        await alice.close()
        await laptop.close()
        await bob.close()


async def test_a_batch_that_never_left_is_sent_again_under_the_same_ids(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    await alice.send_text(BOB, "hello")  # sessions exist both ways from here on
    assert texts(await bob.sync()) == ["hello"]
    await alice.close()
    messages = batch(["x", "y", "z"], "d")
    # The ratchets are persisted, then the posts never happen (the process dies).
    crashed = await DeviceClient.open(tmp_path / "alice", transport=NoSending())
    try:
        [outcome] = await crashed.send_contents(messages)
        assert outcome is not None and outcome.code == "network_error"
        assert [m.status for m in crashed.history()][-3:] == ["sending"] * 3
    finally:
        await crashed.close()
    assert texts(await bob.sync()) == []

    # Started again, the sender sends the same ids; then once more, as if it crashed after
    # posting but before noting it: the recipient files each id once, in order.
    alice = await DeviceClient.open(tmp_path / "alice", clock=server.clock)
    try:
        assert await alice.send_contents(messages) == [None] * 3
        assert await alice.send_contents(messages) == [None] * 3
        received = await bob.sync()
        assert texts(received) == ["x", "y", "z"]
        assert [m.id for m in received if hasattr(m, "text")] == [m[2] for m in messages]
        assert [m.status for m in alice.history()][-3:] == ["sent"] * 3
    finally:
        await alice.close()
        await bob.close()


async def test_a_cached_device_list_is_fetched_again_when_the_core_says_it_is_stale(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    alice.cache_device_lists = True
    try:
        assert await alice.send_contents(batch(["before"], "e")) == [None]
        assert texts(await bob.sync()) == ["before"]
        # Bob links a laptop after Alice verified (and cached) his list: her next send is
        # refused as stale by the core, and she fetches, verifies and encrypts again.
        laptop = await link_companion(bob, tmp_path, "bob-laptop")
        try:
            assert await alice.send_contents(batch(["after", "again"], "f")) == [None, None]
            assert texts(await bob.sync()) == ["after", "again"]
            assert texts(await laptop.sync()) == ["after", "again"]
        finally:
            await laptop.close()
        # A cached list expires: a minute on, the send verifies a fresh one.
        fetched = alice.store.commits
        assert await alice.send_contents(batch(["cached"], "g")) == [None]
        cached_cost = alice.store.commits - fetched
        server.clock.advance(seconds=61)
        fetched = alice.store.commits
        assert await alice.send_contents(batch(["fresh"], "h")) == [None]
        assert alice.store.commits - fetched > cached_cost
    finally:
        await alice.close()
        await bob.close()


async def test_a_device_keeping_no_history_sends_alike_and_stores_no_copy(
    server, invite, tmp_path
) -> None:
    """What a business's API device does: the platform's database is the record of what it
    sends and receives, so the profile keeps no sealed copy of each message (nor updates one
    on every receipt)."""
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    alice.keep_history = bob.keep_history = False
    try:
        assert await alice.send_contents(batch(["one", "two"], "d")) == [None, None]
        await alice.send_content(BOB, {"type": "text", "text": "three"})
        assert texts(await bob.sync()) == ["one", "two", "three"]  # received all the same
        assert alice.history() == [] and bob.history() == []
        alice.keep_history = True
        assert await alice.send_contents(batch(["four"], "e")) == [None]
        assert [(m.status, m.content) for m in alice.history()] == [
            ("sent", {"type": "text", "text": "four"})
        ]
    finally:
        await alice.close()
        await bob.close()
