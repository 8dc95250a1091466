"""What customers do, turned into windows, consent, blocks and quality signals.

`SignalService` observes the business platform's inbound side (business/messaging.py calls it
inside the transaction that applies each journal entry):

- every customer message opens or renews the customer service window of (number, customer);
  a first message through the business's link or QR code starts a free entry point;
"""

from __future__ import annotations

from typing import Any

from tidings.business.messaging import BusinessMessaging
from tidings.business.models import BusinessMessage
from tidings.business.service import PhoneInfo
from tidings.db.uow import Database, UnitOfWork
from tidings.kit.clock import Clock
from tidings.policy.window import renew
from tidings.signals.repository import SignalsRepository


class SignalService:
    def __init__(self, *, database: Database, clock: Clock, messaging: BusinessMessaging) -> None:
        self._database = database
        self._clock = clock
        self._messaging = messaging

    # -- the messaging observer -------------------------------------------------------------

    async def control(
        self, uow: UnitOfWork, phone: PhoneInfo, customer: str, content: dict[str, Any]
    ) -> bool:
        return False

    async def inbound(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        customer: str,
        content: dict[str, Any],
        wamid: str,
    ) -> None:
        now = self._clock.now()
        window = await SignalsRepository(uow.session).window_for_update(phone.phone_pk, customer)
        window.last_inbound_at = renew(window.last_inbound_at, now)

    async def receipt(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        message: BusinessMessage,
        status: str,
        previous: str,
    ) -> None:
        return None
