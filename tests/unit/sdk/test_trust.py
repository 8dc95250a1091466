from __future__ import annotations

import pytest

from tidings.crypto import AccountKey, DeviceCrypto, DeviceEntry, DeviceList, sign_device_list
from tidings.protocol import api
from tidings.sdk import TrustError, verify_served_list
from tidings.sdk.errors import ACCOUNT_KEY_CHANGED, DEVICE_LIST_ROLLBACK, UNTRUSTED_DEVICE_LIST

PHONE = "+15550100001"


def make_entry(device_id: int) -> DeviceEntry:
    device = DeviceCrypto.create()
    return DeviceEntry(device_id, device.identity_key, device.signing_key)


def served(key: AccountKey, version: int, entries: list[DeviceEntry]) -> api.DeviceListResponse:
    signed = sign_device_list(DeviceList(PHONE, version, 0, tuple(entries)), key)
    return api.DeviceListResponse(
        phone=PHONE,
        account_key=key.public_b64,
        signed_list=signed,
        devices=[
            api.DeviceInfo(
                device_id=e.device_id,
                identity_key=e.identity_key,
                signing_key=e.signing_key,
                primary=i == 0,
            )
            for i, e in enumerate(entries)
        ],
    )


def test_first_use_pins_and_later_lists_must_not_roll_back() -> None:
    key = AccountKey.generate()
    one, two = make_entry(1), make_entry(2)
    first = verify_served_list(
        served(key, 1, [one]), expected_phone=PHONE, known=None, allow_key_change=True
    )
    assert first.served == (one,) and not first.key_changed
    second = verify_served_list(
        served(key, 2, [one, two]), expected_phone=PHONE, known=first.trust, allow_key_change=True
    )
    assert [e.device_id for e in second.served] == [1, 2]
    with pytest.raises(TrustError) as rollback:
        verify_served_list(
            served(key, 1, [one]), expected_phone=PHONE, known=second.trust, allow_key_change=True
        )
    assert rollback.value.code == DEVICE_LIST_ROLLBACK


def test_changed_account_key_is_a_notice_for_contacts_and_an_error_for_ourselves() -> None:
    old = verify_served_list(
        served(AccountKey.generate(), 5, [make_entry(1)]),
        expected_phone=PHONE,
        known=None,
        allow_key_change=True,
    )
    fresh = served(AccountKey.generate(), 1, [make_entry(3)])
    again = verify_served_list(fresh, expected_phone=PHONE, known=old.trust, allow_key_change=True)
    assert again.key_changed and again.devices.version == 1  # a new lineage: no rollback check
    with pytest.raises(TrustError) as own:
        verify_served_list(fresh, expected_phone=PHONE, known=old.trust, allow_key_change=False)
    assert own.value.code == ACCOUNT_KEY_CHANGED


def test_lists_not_signed_by_the_served_key_or_padded_are_refused() -> None:
    key = AccountKey.generate()
    entries = [make_entry(1)]
    response = served(key, 1, entries)
    forged = response.model_copy(update={"account_key": AccountKey.generate().public_b64})
    with pytest.raises(TrustError) as bad:
        verify_served_list(forged, expected_phone=PHONE, known=None, allow_key_change=True)
    assert bad.value.code == UNTRUSTED_DEVICE_LIST
    extra = make_entry(2)
    padded = response.model_copy(
        update={
            "devices": [
                *response.devices,
                api.DeviceInfo(
                    device_id=2,
                    identity_key=extra.identity_key,
                    signing_key=extra.signing_key,
                    primary=False,
                ),
            ]
        }
    )
    with pytest.raises(TrustError):
        verify_served_list(padded, expected_phone=PHONE, known=None, allow_key_change=True)
    with pytest.raises(TrustError):  # someone else's list
        verify_served_list(
            response, expected_phone="+15550100002", known=None, allow_key_change=True
        )
