"""Sending: fan-out encryption to every verified device, with sessions started on demand.

Every message is encrypted once per device of the recipient and of our own account (minus
this device), each copy carrying sender, recipient and conversation inside the plaintext. The
advanced ratchets are persisted in the same transaction that produces the ciphertext, before
anything is posted, so a crash can never make us reuse a message key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidings.crypto import CryptoError, DeviceEntry, PeerSessions, verify_one_time_key
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode
from tidings.protocol.e2e import Address, PlainKind, Plaintext
from tidings.sdk import errors
from tidings.sdk.errors import SdkError, TrustError
from tidings.sdk.events import StoredMessage

if TYPE_CHECKING:
    from tidings.crypto.sessions import OpenSessions
    from tidings.sdk.client import DeviceClient
    from tidings.sdk.store import State

MAX_SEND_ATTEMPTS = 3

# What each device of a fan-out gets: (kind, content) for (phone, device_id).
ContentFor = Callable[[str, int], tuple[PlainKind, dict[str, Any]]]
Target = tuple[str, DeviceEntry]


class Sender:
    def __init__(self, client: DeviceClient) -> None:
        self.client = client

    async def fan_out(
        self,
        to: str,
        message_id: str,
        content_for: ContentFor,
        record: StoredMessage | None = None,
    ) -> api.SendResponse | None:
        """Encrypt once per device of `to` and of our own account (minus this device), persist
        the sessions, then post. A stale device set (409) refreshes the lists and retries."""
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            targets = await self._targets(to)
            if not targets:  # a note to self with no other device: nothing to send
                if record is not None:
                    record.status = "sent"
                    with self.client.store.transaction() as state:
                        state.put_message(record)
                return None
            await self.ensure_sessions(targets)
            envelopes = self._encrypt(to, message_id, targets, content_for, record)
            try:
                response = await self.client.api.send(
                    api.SendRequest(message_id=message_id, to=to, envelopes=envelopes)
                )
            except SdkError as exc:
                if exc.code == ErrorCode.MISMATCHED_DEVICES and attempt < MAX_SEND_ATTEMPTS:
                    self._forget_lists(to)
                    continue
                raise
            if record is not None:
                with self.client.store.transaction() as state:
                    stored = state.message(record.key) or record
                    if stored.status == "sending":
                        stored.status = "sent"
                    state.put_message(stored)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def send_batch(
        self, items: list[OutgoingItem], stop: Callable[[SdkError], bool]
    ) -> list[SdkError | None]:
        """Send several messages in order, with one profile transaction for all their ratchets.

        Each item's outcome is None (sent) or the error that refused it. An error `stop` picks
        (the core unreachable, a rate limit) ends the batch: its item is the last outcome and
        the items after it are not sent. As in `fan_out`, every ratchet is on disk before the
        first envelope is posted; an item whose envelopes never left is simply sent again later
        under the same message id (the recipient files an id once)."""
        outcomes: dict[int, SdkError | None] = {}
        ready: list[tuple[int, list[Target]]] = []
        halted: int | None = None
        prepared: dict[str, list[Target]] = {}  # per recipient: its lists and sessions are ready
        for index, item in enumerate(items):
            try:
                targets = prepared.get(item.to)
                if targets is None:
                    targets = await self._targets(item.to)
                    await self.ensure_sessions(targets)
                    prepared[item.to] = targets
            except SdkError as exc:
                outcomes[index] = exc
                if stop(exc):
                    halted = index
                    break
                continue
            ready.append((index, targets))
        envelopes, unsendable = self._encrypt_batch(items, ready)
        outcomes.update(unsendable)
        posting: list[int] = []
        for index, _targets in ready:
            if index in unsendable:
                continue
            if envelopes[index]:
                posting.append(index)
            else:  # a note to self with no other device: nothing to post
                outcomes[index] = None
        requests = [
            api.SendRequest(message_id=items[i].message_id, to=items[i].to, envelopes=envelopes[i])
            for i in posting
        ]
        answers: list[api.SendResponse | SdkError]
        try:
            # One request (and one core transaction) for the whole batch, filed in order.
            answers = await self.client.api.send_batch(requests) if requests else []
        except SdkError as failed:
            answers = [failed] * len(posting)
        for index, answer in zip(posting, answers, strict=True):
            if not isinstance(answer, SdkError):
                outcomes[index] = None
                continue
            refusal = answer
            if refusal.code == ErrorCode.MISMATCHED_DEVICES:
                # A device came or went since the list was verified: the slow path fetches
                # the lists again and re-encrypts under the same id.
                item = items[index]
                self._forget_lists(item.to)
                try:
                    await self.fan_out(item.to, item.message_id, item.content_for, item.record)
                    outcomes[index] = None
                    continue
                except SdkError as retried:
                    refusal = retried
            outcomes[index] = refusal
            if stop(refusal):
                halted = index
                break
        end = len(items) if halted is None else halted + 1
        sent = [items[i].record for i in range(end) if outcomes[i] is None]
        self._mark_sent([record for record in sent if record is not None])
        return [outcomes[i] for i in range(end)]

    def _encrypt_batch(
        self, items: list[OutgoingItem], ready: list[tuple[int, list[Target]]]
    ) -> tuple[dict[int, list[api.OutgoingEnvelope]], dict[int, SdkError]]:
        """Envelopes per item index, and the items that could not be encrypted."""
        envelopes: dict[int, list[api.OutgoingEnvelope]] = {}
        failed: dict[int, SdkError] = {}
        with self.client.store.transaction() as state:
            sessions = self.client.session_manager(state).batch()
            peers: dict[tuple[str, int], PeerSessions] = {}
            for index, targets in ready:
                try:
                    envelopes[index] = self._encrypt_in(
                        state, sessions, peers, items[index], targets
                    )
                except SdkError as exc:
                    failed[index] = exc
            # Each touched session is pickled, sealed and written once, however many messages
            # used it.
            sessions.close()
            for (phone, device_id), peer in peers.items():
                state.save_peer(phone, device_id, peer)
        return envelopes, failed

    def _mark_sent(self, records: list[StoredMessage]) -> None:
        if not records:
            return
        with self.client.store.transaction() as state:
            for record in records:
                stored = state.message(record.key) or record
                if stored.status == "sending":
                    stored.status = "sent"
                state.put_message(stored)

    def _forget_lists(self, to: str) -> None:
        self.client.forget_device_list(to)
        self.client.forget_device_list(self.client.phone)

    async def _targets(self, to: str) -> list[Target]:
        own = await self.client.devices_for_send(self.client.phone)
        mine = [(self.client.phone, e) for e in own.served if e.device_id != self.client.device_id]
        if to == self.client.phone:
            return mine
        recipient = await self.client.devices_for_send(to)
        return [(to, e) for e in recipient.served] + mine

    async def ensure_sessions(self, targets: list[Target]) -> None:
        """Claim a one-time key for every target we share no session with, and start one."""
        with self.client.store.transaction() as state:
            needed = [
                (phone, entry)
                for phone, entry in targets
                if not _usable(state.peer(phone, entry.device_id), entry)
            ]
        by_phone: dict[str, list[DeviceEntry]] = {}
        for phone, entry in needed:
            by_phone.setdefault(phone, []).append(entry)
        for phone, entries in by_phone.items():
            await self.start_sessions(phone, entries)

    async def start_sessions(self, phone: str, entries: list[DeviceEntry]) -> None:
        claimed = await self.client.api.claim_keys(phone, [e.device_id for e in entries])
        keys = {d.device_id: d for d in claimed.devices}
        with self.client.store.transaction() as state:
            manager = self.client.session_manager(state)
            for entry in entries:
                one_time_key = _checked_key(phone, entry, keys.get(entry.device_id))
                peer = state.peer(phone, entry.device_id)
                if peer.identity_key not in (None, entry.identity_key):
                    peer = PeerSessions()  # a new identity under an old id is a new device
                manager.start_session(peer, entry.identity_key, one_time_key)
                state.save_peer(phone, entry.device_id, peer)

    def _encrypt(
        self,
        to: str,
        message_id: str,
        targets: list[Target],
        content_for: ContentFor,
        record: StoredMessage | None,
    ) -> list[api.OutgoingEnvelope]:
        item = OutgoingItem(to, message_id, content_for, record)
        envelopes, failed = self._encrypt_batch([item], [(0, targets)])
        if failed:
            raise failed[0]
        return envelopes[0]

    def _encrypt_in(
        self,
        state: State,
        sessions: OpenSessions,
        peers: dict[tuple[str, int], PeerSessions],
        item: OutgoingItem,
        targets: list[Target],
    ) -> list[api.OutgoingEnvelope]:
        """One message's envelopes, advancing the sessions in `peers` (the caller saves them
        in the same transaction, before anything is posted)."""
        ts = item.record.ts if item.record is not None else self.client.now_ms()
        sender = Address(phone=self.client.phone, device_id=self.client.device_id)
        envelopes: list[api.OutgoingEnvelope] = []
        for phone, entry in targets:
            kind, content = item.content_for(phone, entry.device_id)
            plaintext = Plaintext(
                id=item.message_id,
                ts=ts,
                sender=sender,
                recipient=Address(phone=phone, device_id=entry.device_id),
                to=item.to,
                kind=kind,
                content=content,
            )
            key = (phone, entry.device_id)
            peer = peers.get(key)
            if peer is None:
                peer = peers[key] = state.peer(phone, entry.device_id)
            msg_type, body = sessions.encrypt(peer, plaintext.model_dump_json().encode())
            if len(body) > api.MAX_ENVELOPE_BYTES:
                raise SdkError(errors.TOO_LARGE, "the message is too long to send")
            envelopes.append(
                api.OutgoingEnvelope(
                    phone=phone,
                    device_id=entry.device_id,
                    type=1 if msg_type == 1 else 0,
                    body=body,
                )
            )
        if item.record is not None:
            state.put_message(item.record)
        return envelopes


@dataclass(frozen=True)
class OutgoingItem:
    """One message of a batch: who gets it, its id, its content per device, its history row."""

    to: str
    message_id: str
    content_for: ContentFor
    record: StoredMessage | None = None


def _usable(peer: PeerSessions, entry: DeviceEntry) -> bool:
    return bool(peer.sessions) and peer.identity_key == entry.identity_key


def _checked_key(phone: str, entry: DeviceEntry, claimed: api.ClaimedDevice | None) -> str:
    """The claimed one-time key, if the device the signed list names really published it."""
    if claimed is None or claimed.one_time_key is None:
        raise SdkError(errors.NO_KEYS, f"{phone} device {entry.device_id} has no keys to claim")
    if (claimed.identity_key, claimed.signing_key) != (entry.identity_key, entry.signing_key):
        raise TrustError(
            errors.UNTRUSTED_DEVICE_LIST,
            f"{phone} device {entry.device_id}: claimed keys differ from the signed list",
        )
    try:
        verify_one_time_key(entry.signing_key, claimed.one_time_key)
    except CryptoError as exc:
        raise TrustError(
            errors.UNTRUSTED_DEVICE_LIST,
            f"{phone} device {entry.device_id}: one-time key is not signed by the device",
        ) from exc
    return claimed.one_time_key.key
