"""What a business phone number sends and receives.

Outbound: the send endpoint stores the message (sealed) with status `accepted` in one
transaction and rings the phone's worker after commit; the worker encrypts it for every device
of the customer through the API device and records `sent`. Re-sending after a crash reuses the
message's E2E id, so the network files it once.

Inbound and receipts: the API device's SDK journals every message and receipt in the same
transaction as its ratchet state; the worker turns journal entries into stored messages, status
changes and webhook events in one database transaction that also advances the journal cursor,
so each entry takes effect exactly once.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tidings.business.api_devices import ApiDeviceHost
from tidings.business.backlog import OutboundBacklog
from tidings.business.inbound import to_cloud_message
from tidings.business.media import BusinessMediaService, MediaUnavailable, ReceivedMedia
from tidings.business.media_types import MEDIA_KINDS

# Re-exported: the domains that queue webhooks import the sink protocol from here.
from tidings.business.messaging_ports import ChargeLedger as ChargeLedger
from tidings.business.messaging_ports import CustomerObserver as CustomerObserver
from tidings.business.messaging_ports import WebhookShapes as WebhookShapes
from tidings.business.messaging_ports import WebhookSink as WebhookSink
from tidings.business.models import BusinessMessage
from tidings.business.policy_gate import (
    PolicyGate,
    PolicyRefused,
    SendContext,
    TemplateUse,
    how_refused,
)
from tidings.business.repository import BusinessRepository
from tidings.business.service import PhoneInfo
from tidings.business.statuses import (
    UNDELIVERABLE,
    Advance,
    StatusChange,
    StatusRecorder,
    is_transient,
    receipt_advances,
)
from tidings.crypto.sealing import Sealer
from tidings.db.batches import SharedUnits
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import AppError, NotFound, ValidationFailed
from tidings.kit.clock import Clock
from tidings.policy.evaluate import Decision
from tidings.policy.reasons import Reporting
from tidings.sdk.client import DeviceClient
from tidings.sdk.errors import SdkError

log = logging.getLogger(__name__)


class _RollBack(Exception):
    """Ends a unit of work without committing it."""


def new_wamid() -> str:
    return "wamid." + base64.urlsafe_b64encode(secrets.token_bytes(27)).decode()


class BusinessMessaging:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        sealer: Sealer,
        devices: ApiDeviceHost,
        webhooks: WebhookSink,
        shapes: WebhookShapes,
        ring: Callable[[int], Awaitable[None]],
        media: BusinessMediaService,
        gate: PolicyGate,
        charges: ChargeLedger | None = None,
        backlog: OutboundBacklog | None = None,
    ) -> None:
        self._database = database
        self._backlog = backlog
        # Sends that arrive together are stored in one unit of work (db/batches.py).
        self._accepts = SharedUnits(database, self._accept_many)
        self._clock = clock
        self._sealer = sealer
        self._devices = devices
        self._webhooks = webhooks
        self._shapes = shapes
        self._ring = ring
        self._media = media
        self._gate = gate
        self._charges = charges
        # Added by the composition root (runtime.py): the signals domain sits above this one.
        self.observers: list[CustomerObserver] = []
        self._statuses = StatusRecorder(
            clock=clock,
            content_of=self.content_of,
            webhooks=webhooks,
            shapes=shapes,
            observers=self.observers,
            charges=charges,
        )

    @property
    def gate(self) -> PolicyGate:
        return self._gate

    async def preflight(self, send: SendContext) -> Decision:
        """What the policy would decide for `send` now, storing and counting nothing.

        Some fact sources count while they gather (the rate counters step atomically, in the
        database or in Redis), so the decision is taken in a unit of work that is always
        rolled back, and `send.peek` tells sources not to touch stores outside it."""
        peek = replace(send, peek=True, wamid=None)
        decisions: list[Decision] = []
        try:
            async with self._database.unit_of_work() as uow:
                decisions.append(await self._gate.decide(uow.session, peek))
                raise _RollBack
        except _RollBack:
            pass
        return decisions[0]

    # -- sealing ----------------------------------------------------------------------------

    def _seal(self, wamid: str, content: dict[str, Any]) -> bytes:
        return self._sealer.seal(json.dumps(content).encode(), f"business-message/{wamid}".encode())

    def content_of(self, message: BusinessMessage) -> dict[str, Any]:
        return self.open_content(message.wamid, message.content_sealed)

    def open_content(self, wamid: str, sealed: bytes) -> dict[str, Any]:
        """What `_seal` sealed for the message `wamid`."""
        data = self._sealer.open(sealed, f"business-message/{wamid}".encode())
        content: dict[str, Any] = json.loads(data)
        return content

    # -- outbound ---------------------------------------------------------------------------

    async def accept(
        self,
        phone: PhoneInfo,
        customer: str,
        kind: str,
        payload: dict[str, Any],
        *,
        context_wamid: str | None = None,
        callback_data: str | None = None,
        template: TemplateUse | None = None,
    ) -> str:
        """Store an outbound message for delivery; returns its wamid.

        `template` is the approved template version a `type: template` send renders (the policy
        gate takes its category and status from it). A send the policy refuses synchronously
        raises `PolicyRefused`; one Meta refuses asynchronously is accepted and stored as
        `failed`, with the `failed` status webhook queued in the same transaction. While the
        number's deliveries are too far behind (`OutboundBacklog`), every send is refused.
        """
        if self._backlog is not None:
            await self._backlog.admit(phone.phone_pk)
        wamid = await self._accepts.run(
            _Send(phone, customer, kind, payload, context_wamid, callback_data, template)
        )
        if self._backlog is not None:
            self._backlog.accepted(phone.phone_pk)
        return wamid

    async def _accept_many(self, uow: UnitOfWork, sends: Sequence[_Send]) -> list[str | AppError]:
        """`accept_in` for each send, in one unit of work (the sends that arrived together,
        see `db/batches.py`): its wamid, or the error that refused it. A send is refused
        before anything of it is written (the context and the policy are checked first)."""
        answers: list[str | AppError] = []
        for send in sends:
            try:
                wamid = await self.accept_in(
                    uow,
                    send.phone,
                    send.customer,
                    send.kind,
                    send.payload,
                    context_wamid=send.context_wamid,
                    callback_data=send.callback_data,
                    template=send.template,
                )
            except AppError as refused:
                answers.append(refused)
                continue
            assert wamid is not None  # only `if_allowed` sends come back without one
            answers.append(wamid)
        return answers

    async def accept_in(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        customer: str,
        kind: str,
        payload: dict[str, Any],
        *,
        context_wamid: str | None = None,
        callback_data: str | None = None,
        template: TemplateUse | None = None,
        if_allowed: bool = False,
    ) -> str | None:
        """`accept` inside the caller's unit of work (e.g. a confirmation sent while an
        inbound message is applied). With `if_allowed`, a send the policy refuses (either
        way) stores nothing, raises nothing and returns None."""
        now = self._clock.now()
        wamid = new_wamid()
        repository = BusinessRepository(uow.session)
        context_e2e = None
        if context_wamid is not None:
            quoted = await repository.message_by_wamid(context_wamid)
            if quoted is None or quoted.phone_id != phone.phone_pk:
                raise ValidationFailed(
                    f"context.message_id {context_wamid!r} is not a message of this number"
                )
            context_e2e = {
                "message_id": quoted.e2e_id,
                "from": quoted.customer if quoted.direction == "in" else phone.phone,
            }
        send = SendContext(phone, customer, template, now, wamid)
        decision = await self._gate.decide(uow.session, send)
        refusal = how_refused(decision)
        if refusal is not None and if_allowed:
            return None
        if refusal is not None and refusal[0] is Reporting.SYNC:
            raise PolicyRefused(refusal[1])
        if kind == "reaction" and isinstance(payload.get("message_id"), str):
            # The business names the reacted-to message by wamid; the customer's client only
            # knows end-to-end ids.
            target = await repository.message_by_wamid(payload["message_id"])
            if target is not None and target.phone_id == phone.phone_pk:
                payload = {**payload, "message_id": target.e2e_id}
        content: dict[str, Any] = {"type": kind, kind: payload}
        if context_e2e is not None:
            content["context"] = context_e2e
        stored = {"content": content, "callback": callback_data, "context_wamid": context_wamid}
        row: dict[str, Any] = {
            "phone_id": phone.phone_pk,
            "wamid": wamid,
            "e2e_id": secrets.token_hex(16),
            "direction": "out",
            "customer": customer,
            "type": kind,
            "content_sealed": self._seal(wamid, stored),
            "status": "accepted",
            "created_at": now,
            "updated_at": now,
        }
        if refusal is not None:
            # Meta accepts the request and reports the refusal in a `failed` status webhook.
            repository.add(message := BusinessMessage(**row))
            reason = refusal[1]
            failed = Advance(message, "failed", error=int(reason.code), details=reason.details)
            await self._statuses.advance(uow, phone, [failed])
            return wamid
        await repository.insert_message(row)  # Core, at once: the hot path skips ORM flushing
        await self._gate.record(uow.session, send, decision)

        async def ring() -> None:
            await self._ring(phone.phone_pk)

        uow.after_commit_once(("outbound", phone.phone_pk), ring)
        return wamid

    async def deliver_pending(self, phone: PhoneInfo, batch: int = 100) -> int:
        """Encrypt and send accepted messages in order; record sent or failed.

        The batch's ratchets are persisted in one profile transaction before any envelope is
        posted, and its statuses are recorded in one unit of work. A message whose `sent` was
        never recorded (a crash) is sent again under the same E2E id, which the network files
        once."""
        count, results = await self.send_pending(phone, batch)
        await self._record_statuses(phone, results)
        return count

    async def send_pending(
        self, phone: PhoneInfo, batch: int = 100
    ) -> tuple[int, list[StatusChange]]:
        """`deliver_pending` without recording: the number of messages taken (0 when nothing
        was pending or the batch was deferred) and the statuses to record, which the caller
        must record (`drain(phone, statuses)` does it in the journal's transaction)."""
        async with self._database.read_only() as uow:
            rows = await BusinessRepository(uow.session).pending_outbound(phone.phone_pk, batch)
        pending = [
            (
                m.id,
                m.wamid,
                m.e2e_id,
                m.customer,
                self.open_content(m.wamid, m.content_sealed)["content"],
            )
            for m in rows
        ]
        if not pending:
            return 0, []
        client = await self._devices.client(phone.phone_number_id)
        results: list[StatusChange] = []
        ready: list[tuple[int, str, str, str, dict[str, Any]]] = []
        for row_id, wamid, e2e_id, customer, content in pending:
            try:
                if content.get("type") in MEDIA_KINDS:
                    # Outside the device lock: a link fetch may take seconds.
                    content = await self._media.attach(phone, client, content)
                elif content.get("type") == "template":
                    content = await self._attach_template_header(phone, client, content)
            except MediaUnavailable as exc:
                log.info("media of %s unavailable: %s", wamid, exc.message)
                results.append((row_id, "failed", exc.graph_code))
                continue
            except SdkError as exc:
                if not is_transient(exc):
                    log.info("message %s undeliverable: %s", wamid, exc.code)
                    results.append((row_id, "failed", UNDELIVERABLE))
                    continue
                log.warning("delivery of %s deferred: %s", wamid, exc.code)
                break  # later messages wait too, so each customer's order holds
            ready.append((row_id, wamid, e2e_id, customer, content))
        deferred = len(ready) + len(results) < len(pending)
        async with self._devices.lock(phone.phone_number_id):
            outcomes = await client.send_contents(
                [(customer, content, e2e_id) for _r, _w, e2e_id, customer, content in ready],
                stop=is_transient,
            )
        for (row_id, wamid, *_rest), outcome in zip(ready, outcomes, strict=False):
            if outcome is None:
                results.append((row_id, "sent", None))
            elif is_transient(outcome):
                log.warning("delivery of %s deferred: %s", wamid, outcome.code)
                deferred = True
            else:
                log.info("message %s undeliverable: %s", wamid, outcome.code)
                results.append((row_id, "failed", UNDELIVERABLE))
        deferred = deferred or len(outcomes) < len(ready)
        # Deferred: nothing more this pass; the next wake-up tries again from the database.
        return (0 if deferred else len(pending)), results

    async def _record_statuses(self, phone: PhoneInfo, results: list[StatusChange]) -> None:
        """Record each message's new status (with its webhook) in one unit of work."""
        if not results:
            return
        async with self._database.unit_of_work() as uow:
            await self._statuses.advance(uow, phone, await self._advances(uow, results))

    async def _advances(self, uow: UnitOfWork, results: list[StatusChange]) -> list[Advance]:
        messages = await BusinessRepository(uow.session).messages_by_ids(
            [row_id for row_id, _status, _error in results]
        )
        return [
            Advance(messages[row_id], status, error=error)
            for row_id, status, error in sorted(results)
            if row_id in messages
        ]

    async def _attach_template_header(
        self, phone: PhoneInfo, client: DeviceClient, content: dict[str, Any]
    ) -> dict[str, Any]:
        """A template's media header travels as an attachment, as a media message's file."""
        template = content["template"]
        header = template.get("header") or {}
        kind = next((k for k in MEDIA_KINDS if isinstance(header.get(k), dict)), None)
        if kind is None:
            return content
        attached = await self._media.attach(phone, client, {"type": kind, kind: header[kind]})
        header = {**header, kind: attached[kind]}
        return {**content, "template": {**template, "header": header}}

    # -- inbound ----------------------------------------------------------------------------

    async def drain(self, phone: PhoneInfo, statuses: list[StatusChange] | None = None) -> int:
        """Fetch what the API device's mailbox holds, then apply its journal (recording
        `statuses` from `send_pending` first, in the same transaction)."""
        client = await self._devices.client(phone.phone_number_id)
        async with self._devices.lock(phone.phone_number_id):
            try:
                await client.sync()
            except SdkError as exc:
                log.warning("sync of %s failed: %s", phone.phone_number_id, exc.code)
        return await self.apply_journal(phone, statuses)

    async def apply_journal(
        self, phone: PhoneInfo, statuses: list[StatusChange] | None = None
    ) -> int:
        """Apply the API device's journal; `statuses` (outbound messages sent or failed) are
        recorded in the first transaction, before the entries, so a message's `sent` always
        precedes its `delivered` and a delivery pass costs one writer turn less."""
        unrecorded = list(statuses or ())
        try:
            return await self._apply_journal(phone, unrecorded)
        finally:
            if unrecorded:  # no journal transaction committed them: on their own, then
                await self._record_statuses(phone, unrecorded)

    async def _apply_journal(self, phone: PhoneInfo, unrecorded: list[StatusChange]) -> int:
        """The journal loop; empties `unrecorded` once a transaction holding them commits."""
        client = await self._devices.client(phone.phone_number_id)
        applied = 0
        while True:
            cursor = await BusinessRepository.journal_cursor(self._database, phone.phone_pk)
            if cursor is None:
                return applied
            entries = client.journal_after(cursor, 100)
            if not entries:
                return applied
            # Customers' files are downloaded before the transaction, which then only adds
            # rows: no database lock is held across a download of up to 100 MB.
            try:
                files = await self._receive_files(phone, client, entries)
            except SdkError as exc:
                log.warning("media of %s deferred: %s", phone.phone_number_id, exc.code)
                return applied  # the core was unreachable; the next pass retries
            used: set[int] = set()
            try:
                async with self._database.unit_of_work() as uow:
                    # The whole page is applied in this transaction, or none of it is.
                    if not await BusinessRepository(uow.session).move_journal_cursor(
                        phone.phone_pk, cursor, entries[-1][0]
                    ):
                        continue  # applied meanwhile; read the cursor again
                    # Status changes are recorded a run at a time, and the run is recorded
                    # before any other entry, so webhooks keep the journal's order.
                    run = await self._advances(uow, unrecorded) if unrecorded else []
                    receipted = await self._receipted(uow, phone, entries)
                    for position, event in entries:
                        if event.get("event") == "receipt":
                            run.extend(receipt_advances(event, receipted))
                        else:
                            await self._statuses.advance(uow, phone, run)
                            run = []
                            received = files.get(position)
                            if await self._apply(uow, phone, event, received) and received:
                                self._media.record(uow, received)
                                used.add(position)
                        applied += 1
                    await self._statuses.advance(uow, phone, run)
                unrecorded.clear()  # committed with the entries
            finally:
                for position, received in files.items():
                    if position not in used:
                        await self._media.discard(received)
            client.journal_trim(entries[-1][0])

    async def _receive_files(
        self, phone: PhoneInfo, client: DeviceClient, entries: list[tuple[int, dict[str, Any]]]
    ) -> dict[int, ReceivedMedia]:
        files: dict[int, ReceivedMedia] = {}
        try:
            for position, event in entries:
                if event.get("event") == "message" and not event.get("own"):
                    received = await self._media.receive(phone, client, event.get("content") or {})
                    if received is not None:
                        files[position] = received
        except BaseException:
            for received in files.values():
                await self._media.discard(received)
            raise
        return files

    async def _receipted(
        self, uow: UnitOfWork, phone: PhoneInfo, entries: list[tuple[int, dict[str, Any]]]
    ) -> dict[str, list[BusinessMessage]]:
        """The outbound messages the entries' receipts name, by E2E id, in one query (a page
        of entries is mostly receipts: two devices, delivered then read, per message)."""
        ids = {
            message_id
            for _position, event in entries
            if event.get("event") == "receipt"
            for message_id in event["message_ids"]
        }
        found: dict[str, list[BusinessMessage]] = {}
        if ids:
            repository = BusinessRepository(uow.session)
            for message in await repository.messages_by_e2e(phone.phone_pk, sorted(ids), "out"):
                found.setdefault(message.e2e_id, []).append(message)
        return found

    async def _apply(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        event: dict[str, Any],
        received: ReceivedMedia | None = None,
    ) -> bool:
        """Apply one journal entry other than a receipt; True if it stored a new inbound
        message."""
        repository = BusinessRepository(uow.session)
        if event.get("event") != "message" or event.get("own"):
            return False
        customer = event["sender"]
        existing = await repository.messages_by_e2e(phone.phone_pk, [event["id"]], "in")
        if any(m.customer == customer for m in existing):
            return False
        now = self._clock.now()
        wamid = new_wamid()
        content = event.get("content") or {}
        for observer in self.observers:
            if await observer.control(uow, phone, customer, content):
                return False  # a customer control (block, preferences), not a message
        quoted = None
        context = content.get("context") if isinstance(content.get("context"), dict) else None
        if context and isinstance(context.get("message_id"), str):
            matches = await repository.messages_by_e2e(
                phone.phone_pk, [context["message_id"]], "out"
            )
            quoted = next((m.wamid for m in matches if m.customer == customer), None)
        cloud = to_cloud_message(
            content,
            wamid=wamid,
            sender=customer,
            ts=int(event["ts"]) // 1000,
            business=phone.display_phone_number,
            quoted_wamid=quoted,
            media=received.webhook_fields if received else None,
            media_error=received.error if received else None,
        )
        repository.add(
            BusinessMessage(
                phone_id=phone.phone_pk,
                wamid=wamid,
                e2e_id=event["id"],
                direction="in",
                customer=customer,
                type=str(cloud.get("type", "unsupported")),
                content_sealed=self._seal(wamid, {"content": content, "cloud": cloud}),
                status="received",
                created_at=now,
                updated_at=now,
            )
        )
        value = self._shapes.inbound(phone, cloud, customer, profile_name=customer)
        await self._webhooks.enqueue(
            uow,
            waba_id=phone.waba_id,
            phone_number_id=phone.phone_number_id,
            field="messages",
            value=value,
        )
        for observer in self.observers:
            await observer.inbound(uow, phone, customer, content, wamid)
        return True

    # -- read receipts and typing -----------------------------------------------------------

    async def mark_read(self, phone: PhoneInfo, wamid: str, typing: bool) -> None:
        async with self._database.unit_of_work() as uow:
            message = await BusinessRepository(uow.session).message_by_wamid(wamid)
            if message is None or message.phone_id != phone.phone_pk or message.direction != "in":
                raise NotFound(f"message {wamid!r} is not an incoming message of this number")
            message.status = "read"
            message.updated_at = self._clock.now()
            customer, e2e_id = message.customer, message.e2e_id
        client = await self._devices.client(phone.phone_number_id)
        async with self._devices.lock(phone.phone_number_id):
            await client.mark_read(customer, [e2e_id])
            if typing:
                try:
                    await client.send_typing(customer)
                except SdkError as exc:
                    # A customer who blocked the number in the network refuses the indicator;
                    # the business is not told (as for 131026), and its read still counts.
                    if exc.code != "blocked":
                        raise


@dataclass(frozen=True)
class _Send:
    """One `BusinessMessaging.accept`, waiting for the unit of work it shares."""

    phone: PhoneInfo
    customer: str
    kind: str
    payload: dict[str, Any]
    context_wamid: str | None
    callback_data: str | None
    template: TemplateUse | None
