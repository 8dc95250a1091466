"""Sending: fan-out encryption to every verified device, with sessions started on demand.

Every message is encrypted once per device of the recipient and of our own account (minus
this device), each copy carrying sender, recipient and conversation inside the plaintext. The
advanced ratchets are persisted in the same transaction that produces the ciphertext, before
anything is posted, so a crash can never make us reuse a message key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel
from pydantic_core import to_json

from tidings.crypto import (
    CryptoError,
    DeviceEntry,
    OpenSessions,
    PeerSessions,
    verify_one_time_key,
)
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode
from tidings.protocol.e2e import Address, PlainKind, Plaintext
from tidings.sdk import errors
from tidings.sdk.errors import SdkError, TrustError
from tidings.sdk.events import StoredMessage

if TYPE_CHECKING:
    from tidings.sdk.client import DeviceClient

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
            item = OutgoingItem(to, message_id, content_for, record)
            encrypted, failed, written = self._encrypt_batch([item], [(0, targets)])
            if failed:
                raise failed[0]
            envelopes = encrypted[0]
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
                self._mark_sent([record], written)
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
        batch = await self.prepare_batch(items, stop)
        outcomes, ready, halted = batch.outcomes, batch.ready, batch.halted
        envelopes, unsendable, written = self._encrypt_batch(items, ready)
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
        self._mark_sent([record for record in sent if record is not None], written)
        return [outcomes[i] for i in range(end)]

    async def prepare_batch(
        self, items: list[OutgoingItem], stop: Callable[[SdkError], bool]
    ) -> PreparedBatch:
        """Each item's verified devices, with a session with every one of them: the items
        ready to encrypt, and the outcome of those that are not (see `send_batch`)."""
        batch = PreparedBatch()
        listed: list[tuple[int, list[Target]]] = []
        prepared: dict[str, list[Target]] = {}  # per recipient: its lists are verified
        mine: list[Target] | None = None  # our own other devices, the same for every item
        now = self.client.clock.now()  # how old each cached list is, read once
        for index, item in enumerate(items):
            try:
                targets = prepared.get(item.to)
                if targets is None:
                    if mine is None:
                        mine = await self._own_targets()
                    targets = prepared[item.to] = await self._targets(item.to, mine, now)
            except SdkError as exc:
                batch.outcomes[index] = exc
                if stop(exc):
                    batch.halted = index
                    break
                continue
            listed.append((index, targets))
        # Sessions for the whole batch are checked in one read, then started per account.
        unstarted = await self._start_missing(
            [target for _index, targets in listed for target in targets], stop
        )
        for index, targets in listed:
            refused = (
                next((unstarted[p] for p, _e in targets if p in unstarted), None)
                if unstarted
                else None
            )
            if refused is None:
                batch.ready.append((index, targets))
                continue
            batch.outcomes[index] = refused
            if stop(refused):
                batch.halted = index
                break
        return batch

    def _encrypt_batch(
        self, items: list[OutgoingItem], ready: list[tuple[int, list[Target]]]
    ) -> tuple[dict[int, list[api.OutgoingEnvelope]], dict[int, SdkError], dict[str, bytes]]:
        """Envelopes per item index, the items that could not be encrypted, and the history
        rows written (sealed, by message key) for `_mark_sent`."""
        envelopes: dict[int, list[api.OutgoingEnvelope]] = {}
        failed: dict[int, SdkError] = {}
        written: dict[str, bytes] = {}
        store = self.client.store
        sender = Address(phone=self.client.phone, device_id=self.client.device_id)
        now = self.client.now_ms()  # one clock reading stamps the whole batch
        with store.transaction() as state:
            sessions = OpenSessions(store.session_pickle_key)
            wanted = list(dict.fromkeys((p, e.device_id) for _i, ts in ready for p, e in ts))
            peers: dict[tuple[str, int], PeerSessions] = {}
            for key, (peer, kept) in state.sending_peers(wanted).items():
                if kept is not None:
                    sessions.adopt(peer, kept)
                peers[key] = peer
            for index, targets in ready:
                try:
                    envelopes[index] = self._encrypt_in(
                        sessions, sender, peers, items[index], targets, now
                    )
                    record = items[index].record
                    if record is not None:
                        written[record.key] = state.put_message(record)
                except SdkError as exc:
                    failed[index] = exc
            # Each touched session is written once, however many messages used it (as its
            # steps ahead of the stored record, or pickled and sealed), and kept unpickled
            # for the next batch once this transaction commits.
            live = sessions.close()
            state.save_peers(
                [
                    (phone, device_id, peer, live.get(id(peer)))
                    for (phone, device_id), peer in peers.items()
                ]
            )
        return envelopes, failed, written

    def _mark_sent(self, records: list[StoredMessage], written: dict[str, bytes]) -> None:
        """Mark posted messages sent, unless a receipt already moved them further. A row still
        as the send wrote it (`written`) is not read back: nothing changed it meanwhile."""
        if not records:
            return
        with self.client.store.transaction() as state:
            for record in records:
                row = state.message_blob(record.key)
                if row is not None and row == written.get(record.key):
                    stored = record
                else:
                    stored = state.message(record.key) or record
                if stored.status == "sending":
                    stored.status = "sent"
                state.put_message(stored)

    def _forget_lists(self, to: str) -> None:
        self.client.forget_device_list(to)
        self.client.forget_device_list(self.client.phone)

    async def _own_targets(self) -> list[Target]:
        own = await self.client.devices_for_send(self.client.phone)
        return [(self.client.phone, e) for e in own.served if e.device_id != self.client.device_id]

    async def _targets(
        self, to: str, mine: list[Target] | None = None, now: datetime | None = None
    ) -> list[Target]:
        """The devices of `to` and our own other devices (`mine`, when the caller has them);
        `now`, the clock as the caller read it."""
        if mine is None:
            mine = await self._own_targets()
        if to == self.client.phone:
            return mine
        recipient = await self.client.devices_for_send(to, now)
        return [(to, e) for e in recipient.served] + mine

    async def ensure_sessions(self, targets: list[Target]) -> None:
        """Claim a one-time key for every target we share no session with, and start one."""
        unstarted = await self._start_missing(targets, lambda _exc: True)
        if unstarted:
            raise next(iter(unstarted.values()))

    async def _start_missing(
        self, targets: list[Target], stop: Callable[[SdkError], bool]
    ) -> dict[str, SdkError]:
        """Start the sessions `targets` lack, per account in the order they first appear; the
        error of each account whose sessions could not be started. An error `stop` picks ends
        it there (the accounts after it are not tried)."""
        with self.client.store.snapshot() as state:
            held = state.session_identities([(phone, e.device_id) for phone, e in targets])
        needed = [
            (phone, entry)
            for phone, entry in targets
            if held.get((phone, entry.device_id)) != entry.identity_key
        ]
        by_phone: dict[str, dict[int, DeviceEntry]] = {}
        for phone, entry in needed:
            by_phone.setdefault(phone, {})[entry.device_id] = entry
        failed: dict[str, SdkError] = {}
        for phone, entries in by_phone.items():
            try:
                await self.start_sessions(phone, list(entries.values()))
            except SdkError as exc:
                failed[phone] = exc
                if stop(exc):
                    break
        return failed

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

    def _encrypt_in(
        self,
        sessions: OpenSessions,
        sender: Address,
        peers: dict[tuple[str, int], PeerSessions],
        item: OutgoingItem,
        targets: list[Target],
        now: int,
    ) -> list[api.OutgoingEnvelope]:
        """One message's envelopes, advancing the sessions in `peers` (the caller saves them,
        and the message's history row, in the same transaction, before anything is posted).
        `now` stamps a message without a history row."""
        ts = item.record.ts if item.record is not None else now
        envelopes: list[api.OutgoingEnvelope] = []
        content_for = item.content_for
        plaintexts = PlaintextWriter(item.message_id, ts, sender, item.to, content_for)
        for phone, entry in targets:
            device_id = entry.device_id
            plaintext = plaintexts.write_for(content_for, phone, device_id)
            msg_type, body = sessions.encrypt(peers[(phone, device_id)], plaintext)
            if len(body) > api.MAX_ENVELOPE_BYTES:
                raise SdkError(errors.TOO_LARGE, "the message is too long to send")
            envelopes.append(_trusted_envelope(phone, device_id, 1 if msg_type == 1 else 0, body))
        return envelopes


class PlaintextWriter:
    """The plaintext of one message for each device of its fan-out: what
    `Plaintext(...).model_dump_json()` writes, byte for byte (a test holds it to that), at a
    fraction of the cost (about 1.5 µs a device instead of 10). Everything before the recipient
    is written once per message; the rest per device, so a `content_for` that builds or
    changes its content per device is honoured. Anything the plain checks here do not vouch
    for goes through the model itself, which validates it or refuses it."""

    __slots__ = ("_fields", "_head", "_plain", "_source", "_tail", "_to")

    def __init__(
        self,
        message_id: str,
        ts: int,
        sender: Address,
        to: str,
        content_for: ContentFor | None = None,
    ) -> None:
        """`content_for`: what `write_for` will be given, if the caller knows it. A
        `SameForAll` is serialised here, once for every device."""
        self._fields = (message_id, ts, sender, to)
        # Whether the plain checks vouch for the message's own fields (else the model writes).
        self._plain = (
            type(message_id) is str
            and type(ts) is int
            and type(to) is str
            and type(sender) is Address
        )
        self._head = (
            b"".join(
                (
                    b'{"v":1,"id":',
                    to_json(message_id),
                    b',"ts":%d' % ts,
                    _sender_json(sender.phone, sender.device_id),
                )
            )
            if self._plain
            else b""
        )
        self._to = to_json(to)
        # Everything after the recipient's device id, when `_source` gives every device the
        # same content and the plain checks vouch for it (otherwise `write` takes it).
        self._source: SameForAll | None = None
        self._tail = b""
        if type(content_for) is SameForAll and self._plain:
            kind, content = content_for.kind, content_for.content
            if kind in _PLAIN_KINDS and _plain_content(content):
                self._source = content_for
                self._tail = self._tail_of(kind, content)

    def write_for(self, content_for: ContentFor, phone: str, device_id: int) -> bytes:
        """`write` of what `content_for` gives this device. Content that is the same for every
        device (`SameForAll`, handed to the constructor) is serialised once per message."""
        if content_for is self._source and type(phone) is str and type(device_id) is int:
            return self._with_tail(phone, device_id, self._tail)
        kind, content = content_for(phone, device_id)
        return self.write(phone, device_id, kind, content)

    def write(self, phone: str, device_id: int, kind: PlainKind, content: dict[str, Any]) -> bytes:
        if (
            self._plain
            and kind in _PLAIN_KINDS
            and type(phone) is str
            and type(device_id) is int
            and _plain_content(content)
        ):
            return self._with_tail(phone, device_id, self._tail_of(kind, content))
        message_id, ts, sender, to = self._fields
        model = Plaintext(
            id=message_id,
            ts=ts,
            sender=sender,
            recipient=Address(phone=phone, device_id=device_id),
            to=to,
            kind=kind,
            content=content,
        )
        return model.model_dump_json().encode()

    def _with_tail(self, phone: str, device_id: int, tail: bytes) -> bytes:
        """The plaintext for a device, its fields vouched for by the plain checks."""
        return b"".join(
            (
                self._head,
                self._to if phone == self._fields[3] else to_json(phone),
                b',"device_id":%d},"to":' % device_id,
                tail,
            )
        )

    def _tail_of(self, kind: PlainKind, content: dict[str, Any]) -> bytes:
        """Everything after the recipient's device id."""
        return b"".join(
            (self._to, b',"kind":"%s","content":' % kind.encode(), to_json(content), b"}")
        )


def _plain_content(content: object) -> bool:
    """Whether `to_json` writes `content` as the model would: a dict with string keys."""
    return type(content) is dict and _STR_ONLY.issuperset(map(type, content))


_STR_ONLY = frozenset({str})


class SameForAll:
    """A `ContentFor` that gives every device the same (kind, content): a message sent as it
    is to every device of a fan-out, which the send path serialises once per message."""

    __slots__ = ("content", "kind")

    def __init__(self, kind: PlainKind, content: dict[str, Any]) -> None:
        self.kind = kind
        self.content = content

    def __call__(self, _phone: str, _device_id: int) -> tuple[PlainKind, dict[str, Any]]:
        return self.kind, self.content


_PLAIN_KINDS = frozenset(get_args(PlainKind))
_ENVELOPE_FIELDS = frozenset(api.OutgoingEnvelope.model_fields)


def _trusted_envelope(phone: str, device_id: int, msg_type: int, body: str) -> api.OutgoingEnvelope:
    """The envelope, built without validation: the phone and device come from a verified list,
    the type is 0 or 1 and the caller checked the body's length. This sets what
    `OutgoingEnvelope.model_construct` sets, without its per-field loop (0.5 µs a device
    instead of 1.5; a test holds the two equal)."""
    envelope = _new(api.OutgoingEnvelope)
    _set_dict(envelope, {"phone": phone, "device_id": device_id, "type": msg_type, "body": body})
    _set_fields_set(envelope, set(_ENVELOPE_FIELDS))
    _set_extra(envelope, None)
    _set_private(envelope, None)
    return envelope


# The slots `_trusted_envelope` fills, set through their descriptors (as object.__setattr__
# would, without looking them up by name each time).
_new = object.__new__
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


@functools.lru_cache(maxsize=64)
def _sender_json(phone: str, device_id: int) -> bytes:
    """The plaintext from the sender to the recipient's phone, the same for every message of
    a device. Cached by the sender's two fields (`Address` has no others): hashing them costs
    less than hashing the model."""
    sender = to_json(Address(phone=phone, device_id=device_id))
    return b',"sender":' + sender + b',"recipient":{"phone":'


@dataclass
class PreparedBatch:
    """A batch after `Sender.prepare_batch`: the items ready to encrypt, with their targets;
    the outcome of each item that is not; the item that ended the batch, if one did."""

    ready: list[tuple[int, list[Target]]] = field(default_factory=list)
    outcomes: dict[int, SdkError | None] = field(default_factory=dict)
    halted: int | None = None


@dataclass(frozen=True)
class OutgoingItem:
    """One message of a batch: who gets it, its id, its content per device, its history row."""

    to: str
    message_id: str
    content_for: ContentFor
    record: StoredMessage | None = None


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
