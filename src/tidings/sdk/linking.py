"""Linking a companion device (see tidings.crypto.linking for the proofs).

Primary:   link = await open_link(client)          show link.code (or link.qr_text)
           device = await wait_for_join(client, link, timeout=...)
Companion: client = await join(server, code, profile, name)

The link secret inside the code never reaches the server, so the server can neither slip its
own device into the account (the primary checks the companion's join proof) nor hand the
companion a forged account key or device list (the companion checks the approval proof). The
companion never holds the account private key: it cannot change the device list.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx

from tidings.crypto import (
    CryptoError,
    DeviceCrypto,
    DeviceEntry,
    DeviceList,
    approve_proof,
    decode_link_code,
    encode_link_code,
    join_proof,
    link_qr_text,
    new_link_secret,
    sign_device_list,
    verify_approve_proof,
    verify_device_list,
    verify_join_proof,
)
from tidings.kit.clock import Clock
from tidings.protocol import api
from tidings.sdk import errors
from tidings.sdk.client import ONE_TIME_KEY_TARGET, DeviceClient
from tidings.sdk.errors import SdkError, TrustError
from tidings.sdk.http import ServerApi
from tidings.sdk.store import ProfileStore
from tidings.sdk.trust import ContactTrust

LONG_POLL_SECONDS = 30.0
PENDING_LINK = "link/pending"


@dataclass(frozen=True)
class PendingLink:
    link_id: str
    secret: bytes
    code: str
    expires_at: str
    server: str

    @property
    def qr_text(self) -> str:
        return link_qr_text(self.server, self.code)


@dataclass(frozen=True)
class LinkedDevice:
    device_id: int
    name: str
    version: int  # of the device list that now includes it


async def open_link(client: DeviceClient) -> PendingLink:
    client.account_key()  # fail early on a companion: only the primary can approve
    created = await client.api.open_link()
    secret = new_link_secret()
    return PendingLink(
        link_id=created.link_id,
        secret=secret,
        code=encode_link_code(created.link_id, secret),
        expires_at=created.expires_at,
        server=client.api.base_url,
    )


async def _poll_until_not(
    server: ServerApi, link_id: str, status: str, timeout: float | None
) -> api.LinkState:
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + timeout
    while True:
        wait = LONG_POLL_SECONDS
        if deadline is not None:
            wait = min(wait, max(deadline - loop.time(), 0.0))
        state = await server.link_state(link_id, wait=wait, since=status)
        if state.status != status:
            return state
        if deadline is not None and loop.time() >= deadline:
            raise SdkError(errors.TIMEOUT, f"the link is still {status}; gave up waiting")


async def wait_for_join(
    client: DeviceClient, link: PendingLink, timeout: float | None = None
) -> LinkedDevice:
    """Wait for a companion to join, check its proof, and approve it with a new signed list."""
    account_key = client.account_key()
    try:
        state = await _poll_until_not(client.api, link.link_id, "waiting", timeout)
    except SdkError as exc:
        if exc.code == errors.TIMEOUT:
            await client.api.cancel_link(link.link_id)
        raise
    if state.status != "joined" or state.device is None or state.device_id is None:
        raise SdkError(errors.LINK_FAILED, f"the link ended as {state.status}")
    try:
        verify_join_proof(link.secret, link.link_id, state.device, state.join_proof or "")
    except CryptoError as exc:
        await client.api.cancel_link(link.link_id)
        raise TrustError(
            errors.LINK_FAILED, "the joining device did not prove it knows the link code"
        ) from exc
    own = await client.verified_devices(client.phone)
    companion = DeviceEntry(state.device_id, state.device.identity_key, state.device.signing_key)
    devices = sorted([*own.served, companion], key=lambda e: e.device_id)
    listed = DeviceList(client.phone, own.devices.version + 1, client.now_ms(), tuple(devices))
    signed = sign_device_list(listed, account_key)
    await client.api.approve_link(
        link.link_id,
        api.LinkApproveRequest(
            signed_list=signed,
            account_key=account_key.public_b64,
            proof=approve_proof(link.secret, link.link_id, account_key.public_b64, signed),
        ),
    )
    with client.store.transaction() as store_state:
        store_state.save_trust(client.phone, ContactTrust(account_key.public_b64, signed))
    return LinkedDevice(state.device_id, state.device.name, listed.version)


async def join(
    server: str,
    code: str,
    profile: Path | str,
    name: str = "",
    *,
    timeout: float | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
) -> DeviceClient:
    """Join the account whose primary shows `code`, and wait for its approval.

    Re-running with the same code and profile after an interruption resumes the wait.
    """
    try:
        link_id, secret = decode_link_code(code)
    except CryptoError as exc:
        raise SdkError(errors.LINK_FAILED, f"not a valid link code: {exc}") from exc
    store = _resumable(Path(profile), link_id) or ProfileStore.create(Path(profile))
    http = ServerApi(server, transport=transport)
    try:
        if store.meta("status") != "pending_link":
            await _join_link(store, http, link_id, secret, name)
        else:
            with store.transaction() as state:
                http.token = state.token()
        phone = store.meta("phone") or ""
        device_id = int(store.meta("device_id") or 0)
        state_ = await _poll_until_not(http, link_id, "joined", timeout)
        _accept_approval(store, state_, link_id, secret, phone, device_id)
    except BaseException:
        store.close()
        await http.close()
        raise
    return DeviceClient(store, http, clock=clock)


def _resumable(folder: Path, link_id: str) -> ProfileStore | None:
    if not ProfileStore.exists(folder.expanduser()):
        return None
    store = ProfileStore.open(folder)
    if store.meta("status") == "pending_link":
        with store.transaction() as state:
            pending = state.get_json(PENDING_LINK)
        if pending and pending.get("link_id") == link_id:
            return store
    store.close()
    return None


async def _join_link(
    store: ProfileStore, http: ServerApi, link_id: str, secret: bytes, name: str
) -> None:
    device = DeviceCrypto.create()
    one_time_keys = device.generate_one_time_keys(ONE_TIME_KEY_TARGET)
    fallback = device.generate_fallback_key()
    with store.transaction() as state:
        state.save_account(device)
        state.set_meta("server", http.base_url)
        state.set_meta("primary", "0")
        state.set_meta("status", "joining")
    keys = api.DeviceKeys(
        name=name,
        identity_key=device.identity_key,
        signing_key=device.signing_key,
        one_time_keys=one_time_keys,
        fallback_key=fallback,
    )
    joined = await http.join_link(
        link_id, api.LinkJoinRequest(device=keys, proof=join_proof(secret, link_id, keys))
    )
    with store.transaction() as state:
        device.mark_published()
        state.save_account(device)
        state.set_token(joined.device_token)
        state.set_meta("phone", joined.phone)
        state.set_meta("device_id", str(joined.device_id))
        state.put_json(PENDING_LINK, {"link_id": link_id})
        state.set_meta("status", "pending_link")
    http.token = joined.device_token


def _accept_approval(
    store: ProfileStore,
    link: api.LinkState,
    link_id: str,
    secret: bytes,
    phone: str,
    device_id: int,
) -> None:
    """Believe the account key and list only if the primary's proof binds them to our code."""
    if link.status != "approved" or link.signed_list is None or link.account_key is None:
        raise SdkError(errors.LINK_FAILED, f"the primary did not approve (link {link.status})")
    try:
        verify_approve_proof(
            secret, link_id, link.account_key, link.signed_list, link.approve_proof or ""
        )
        listed = verify_device_list(
            link.signed_list, account_key=link.account_key, expected_account=phone
        )
    except CryptoError as exc:
        raise TrustError(errors.LINK_FAILED, f"the approval does not verify: {exc}") from exc
    with store.transaction() as state:
        device = state.account()
        me = listed.device(device_id)
        if me != DeviceEntry(device_id, device.identity_key, device.signing_key):
            raise TrustError(
                errors.LINK_FAILED, "the approved device list does not hold this device"
            )
        state.save_trust(phone, ContactTrust(link.account_key, link.signed_list))
        state.delete(PENDING_LINK)
        state.set_meta("status", "active")
