from __future__ import annotations

import json

import pytest

from tidings.crypto import (
    AccountKey,
    AccountKeyChanged,
    BadSignature,
    CryptoError,
    DeviceCrypto,
    DeviceEntry,
    DeviceList,
    DeviceListMismatch,
    DeviceListRollback,
    b64,
    check_pinned,
    check_served_devices,
    decode_device_list,
    sign_device_list,
    unb64,
    verify_device_list,
)
from tidings.crypto.device_list import DEVICE_LIST_DOMAIN
from tidings.protocol.api import SignedDeviceList

ACCOUNT = "+15550001111"


def entry(device_id: int) -> DeviceEntry:
    device = DeviceCrypto.create()
    return DeviceEntry(device_id, device.identity_key, device.signing_key)


def make_list(version: int = 1, devices: tuple[DeviceEntry, ...] | None = None) -> DeviceList:
    return DeviceList(ACCOUNT, version, 1_700_000_000_000, devices or (entry(2), entry(1)))


def test_sign_verify_round_trip_sorts_devices() -> None:
    key = AccountKey.generate()
    dl = make_list()
    signed = sign_device_list(dl, key)
    got = verify_device_list(signed, account_key=key.public_b64, expected_account=ACCOUNT)
    assert [d.device_id for d in got.devices] == [1, 2]
    assert set(got.devices) == set(dl.devices)
    assert got.device(2) == dl.device(2)
    assert got.device(3) is None
    assert decode_device_list(signed) == got
    payload = json.loads(unb64(signed.payload))
    assert set(payload) == {"account", "version", "timestamp", "devices"}


def test_list_signed_by_another_key_is_rejected() -> None:
    signed = sign_device_list(make_list(), AccountKey.generate())
    with pytest.raises(BadSignature):
        verify_device_list(
            signed, account_key=AccountKey.generate().public_b64, expected_account=ACCOUNT
        )


def test_server_cannot_edit_the_payload() -> None:
    key = AccountKey.generate()
    signed = sign_device_list(make_list(), key)
    injected = make_list(devices=(*decode_device_list(signed).devices, entry(9)))
    forged = SignedDeviceList(
        payload=sign_device_list(injected, AccountKey.generate()).payload,
        signature=signed.signature,
    )
    with pytest.raises(BadSignature):
        verify_device_list(forged, account_key=key.public_b64, expected_account=ACCOUNT)


def test_rollback_and_fork_are_rejected() -> None:
    key = AccountKey.generate()
    v1 = sign_device_list(make_list(version=1), key)
    v2_list = make_list(version=2)
    v2 = sign_device_list(v2_list, key)
    seen = verify_device_list(v2, account_key=key.public_b64, expected_account=ACCOUNT)
    with pytest.raises(DeviceListRollback):
        verify_device_list(v1, account_key=key.public_b64, expected_account=ACCOUNT, min_version=2)
    with pytest.raises(DeviceListRollback):
        verify_device_list(v1, account_key=key.public_b64, expected_account=ACCOUNT, previous=seen)
    # The same list again is fine: it is simply re-served.
    again = verify_device_list(
        v2, account_key=key.public_b64, expected_account=ACCOUNT, min_version=2, previous=seen
    )
    assert again == seen
    fork = sign_device_list(make_list(version=2), key)
    with pytest.raises(DeviceListRollback):
        verify_device_list(
            fork, account_key=key.public_b64, expected_account=ACCOUNT, previous=seen
        )
    v3 = sign_device_list(make_list(version=3), key)
    assert (
        verify_device_list(
            v3, account_key=key.public_b64, expected_account=ACCOUNT, previous=seen
        ).version
        == 3
    )


def test_list_for_another_account_is_rejected() -> None:
    key = AccountKey.generate()
    signed = sign_device_list(make_list(), key)
    with pytest.raises(DeviceListMismatch):
        verify_device_list(signed, account_key=key.public_b64, expected_account="+15559999999")


def test_check_served_devices() -> None:
    dl = make_list()
    one, two = dl.device(1), dl.device(2)
    assert one is not None and two is not None
    served = [(d.device_id, d.identity_key, d.signing_key) for d in dl.devices]
    check_served_devices(dl, served)
    check_served_devices(dl, served[:1])

    intruder = entry(3)
    with pytest.raises(DeviceListMismatch):
        check_served_devices(dl, [*served, (3, intruder.identity_key, intruder.signing_key)])
    with pytest.raises(DeviceListMismatch):
        check_served_devices(dl, [(1, intruder.identity_key, one.signing_key)])
    with pytest.raises(DeviceListMismatch):
        check_served_devices(dl, [(1, one.identity_key, intruder.signing_key)])
    with pytest.raises(DeviceListMismatch):
        check_served_devices(dl, [(1, two.identity_key, two.signing_key)])


def test_check_pinned() -> None:
    key = AccountKey.generate().public_b64
    check_pinned(None, key)
    check_pinned(key, key)
    check_pinned(key, key + "=")
    with pytest.raises(AccountKeyChanged):
        check_pinned(key, AccountKey.generate().public_b64)
    with pytest.raises(AccountKeyChanged):
        check_pinned(key, "garbage")


def test_duplicate_device_ids_cannot_be_signed() -> None:
    a = entry(1)
    b = entry(1)
    with pytest.raises(CryptoError):
        sign_device_list(make_list(devices=(a, b)), AccountKey.generate())


def _sign_raw(key: AccountKey, payload: bytes) -> SignedDeviceList:
    return SignedDeviceList(payload=b64(payload), signature=key.sign(DEVICE_LIST_DOMAIN + payload))


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"account":"+1","version":1,"timestamp":1}',
        b'{"account":"+1","devices":[],"timestamp":1,"version":true}',
        b'{"account":"+1","devices":[{"device_id":1}],"timestamp":1,"version":1}',
        # valid content but not canonical (spaces)
        b'{"account": "+1","devices":[],"timestamp":1,"version":1}',
    ],
)
def test_malformed_payloads_are_rejected(payload: bytes) -> None:
    key = AccountKey.generate()
    signed = _sign_raw(key, payload)
    with pytest.raises(CryptoError):
        verify_device_list(signed, account_key=key.public_b64, expected_account="+1")
    with pytest.raises(CryptoError):
        decode_device_list(signed)


def test_canonical_raw_payload_is_accepted() -> None:
    key = AccountKey.generate()
    payload = b'{"account":"+1","devices":[],"timestamp":1,"version":1}'
    dl = verify_device_list(
        _sign_raw(key, payload), account_key=key.public_b64, expected_account="+1"
    )
    assert dl == DeviceList("+1", 1, 1, ())
