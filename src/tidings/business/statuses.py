"""Outbound messages' status changes, recorded a batch at a time.

A delivery pass records a hundred `sent` statuses at once and a journal page is mostly
receipts (`delivered` and `read` from two devices per message), so a batch's changes share one
read of their charges, one read of their policy sends, one webhook position allocation and one
insert of events and of deliveries, instead of five statements and a flush per status.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm.attributes import set_committed_value

from tidings.business.messaging_ports import (
    ChargeLedger,
    CustomerObserver,
    WebhookShapes,
    WebhookSink,
)
from tidings.business.models import BusinessMessage
from tidings.business.repository import BusinessRepository
from tidings.business.service import PhoneInfo
from tidings.db.uow import UnitOfWork
from tidings.kit.clock import Clock
from tidings.sdk.errors import SdkError

UNDELIVERABLE = 131026
# An outbound message's new status after a delivery attempt: (row id, status, error code).
StatusChange = tuple[int, str, int | None]

# Status order: a late "delivered" must never undo a "read".
_RANK = {"accepted": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


@dataclass(frozen=True)
class Advance:
    """One outbound message's new status, with its error and the receipt's time if any."""

    message: BusinessMessage
    status: str
    error: int | None = None
    ts: int | None = None
    details: str | None = None


class StatusRecorder:
    def __init__(
        self,
        *,
        clock: Clock,
        content_of: Callable[[BusinessMessage], dict[str, Any]],
        webhooks: WebhookSink,
        shapes: WebhookShapes,
        observers: list[CustomerObserver],
        charges: ChargeLedger | None = None,
    ) -> None:
        self._clock = clock
        self._content_of = content_of
        self._webhooks = webhooks
        self._shapes = shapes
        # The messaging service's list: the composition root adds observers after both exist.
        self._observers = observers
        self._charges = charges

    async def advance(self, uow: UnitOfWork, phone: PhoneInfo, changes: Sequence[Advance]) -> None:
        """Apply the changes in order: each moves its message forward only (a late `delivered`
        never undoes a `read`, nothing leaves `failed`), and each that does queues its status
        webhook, in the same order, in the caller's transaction."""
        now = self._clock.now()
        taken: list[tuple[Advance, str]] = []
        for change in changes:
            message = change.message
            if (
                _RANK.get(change.status, 0) <= _RANK.get(message.status, 0)
                or message.status == "failed"
            ):
                continue
            taken.append((change, message.status))
            # Committed values, written below in one statement: as attribute changes the
            # session would flush them one UPDATE at a time at its next query.
            set_committed_value(message, "status", change.status)
            set_committed_value(message, "error_code", change.error)
            set_committed_value(message, "updated_at", now)
        if not taken:
            return
        await BusinessRepository(uow.session).set_statuses(
            list({id(c.message): c.message for c, _previous in taken}.values())
        )
        pricing = await self._pricing(uow, [change for change, _previous in taken], now)
        when = int(now.timestamp())
        values = []
        for (change, _previous), priced_value in zip(taken, pricing, strict=True):
            stored = self._content_of(change.message)
            values.append(
                self._shapes.status(
                    phone,
                    change.message,
                    change.status,
                    change.ts if change.ts is not None else when,
                    {
                        "callback": stored.get("callback"),
                        "error": change.error,
                        "error_details": change.details,
                        "pricing": priced_value,
                    },
                )
            )
        await self._webhooks.enqueue_many(
            uow,
            waba_id=phone.waba_id,
            phone_number_id=phone.phone_number_id,
            field="messages",
            values=values,
        )
        receipts = [
            (change.message, change.status, previous)
            for change, previous in taken
            if change.status in ("delivered", "read")
        ]
        if receipts:
            for observer in self._observers:
                await observer.receipts(uow, phone, receipts)

    async def _pricing(
        self, uow: UnitOfWork, changes: list[Advance], at: datetime
    ) -> list[dict[str, Any] | None]:
        """Each change's webhook `pricing` object (None: no charge, or not an outbound
        message), its charge made due when delivered: one call for the run."""
        if self._charges is None:
            return [None] * len(changes)
        outbound = [c for c in changes if c.message.direction == "out"]
        found = iter(
            await self._charges.on_statuses(
                uow.session, [(c.message.wamid, c.status) for c in outbound], at
            )
        )
        return [next(found) if c.message.direction == "out" else None for c in changes]


def is_transient(exc: SdkError) -> bool:
    """A failure worth retrying later (the core was unreachable, failed or asked us to slow
    down), not a refusal."""
    return (
        exc.status is None
        or exc.status >= 500
        or exc.status == 429  # rate limited (e.g. one-time-key claims): wait, then retry
        or exc.code in ("network_error", "timeout")
    )


def receipt_advances(
    event: dict[str, Any], receipted: dict[str, list[BusinessMessage]]
) -> list[Advance]:
    """What a receipt entry changes: the named outbound messages sent to its reader."""
    status = "delivered" if event["type"] == "delivered" else "read"
    ts = int(event.get("server_ts", 0)) // 1000 or None
    return [
        Advance(message, status, ts=ts)
        for message_id in event["message_ids"]
        for message in receipted.get(message_id, ())
        if message.customer == event["by"]
    ]
