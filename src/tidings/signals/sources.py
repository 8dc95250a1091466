"""Fact sources of the policy gate (business/policy_gate.py) that this domain answers.

Each reads inside the send's own unit of work, so a send sees the customer's latest message,
opt-out or block committed before it, and records in the same transaction as the message.

- `WindowFacts`: the customer service window and free entry point of (number, customer).
- `ConsentFacts`: the consent ledger of (business, customer) for the send's category, and
  whether the customer blocked the business.
- `MarketingFacts`: when the customer received marketing templates from any business (the
  cap), and the log of allowed sends (`policy_sends`) that the cap and template quality read.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.policy_gate import SendContext
from tidings.policy.caps import MarketingCap
from tidings.policy.categories import Category
from tidings.policy.consent import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    consent_state,
)
from tidings.policy.evaluate import Decision
from tidings.policy.pricing import country_for_phone
from tidings.policy.window import EntryPoint
from tidings.signals.models import ConsentRecord
from tidings.signals.repository import SignalsRepository


class WindowFacts:
    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        times = await SignalsRepository(session).window_times(send.phone.phone_pk, send.customer)
        if times is None:
            return {}
        last_inbound_at, entry_started_at, entry_replied_at = times
        entry = (
            EntryPoint(entry_started_at, entry_replied_at) if entry_started_at is not None else None
        )
        return {"last_inbound_at": last_inbound_at, "entry_point": entry}

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        if decision.opens_entry_point:
            # This send is the business's first answer to an entry point: the 72-hour free
            # entry point window runs from now.
            window = await SignalsRepository(session).window(send.phone.phone_pk, send.customer)
            if window is not None and window.entry_replied_at is None:
                window.entry_replied_at = send.now


def ledger_event(record: ConsentRecord) -> ConsentEvent:
    return ConsentEvent(
        ConsentAction(record.action),
        Category(record.category),
        record.at,
        ConsentSource(record.source),
        record.actor,
        record.wording,
        record.detail,
    )


class ConsentFacts:
    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        repository = SignalsRepository(session)
        facts: dict[str, Any] = {}
        if await repository.blocked(send.phone.business_id, send.customer):
            facts["customer_blocked_business"] = True
        if send.template is not None:
            ledger = await repository.consent_ledger(send.phone.business_id, send.customer)
            events = [ledger_event(record) for record in ledger]
            facts["consent"] = consent_state(events, send.template.category, send.now).status
        return facts

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        return None


class MarketingFacts:
    def __init__(self, cap: MarketingCap | None) -> None:
        self._cap = cap

    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        template = send.template
        if template is None or template.category is not Category.MARKETING:
            return {}
        # The country rule (marketing not delivered to some countries) needs the recipient's.
        facts: dict[str, Any] = {"recipient_country": country_for_phone(send.customer)}
        if self._cap is not None:
            since = send.now - self._cap.period - timedelta(seconds=1)
            received = await SignalsRepository(session).marketing_received(send.customer, since)
            facts["marketing_received"] = tuple(received)
        return facts

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        if send.wamid is None:
            return
        await SignalsRepository(session).insert_send(
            phone_pk=send.phone.phone_pk,
            customer=send.customer,
            wamid=send.wamid,
            category=str(decision.category),
            template_id=None if send.template is None else send.template.template_id,
            at=send.now,
        )
