"""Raw-protocol helpers for server tests: real keys from tidings.crypto, plain httpx calls.

Server tests talk to the HTTP API directly (not through the SDK) so each can send exactly the
malformed or hostile request it is about.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

from tidings.crypto import AccountKey, DeviceCrypto, DeviceEntry, DeviceList, sign_device_list
from tidings.crypto.encoding import b64


@dataclass
class RawDevice:
    phone: str
    crypto: DeviceCrypto
    account_key: AccountKey | None
    device_id: int = 0
    token: str = ""
    list_version: int = 0
    devices: list[DeviceEntry] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def entry(self) -> DeviceEntry:
        return DeviceEntry(self.device_id, self.crypto.identity_key, self.crypto.signing_key)


def device_keys(crypto: DeviceCrypto, otks: int = 5, name: str = "test") -> dict[str, object]:
    keys = crypto.generate_one_time_keys(otks) if otks else []
    fallback = crypto.generate_fallback_key()
    return {
        "name": name,
        "identity_key": crypto.identity_key,
        "signing_key": crypto.signing_key,
        "one_time_keys": [k.model_dump() for k in keys],
        "fallback_key": fallback.model_dump(),
    }


def signed_list(owner: RawDevice, entries: list[DeviceEntry], version: int) -> dict[str, str]:
    assert owner.account_key is not None
    listing = DeviceList(owner.phone, version, int(time.time() * 1000), tuple(entries))
    return sign_device_list(listing, owner.account_key).model_dump()


def register(client: httpx.Client, phone: str, code: str, otks: int = 5) -> RawDevice:
    device = RawDevice(phone=phone, crypto=DeviceCrypto.create(), account_key=AccountKey.generate())
    assert device.account_key is not None
    response = client.post(
        "/v1/accounts",
        json={
            "phone": phone,
            "code": code,
            "account_key": device.account_key.public_b64,
            "device": device_keys(device.crypto, otks),
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    device.device_id, device.token = body["device_id"], body["device_token"]
    device.phone = body["phone"]  # the server's E.164 form is what the list must name
    device.crypto.mark_published()
    device.devices = [device.entry()]
    publish(client, device, device.devices)
    return device


def publish(client: httpx.Client, owner: RawDevice, entries: list[DeviceEntry]) -> httpx.Response:
    owner.list_version += 1
    response = client.put(
        "/v1/devices/list",
        json={"signed_list": signed_list(owner, entries, owner.list_version)},
        headers=owner.headers,
    )
    assert response.status_code == 200, response.text
    owner.devices = entries
    return response


def link_companion(client: httpx.Client, primary: RawDevice) -> RawDevice:
    """Link a companion at the protocol level (proofs are the SDK's business; the server
    stores them opaquely)."""
    link = client.post("/v1/links", headers=primary.headers).json()
    companion = RawDevice(phone=primary.phone, crypto=DeviceCrypto.create(), account_key=None)
    joined = client.post(
        f"/v1/links/{link['link_id']}/join",
        json={"device": device_keys(companion.crypto), "proof": b64(b"p" * 32)},
    )
    assert joined.status_code == 201, joined.text
    companion.device_id = joined.json()["device_id"]
    companion.token = joined.json()["device_token"]
    entries = [*primary.devices, companion.entry()]
    primary.list_version += 1
    approved = client.post(
        f"/v1/links/{link['link_id']}/approve",
        json={
            "signed_list": signed_list(primary, entries, primary.list_version),
            "account_key": primary.account_key.public_b64 if primary.account_key else "",
            "proof": b64(b"q" * 32),
        },
        headers=primary.headers,
    )
    assert approved.status_code == 200, approved.text
    primary.devices = entries
    return companion


def envelope(phone: str, device_id: int, body: bytes = b"ciphertext") -> dict[str, object]:
    return {"phone": phone, "device_id": device_id, "type": 1, "body": b64(body)}


def error_code(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["message"], body
    return str(body["error"]["code"])


async def registered(
    client: httpx.Client, invite: Callable[[str], str], *phones: str
) -> list[RawDevice]:
    """`register` each phone from an async test: in a worker thread, as every blocking call
    there must be (the server may answer on the test's own loop)."""

    def each() -> list[RawDevice]:
        return [register(client, phone, invite(phone)) for phone in phones]

    return await asyncio.to_thread(each)
