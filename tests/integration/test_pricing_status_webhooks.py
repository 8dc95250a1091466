"""The `pricing` object of status webhooks end to end: a message sent over HTTP, delivered to
a customer's real device, reports the charge stored for it, and that charge is then due.

Until template sends over HTTP and the policy gate in `accept` are on main, the charge of the
sent message is recorded by a second runtime (another process) through the gate's pricing
source, as `accept` will do it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from business_support import Receiver, run_in_thread, start_receiver
from limits_support import send, template
from test_business_api import CUSTOMER, customer_device, messages

from conftest import RunningServer, ServerThread
from tidings.billing.repository import BillingRepository
from tidings.cli.business import _create, _webhook
from tidings.policy.categories import Category, PricingCategory
from tidings.policy.pricing import DEFAULT_RATE_CARD
from tidings.runtime import build_runtime

BUSINESS = "+15550109999"


@pytest.fixture
def receiver():
    made = Receiver()
    httpd = start_receiver(made)
    yield made
    httpd.shutdown()


@pytest.fixture
def shop(settings, clock, receiver):
    made = run_in_thread(lambda: _create(settings, "Acme Shop", BUSINESS))
    run_in_thread(
        lambda: _webhook(settings, made.phone_number_id, receiver.url, receiver.verify_token)
    )
    runtime = build_runtime(settings, clock=clock)
    thread = ServerThread(runtime)
    thread.start()
    yield made, RunningServer(f"http://127.0.0.1:{thread.port}", runtime, settings, clock)
    thread.stop()


def price_as_template(settings, clock, phone_number_id: str, wamid: str):  # type: ignore[no-untyped-def]
    async def record():  # type: ignore[no-untyped-def]
        other = build_runtime(settings, clock=clock)
        try:
            phone = await other.businesses.phone_by_number_id(phone_number_id)
            async with other.database.read_only() as uow:
                stored = await BillingRepository(uow.session).by_wamid(wamid)
            if stored is None:  # `accept` does not record charges yet
                decision = await send(
                    other, phone, CUSTOMER, use=template(Category.MARKETING), wamid=wamid
                )
                assert decision.allowed, decision.reasons
            return phone
        finally:
            await other.close()

    return run_in_thread(record)


def charge_of(settings, clock, wamid: str):  # type: ignore[no-untyped-def]
    async def read():  # type: ignore[no-untyped-def]
        other = build_runtime(settings, clock=clock)
        try:
            async with other.database.read_only() as uow:
                row = await BillingRepository(uow.session).by_wamid(wamid)
                assert row is not None
                return row.pricing_category, row.pricing_type, row.billable, row.delivered_at
        finally:
            await other.close()

    return run_in_thread(read)


async def test_delivered_status_reports_the_stored_pricing_and_makes_the_charge_due(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    headers = {"Authorization": f"Bearer {made.access_token}"}
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=headers) as api:
            response = await api.post(
                f"/v23.0/{made.phone_number_id}/messages",
                json={"messaging_product": "whatsapp", "to": CUSTOMER, "text": {"body": "Hi"}},
            )
            assert response.status_code == 200, response.text
        wamid = response.json()["messages"][0]["id"]
        # Priced before the customer's device can acknowledge it.
        phone = price_as_template(settings, clock, made.phone_number_id, wamid)
        category, kind, billable, delivered_at = charge_of(settings, clock, wamid)
        assert delivered_at is None
        clock.advance(timedelta(seconds=5))
        [got] = messages(await _collect_one(customer))
        assert got.sender == BUSINESS
        posts = receiver.wait_for(
            lambda posts: any(
                s["id"] == wamid and s["status"] == "delivered" for s in _statuses(posts)
            )
        )
        [delivered] = [
            s for s in _statuses(posts) if s["id"] == wamid and s["status"] == "delivered"
        ]
        assert delivered["pricing"] == {
            "billable": billable,
            "pricing_model": "PMP",
            "type": kind,
            "category": category,
        }
        assert delivered["conversation"]["origin"] == {"type": category}
        if kind == "regular":  # the marketing charge recorded above
            assert (category, billable) == ("marketing", True)
        _, _, _, delivered_at = charge_of(settings, clock, wamid)
        assert delivered_at == clock.now()
        lines = run_in_thread(lambda: _costs(settings, clock, phone.business_id))
        expected = DEFAULT_RATE_CARD.price(PricingCategory.MARKETING, "US") if billable else 0
        assert sum(line.cost for line in lines) == expected
        assert sum(line.volume for line in lines) == 1
    finally:
        await customer.close()


async def _collect_one(customer):  # type: ignore[no-untyped-def]
    from test_business_api import collect

    return await collect(customer, lambda events: messages(events))


async def _costs(settings, clock, business_id: int):  # type: ignore[no-untyped-def]
    other = build_runtime(settings, clock=clock)
    try:
        now = clock.now()
        return await other.billing.daily_costs(
            business_id, now - timedelta(days=1), now + timedelta(days=1)
        )
    finally:
        await other.close()


def _statuses(posts):  # type: ignore[no-untyped-def]
    return [
        s
        for p in posts
        for e in p.json["entry"]
        for c in e["changes"]
        for s in c["value"].get("statuses", [])
    ]
