"""Mailbox use cases: accept client fan-out, file receipts, hand out and delete envelopes."""

from __future__ import annotations

import binascii
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidings.accounts.service import AccountService, check_phone, not_registered
from tidings.bus.base import Bus
from tidings.config import LimitsSettings
from tidings.db.batches import SharedUnits
from tidings.db.uow import Database, UnitOfWork
from tidings.devices.repository import DeviceSummary
from tidings.devices.service import DeviceContext, DeviceService
from tidings.errors import AppError, Conflict, Forbidden, ValidationFailed
from tidings.kit.clock import Clock, to_millis
from tidings.kit.ids import b64decode, b64encode, new_uuid
from tidings.mailbox.repository import MailboxRepository
from tidings.protocol import api
from tidings.protocol.codes import ErrorCode


def mailbox_topic(device_pk: int) -> str:
    return f"mailbox.{device_pk}"


def device_topic(device_pk: int) -> str:
    return f"device.{device_pk}"


class MailboxService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        bus: Bus,
        accounts: AccountService,
        devices: DeviceService,
        limits: LimitsSettings,
    ) -> None:
        self._database = database
        self._clock = clock
        self._bus = bus
        self._accounts = accounts
        self._devices = devices
        self._limits = limits
        self._receipts = SharedUnits(database, self._file_receipts)
        self._acks = SharedUnits(database, self._delete_acked)
        self._acks_with_receipts = SharedUnits(database, self._ack_and_file)

    # -- sending ----------------------------------------------------------------------------

    async def send(self, ctx: DeviceContext, request: api.SendRequest) -> api.SendResponse:
        checked = _check_send(ctx, request)
        async with self._database.unit_of_work() as uow:
            lookups = await self._look_up(uow, ctx, {checked[0]})
            [response] = await self._file(uow, ctx, [_check(ctx, request, checked, lookups)])
            return response

    async def send_batch(
        self, ctx: DeviceContext, requests: Sequence[api.SendRequest]
    ) -> list[api.SendResponse | AppError]:
        """File several sends in order in one transaction; each is accepted or refused on its
        own, as if posted alone. Every send is checked first (reads only: one query each for
        the recipients' accounts, their blocks and their devices), so a refusal writes nothing
        and the others commit unaffected; then the accepted ones are filed set-wise."""
        refused: dict[int, AppError] = {}
        checked: dict[int, _Checked] = {}
        for n, request in enumerate(requests):
            try:
                checked[n] = _check_send(ctx, request)
            except AppError as exc:
                refused[n] = exc
        accepted: list[_Send] = []
        async with self._database.unit_of_work() as uow:
            lookups = await self._look_up(uow, ctx, {to for to, _, _ in checked.values()})
            for n, one in checked.items():
                try:
                    accepted.append(_check(ctx, requests[n], one, lookups))
                except AppError as exc:
                    refused[n] = exc
            responses = iter(await self._file(uow, ctx, accepted))
        return [refused[n] if n in refused else next(responses) for n in range(len(requests))]

    async def _look_up(self, uow: UnitOfWork, ctx: DeviceContext, phones: set[str]) -> _Lookups:
        """What the checks of sends to `phones` need, read set-wise: the recipients'
        accounts, which of them block the sender, and every device of the recipients that do
        not and of the sender's own account. Three queries whatever the number of phones."""
        if not phones:
            return _Lookups()
        accounts = await self._accounts.ids_of(uow, phones)
        others = {account_id for account_id in accounts.values() if account_id != ctx.account_id}
        blockers = await self._accounts.blockers(uow, others, ctx.phone)
        devices = await self._devices.all_devices_of(uow, {ctx.account_id, *(others - blockers)})
        return _Lookups(accounts, blockers, devices)

    async def _file(
        self, uow: UnitOfWork, ctx: DeviceContext, sends: Sequence[_Send]
    ) -> list[api.SendResponse]:
        """File checked sends in order: a statement to find which were filed already (a retry
        is skipped for the devices that have it, as is a message id repeated in the batch),
        one to reserve each mailbox's positions for the whole batch, one to insert the rows.
        Positions follow the order of the sends within each mailbox, without gaps."""
        repository = MailboxRepository(uow.session)
        filed = await repository.filed(
            ctx.phone, "message", {(pk, s.request.message_id) for s in sends for pk in s.device_pks}
        )
        now = self._clock.now()
        rows: list[dict[str, Any]] = []
        responses: list[api.SendResponse] = []
        for send in sends:
            message_id = send.request.message_id
            delivered = 0
            for device_pk, envelope, body in zip(
                send.device_pks, send.request.envelopes, send.bodies, strict=True
            ):
                if (device_pk, message_id) in filed:  # a retry of a send that went through
                    continue
                filed.add((device_pk, message_id))
                delivered += 1
                rows.append(
                    {
                        "device_pk": device_pk,
                        "kind": "message",
                        "message_id": message_id,
                        "sender_phone": ctx.phone,
                        "sender_device": ctx.device_id,
                        "olm_type": envelope.type,
                        "body": body,
                        "server_ts": now,
                    }
                )
            responses.append(
                api.SendResponse(
                    message_id=message_id, server_ts=to_millis(now), delivered_to=delivered
                )
            )
        self._ring(uow, await self._insert(repository, rows))
        return responses

    # -- blocks -----------------------------------------------------------------------------

    async def block(self, ctx: DeviceContext, phone: str) -> str:
        """The caller's account refuses envelopes from `phone` (any of its devices may ask)."""
        async with self._database.unit_of_work() as uow:
            blocked = await self._accounts.block(uow, ctx.account_id, phone)
            if blocked == ctx.phone:
                raise ValidationFailed("an account cannot block itself")
            return blocked

    async def unblock(self, ctx: DeviceContext, phone: str) -> str:
        async with self._database.unit_of_work() as uow:
            return await self._accounts.unblock(uow, ctx.account_id, phone)

    async def blocked(self, ctx: DeviceContext) -> list[str]:
        async with self._database.read_only() as uow:
            return await self._accounts.blocked_phones(uow, ctx.account_id)

    async def receipt(self, ctx: DeviceContext, request: api.ReceiptRequest) -> int:
        """File a receipt for every device of the original sender (and, for reads, for the
        reader's own other devices, so they can mark the chat read too); how many were filed.
        Receipts that arrive together are filed in one unit of work (`_file_receipts`)."""
        return await self._receipts.run((ctx, request))

    async def _file_receipts(
        self, uow: UnitOfWork, receipts: Sequence[tuple[DeviceContext, api.ReceiptRequest]]
    ) -> list[int | AppError]:
        """File each receipt, or answer the error that refuses it; a refused one files
        nothing (its devices are looked up before anything is written)."""
        rows: list[dict[str, Any]] = []
        now = self._clock.now()
        answers = [
            await self._receipt_rows(uow, ctx, request, rows, now) for ctx, request in receipts
        ]
        await self._insert_notices(uow, rows)
        return answers

    async def _receipt_rows(
        self,
        uow: UnitOfWork,
        ctx: DeviceContext,
        request: api.ReceiptRequest,
        rows: list[dict[str, Any]],
        now: datetime,
    ) -> int | AppError:
        """Add the notices of one receipt to `rows`: how many, or the error that refuses it."""
        try:
            sender_id = await self._accounts.id_of(uow, request.to)
        except AppError as refused:
            return refused
        devices = await self._devices.active_device_pks(uow, sender_id)
        if request.type == "read" and sender_id != ctx.account_id:
            devices += await self._devices.active_device_pks(uow, ctx.account_id)
        devices = [pk for pk in devices if pk != ctx.device_pk]
        body = (
            api.ReceiptBody(
                type=request.type,
                message_ids=request.message_ids,
                by=ctx.phone,
                by_device=ctx.device_id,
            )
            .model_dump_json()
            .encode()
        )
        rows += _notices(devices, "receipt", ctx.phone, ctx.device_id, body, now)
        return len(devices)

    async def _insert_notices(self, uow: UnitOfWork, rows: list[dict[str, Any]]) -> None:
        if rows:
            self._ring(uow, await self._insert(MailboxRepository(uow.session), rows))

    async def notify_device_list(self, phone: str, version: int, publisher_pk: int) -> None:
        """Tell an account's other devices that its device list changed."""
        body = api.DeviceListNotice(phone=phone, version=version).model_dump_json().encode()
        async with self._database.unit_of_work() as uow:
            account_id = await self._accounts.id_of(uow, phone)
            devices = await self._devices.active_device_pks(uow, account_id)
            others = [pk for pk in devices if pk != publisher_pk]
            await self._file_notices(uow, others, "device_list", phone, 0, body)

    async def _file_notices(
        self,
        uow: UnitOfWork,
        device_pks: Sequence[int],
        kind: str,
        sender: str,
        sender_device: int,
        body: bytes,
    ) -> None:
        rows = _notices(device_pks, kind, sender, sender_device, body, self._clock.now())
        self._ring(uow, await self._insert(MailboxRepository(uow.session), rows))

    @staticmethod
    async def _insert(repository: MailboxRepository, rows: list[dict[str, Any]]) -> list[int]:
        """Give each row the next position of its mailbox, in the rows' order, and insert them
        all; answer the mailboxes filed into."""
        counts = Counter(row["device_pk"] for row in rows)
        last = await repository.allocate(counts)
        next_seq = {pk: last[pk] - count + 1 for pk, count in counts.items()}
        for row in rows:
            row["seq"] = next_seq[row["device_pk"]]
            next_seq[row["device_pk"]] += 1
        await repository.insert(rows)
        return list(counts)

    def _ring(self, uow: UnitOfWork, device_pks: Sequence[int]) -> None:
        """One doorbell per mailbox, after commit."""
        targets = sorted(set(device_pks))

        async def ring() -> None:
            for device_pk in targets:
                await self._bus.publish(mailbox_topic(device_pk), {"device": device_pk})

        if targets:
            uow.after_commit(ring)

    # -- receiving --------------------------------------------------------------------------

    async def fetch(
        self, ctx: DeviceContext, after: int, limit: int | None = None, *, push: bool = False
    ) -> api.MailboxPage:
        """A page of the device's mailbox after `after`. `push`: read for the gateway's push,
        which sends it at once, so the read does not pass the loop on first."""
        size = min(limit or self._limits.mailbox_page, self._limits.mailbox_page)
        async with self._database.read_only(then_yield=not push) as uow:
            rows = await MailboxRepository(uow.session).page(ctx.device_pk, after, size + 1)
            keys = None
            if after == 0:  # a sync starts here: its client checks its keys once
                keys = await self._devices.key_status_in(uow, ctx.device_pk)
                count = keys.one_time_key_count
            else:
                count = await self._devices.one_time_key_count(uow, ctx.device_pk)
            return api.MailboxPage(
                envelopes=[to_wire(row) for row in rows[:size]],
                more=len(rows) > size,
                one_time_key_count=count,
                keys=keys,
            )

    async def ack(self, ctx: DeviceContext, seqs: Sequence[int]) -> int:
        """Delete the device's envelopes at `seqs`; how many there were. Acks that arrive
        together are deleted in one unit of work."""
        return await self._acks.run((ctx.device_pk, sorted(set(seqs))))

    @staticmethod
    async def _delete_acked(
        uow: UnitOfWork, acks: Sequence[tuple[int, list[int]]]
    ) -> list[int | AppError]:
        repository = MailboxRepository(uow.session)
        return [await repository.delete(device_pk, seqs) for device_pk, seqs in acks]

    async def ack_and_file(
        self,
        ctx: DeviceContext,
        seqs: Sequence[int],
        receipts: Sequence[api.ReceiptRequest],
    ) -> AckedWithReceipts:
        """Delete the device's envelopes at `seqs` and file `receipts` from it in one unit of
        work (a websocket ack carrying the receipts its envelopes queued): how many envelopes
        were deleted and, per receipt, how many notices it filed or the error that refused it.
        Frames that arrive together share the unit."""
        return await self._acks_with_receipts.run((ctx, sorted(set(seqs)), list(receipts)))

    async def _ack_and_file(
        self,
        uow: UnitOfWork,
        items: Sequence[tuple[DeviceContext, list[int], list[api.ReceiptRequest]]],
    ) -> list[AckedWithReceipts | AppError]:
        repository = MailboxRepository(uow.session)
        rows: list[dict[str, Any]] = []
        now = self._clock.now()
        answers: list[AckedWithReceipts | AppError] = []
        for ctx, seqs, receipts in items:
            deleted = await repository.delete(ctx.device_pk, seqs) if seqs else 0
            filed = [await self._receipt_rows(uow, ctx, request, rows, now) for request in receipts]
            answers.append(AckedWithReceipts(deleted, filed))
        await self._insert_notices(uow, rows)
        return answers

    async def purge_devices(self, uow: UnitOfWork, device_pks: list[int]) -> None:
        """Removal hook: a removed device's mailbox goes, and its live connections are told."""
        await MailboxRepository(uow.session).purge(device_pks)

        async def disconnect() -> None:
            for device_pk in device_pks:
                await self._bus.publish(
                    device_topic(device_pk), {"event": "removed", "device": device_pk}
                )

        uow.after_commit(disconnect)


@dataclass(frozen=True)
class AckedWithReceipts:
    """What `ack_and_file` did: envelopes deleted, and per receipt its notices or refusal."""

    deleted: int
    filed: list[int | AppError]


@dataclass
class _Send:
    """A send that passed its checks: the mailbox (device pk) of each envelope, in order."""

    request: api.SendRequest
    device_pks: list[int]
    bodies: list[bytes]


@dataclass
class _Lookups:
    """What one transaction read about the accounts a batch addresses."""

    accounts: dict[str, int] = field(default_factory=dict)  # phone -> registered account's id
    blockers: set[int] = field(default_factory=set)  # recipients (ids) blocking the sender
    devices: dict[int, list[DeviceSummary]] = field(default_factory=dict)  # account id -> all


# A send checked without the database: its recipient, its bodies, its device ids by account.
_Checked = tuple[str, list[bytes], dict[str, list[int]]]


def _check(
    ctx: DeviceContext, request: api.SendRequest, checked: _Checked, lookups: _Lookups
) -> _Send:
    """Check one send against the recipient and the device sets; answer the mailbox of each
    of its envelopes. Every refusal of a send that passed `_check_send` is raised here, from
    what `lookups` holds."""
    to_phone, bodies, by_phone = checked
    recipient = lookups.accounts.get(to_phone)
    if recipient is None:
        raise not_registered(to_phone)
    if recipient in lookups.blockers:
        raise Forbidden(
            f"{to_phone} does not accept messages from {ctx.phone}", code=ErrorCode.BLOCKED
        )
    targets = _resolve_targets(ctx, (to_phone, recipient), by_phone, lookups.devices)
    device_pks = [
        targets[(check_phone(envelope.phone), envelope.device_id)].id
        for envelope in request.envelopes
    ]
    return _Send(request, device_pks, bodies)


def _resolve_targets(
    ctx: DeviceContext,
    recipient: tuple[str, int],
    by_phone: dict[str, list[int]],
    devices: dict[int, list[DeviceSummary]],
) -> dict[tuple[str, int], DeviceSummary]:
    """Compare the sender's device set with ours (`recipient`: phone and account id); answer
    like Signal's MismatchedDevices."""
    recipient_phone, recipient_id = recipient
    accounts = {recipient_phone: recipient_id, ctx.phone: ctx.account_id}
    mismatches: dict[str, dict[str, list[int]]] = {}
    targets: dict[tuple[str, int], DeviceSummary] = {}
    for phone, account_id in accounts.items():
        given = by_phone.get(phone, [])
        if len(set(given)) != len(given):
            raise ValidationFailed(f"a device of {phone} is addressed twice")
        every = devices[account_id]
        active = {d.device_id: d for d in every if d.status == "active" and d.id != ctx.device_pk}
        removed = {d.device_id for d in every if d.status == "removed"}
        missing = sorted(set(active) - set(given))
        extra = sorted(set(given) - set(active))
        if missing or extra:
            mismatches[phone] = {
                "missing": missing,
                "extra": [i for i in extra if i not in removed],
                "stale": [i for i in extra if i in removed],
            }
        for device_id in given:
            if device_id in active:
                targets[(phone, device_id)] = active[device_id]
    if mismatches:
        raise Conflict(
            "the device set does not match: refresh the device lists and encrypt again",
            code=ErrorCode.MISMATCHED_DEVICES,
            details={"accounts": mismatches},
        )
    if not any(phone == recipient_phone for phone, _ in targets) and recipient_phone != ctx.phone:
        raise Conflict(f"{recipient_phone} has no active device", code=ErrorCode.UNKNOWN_ACCOUNT)
    return targets


def _check_send(ctx: DeviceContext, request: api.SendRequest) -> _Checked:
    """What a send can be refused for without the database: its recipient, its bodies and its
    envelopes grouped by account."""
    to_phone = check_phone(request.to)
    bodies = [decode_body(e.body) for e in request.envelopes]
    by_phone: dict[str, list[int]] = defaultdict(list)
    for envelope in request.envelopes:
        by_phone[check_phone(envelope.phone)].append(envelope.device_id)
    foreign = set(by_phone) - {to_phone, ctx.phone}
    if foreign:
        raise ValidationFailed(
            "envelopes may only address the recipient's devices and your own other devices",
            details={"unexpected_accounts": sorted(foreign)},
        )
    return to_phone, bodies, by_phone


def decode_body(body: str) -> bytes:
    try:
        return b64decode(body)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed("envelope body is not valid base64") from exc


def to_wire(row: Any) -> api.Envelope:
    """A mailbox page row (`MailboxRepository.page`) as the protocol's envelope."""
    return api.Envelope(
        seq=row.seq,
        kind=row.kind,
        message_id=row.message_id,
        sender=row.sender_phone,
        sender_device=row.sender_device,
        type=row.olm_type,
        body=b64encode(row.body),
        server_ts=to_millis(row.server_ts),
    )


def _notices(
    device_pks: Sequence[int],
    kind: str,
    sender: str,
    sender_device: int,
    body: bytes,
    now: datetime,
) -> list[dict[str, Any]]:
    """The rows of one notice (a receipt, a device list change) for each of `device_pks`."""
    return [
        {
            "device_pk": device_pk,
            "kind": kind,
            "message_id": new_uuid(),
            "sender_phone": sender,
            "sender_device": sender_device,
            "olm_type": 0,
            "body": body,
            "server_ts": now,
        }
        for device_pk in device_pks
    ]
