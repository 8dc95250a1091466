"""Deciding whether to believe a device list the server served.

The server is not trusted with keys: every device a sender encrypts to must be in a list the
account key signed, under the account key pinned on first use, at a version no older than the
last one seen. This module is pure (no I/O) so the checks are easy to test in isolation.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.crypto import (
    AccountKeyChanged,
    BadSignature,
    CryptoError,
    DeviceEntry,
    DeviceList,
    DeviceListMismatch,
    DeviceListRollback,
    check_pinned,
    check_served_devices,
    decode_device_list,
    verify_device_list,
)
from tidings.kit import jsonutil
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode
from tidings.sdk import errors
from tidings.sdk.errors import TrustError


@dataclass(frozen=True)
class ContactTrust:
    """What we last verified about one account: its pinned key and newest signed list."""

    account_key: str
    signed_list: api.SignedDeviceList

    @property
    def devices(self) -> DeviceList:
        return decode_device_list(self.signed_list)

    def to_json(self) -> str:
        return jsonutil.dumps(
            {"v": 1, "account_key": self.account_key, "signed_list": self.signed_list.model_dump()}
        )

    @classmethod
    def from_json(cls, text: str) -> ContactTrust:
        raw = jsonutil.loads(text)
        return cls(
            account_key=raw["account_key"],
            signed_list=api.SignedDeviceList.model_validate(raw["signed_list"]),
        )


@dataclass(frozen=True)
class VerifiedDevices:
    """A served device list that passed every check, and the devices the server lists."""

    phone: str
    trust: ContactTrust
    devices: DeviceList
    # The active devices the server served, each vouched for by `devices`; these are the ones
    # the server expects envelopes for.
    served: tuple[DeviceEntry, ...]
    key_changed: bool  # the account key differs from the pinned one (the contact re-registered)


def verify_served_list(
    response: api.DeviceListResponse,
    *,
    expected_phone: str,
    known: ContactTrust | None,
    allow_key_change: bool,
) -> VerifiedDevices:
    """Check a served list: signature, pin, rollback, and every served device and key.

    A changed account key means the contact registered again (a new phone); that starts a new
    list lineage, so the rollback floor resets. The caller shows a notice. Our own account's
    key must never change under a running device, hence `allow_key_change`.
    """
    if response.phone != expected_phone:
        raise TrustError(UNTRUSTED, f"asked for {expected_phone}'s devices, got {response.phone}'s")
    if response.signed_list is None:
        raise TrustError(ErrorCode.NO_DEVICE_LIST, f"{expected_phone} has no signed device list")
    key_changed = False
    previous: DeviceList | None = None
    if known is not None:
        try:
            check_pinned(known.account_key, response.account_key)
            previous = known.devices
        except AccountKeyChanged as exc:
            if not allow_key_change:
                raise TrustError(errors.ACCOUNT_KEY_CHANGED, str(exc)) from exc
            key_changed = True
    try:
        listed = verify_device_list(
            response.signed_list,
            account_key=response.account_key,
            expected_account=expected_phone,
            previous=previous,
        )
        served = [(d.device_id, d.identity_key, d.signing_key) for d in response.devices]
        check_served_devices(listed, served)
    except DeviceListRollback as exc:
        raise TrustError(errors.DEVICE_LIST_ROLLBACK, f"{expected_phone}: {exc}") from exc
    except (BadSignature, DeviceListMismatch, CryptoError) as exc:
        raise TrustError(UNTRUSTED, f"{expected_phone}: {exc}") from exc
    entries = tuple(entry for d in response.devices if (entry := listed.device(d.device_id)))
    trust = ContactTrust(account_key=response.account_key, signed_list=response.signed_list)
    return VerifiedDevices(expected_phone, trust, listed, entries, key_changed)


UNTRUSTED = errors.UNTRUSTED_DEVICE_LIST
