"""Property: over generated histories of what a customer and two businesses do (messages,
STOP/START keywords, "Stop promotions", blocks, the clock moving, free-form, marketing and
utility sends), no send the platform accepts breaks a rule, and none that breaks no rule is
refused. The sends go through the real services and database; a plain model of the rules,
written independently, judges them."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select

from tidings.business.models import BusinessMessage
from tidings.business.policy_gate import PolicyRefused, TemplateUse
from tidings.business.service import PhoneInfo
from tidings.kit.clock import FrozenClock
from tidings.policy.categories import Category
from tidings.runtime import Runtime, build_runtime

SHOPS = (("Acme", "+15550109999", "900100"), ("Bolt", "+15550109998", "900101"))
WINDOW = timedelta(hours=24)
CAP, CAP_PERIOD = 4, timedelta(hours=24)
STOPS, STARTS = {"STOP", "Baja", "arrêt"}, {"ALTA", "start", "Reprendre"}
_customers = itertools.count(1)

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("advance"),
            st.sampled_from([1, 600, 6 * 3600, 23 * 3600 + 3599, 24 * 3600, 30 * 3600, 3 * 86400]),
        ),
        st.tuples(
            st.just("write"),
            st.integers(0, 1),
            st.sampled_from(["hi", "thanks", *sorted(STOPS), *sorted(STARTS)]),
        ),
        st.tuples(
            st.just("control"),
            st.integers(0, 1),
            st.sampled_from(["stop", "resume", "block", "unblock"]),
        ),
        st.tuples(
            st.just("send"), st.integers(0, 1), st.sampled_from(["free", "MARKETING", "UTILITY"])
        ),
    ),
    min_size=1,
    max_size=25,
)


@dataclass
class Model:
    """The rules as the issue states them, tracked by hand."""

    last_inbound: dict[int, datetime] = field(default_factory=dict)
    blocked: dict[int, bool] = field(default_factory=dict)
    opted_out: dict[int, bool] = field(default_factory=dict)
    marketing: list[datetime] = field(default_factory=list)

    def window_open(self, shop: int, now: datetime) -> bool:
        last = self.last_inbound.get(shop)
        return last is not None and now - last < WINDOW

    def violations(self, shop: int, kind: str, now: datetime) -> list[str]:
        broken = []
        if self.blocked.get(shop):
            broken.append("sent to a customer who blocked the business")
        if kind == "free" and not self.window_open(shop, now):
            broken.append("free-form outside the customer service window")
        if kind == "MARKETING":
            if self.opted_out.get(shop):
                broken.append("marketing after the customer opted out")
            recent = [t for t in self.marketing if now - CAP_PERIOD < t <= now]
            if not self.window_open(shop, now) and len(recent) >= CAP:
                broken.append("marketing over the per-customer cap")
        return broken


def template(category: str) -> TemplateUse:
    return TemplateUse(
        "7001", "weekly_" + category.lower(), "en_US", Category(category), "APPROVED", 1
    )


async def phones(runtime: Runtime) -> list[PhoneInfo]:
    found = []
    for name, number, phone_number_id in SHOPS:
        known = {p.phone_number_id: p for p in await runtime.businesses.all_phones()}
        if phone_number_id not in known:
            await runtime.businesses.create(name, number, phone_number_id=phone_number_id)
        found.append(await runtime.businesses.phone_by_number_id(phone_number_id))
    return found


async def accepted(runtime: Runtime, shop: PhoneInfo, customer: str, kind: str) -> bool:
    use = None if kind == "free" else template(kind)
    try:
        wamid = await runtime.business_messaging.accept(
            shop, customer, "text" if use is None else "template", {"body": "x"}, template=use
        )
    except PolicyRefused:
        return False
    async with runtime.database.read_only() as uow:
        status = await uow.session.scalar(
            select(BusinessMessage.status).where(BusinessMessage.wamid == wamid)
        )
    return status != "failed"


async def play(settings: Any, clock: FrozenClock, history: list[tuple[Any, ...]]) -> None:
    runtime = build_runtime(settings, clock=clock)
    try:
        shops = await phones(runtime)
        customer = f"+1555030{next(_customers):04d}"  # a fresh customer: examples never mix
        model = Model()
        for step in history:
            now = clock.now()
            if step[0] == "advance":
                clock.advance(seconds=step[1])
            elif step[0] == "write":
                _, shop, text = step
                async with runtime.database.unit_of_work() as uow:
                    content = {"type": "text", "text": {"body": text}}
                    await runtime.signals.inbound(uow, shops[shop], customer, content, "wamid.in")
                model.last_inbound[shop] = now
                if text in STOPS | STARTS:
                    model.opted_out[shop] = text in STOPS
            elif step[0] == "control":
                _, shop, what = step
                if what in ("stop", "resume"):
                    content = {"type": "preferences", "preferences": {"marketing": what}}
                    model.opted_out[shop] = what == "stop"
                else:
                    content = {"type": "block", "block": {"blocked": what == "block"}}
                    model.blocked[shop] = what == "block"
                async with runtime.database.unit_of_work() as uow:
                    assert await runtime.signals.control(uow, shops[shop], customer, content)
            else:
                _, shop, kind = step
                went = await accepted(runtime, shops[shop], customer, kind)
                broken = model.violations(shop, kind, now)
                # Safety: nothing accepted breaks a rule. And, at these volumes (far below any
                # messaging limit or rate), nothing that breaks none is refused.
                assert went is (broken == []), (step, broken, history)
                if went and kind == "MARKETING":
                    model.marketing.append(now)
            clock.advance(seconds=1)
    finally:
        await runtime.close()


@hypothesis_settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=steps)
def test_a_send_is_accepted_exactly_when_it_breaks_no_rule(settings, clock, history) -> None:
    asyncio.run(play(settings, clock, history))
