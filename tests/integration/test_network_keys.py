"""One-time key exhaustion: the fallback key keeps sessions working until the owner refills."""

from __future__ import annotations

import httpx
from network_support import register, texts

from tidings.sdk import DeviceClient
from tidings.sdk.client import ONE_TIME_KEY_TARGET

ALICE = "+15550100001"
BOB = "+15550100002"
CAROL = "+15550100003"


async def test_exhausted_one_time_keys_fall_back_then_refill(server, invite, tmp_path) -> None:
    bob = await register(server, invite, tmp_path, BOB, "bob")
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    carol = await register(server, invite, tmp_path, CAROL, "carol")
    try:
        before = await bob.api.key_status()
        assert (before.one_time_key_count, before.fallback_key_used) == (ONE_TIME_KEY_TARGET, False)
        # Someone drains Bob's one-time keys (the server limits claims per requester).
        for _ in range(ONE_TIME_KEY_TARGET):
            (claimed,) = (await alice.api.claim_keys(BOB, [bob.device_id])).devices
            assert claimed.one_time_key is not None and not claimed.one_time_key.fallback
        (claimed,) = (await alice.api.claim_keys(BOB, [bob.device_id])).devices
        assert claimed.one_time_key is not None and claimed.one_time_key.fallback
        assert (await bob.api.key_status()).fallback_key_used

        # Carol's first message rides on the fallback key and still decrypts.
        await carol.send_text(BOB, "hi via the fallback key")
        assert texts(await bob.sync()) == ["hi via the fallback key"]

        # Syncing made Bob refill his one-time keys and rotate the used fallback key (the
        # server clears `used` only when a different fallback key is uploaded).
        after = await bob.api.key_status()
        assert (after.one_time_key_count, after.fallback_key_used, after.has_fallback_key) == (
            ONE_TIME_KEY_TARGET,
            False,
            True,
        )
        (claimed,) = (await alice.api.claim_keys(BOB, [bob.device_id])).devices
        assert claimed.one_time_key is not None and not claimed.one_time_key.fallback
        with bob.store.transaction() as state:
            assert state.account().current_fallback_key() is None  # published
        # New sessions on the new keys work, and the old session with Carol goes on.
        await alice.send_text(BOB, "hi on a fresh key")
        await carol.send_text(BOB, "me again")
        assert texts(await bob.sync()) == ["hi on a fresh key", "me again"]
    finally:
        for client in (alice, bob, carol):
            await client.close()


class CountingTransport(httpx.AsyncBaseTransport):
    """The real network, noting each request's method and path."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.requests: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await self._inner.handle_async_request(request)


async def test_a_sync_learns_the_key_status_from_its_first_mailbox_page(
    server, invite, tmp_path
) -> None:
    bob = await register(server, invite, tmp_path, BOB, "bob")
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    await bob.close()
    network = CountingTransport()
    bob = await DeviceClient.open(tmp_path / "bob", transport=network, clock=server.clock)
    try:
        await alice.send_text(BOB, "hello")
        assert texts(await bob.sync()) == ["hello"]
        # Healthy keys: no separate key-status request (the first page said so).
        assert ("GET", "/v1/keys") not in network.requests
        assert ("GET", "/v1/mailbox") in network.requests
    finally:
        await alice.close()
        await bob.close()
