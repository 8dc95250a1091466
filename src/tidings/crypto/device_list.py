"""Device lists signed by the account key (WhatsApp "ADV" style).

The server stores and serves the signed list but cannot change it: senders verify the account
signature, refuse rollback, and check every device and key the server hands out against it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tidings.crypto.account_key import AccountKey, verify_ed25519
from tidings.crypto.encoding import b64, unb64
from tidings.crypto.errors import (
    AccountKeyChanged,
    BadSignature,
    CryptoError,
    DeviceListMismatch,
    DeviceListRollback,
)
from tidings.kit.jsonutil import canonical_bytes
from tidings.protocol.api import SignedDeviceList

DEVICE_LIST_DOMAIN = b"\x06\x02tidings-device-list"
_KEY_BYTES = 32


@dataclass(frozen=True)
class DeviceEntry:
    device_id: int
    identity_key: str  # Curve25519
    signing_key: str  # Ed25519


@dataclass(frozen=True)
class DeviceList:
    account: str
    version: int
    timestamp: int
    devices: tuple[DeviceEntry, ...]

    def device(self, device_id: int) -> DeviceEntry | None:
        for entry in self.devices:
            if entry.device_id == device_id:
                return entry
        return None


def _payload_bytes(dl: DeviceList) -> bytes:
    devices = sorted(dl.devices, key=lambda d: d.device_id)
    return canonical_bytes(
        {
            "account": dl.account,
            "version": dl.version,
            "timestamp": dl.timestamp,
            "devices": [
                {
                    "device_id": d.device_id,
                    "identity_key": d.identity_key,
                    "signing_key": d.signing_key,
                }
                for d in devices
            ],
        }
    )


def _is_int(value: Any) -> bool:
    # bool is an int subclass; a JSON `true` must not pass as a device id.
    return isinstance(value, int) and not isinstance(value, bool)


def _check_key(value: Any) -> str:
    if not isinstance(value, str) or len(unb64(value)) != _KEY_BYTES:
        raise CryptoError("device key is not a 32-byte base64 key")
    return value


def sign_device_list(dl: DeviceList, key: AccountKey) -> SignedDeviceList:
    ids = [d.device_id for d in dl.devices]
    if len(set(ids)) != len(ids):
        raise CryptoError("device list has duplicate device ids")
    payload = _payload_bytes(dl)
    # Round-trip through the decoder so we never sign something verifiers would reject.
    _parse_payload(payload)
    return SignedDeviceList(payload=b64(payload), signature=key.sign(DEVICE_LIST_DOMAIN + payload))


def _parse_payload(payload: bytes) -> DeviceList:
    try:
        raw = json.loads(payload)
    except ValueError as exc:
        raise CryptoError("device list payload is not JSON") from exc
    if not isinstance(raw, dict) or set(raw) != {"account", "version", "timestamp", "devices"}:
        raise CryptoError("device list payload has the wrong fields")
    account, version, timestamp, devices = (
        raw["account"],
        raw["version"],
        raw["timestamp"],
        raw["devices"],
    )
    if not isinstance(account, str) or not _is_int(version) or not _is_int(timestamp):
        raise CryptoError("device list header has the wrong types")
    if version < 0 or not isinstance(devices, list):
        raise CryptoError("device list header is invalid")
    entries: list[DeviceEntry] = []
    for item in devices:
        if not isinstance(item, dict) or set(item) != {"device_id", "identity_key", "signing_key"}:
            raise CryptoError("device entry has the wrong fields")
        if not _is_int(item["device_id"]) or item["device_id"] < 0:
            raise CryptoError("device id must be a non-negative integer")
        entries.append(
            DeviceEntry(
                device_id=item["device_id"],
                identity_key=_check_key(item["identity_key"]),
                signing_key=_check_key(item["signing_key"]),
            )
        )
    ids = [e.device_id for e in entries]
    if ids != sorted(set(ids)):
        raise CryptoError("device ids must be unique and sorted")
    dl = DeviceList(account=account, version=version, timestamp=timestamp, devices=tuple(entries))
    # Only the canonical encoding is accepted, so equal lists always have equal payloads.
    if _payload_bytes(dl) != payload:
        raise CryptoError("device list payload is not canonical")
    return dl


def decode_device_list(signed: SignedDeviceList) -> DeviceList:
    """Parse without verifying; for display or for a primary reading back its own list."""
    return _parse_payload(unb64(signed.payload))


def verify_device_list(
    signed: SignedDeviceList,
    *,
    account_key: str,
    expected_account: str,
    min_version: int | None = None,
    previous: DeviceList | None = None,
) -> DeviceList:
    """Verify a served list against the account key and the newest list seen before.

    Pass `previous` (the last verified list) to also catch a fork: a different list signed
    under the same version number. `min_version` alone only catches plain rollback.
    """
    try:
        payload = unb64(signed.payload)
    except CryptoError as exc:
        raise BadSignature("device list payload is not base64") from exc
    verify_ed25519(account_key, DEVICE_LIST_DOMAIN + payload, signed.signature)
    dl = _parse_payload(payload)
    if dl.account != expected_account:
        raise DeviceListMismatch("device list belongs to another account")
    floor = min_version
    if previous is not None:
        floor = previous.version if floor is None else max(floor, previous.version)
    if floor is not None and dl.version < floor:
        raise DeviceListRollback(f"device list version {dl.version} is older than {floor}")
    if previous is not None and dl.version == previous.version and dl != previous:
        raise DeviceListRollback("a different device list was signed under the same version")
    return dl


def check_served_devices(dl: DeviceList, served: Iterable[tuple[int, str, str]]) -> None:
    """Every (device_id, identity_key, signing_key) the server served must be in the list."""
    for device_id, identity_key, signing_key in served:
        entry = dl.device(device_id)
        if entry is None:
            raise DeviceListMismatch(f"device {device_id} is not in the signed device list")
        if entry.identity_key != identity_key or entry.signing_key != signing_key:
            raise DeviceListMismatch(f"keys of device {device_id} differ from the signed list")


def check_pinned(pinned: str | None, served: str) -> None:
    """Trust on first use: once an account key is pinned, a different one is an alarm."""
    if pinned is None:
        return
    try:
        same = unb64(pinned) == unb64(served)
    except CryptoError:
        same = False
    if not same:
        raise AccountKeyChanged("the account key differs from the pinned one")
