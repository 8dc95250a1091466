"""The policy gate's pricing source: the countries a price depends on, and the charge of an
allowed send, stored with its message (due once delivered)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.billing.service import Billing
from tidings.business.policy_gate import SendContext
from tidings.policy.evaluate import Decision
from tidings.policy.pricing import country_for_phone


class PricingSource:
    def __init__(self, billing: Billing) -> None:
        self._billing = billing

    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        return {
            "recipient_country": country_for_phone(send.customer),
            "business_country": country_for_phone(send.phone.phone),
        }

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        if decision.charge is not None and send.wamid is not None:
            await self._billing.record_charge(
                session, send.phone, send.wamid, decision.charge, send.now
            )
