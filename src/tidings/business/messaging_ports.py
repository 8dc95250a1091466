"""What business messaging needs from the domains around it, as protocols: the webhook outbox,
billing, the Cloud API webhook shapes and the customer observers (signals, consent, windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.models import BusinessMessage
from tidings.business.service import PhoneInfo
from tidings.db.uow import UnitOfWork


class WebhookSink(Protocol):
    async def enqueue(
        self,
        uow: UnitOfWork,
        *,
        waba_id: str,
        phone_number_id: str | None,
        field: str,
        value: dict[str, Any],
    ) -> str: ...

    async def enqueue_many(
        self,
        uow: UnitOfWork,
        *,
        waba_id: str,
        phone_number_id: str | None,
        field: str,
        values: Sequence[dict[str, Any]],
    ) -> list[str]: ...


class ChargeLedger(Protocol):
    """Billing, seen from status changes (tidings.billing.service.Billing)."""

    async def on_statuses(
        self, session: AsyncSession, changes: Sequence[tuple[str, str]], at: datetime
    ) -> list[dict[str, Any] | None]:
        """For each (wamid, status): make the message's charge due once delivered, and give
        its webhook `pricing` object (None for a message without a charge)."""
        ...


class WebhookShapes(Protocol):
    """Builders of Cloud API webhook values (tidings.business_api.wire)."""

    def status(
        self,
        phone: PhoneInfo,
        message: BusinessMessage,
        status: str,
        ts: int,
        extra: dict[str, Any],
    ) -> dict[str, Any]: ...

    def inbound(
        self, phone: PhoneInfo, message: dict[str, Any], customer: str, profile_name: str
    ) -> dict[str, Any]: ...


class CustomerObserver(Protocol):
    """Told, inside the applying transaction, what customers do (signals, consent, windows)."""

    async def control(
        self, uow: UnitOfWork, phone: PhoneInfo, customer: str, content: dict[str, Any]
    ) -> bool:
        """Handle a customer control (the client's block / preferences contents); True when
        `content` was one, so it is not stored or forwarded as a message."""
        ...

    async def inbound(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        customer: str,
        content: dict[str, Any],
        wamid: str,
    ) -> None:
        """A customer message was stored (after its `messages` webhook was queued)."""
        ...

    async def receipts(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        changes: Sequence[tuple[BusinessMessage, str, str]],
    ) -> None:
        """Outbound messages advanced to delivered or read: (message, status, previous)."""
        ...
