"""What business messaging needs from the domains around it, as protocols: the webhook outbox,
billing, the Cloud API webhook shapes and the customer observers (signals, consent, windows).
"""

from __future__ import annotations

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


class ChargeLedger(Protocol):
    """Billing, seen from status changes (tidings.billing.service.Billing)."""

    async def on_status(
        self, session: AsyncSession, wamid: str, status: str, at: datetime
    ) -> dict[str, Any] | None:
        """Make the message's charge due once delivered; its webhook `pricing` object."""
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

    async def receipt(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        message: BusinessMessage,
        status: str,
        previous: str,
    ) -> None:
        """An outbound message advanced to delivered or read (from `previous`)."""
        ...
