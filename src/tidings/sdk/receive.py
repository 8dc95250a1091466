"""Receiving: decrypt, check, de-duplicate, persist, acknowledge, then send receipts.

The order matters for crash safety. For each envelope, one store transaction holds the
advanced ratchet (and the Olm account, after a pre-key message), the history entry, the
seen-ids and any receipt still to send. Only after that commits is the envelope acknowledged,
and receipts go out with the ack or after it (from a sealed outbox, so a crash loses none). A
crash before the ack means redelivery: the envelope's id is in the seen set, so it is
acknowledged without touching the ratchet and the message is not shown twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import websockets
from pydantic import ValidationError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus

from tidings.crypto import (
    CryptoError,
    DecryptionFailed,
    DeviceEntry,
    DuplicateMessage,
    PeerSessions,
    SessionManager,
    unb64,
)
from tidings.protocol import api
from tidings.protocol.e2e import Address, Plaintext
from tidings.sdk import errors
from tidings.sdk.errors import DeviceRemoved, SdkError, is_passing
from tidings.sdk.events import (
    DeviceListChanged,
    Event,
    IncomingMessage,
    ReceiptEvent,
    SecurityNotice,
    StoredMessage,
    TypingEvent,
)
from tidings.sdk.receipts import ReceiptFlusher, ReceiptOutbox
from tidings.sdk.seen import SeenIds
from tidings.sdk.store import RECEIPT_OUTBOX, SEEN_ENVELOPES, SEEN_MESSAGES, State

if TYPE_CHECKING:
    from tidings.sdk.client import DeviceClient

log = logging.getLogger(__name__)


CLOSE_REMOVED = 4403
CLOSE_UNAUTHORIZED = 4401
RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 30.0
# A live listener fetches envelopes it deferred (the network failed) again after this long,
# doubling up to RECONNECT_MAX_SECONDS while they still fail: nothing else would bring them
# back before the next reconnect.
DEFERRED_RETRY_SECONDS = 1.0


def _envelope_key(envelope: api.Envelope) -> str:
    return f"{envelope.sender}:{envelope.sender_device}:{envelope.message_id}"


class Receiver:
    def __init__(self, client: DeviceClient) -> None:
        self.client = client
        self.me = Address(phone=client.phone, device_id=client.device_id)
        self._flushers: set[ReceiptFlusher] = set()
        self.outbox = ReceiptOutbox(client)
        self._live_socket: Any = None  # a listener's open websocket: receipts ride on it
        # Set when an envelope is left unacknowledged, or a receipt unposted, for a passing
        # reason; cleared by a sync (which reads every unacknowledged envelope again and
        # posts the receipts' outbox).
        self.deferred = False
        self.deferred_retry_seconds = DEFERRED_RETRY_SECONDS

    def stop_receipts(self) -> None:
        """Stop every listener's background posting of receipts (the client is closing: what
        is still queued goes out with the next sync or listen)."""
        for flusher in list(self._flushers):
            flusher.close()

    # -- mailbox and websocket --------------------------------------------------------------

    async def sync(self) -> list[Event]:
        client = self.client
        events: list[Event] = list(client.take_notices())
        self.deferred = False
        await self.flush_receipts()
        after = 0
        while True:
            page = await client.api.mailbox(after)
            if after == 0:
                # The first page carries the whole key status (without it, as from an older
                # core, the status is asked for), so a sync costs no extra request for keys.
                await client.maintain_keys(known=page.keys)
            processed, acks = await self.process(page.envelopes)
            events.extend(processed)
            try:
                if acks:
                    await client.api.ack(acks)
                await self.flush_receipts()
                await client.maintain_keys(page.one_time_key_count)
            except SdkError as exc:
                if not is_passing(exc):
                    raise
                # The page's envelopes are stored: their events must reach the caller. What
                # was not acknowledged comes back and is recognised as seen; a live
                # listener syncs again after its retry delay.
                log.warning("sync stopped after a stored page: %s", exc)
                self.deferred = True
                return [*events, *client.take_notices()]
            events.extend(client.take_notices())
            if not page.more or not page.envelopes:
                return events
            after = page.envelopes[-1].seq

    async def listen(self, *, reconnect: bool = True) -> AsyncIterator[Event]:
        client = self.client
        await client.maintain_keys()
        await self.flush_receipts()
        for notice in client.take_notices():
            yield notice
        # Receipts go out behind the events, not before them: the plaintext is on disk and
        # acknowledged, so the application sees it at once, and receipts queued while one
        # request is in flight leave together in the next (one request for many messages).
        receipts = ReceiptFlusher(self)
        self._flushers.add(receipts)
        try:
            async for event in self._listen_frames(reconnect, receipts):
                yield event
        finally:
            receipts.close()
            self._flushers.discard(receipts)

    async def _listen_frames(
        self, reconnect: bool, receipts: ReceiptFlusher
    ) -> AsyncIterator[Event]:
        client = self.client
        delay = RECONNECT_MIN_SECONDS
        while True:
            try:
                async with connect(
                    client.api.ws_url,
                    additional_headers=client.api.auth_headers(),
                    open_timeout=30,
                ) as socket:
                    delay = RECONNECT_MIN_SECONDS
                    self._live_socket = socket
                    try:
                        async for raw in self._frames_and_retries(socket):
                            if raw is None:  # deferred envelopes are due for another try
                                events = await self.sync()
                            else:
                                events = await self._on_frame(socket, raw, flush=False)
                            if self.outbox.loose:
                                receipts.wanted()
                            for event in events:
                                yield event
                    finally:
                        self._live_socket = None
                        self.outbox.connection_ended()
                        receipts.wanted()
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                if code == CLOSE_REMOVED:
                    raise DeviceRemoved() from exc
                if code == CLOSE_UNAUTHORIZED:
                    await client.api.whoami()  # raises the server's reason (401/403)
                if not reconnect:
                    raise SdkError(errors.NETWORK_ERROR, f"connection closed: {exc}") from exc
            except InvalidStatus as exc:
                # The server refuses the handshake when the token is revoked: ask why over HTTP.
                await client.api.whoami()
                if not reconnect:
                    raise SdkError(errors.NETWORK_ERROR, f"websocket refused: {exc}") from exc
            except (OSError, websockets.exceptions.InvalidHandshake, TimeoutError) as exc:
                if not reconnect:
                    raise SdkError(errors.NETWORK_ERROR, f"websocket failed: {exc}") from exc
            log.info("websocket lost; reconnecting in %.1fs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _frames_and_retries(self, socket: Any) -> AsyncIterator[str | bytes | None]:
        """The socket's frames until it closes cleanly, and None whenever something waits
        deferred (`self.deferred`: an envelope or a receipt a passing failure held back) and
        no frame came for the retry delay, which doubles while it keeps failing."""
        retry = self.deferred_retry_seconds
        receiving: asyncio.Future[str | bytes] | None = None
        try:
            while True:
                if receiving is None:
                    receiving = asyncio.ensure_future(socket.recv())
                if not self.deferred:
                    retry = self.deferred_retry_seconds
                # Waiting in slices, so a receipt deferred by the background flusher meanwhile
                # is noticed without a frame.
                done, _pending = await asyncio.wait({receiving}, timeout=retry)
                if receiving in done:
                    received, receiving = receiving, None
                    try:
                        raw = received.result()
                    except ConnectionClosedOK:
                        return
                    yield raw
                elif self.deferred:
                    retry = min(retry * 2, RECONNECT_MAX_SECONDS)
                    yield None
        finally:
            if receiving is not None:
                receiving.cancel()

    async def receive_once(self, timeout: float) -> list[Event]:
        """Everything waiting now; if nothing is, wait up to `timeout` seconds for the first
        batch pushed over the websocket. A batch is returned whole, never cut short."""
        events = await self.sync()
        if any(isinstance(e, IncomingMessage | ReceiptEvent) for e in events):
            return events
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with connect(
                self.client.api.ws_url,
                additional_headers=self.client.api.auth_headers(),
                open_timeout=max(timeout, 1.0),
            ) as socket:
                while (remaining := deadline - loop.time()) > 0:
                    try:
                        raw = await asyncio.wait_for(socket.recv(), remaining)
                    except TimeoutError:
                        break
                    batch = await self._on_frame(socket, raw)
                    events.extend(batch)
                    if any(isinstance(e, IncomingMessage | ReceiptEvent) for e in batch):
                        break
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_REMOVED:
                raise DeviceRemoved() from exc
            if events:  # stored already: they would never be shown again (see `_on_frame`)
                return events
            raise SdkError(errors.NETWORK_ERROR, f"connection closed: {exc}") from exc
        except InvalidStatus as exc:
            await self.client.api.whoami()
            raise SdkError(errors.NETWORK_ERROR, f"websocket refused: {exc}") from exc
        except (OSError, websockets.exceptions.InvalidHandshake) as exc:
            raise SdkError(errors.NETWORK_ERROR, f"websocket failed: {exc}") from exc
        return events

    async def _on_frame(self, socket: Any, raw: str | bytes, *, flush: bool = True) -> list[Event]:
        """The events of one websocket frame, its envelopes persisted and acknowledged; with
        `flush`, after the receipts they queued have been posted, without it the receipts
        ride on the ack (a listener: the `acked` reply takes them out of the outbox)."""
        frame = json.loads(raw)
        kind = frame.get("type")
        if kind == "removed":
            raise DeviceRemoved()
        if kind != "envelopes":
            if kind == "acked":
                self.outbox.answered(frame)
            elif kind == "error":
                log.warning("server refused a frame: %s", frame.get("message"))
            return []
        envelopes = [api.Envelope.model_validate(e) for e in frame.get("envelopes", [])]
        events, acks = await self.process(envelopes)
        # From here on the frame's envelopes are stored, so their events are returned whatever
        # fails: an envelope left unacknowledged comes back (on this connection after a retry,
        # or the next one) and is recognised as seen, and would never be shown again.
        try:
            if acks:
                ack: dict[str, Any] = {"type": "ack", "seqs": acks}
                if not flush:
                    receipts, ref = self.outbox.ride_along()
                    if receipts:
                        ack["receipts"], ack["ref"] = receipts, ref
                await socket.send(json.dumps(ack))
            if flush:
                await self.flush_receipts()
            count = frame.get("one_time_key_count")
            await self.client.maintain_keys(count if isinstance(count, int) else None)
        except ConnectionClosed:
            pass  # the socket's next receive raises it again, after these events
        except SdkError as exc:
            if not is_passing(exc):
                raise
            log.warning("keys not maintained after a frame: %s", exc)
            self.deferred = True
        return [*events, *self.client.take_notices()]

    # -- envelopes --------------------------------------------------------------------------

    async def process(self, envelopes: list[api.Envelope]) -> tuple[list[Event], list[int]]:
        """Handle envelopes in order; returns the events and the seqs safe to acknowledge.

        An envelope that failed for a passing reason (network) is not acknowledged, so it comes
        back; anything that can never succeed (forged, undecryptable) is acknowledged and
        dropped.
        """
        events: list[Event] = []
        acks: list[int] = []
        index = 0
        while index < len(envelopes):
            if envelopes[index].kind == "receipt":
                # A run of receipts is filed in one store transaction (one commit to disk, not
                # one per receipt), committed before any of them is acknowledged.
                end = index
                while end < len(envelopes) and envelopes[end].kind == "receipt":
                    end += 1
                with self.client.store.transaction() as state:
                    seen = state.seen(SEEN_ENVELOPES)
                    for envelope in envelopes[index:end]:
                        events.extend(self._receipt(state, seen, envelope))
                acks.extend(envelope.seq for envelope in envelopes[index:end])
                index = end
                continue
            if envelopes[index].kind == "message":
                end = index
                while end < len(envelopes) and envelopes[end].kind == "message":
                    end += 1
                run_events, run_acks = await self._messages(envelopes[index:end])
                events.extend(run_events)
                acks.extend(run_acks)
                index = end
                continue
            envelope = envelopes[index]
            index += 1
            try:
                if envelope.kind == "device_list":
                    events.extend(await self._device_list(envelope))
            except SdkError as exc:
                if is_passing(exc):
                    log.warning("envelope %s deferred: %s", envelope.seq, exc)
                    self.deferred = True
                    continue
                log.warning("envelope %s dropped: %s", envelope.seq, exc)
            acks.append(envelope.seq)
        return events, acks

    async def _messages(self, run: list[api.Envelope]) -> tuple[list[Event], list[int]]:
        """Decrypt a run of message envelopes in one store transaction: each sender's
        sessions are loaded once and written once (the Olm account only if a pre-key message
        opens a session on one of its one-time keys), and the whole run costs one commit to
        disk (before any of it is acknowledged)."""
        client = self.client
        events: list[Event] = []
        acks: list[int] = []
        with client.store.snapshot() as state:
            seen = state.seen(SEEN_ENVELOPES)
            processed = {e.seq for e in run if _envelope_key(e) in seen}
        senders: dict[int, DeviceEntry] = {}  # by seq
        known: dict[tuple[str, int], DeviceEntry | None] = {}  # one look-up per sender device
        for envelope in run:
            if envelope.seq in processed:
                acks.append(envelope.seq)  # processed before a crash or lost ack
                continue
            try:
                address = (envelope.sender, envelope.sender_device)
                if address not in known:
                    known[address] = await self._sender_device(*address)
                sender = known[address]
                if sender is None:
                    raise SdkError(
                        errors.UNTRUSTED_DEVICE_LIST,
                        f"{envelope.sender} device {envelope.sender_device}"
                        " is not in their signed list",
                    )
            except SdkError as exc:
                if is_passing(exc):
                    log.warning("envelope %s deferred: %s", envelope.seq, exc)
                    self.deferred = True
                    continue  # not acknowledged: it comes back (see `listen`)
                log.warning("envelope %s dropped: %s", envelope.seq, exc)
                acks.append(envelope.seq)  # can never succeed
                continue
            senders[envelope.seq] = sender
        wedged: list[tuple[str, DeviceEntry]] = []
        with client.store.transaction() as state:
            seen = state.seen(SEEN_ENVELOPES)
            manager = SessionManager(state.account, client.store.session_pickle_key)
            peers: dict[tuple[str, int], PeerSessions] = {}
            advanced: set[tuple[str, int]] = set()  # peers whose ratchet moved
            for envelope in run:
                sender_entry = senders.get(envelope.seq)
                if sender_entry is None:
                    continue
                if not seen.check_and_add(_envelope_key(envelope)):
                    continue
                address = (envelope.sender, envelope.sender_device)
                peer = peers.get(address)
                if peer is None:
                    peer = state.peer(*address)
                if peer.identity_key not in (None, sender_entry.identity_key):
                    peer = PeerSessions()  # a new identity under an old id is a new device
                peers[address] = peer
                try:
                    data = manager.decrypt(
                        peer, sender_entry.identity_key, envelope.type, envelope.body
                    )
                except DuplicateMessage:
                    continue
                except DecryptionFailed as exc:
                    log.warning(
                        "cannot decrypt %s from %s: %s", envelope.message_id, envelope.sender, exc
                    )
                    if exc.wedged and all(address != (p, d.device_id) for p, d in wedged):
                        wedged.append((envelope.sender, sender_entry))
                    continue
                # Decrypting advanced the ratchet (and a pre-key message used up a one-time
                # key): persist both whatever the plaintext turns out to say.
                advanced.add(address)
                events.extend(self._accept(state, envelope, data))
            for phone, device_id in advanced:
                state.save_peer(phone, device_id, peers[(phone, device_id)])
            if manager.account_changed:  # a one-time key used up
                state.save_account(manager.device)
        acks.extend(e.seq for e in run if e.seq in senders)
        for phone, sender_entry in wedged:
            try:
                events.extend(await self._reset(phone, sender_entry))
            except SdkError as exc:  # the envelope is filed as seen: a later message retries
                log.warning("session reset with %s failed: %s", phone, exc)
        acks.sort()
        return events, acks

    async def _sender_device(self, phone: str, device_id: int) -> DeviceEntry | None:
        entry = self.client.trusted_device(phone, device_id)
        if entry is None:  # unknown to our last verified list: maybe it is newer
            verified = await self.client.verified_devices(phone)
            entry = verified.devices.device(device_id)
        return entry

    def _accept(self, state: State, envelope: api.Envelope, data: bytes) -> list[Event]:
        """Check what the plaintext claims against the envelope and us, then record it."""
        try:
            plaintext = Plaintext.model_validate_json(data)
        except ValidationError:
            log.warning("dropping %s: the plaintext is malformed", envelope.message_id)
            return []
        own = envelope.sender == self.me.phone
        claimed_sender = Address(phone=envelope.sender, device_id=envelope.sender_device)
        if (
            plaintext.sender != claimed_sender
            or plaintext.recipient != self.me
            or (not own and plaintext.to != self.me.phone)
        ):
            # The server relabelled or redirected ciphertext: the Olm-authenticated contents
            # disagree with the envelope.
            log.warning("dropping %s: sender or recipient mismatch", envelope.message_id)
            return []
        if plaintext.kind == "typing" and not own:
            return [TypingEvent(plaintext.sender.phone, plaintext.sender.device_id)]
        if plaintext.kind != "message":
            return []  # session_reset and dummy only move the ratchet
        seen = state.seen(SEEN_MESSAGES)
        if not seen.check_and_add(f"{plaintext.sender.phone}/{plaintext.id}"):
            return []  # a replay (e.g. on the fallback key) of a message already shown
        if self.client.keep_history:
            state.put_message(
                StoredMessage(
                    id=plaintext.id,
                    conversation=plaintext.to if own else plaintext.sender.phone,
                    direction="out" if own else "in",
                    sender=plaintext.sender.phone,
                    sender_device=plaintext.sender.device_id,
                    content=dict(plaintext.content),
                    ts=plaintext.ts,
                    status="sent" if own else "received",
                )
            )
        if not own:
            state.append(
                RECEIPT_OUTBOX,
                {"to": plaintext.sender.phone, "type": "delivered", "ids": [plaintext.id]},
            )
        incoming = IncomingMessage(
            id=plaintext.id,
            sender=plaintext.sender.phone,
            sender_device=plaintext.sender.device_id,
            to=plaintext.to,
            content=dict(plaintext.content),
            ts=plaintext.ts,
            own=own,
        )
        state.journal({"event": "message", **asdict(incoming)})
        return [incoming]

    async def _reset(self, phone: str, device: DeviceEntry) -> list[Event]:
        """A wedged session: open a fresh one on a new one-time key and tell the peer over it.

        Rate-limited per peer device. The reset goes out as a full fan-out (the server wants
        every device covered): the wedged device gets `session_reset`, the others a `dummy`.
        """
        client = self.client
        now = client.now_ms()
        with client.store.transaction() as state:
            if not SessionManager.may_reset(state.peer(phone, device.device_id), now):
                log.warning(
                    "session with %s/%s is wedged; reset rate-limited", phone, device.device_id
                )
                return []
        # The new session becomes the active one; older ones stay to read messages in flight.
        await client.start_sessions(phone, [device])
        with client.store.transaction() as state:
            peer = state.peer(phone, device.device_id)
            SessionManager.mark_reset(peer, now)
            state.save_peer(phone, device.device_id, peer)

        def content_for(to_phone: str, to_device: int) -> tuple[Any, dict[str, Any]]:
            wedged = (to_phone, to_device) == (phone, device.device_id)
            return ("session_reset" if wedged else "dummy"), {}

        from tidings.sdk.client import new_message_id

        await client.fan_out(phone, new_message_id(), content_for)
        message = f"a message from {phone} (device {device.device_id}) could not be decrypted"
        return [SecurityNotice(phone, message + "; the secure session was reset")]

    def _receipt(self, state: State, seen: SeenIds, envelope: api.Envelope) -> list[Event]:
        try:
            body = api.ReceiptBody.model_validate_json(unb64(envelope.body))
        except (ValidationError, CryptoError):
            log.warning("dropping malformed receipt %s", envelope.seq)
            return []
        if body.by != envelope.sender:
            return []
        if not seen.check_and_add(f"receipt:{envelope.message_id}"):
            return []
        for message_id in body.message_ids:
            for stored in state.messages_with_id(message_id):
                # Theirs: our outgoing message was delivered or read. Ours: another of our
                # devices read an incoming message.
                mine = body.by == self.me.phone
                if (stored.direction == "in") == mine and (mine or stored.conversation == body.by):
                    stored.apply_receipt(body.type, body.by, body.by_device, envelope.server_ts)
                    state.put_message(stored)
        receipt = ReceiptEvent(body.type, tuple(body.message_ids), body.by, body.by_device)
        state.journal({"event": "receipt", **asdict(receipt), "server_ts": envelope.server_ts})
        return [receipt]

    async def _device_list(self, envelope: api.Envelope) -> list[Event]:
        try:
            notice = api.DeviceListNotice.model_validate_json(unb64(envelope.body))
        except (ValidationError, CryptoError):
            return []
        if notice.phone != self.me.phone:
            return []
        verified = await self.client.verified_devices(notice.phone)
        ids = tuple(e.device_id for e in verified.devices.devices)
        return [DeviceListChanged(notice.phone, verified.devices.version, ids)]

    # -- receipts ---------------------------------------------------------------------------

    async def post_receipts(self) -> None:
        """Post every queued receipt, those riding on a listener's frames not yet answered
        too, so that all of them are filed when this returns (or kept, when the server
        cannot be reached); one filed twice is harmless."""
        if await self.outbox.post(riding_too=True):
            self.deferred = True

    async def flush_receipts(self) -> None:
        """Send pending receipts (delivered, and read: `DeviceClient.mark_read`): on the live
        listener's websocket when one is open (in ack frames without envelopes; the replies
        take them out of the outbox, and a connection that ends first hands them back to a
        post), otherwise posted. What fails for a passing reason stays queued, and a live
        listener tries again (see `listen`)."""
        socket = self._live_socket
        while socket is not None:
            receipts, ref = self.outbox.ride_along()
            if not receipts:
                break  # nothing rides (or nothing may): the post sees what is left
            try:
                await socket.send(json.dumps({"type": "ack", "receipts": receipts, "ref": ref}))
            except ConnectionClosed:
                break  # the listener gives the frame's receipts back; a post takes them
            if not self.outbox.loose:
                return
        if await self.outbox.post():
            self.deferred = True
