"""Messaging limits and the pair rate over HTTP, end to end, with an injected clock: template
sends through the real send endpoint, refusals in the Graph envelope, the automatic tier
upgrade decided by the business worker and announced by webhooks."""

from __future__ import annotations

from datetime import timedelta

import httpx
import template_send_support
from business_support import provision_shop, serving
from limits_support import customers
from template_send_support import CUSTOMER, create_approved, send_body, stored_messages

receiver, shop = template_send_support.receiver, template_send_support.shop

SHIPPING_UPDATE = {
    "name": "shipping_update",
    "language": "en_US",
    "category": "UTILITY",
    "components": [
        {
            "type": "BODY",
            "text": "Your order {{1}} has shipped and should arrive on {{2}}. Reply here with"
            " any questions.",
            "example": {"body_text": [["A-1001", "Monday"]]},
        }
    ],
}


def shipping(to: str = CUSTOMER) -> dict:
    body = send_body(
        "shipping_update",
        [{"type": "body", "parameters": [{"type": "text", "text": "A-7"}, {"type": "text",
                                                                           "text": "Friday"}]}],
    )  # fmt: skip
    body["to"] = to
    return body


def test_the_pair_rate_rejects_the_46th_rapid_message(shop, settings, clock) -> None:
    made, _server, graph = shop
    create_approved(graph, made.waba_id, SHIPPING_UPDATE)
    url = f"/v23.0/{made.phone_number_id}/messages"
    for n in range(45):
        response = graph.post(url, json=shipping())
        assert response.status_code == 200, (n, response.text)
    refused = graph.post(url, json=shipping())
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == 131056
    assert "same customer" in error["error_data"]["details"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 6  # one more every 6 seconds
    keyed = graph.post(url, json=shipping(), headers={"Idempotency-Key": "pair-rate-1"})
    assert keyed.json()["error"]["code"] == 131056
    assert 1 <= int(keyed.headers["Retry-After"]) <= 6
    assert stored_messages(settings) == 45  # the refused send stored nothing
    # Another customer is not held back by this pair.
    assert graph.post(url, json=shipping("+15550100002")).status_code == 200
    # One more every 6 seconds.
    clock.advance(timedelta(seconds=6))
    assert graph.post(url, json=shipping()).status_code == 200
    assert graph.post(url, json=shipping()).json()["error"]["code"] == 131056


def test_a_tier_upgrade_follows_enough_good_traffic(settings, clock, receiver) -> None:
    """125 new customers (half of 250) reached outside a window: the worker's review upgrades
    the business to TIER_2K, announces it by webhooks, and the phone node shows it."""
    fast = settings.model_copy(
        update={
            "business": settings.business.model_copy(update={"worker_poll_seconds": 0.1}),
            "messaging_limits": settings.messaging_limits.model_copy(
                update={"tier_upgrade_delay_seconds": 0}
            ),
        }
    )
    made = provision_shop(fast, receiver)
    headers = {"Authorization": f"Bearer {made.access_token}"}
    with (
        serving(fast, clock) as server,
        httpx.Client(base_url=server.url, headers=headers, timeout=30) as graph,
    ):
        # WABA-level events (business_capability_update) go to the WABA's endpoint.
        subscribed = graph.post(
            f"/v23.0/{made.waba_id}/subscribed_apps",
            json={"override_callback_uri": receiver.url, "verify_token": receiver.verify_token},
        )
        assert subscribed.status_code == 200, subscribed.text
        create_approved(graph, made.waba_id, SHIPPING_UPDATE)
        url = f"/v23.0/{made.phone_number_id}/messages"
        node = f"/v23.0/{made.phone_number_id}"
        for customer in customers(124):
            assert graph.post(url, json=shipping(customer)).status_code == 200
            clock.advance(timedelta(milliseconds=13))
        assert graph.get(node).json()["messaging_limit_tier"] == "TIER_250"
        assert graph.post(url, json=shipping(customers(1, start=124)[0])).status_code == 200
        clock.advance(timedelta(minutes=10))  # the worker reviews tiers every 10 minutes

        def upgraded(posts) -> bool:  # type: ignore[no-untyped-def]
            fields = {c["field"] for p in posts for e in p.json["entry"] for c in e["changes"]}
            return {"phone_number_quality_update", "business_capability_update"} <= fields

        posts = receiver.wait_for(upgraded)
        changes = {
            c["field"]: c["value"] for p in posts for e in p.json["entry"] for c in e["changes"]
        }
        assert changes["phone_number_quality_update"]["event"] == "UPGRADE"
        assert changes["phone_number_quality_update"]["old_limit"] == "TIER_250"
        assert changes["phone_number_quality_update"]["current_limit"] == "TIER_2K"
        assert changes["business_capability_update"]["max_daily_conversation_per_phone"] == 2000
        assert graph.get(node).json()["messaging_limit_tier"] == "TIER_2K"
