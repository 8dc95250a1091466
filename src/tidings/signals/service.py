"""What customers do, turned into windows, consent, blocks and quality signals.

`SignalService` observes the business platform's inbound side (business/messaging.py calls it
inside the transaction that applies each journal entry):

- every customer message opens or renews the customer service window of (number, customer);
  a first message through the business's link or QR code starts a free entry point;
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tidings.business.inbound import referral_of
from tidings.business.messaging import BusinessMessaging
from tidings.business.models import BusinessMessage
from tidings.business.service import PhoneInfo
from tidings.db.uow import Database, UnitOfWork
from tidings.kit.clock import Clock
from tidings.policy.evaluate import Limits
from tidings.policy.window import EntryPoint, renew, window_state
from tidings.signals.models import CustomerWindow
from tidings.signals.repository import SignalsRepository


class SignalService:
    def __init__(
        self, *, database: Database, clock: Clock, messaging: BusinessMessaging, limits: Limits
    ) -> None:
        self._database = database
        self._clock = clock
        self._messaging = messaging
        self._limits = limits

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
        referral = referral_of(content)
        if referral is not None and not self._in_conversation(window, now):
            # A conversation started from the business's link or QR code: the business's first
            # answer within 24 hours opens the free entry point window (policy/window.py).
            window.entry_source = referral["source_type"]
            window.entry_started_at = now
            window.entry_replied_at = None
        window.last_inbound_at = renew(window.last_inbound_at, now)

    def _in_conversation(self, window: CustomerWindow, now: datetime) -> bool:
        """A referral only starts an entry point when it starts a conversation: not while the
        customer service window is open or an entry point is pending or running."""
        state = window_state(
            window.last_inbound_at,
            None
            if window.entry_started_at is None
            else EntryPoint(window.entry_started_at, window.entry_replied_at),
            now,
            self._limits.windows,
        )
        return state.csw_open or state.fep_open or state.fep_opens_now

    async def receipt(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        message: BusinessMessage,
        status: str,
        previous: str,
    ) -> None:
        return None
