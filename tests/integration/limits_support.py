"""Helpers for policy-gate tests at the service level: provision a business number, and
decide (and record, when allowed) one send in its own unit of work, as `accept` will."""

from __future__ import annotations

import uuid
from datetime import datetime

from tidings.business.policy_gate import SendContext, TemplateUse
from tidings.business.service import PhoneInfo
from tidings.policy.categories import Category
from tidings.policy.evaluate import Decision
from tidings.runtime import Runtime


def template(category: Category = Category.UTILITY) -> TemplateUse:
    return TemplateUse(
        template_id="1000000000001",
        name=f"sample_{category.lower()}",
        language="en_US",
        category=category,
        status="APPROVED",
        version=1,
    )


async def provision(
    runtime: Runtime, phone: str, name: str = "Acme Shop", phone_number_id: str | None = None
) -> PhoneInfo:
    """A business number made through the service (no API device: policy tests need none)."""
    made = await runtime.businesses.create(name, phone, phone_number_id=phone_number_id)
    return await runtime.businesses.phone_by_number_id(made.phone_number_id)


async def send(
    runtime: Runtime,
    phone: PhoneInfo,
    customer: str,
    *,
    use: TemplateUse | None = None,
    free_form: bool = False,
    wamid: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """One send through the runtime's policy gate: decide, and record if allowed."""
    context = SendContext(
        phone=phone,
        customer=customer,
        template=None if free_form else (use or template()),
        now=now or runtime.clock.now(),
        wamid=wamid or f"wamid.test-{uuid.uuid4().hex}",
    )
    async with runtime.database.unit_of_work() as uow:
        decision = await runtime.policy_gate.decide(uow.session, context)
        await runtime.policy_gate.record(uow.session, context, decision)
    return decision


def customers(count: int, start: int = 0) -> list[str]:
    """Distinct valid numbers (Brazil mobile: +55 11 9xxxx-xxxx)."""
    return [f"+55119{n:08d}" for n in range(start, start + count)]
