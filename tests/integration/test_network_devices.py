"""Device lists: removal cuts a companion off; forged, rolled-back or padded lists are refused."""

from __future__ import annotations

import pytest
from network_support import Listener, link_companion, register, texts

from tidings.crypto import AccountKey, DeviceCrypto, sign_device_list
from tidings.crypto.device_list import decode_device_list
from tidings.protocol import api
from tidings.sdk import DeviceRemoved, SdkError, TrustError
from tidings.sdk import errors as sdk_errors

ALICE = "+15550100001"
BOB = "+15550100002"


async def test_removed_companion_is_cut_off(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    laptop = await link_companion(alice, tmp_path, "alice-laptop")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    laptop_live = Listener(laptop)
    sent: list[api.SendRequest] = []
    real_send = bob.api.send

    async def spy(request: api.SendRequest) -> api.SendResponse:
        sent.append(request)
        return await real_send(request)

    bob.api.send = spy  # type: ignore[method-assign]
    try:
        await bob.send_text(ALICE, "to both of alice's devices")
        assert {e.device_id for e in sent[-1].envelopes} == {alice.device_id, laptop.device_id}
        assert [d.device_id for d in await alice.list_devices()] == [1, laptop.device_id]

        await alice.remove_device(laptop.device_id)

        with pytest.raises(DeviceRemoved):  # the live websocket is told and closed
            await laptop_live.next_where(lambda e: False)
        with pytest.raises(SdkError) as refused:  # and its token is dead
            await laptop.api.whoami()
        assert refused.value.status == 401
        assert [d.device_id for d in await alice.list_devices()] == [1]

        await bob.send_text(ALICE, "only the phone now")
        assert [e.device_id for e in sent[-1].envelopes] == [alice.device_id]
        assert texts(await alice.sync()) == ["to both of alice's devices", "only the phone now"]
        await alice.send_text(BOB, "no copy for the laptop")  # the own fan-out skips it too
        assert texts(await bob.sync()) == ["no copy for the laptop"]
    finally:
        await laptop_live.stop()
        for client in (alice, laptop, bob):
            await client.close()


async def test_forged_rolled_back_and_padded_lists_are_refused(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        version_one = await bob.api.device_list(ALICE)
        assert bob.accept_device_list(ALICE, version_one).devices.version == 1
        laptop = await link_companion(alice, tmp_path, "alice-laptop")
        version_two = await bob.api.device_list(ALICE)
        assert bob.accept_device_list(ALICE, version_two).devices.version == 2

        # Rollback: the server serves the older list again.
        with pytest.raises(TrustError) as rolled_back:
            bob.accept_device_list(ALICE, version_one)
        assert rolled_back.value.code == sdk_errors.DEVICE_LIST_ROLLBACK

        # Forgery: a list signed by some other key than the served (and pinned) account key.
        assert version_two.signed_list is not None
        listed = decode_device_list(version_two.signed_list)
        forged = version_two.model_copy(
            update={"signed_list": sign_device_list(listed, AccountKey.generate())}
        )
        with pytest.raises(TrustError) as bad_signature:
            bob.accept_device_list(ALICE, forged)
        assert bad_signature.value.code == sdk_errors.UNTRUSTED_DEVICE_LIST

        # Injection: the server lists a device the account key never signed...
        stranger = DeviceCrypto.create()
        extra = api.DeviceInfo(
            device_id=9,
            identity_key=stranger.identity_key,
            signing_key=stranger.signing_key,
            primary=False,
        )
        padded = version_two.model_copy(update={"devices": [*version_two.devices, extra]})
        with pytest.raises(TrustError):
            bob.accept_device_list(ALICE, padded)
        # ...or swaps the keys of a listed one.
        swapped_device = version_two.devices[1].model_copy(
            update={"identity_key": stranger.identity_key}
        )
        swapped = version_two.model_copy(
            update={"devices": [version_two.devices[0], swapped_device]}
        )
        with pytest.raises(TrustError):
            bob.accept_device_list(ALICE, swapped)

        # None of that disturbed the real conversation.
        await bob.send_text(ALICE, "still trusted")
        assert texts(await laptop.sync()) == ["still trusted"]
        await laptop.close()
    finally:
        await alice.close()
        await bob.close()


async def test_contact_who_registers_again_is_repinned_with_a_notice(
    server, invite, tmp_path
) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    bob = await register(server, invite, tmp_path, BOB, "bob")
    try:
        await bob.send_text(ALICE, "first")
        await alice.close()
        alice = await register(server, invite, tmp_path, ALICE, "alice-new-phone")
        await bob.send_text(ALICE, "after the new phone")
        notices = bob.take_notices()
        assert [n.phone for n in notices] == [ALICE]
        assert texts(await alice.sync()) == ["after the new phone"]
    finally:
        await alice.close()
        await bob.close()


async def test_only_the_primary_can_change_the_device_list(server, invite, tmp_path) -> None:
    alice = await register(server, invite, tmp_path, ALICE, "alice")
    laptop = await link_companion(alice, tmp_path, "alice-laptop")
    try:
        with pytest.raises(SdkError) as refused:
            await laptop.remove_device(alice.device_id)
        assert refused.value.code == sdk_errors.NOT_PRIMARY
        with pytest.raises(SdkError):
            await laptop.open_link()
    finally:
        await alice.close()
        await laptop.close()
