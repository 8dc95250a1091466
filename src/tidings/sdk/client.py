"""`DeviceClient`: one device of a Tidings account, talking to the network core.

    client = await DeviceClient.register(server, phone, code, profile)   # a new primary
    client = await DeviceClient.open(profile)                            # later runs
    await client.send_text("+15550100002", "hello")
    for event in await client.sync(): ...           # or: async for event in client.listen()
    await client.close()

The server is trusted with nothing it could abuse: every device the client encrypts to is
checked against the signed device list (`trust.py`), every one-time key against its device's
signature, and every plaintext's sender and recipient against the envelope (`receive.py`).
Ratchet state is persisted before ciphertext leaves and before an envelope is acknowledged.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from tidings.crypto import (
    AccountKey,
    DeviceCrypto,
    DeviceEntry,
    DeviceList,
    SessionManager,
    sign_device_list,
)
from tidings.kit.clock import Clock, SystemClock, to_millis
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode
from tidings.sdk import attachments, errors, messages
from tidings.sdk.errors import SdkError
from tidings.sdk.events import Event, SecurityNotice, StoredMessage
from tidings.sdk.http import ServerApi
from tidings.sdk.outgoing import ContentFor, OutgoingItem, SameForAll, Sender
from tidings.sdk.store import RECEIPT_OUTBOX, ProfileStore, State
from tidings.sdk.trust import ContactTrust, VerifiedDevices, verify_served_list

if TYPE_CHECKING:
    from tidings.sdk.linking import LinkedDevice, PendingLink

# vodozemac keeps at most 50 private one-time keys and silently drops the oldest beyond that.
# Publishing only half keeps room for 25 keys that senders have claimed but not used yet, so a
# refill never throws away a key a pre-key message is still on its way to (Matrix does the same).
ONE_TIME_KEY_TARGET = api.MAX_ONE_TIME_KEYS // 2
ONE_TIME_KEY_LOW_WATER = ONE_TIME_KEY_TARGET // 2
NOTICES = "notices"
# A journal reader's applied entries are deleted once this many positions have passed.
JOURNAL_TRIM_EVERY = 256


DEVICE_LIST_CACHE = timedelta(seconds=60)


def new_message_id() -> str:
    return secrets.token_hex(16)


def check_phone(raw: str) -> str:
    try:
        return normalize_phone(raw)
    except InvalidPhoneNumber as exc:
        raise SdkError(ErrorCode.INVALID_PHONE_NUMBER, str(exc)) from exc


@dataclass(frozen=True)
class DeviceSummary:
    device_id: int
    name: str | None
    primary: bool
    this_device: bool
    identity_key: str
    created_at: str | None
    last_seen_at: str | None


class DeviceClient:
    def __init__(
        self, store: ProfileStore, server: ServerApi, *, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.api = server
        self.clock: Clock = clock or SystemClock()
        self.phone = _required(store.meta("phone"))
        self.device_id = int(_required(store.meta("device_id")))
        self.primary = store.meta("primary") == "1"
        self._key_lock = asyncio.Lock()
        # Verified device lists kept in memory between sends, when `cache_device_lists` is on
        # (a business's API device sends all day): a list stays good until the core refuses a
        # send as stale (409), announces a change of our own list, or it is
        # DEVICE_LIST_CACHE old (a contact who registered again may get device ids the
        # core cannot tell from the old ones), and is then fetched and verified again.
        self.cache_device_lists = False
        # Each with the time it stops being used (compared, not subtracted: it is read per
        # recipient of every send).
        self._device_lists: dict[str, tuple[VerifiedDevices, datetime]] = {}
        # Whether the messages this device sends and receives are kept in its local history (a
        # person's client shows it). A business's API device turns it off: the platform's own
        # database holds every message (received ones reach it through the journal), and a
        # second sealed copy of each in the profile cost writes per message and per receipt
        # and grew without end.
        self.keep_history = True
        from tidings.sdk.receive import Receiver  # receive.py builds on this module

        self.receiver = Receiver(self)
        self._journal_trimmed = 0  # the position of this process's last journal trim
        self.sender = Sender(self)

    # -- lifecycle --------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        profile: Path | str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> DeviceClient:
        store = ProfileStore.open(Path(profile))
        try:
            status = store.meta("status")
            if status != "active":
                hint = "run `tidings link join` again" if status == "pending_link" else ""
                raise SdkError(
                    errors.NOT_REGISTERED, f"the profile at {profile} is not set up yet {hint}"
                )
            with store.transaction() as state:
                token = state.token()
            server = ServerApi(_required(store.meta("server")), token, transport=transport)
        except BaseException:
            store.close()
            raise
        return cls(store, server, clock=clock)

    @classmethod
    async def register(
        cls,
        server: str,
        phone: str,
        code: str,
        profile: Path | str,
        name: str = "",
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> DeviceClient:
        """Register `phone` with this new device as its primary (it holds the account key)."""
        phone = check_phone(phone)
        store = ProfileStore.create(Path(profile))
        http = ServerApi(server, transport=transport)
        try:
            device = DeviceCrypto.create()
            account_key = AccountKey.generate()
            one_time_keys = device.generate_one_time_keys(ONE_TIME_KEY_TARGET)
            fallback = device.generate_fallback_key()
            with store.transaction() as state:  # persist before anything is published
                state.save_account(device)
                state.save_account_key(account_key)
                for key, value in (("server", http.base_url), ("phone", phone), ("primary", "1")):
                    state.set_meta(key, value)
                state.set_meta("status", "registering")
            keys = api.DeviceKeys(
                name=name,
                identity_key=device.identity_key,
                signing_key=device.signing_key,
                one_time_keys=one_time_keys,
                fallback_key=fallback,
            )
            registered = await http.register(
                api.RegisterRequest(
                    phone=phone, code=code, account_key=account_key.public_b64, device=keys
                )
            )
            with store.transaction() as state:
                device.mark_published()
                state.save_account(device)
                state.set_token(registered.device_token)
                state.set_meta("phone", registered.phone)
                state.set_meta("device_id", str(registered.device_id))
            http.token = registered.device_token
            client = cls(store, http, clock=clock)
            only_me = DeviceEntry(registered.device_id, device.identity_key, device.signing_key)
            await client.publish_devices(account_key, [only_me], version=1)
            with store.transaction() as state:
                state.set_meta("status", "active")
        except BaseException:
            store.close()
            await http.close()
            raise
        return client

    async def close(self) -> None:
        self.receiver.stop_receipts()  # a listener's background posting ends with the client
        await self.api.close()
        self.store.close()

    async def __aenter__(self) -> DeviceClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def now_ms(self) -> int:
        return to_millis(self.clock.now())

    def session_manager(self, state: State) -> SessionManager:
        return SessionManager(state.account(), self.store.session_pickle_key)

    # -- keys -------------------------------------------------------------------------------

    async def maintain_keys(
        self, one_time_key_count: int | None = None, *, known: api.KeyStatus | None = None
    ) -> api.KeyStatus | None:
        """Refill one-time keys below the low-water mark and rotate a used fallback key.

        With a count from a mailbox page or websocket frame this costs nothing when the count is
        healthy; without one it asks the server (which also reports fallback use), unless the
        whole status is `known` (the first mailbox page of a sync carries it) and healthy.
        """
        if one_time_key_count is not None and one_time_key_count >= ONE_TIME_KEY_LOW_WATER:
            return None
        if (
            known is not None
            and known.one_time_key_count >= ONE_TIME_KEY_LOW_WATER
            and known.has_fallback_key
            and not known.fallback_key_used
        ):
            return known
        async with self._key_lock:
            status = await self.api.key_status()
            if status.one_time_key_count < ONE_TIME_KEY_LOW_WATER:
                status = await self._publish_keys(
                    ONE_TIME_KEY_TARGET - status.one_time_key_count, rotate_fallback=False
                )
            if status.fallback_key_used or not status.has_fallback_key:
                status = await self._publish_keys(0, rotate_fallback=True)
            return status

    async def _publish_keys(self, wanted: int, *, rotate_fallback: bool) -> api.KeyStatus:
        # Generate, persist, upload, mark published, persist: keys left unpublished by a crash
        # are uploaded again unchanged (the server is idempotent on key id), never replaced.
        with self.store.transaction() as state:
            device = state.account()
            pending = device.unpublished_one_time_keys()
            if not pending and wanted > 0:
                pending = device.generate_one_time_keys(wanted)
            fallback = device.current_fallback_key()
            if fallback is None and rotate_fallback:
                fallback = device.generate_fallback_key()
            state.save_account(device)
        status = await self.api.upload_keys(
            api.UploadKeysRequest(one_time_keys=pending, fallback_key=fallback)
        )
        with self.store.transaction() as state:
            device = state.account()
            device.mark_published()
            state.save_account(device)
        return status

    # -- trust ------------------------------------------------------------------------------

    async def verified_devices(self, phone: str) -> VerifiedDevices:
        """Fetch `phone`'s device list, verify it against what we pinned, and remember it."""
        return self.accept_device_list(phone, await self.api.device_list(phone))

    async def devices_for_send(self, phone: str, now: datetime | None = None) -> VerifiedDevices:
        """The list to encrypt to: the one verified last if caching is on, else a fresh one.
        `now`: the clock as the caller read it (a batch reads it once for all recipients)."""
        cached = self._device_lists.get(phone) if self.cache_device_lists else None
        if cached is not None and (now or self.clock.now()) < cached[1]:
            return cached[0]
        return await self.verified_devices(phone)

    def forget_device_list(self, phone: str) -> None:
        self._device_lists.pop(phone, None)

    def accept_device_list(self, phone: str, response: api.DeviceListResponse) -> VerifiedDevices:
        with self.store.transaction() as state:
            known = state.trust(phone)
        verified = verify_served_list(
            response, expected_phone=phone, known=known, allow_key_change=phone != self.phone
        )
        with self.store.transaction() as state:
            current = state.trust(phone)
            # Another task may have stored a newer list meanwhile; never step back.
            newer_stored = (
                current is not None
                and current.account_key == verified.trust.account_key
                and current.devices.version > verified.devices.version
            )
            if not newer_stored:
                state.save_trust(phone, verified.trust)
            if verified.key_changed:
                notice = f"{phone} registered again: their security key changed"
                state.append(NOTICES, {"phone": phone, "message": notice})
        if self.cache_device_lists and not newer_stored:
            self._device_lists[phone] = (verified, self.clock.now() + DEVICE_LIST_CACHE)
        else:
            self._device_lists.pop(phone, None)
        return verified

    def trusted_device(self, phone: str, device_id: int) -> DeviceEntry | None:
        """The device as the last verified list of `phone` describes it, if we have one."""
        with self.store.transaction() as state:
            trust = state.trust(phone)
        return trust.devices.device(device_id) if trust else None

    def take_notices(self) -> list[SecurityNotice]:
        with self.store.transaction() as state:
            raw = state.get_json(NOTICES) or []
            state.delete(NOTICES)
        return [SecurityNotice(item["phone"], item["message"]) for item in raw]

    # -- sending ----------------------------------------------------------------------------

    async def send_text(self, to: str, text: str) -> str:
        """Encrypt `text` for every device of `to` and our own other devices; returns its id."""
        if not text:
            raise SdkError(ErrorCode.VALIDATION_FAILED, "cannot send an empty message")
        return await self.send_content(to, {"type": "text", "text": text})

    def _outgoing_record(
        self, to: str, message_id: str, content: dict[str, Any]
    ) -> StoredMessage | None:
        """How a message we send is kept in local history (None: it is not, see
        `keep_history`)."""
        if not self.keep_history:
            return None
        return StoredMessage(
            id=message_id,
            conversation=to,
            direction="out",
            sender=self.phone,
            sender_device=self.device_id,
            content=content,
            ts=self.now_ms(),
            status="sending",
        )

    async def send_content(
        self, to: str, content: dict[str, Any], message_id: str | None = None
    ) -> str:
        """Send any message content (a business's Cloud API message, a button reply); returns
        its id. Reusing `message_id` after a crash re-sends without the server filing twice."""
        to = check_phone(to)
        message_id = message_id or new_message_id()
        record = self._outgoing_record(to, message_id, content)
        await self.sender.fan_out(to, message_id, SameForAll("message", content), record)
        return message_id

    async def upload_attachment(
        self, data: bytes, mime_type: str, filename: str | None = None
    ) -> dict[str, Any]:
        """Encrypt a file with a fresh key and upload the ciphertext; returns the descriptor to
        put in a message's content (it holds the key: send it only end-to-end encrypted)."""
        return await attachments.upload(self.api, data, mime_type, filename)

    async def download_attachment(self, descriptor: dict[str, Any]) -> bytes:
        """Fetch a received attachment, check its digests and decrypt it."""
        return await attachments.download(self.api, descriptor)

    async def send_typing(self, to: str) -> None:
        """Show a typing indicator on every device of `to` (nothing is stored)."""
        await self.sender.fan_out(check_phone(to), new_message_id(), SameForAll("typing", {}))

    def enable_journal(self) -> None:
        """Record received messages and receipts in the store's event journal from now on."""
        with self.store.transaction() as state:
            state.set_meta("journal", "on")

    def journal_after(self, position: int, limit: int = 100) -> list[tuple[int, dict[str, Any]]]:
        with self.store.snapshot() as state:
            return state.journal_after(position, limit)

    def journal_trim(self, up_to: int) -> None:
        """Forget the journal's entries up to `up_to`, which the reader has applied; done
        once `JOURNAL_TRIM_EVERY` positions have passed since the last trim. The reader never
        reads behind its cursor, so an entry kept longer costs only its row, while a trim
        after every page cost a commit with its fsync (the API device's drain runs on the
        server's event loop, several times a second)."""
        if up_to - self._journal_trimmed < JOURNAL_TRIM_EVERY:
            return
        # Not synced: a trim lost to a power cut leaves rows the reader has passed already.
        with self.store.transaction(synced=False) as state:
            state.journal_trim(up_to)
        self._journal_trimmed = up_to

    async def fan_out(
        self, to: str, message_id: str, content_for: ContentFor, record: StoredMessage | None = None
    ) -> api.SendResponse | None:
        """Encrypt per device of `to` and our other devices, persist, post (see outgoing.py)."""
        return await self.sender.fan_out(to, message_id, content_for, record)

    async def send_contents(
        self,
        messages: list[tuple[str, dict[str, Any], str]],
        stop: Callable[[SdkError], bool] = lambda _exc: True,
    ) -> list[SdkError | None]:
        """Send (to, content, message_id) messages in order, their ratchets persisted in one
        transaction before any is posted. One outcome per message attempted (None: sent); an
        error `stop` picks ends the batch there, and later messages are not sent."""
        items = []
        for to, content, message_id in messages:
            to = check_phone(to)
            record = self._outgoing_record(to, message_id, content)
            items.append(OutgoingItem(to, message_id, SameForAll("message", content), record))
        return await self.sender.send_batch(items, stop)

    async def start_sessions(self, phone: str, entries: list[DeviceEntry]) -> None:
        """Claim a one-time key of each device (checked against its signature), start sessions."""
        await self.sender.start_sessions(phone, entries)

    async def mark_read(self, peer: str, message_ids: list[str]) -> None:
        """Tell `peer` (and our other devices) that we read these messages. The receipt is
        queued in the same transaction as the local change and sent at once: on a running
        listener's websocket (it leaves the queue when the server's reply comes), or else
        posted. If the network fails it stays queued, and the next flush, sync or a live
        listener's retry sends it."""
        peer = check_phone(peer)
        if not message_ids:
            return
        with self.store.transaction() as state:
            for message_id in message_ids:
                for stored in state.messages_with_id(message_id):
                    if stored.direction == "in" and stored.conversation == peer:
                        stored.apply_receipt("read", self.phone)
                        state.put_message(stored)
            state.append(RECEIPT_OUTBOX, {"to": peer, "type": "read", "ids": list(message_ids)})
        await self.receiver.flush_receipts()

    # -- blocking ---------------------------------------------------------------------------

    async def block(self, phone: str) -> list[str]:
        """Refuse everything `phone` sends from now on: the network files none of its
        envelopes for any of our devices (its sends fail with `blocked`). Returns our block
        list."""
        return await self.api.block(check_phone(phone))

    async def unblock(self, phone: str) -> list[str]:
        return await self.api.unblock(check_phone(phone))

    async def blocked(self) -> list[str]:
        return await self.api.blocked()

    async def block_business(
        self, business: str, *, report: bool = False, reason: str | None = None
    ) -> None:
        """Block a business: tell its platform first (the `block` control of the content
        contract, which stops every number of the business and counts toward its quality
        rating; once the network refuses its envelopes it could never learn it), then the
        network."""
        await self.send_content(business, messages.block_request(True, report, reason))
        await self.block(business)

    async def unblock_business(self, business: str) -> None:
        await self.unblock(business)
        await self.send_content(business, messages.block_request(False))

    async def stop_promotions(self, business: str, stop: bool = True) -> None:
        """The client's "Stop promotions" (or, with `stop=False`, "Resume") for a business."""
        await self.send_content(business, messages.marketing_preference(stop))

    # -- receiving (see receive.py) ---------------------------------------------------------

    async def sync(self) -> list[Event]:
        """Fetch, decrypt and acknowledge everything waiting in this device's mailbox."""
        return await self.receiver.sync()

    def listen(self, *, reconnect: bool = True) -> AsyncIterator[Event]:
        """Live events over the websocket, reconnecting on network failures. A message is
        yielded as soon as it is stored and acknowledged; its delivered receipt is posted in
        the background (`post_receipts` waits for what is queued)."""
        return self.receiver.listen(reconnect=reconnect)

    async def post_receipts(self) -> None:
        """Post the receipts still queued in the outbox (delivered, and reads sent on a
        listener's websocket and not yet answered), and return once they are filed (or kept
        for later, when the server cannot be reached)."""
        await self.receiver.post_receipts()

    async def receive_once(self, timeout: float = 10.0) -> list[Event]:
        """What is waiting, or else the first batch to arrive within `timeout` seconds."""
        return await self.receiver.receive_once(timeout)

    def history(self, limit: int = 100) -> list[StoredMessage]:
        with self.store.transaction() as state:
            return state.messages(limit)

    # -- linking (see linking.py) -----------------------------------------------------------

    async def open_link(self) -> PendingLink:
        """Primary only: open a link and get the code to show the new companion."""
        from tidings.sdk import linking

        return await linking.open_link(self)

    async def wait_for_join(self, link: PendingLink, timeout: float | None = None) -> LinkedDevice:
        """Primary only: wait for the companion, verify it, and approve it."""
        from tidings.sdk import linking

        return await linking.wait_for_join(self, link, timeout)

    @classmethod
    async def join(
        cls,
        server: str,
        code: str,
        profile: Path | str,
        name: str = "",
        *,
        timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> DeviceClient:
        """Become a companion of the account whose primary shows `code`."""
        from tidings.sdk import linking

        return await linking.join(
            server, code, profile, name, timeout=timeout, transport=transport, clock=clock
        )

    # -- devices ----------------------------------------------------------------------------

    async def list_devices(self) -> list[DeviceSummary]:
        response = await self.api.device_list(self.phone)
        self.accept_device_list(self.phone, response)
        return [
            DeviceSummary(
                device_id=d.device_id,
                name=d.name,
                primary=d.primary,
                this_device=d.device_id == self.device_id,
                identity_key=d.identity_key,
                created_at=d.created_at,
                last_seen_at=d.last_seen_at,
            )
            for d in response.devices
        ]

    def account_key(self) -> AccountKey:
        with self.store.transaction() as state:
            key = state.account_key()
        if key is None:
            raise SdkError(errors.NOT_PRIMARY, "only the primary device holds the account key")
        return key

    async def publish_devices(
        self, account_key: AccountKey, entries: list[DeviceEntry], *, version: int
    ) -> DeviceList:
        listed = DeviceList(
            account=self.phone,
            version=version,
            timestamp=self.now_ms(),
            devices=tuple(sorted(entries, key=lambda e: e.device_id)),
        )
        signed = sign_device_list(listed, account_key)
        await self.api.publish_device_list(signed)
        with self.store.transaction() as state:
            state.save_trust(self.phone, ContactTrust(account_key.public_b64, signed))
        return listed

    async def remove_device(self, device_id: int) -> None:
        """Sign a device list without `device_id`: the server revokes it and drops its mail."""
        account_key = self.account_key()
        if device_id == self.device_id:
            raise SdkError(ErrorCode.VALIDATION_FAILED, "the primary device cannot remove itself")
        own = await self.verified_devices(self.phone)
        if own.devices.device(device_id) is None:
            raise SdkError(ErrorCode.NOT_FOUND, f"device {device_id} is not in the device list")
        keep = [e for e in own.served if e.device_id != device_id]
        await self.publish_devices(account_key, keep, version=own.devices.version + 1)
        with self.store.transaction() as state:
            state.delete_peer(self.phone, device_id)


def _required(value: str | None) -> str:
    if value is None:
        raise SdkError(errors.NOT_REGISTERED, "the device profile is incomplete")
    return value
