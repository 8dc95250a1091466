"""Blocking in the network core: an account refuses envelopes from a number it blocked, the
sender is told `blocked`, and a business sending to a customer who blocked it in the network
(not through its platform) gets 131026, as Meta reports it."""

from __future__ import annotations

import httpx
import pytest
from network_support import messages, register, texts

from tidings.sdk import SdkError

ALICE = "+15550100001"
BOB = "+15550100002"


async def test_a_blocked_sender_files_nothing_until_unblocked(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        assert await alice.block(" +1 555 010 0002 ") == [BOB]
        assert await alice.block(BOB) == [BOB]  # idempotent
        with pytest.raises(SdkError) as refused:
            await bob.send_text(ALICE, "are you there?")
        assert (refused.value.code, refused.value.status) == ("blocked", 403)
        assert messages(await alice.sync()) == []
        # Alice can still write to Bob (a block is one-way).
        await alice.send_text(BOB, "please stop")
        assert texts(await bob.sync()) == ["please stop"]
        assert await alice.blocked() == [BOB]
        assert await alice.unblock(BOB) == []
        await bob.send_text(ALICE, "sorry")
        assert texts(await alice.sync()) == ["sorry"]
    finally:
        await alice.close()
        await bob.close()


async def test_bad_block_requests_are_refused_and_change_nothing(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    try:
        headers = alice.api.auth_headers()
        async with httpx.AsyncClient(base_url=server.url) as http:
            not_a_number = await http.put("/v1/blocks/12", headers=headers)
            assert not_a_number.status_code == 400
            assert not_a_number.json()["error"]["code"] == "invalid_phone_number"
            itself = await http.put(f"/v1/blocks/{ALICE}", headers=headers)
            assert itself.status_code == 400
            anonymous = await http.put(f"/v1/blocks/{BOB}")
            assert anonymous.status_code == 401
        assert await alice.blocked() == []
    finally:
        await alice.close()
