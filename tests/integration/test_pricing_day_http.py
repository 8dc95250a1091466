"""The cost of a day's traffic over HTTP, end to end: templates and free-form messages sent
through the send endpoint, delivered to a customer's real device, their status webhooks'
`pricing`, and `pricing_analytics` on the WABA node matching the rate card."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import template_send_support
from openapi_support import checked_client
from template_send_support import BUSINESS, CUSTOMER, create_approved, send_body
from test_limits_http import SHIPPING_UPDATE, shipping
from test_template_send import customer_device, received

from tidings.policy.categories import PricingCategory
from tidings.policy.pricing import DEFAULT_RATE_CARD

receiver, shop = template_send_support.receiver, template_send_support.shop

WEEKEND_SALE = {
    "name": "weekend_sale",
    "language": "en_US",
    "category": "MARKETING",
    "components": [
        {
            "type": "BODY",
            "text": "Hi {{1}}, our weekend sale starts today with new arrivals in every store.",
            "example": {"body_text": [["Ann"]]},
        }
    ],
}
MARKETING_US = DEFAULT_RATE_CARD.price(PricingCategory.MARKETING, "US")
UTILITY_US = DEFAULT_RATE_CARD.price(PricingCategory.UTILITY, "US")


def sale() -> dict:
    return send_body(
        "weekend_sale", [{"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}]
    )


async def test_the_cost_of_a_days_traffic_matches_the_rate_card(
    shop, settings, clock, receiver, tmp_path
) -> None:
    made, server, graph = shop
    for template in (SHIPPING_UPDATE, WEEKEND_SALE):
        create_approved(graph, made.waba_id, template)
    customer = await customer_device(settings, clock, server.url, tmp_path)
    url = f"/v23.0/{made.phone_number_id}/messages"

    def post(body: dict) -> str:
        response = graph.post(url, json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["messages"][0]["id"])

    try:
        # Outside the customer service window: every template is charged.
        regular = [await asyncio.to_thread(post, body) for body in (sale(), sale())]
        regular += [await asyncio.to_thread(post, shipping()) for _ in range(3)]
        await received(customer, 5)
        # The customer writes: inside the window utility templates and replies are free.
        await customer.send_text(BUSINESS, "Where is my order?")
        receiver.wait_for(lambda posts: any(m.get("type") == "text" for m in receiver.messages()))
        free_utility = await asyncio.to_thread(post, shipping())
        reply = await asyncio.to_thread(
            post, {"messaging_product": "whatsapp", "to": CUSTOMER, "text": {"body": "Today!"}}
        )
        await received(customer, 2)
        wamids = [*regular, free_utility, reply]
        receiver.wait_for(
            lambda posts: (
                {s["id"] for s in receiver.statuses() if s["status"] == "delivered"} >= set(wamids)
            )
        )
        pricing = {s["id"]: s["pricing"] for s in receiver.statuses() if s["status"] == "delivered"}
        assert [pricing[w]["category"] for w in regular] == ["marketing"] * 2 + ["utility"] * 3
        assert all(pricing[w]["type"] == "regular" and pricing[w]["billable"] for w in regular)
        assert pricing[free_utility] == {
            "billable": False,
            "pricing_model": "PMP",
            "type": "free_customer_service",
            "category": "utility",
        }
        assert pricing[reply]["category"] == "service" and not pricing[reply]["billable"]

        now = int(clock.now().timestamp())
        start, end = now - 86_400, now + 86_400
        fields = (
            f"pricing_analytics.start({start}).end({end}).granularity(DAILY)"
            ".dimensions([PRICING_CATEGORY,PRICING_TYPE])"
        )
        headers = {"Authorization": f"Bearer {made.access_token}"}
        async with checked_client(server.url, headers=headers) as client:
            answer = await client.get(f"/v23.0/{made.waba_id}", params={"fields": fields})
        assert answer.status_code == 200, answer.text
        totals: dict[tuple[str, str], tuple[int, Decimal]] = {}
        for point in answer.json()["pricing_analytics"]["data"][0]["data_points"]:
            key = (point["pricing_category"], point["pricing_type"])
            volume, cost = totals.get(key, (0, Decimal(0)))
            totals[key] = (volume + point["volume"], cost + Decimal(str(point["cost"])))
        assert totals == {
            ("MARKETING", "REGULAR"): (2, 2 * MARKETING_US),
            ("UTILITY", "REGULAR"): (3, 3 * UTILITY_US),
            ("UTILITY", "FREE_CUSTOMER_SERVICE"): (1, Decimal(0)),
            ("SERVICE", "FREE_CUSTOMER_SERVICE"): (1, Decimal(0)),
        }
    finally:
        await customer.close()
