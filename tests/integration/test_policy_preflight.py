"""Preflight and the consent API over HTTP, every answer checked against our OpenAPI
document: reasons a send could not go now, the earliest time it could, nothing recorded."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import template_send_support
from business_support import open_window
from openapi_support import checked_client
from template_send_support import BUSINESS, CUSTOMER, create_approved, set_template_state
from test_business_api import customer_device
from test_policy_templates import SUMMER_SALE

receiver, shop = template_send_support.receiver, template_send_support.shop


def reasons(answer: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(r["rule"], r["code"], r["reporting"]) for r in answer["reasons"]]


async def test_preflight_lists_every_reason_and_the_earliest_time(
    shop, settings, clock, tmp_path
) -> None:
    made, server, graph = shop
    template_id = create_approved(graph, made.waba_id, SUMMER_SALE)
    auth = {"Authorization": f"Bearer {made.access_token}"}
    url = f"/v23.0/{made.phone_number_id}/preflight"
    customer = await customer_device(settings, clock, server.url, tmp_path, window=False)
    try:
        async with checked_client(server.url, headers=auth) as api:
            never = (await api.get(url, params={"to": CUSTOMER})).json()
            assert never["allowed"] is False and never["category"] == "SERVICE"
            assert reasons(never) == [("window", 131047, "async")]
            assert never["retry_at"] is None and never["customer_service_window_open"] is False
            marketing = await api.get(url, params={"to": CUSTOMER, "template": "summer_sale"})
            answer = marketing.json()
            assert answer["allowed"] is True and answer["category"] == "MARKETING"
            assert answer["template"]["id"] == template_id
            assert answer["retry_at"] == answer["checked_at"]
            assert answer["pricing"]["type"] == "regular"

            await open_window(customer, BUSINESS, settings, clock, text="hello")
            clock.advance(hours=1)
            inside = await api.get(f"/{made.phone_number_id}/preflight", params={"to": CUSTOMER})
            assert inside.json()["allowed"] is True
            assert inside.json()["customer_service_window_open"] is True

            # The customer stops promotions and the template is paused for low quality: both
            # reasons are listed; the pause alone would end in 3 hours, the opt-out never.
            await customer.send_content(
                BUSINESS, {"type": "preferences", "preferences": {"marketing": "stop"}}
            )
            await wait_for(lambda: opted_out(api, url))
            until = clock.now() + timedelta(hours=3)
            await asyncio.to_thread(
                set_template_state, settings, template_id, status="PAUSED", paused_until=until
            )
            both = (await api.get(url, params={"to": CUSTOMER, "template": "summer_sale"})).json()
            assert reasons(both) == [("template", 132015, "sync"), ("consent", 131050, "async")]
            assert both["reasons"][0]["retry_after"] == 3 * 3600
            assert both["retry_at"] is None and both["template"]["status"] == "PAUSED"
            # Without the opt-out, the earliest time is the end of the pause.
            await customer.send_content(
                BUSINESS, {"type": "preferences", "preferences": {"marketing": "resume"}}
            )
            await wait_for(lambda: opted_out(api, url, expect=False))
            paused = await api.get(url, params={"to": CUSTOMER, "template": "summer_sale"})
            assert datetime.fromisoformat(paused.json()["retry_at"]) == until

            errors = [
                (await api.get(url), 400, 131008),
                (await api.get(url, params={"to": "12"}), 400, 100),
                (await api.get(url, params={"to": BUSINESS}), 400, 131021),
                (await api.get(url, params={"to": CUSTOMER, "template": "nope"}), 404, 132001),
                (await api.get(url, params={"to": CUSTOMER}, headers={"Authorization": "x"}),
                 401, 190),
            ]  # fmt: skip
            for response, status, code in errors:
                assert (response.status_code, response.json()["error"]["code"]) == (status, code)
        # Asking sends nothing: the only messages are the customer's and the two confirmations
        # of its stop and resume.
        assert template_send_support.stored_messages(settings) == 3
    finally:
        await customer.close()


async def opted_out(api, url: str, expect: bool = True) -> bool:
    answer = (await api.get(url, params={"to": CUSTOMER, "template": "summer_sale"})).json()
    return (("consent", 131050, "async") in reasons(answer)) is expect


async def wait_for(check, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        if loop.time() > deadline:
            raise AssertionError("the platform did not apply the customer's control in time")
        await asyncio.sleep(0.05)


async def test_consent_api_records_and_exports_evidence(shop, clock) -> None:
    made, server, _graph = shop
    auth = {"Authorization": f"Bearer {made.access_token}"}
    url = f"/v23.0/{made.phone_number_id}/consents"
    given = int((clock.now() - timedelta(days=2)).timestamp())
    opt_in = {
        "wa_id": CUSTOMER.lstrip("+"),
        "category": "marketing",
        "action": "opt_in",
        "actor": "checkout-page",
        "wording": "Yes, send me offers on WhatsApp",
        "timestamp": given,
        "detail": "order A-1001",
    }
    async with checked_client(server.url, headers=auth) as api:
        recorded = (await api.post(url, json=opt_in)).json()
        assert recorded["success"] is True
        clock.advance(minutes=1)
        second = {**opt_in, "category": "UTILITY", "action": "opt_out", "timestamp": None}
        second.pop("wording")
        assert (await api.post(url, json=second)).status_code == 200
        exported = (await api.get(url, params={"wa_id": CUSTOMER})).json()
        assert [(r["action"], r["category"], r["source"]) for r in exported["data"]] == [
            ("opt_in", "MARKETING", "api"),
            ("opt_out", "UTILITY", "api"),
        ]
        first = exported["data"][0]
        assert first["id"] == recorded["id"] and first["wa_id"] == CUSTOMER.lstrip("+")
        assert first["wording"] == opt_in["wording"] and first["actor"] == "checkout-page"
        assert datetime.fromisoformat(first["at"]).timestamp() == given
        page = (await api.get(url, params={"limit": 1, "after": recorded["id"]})).json()
        assert [r["action"] for r in page["data"]] == ["opt_out"]
        assert page["paging"]["cursors"]["after"] == page["data"][0]["id"]
        bad = [
            ({k: v for k, v in opt_in.items() if k != "wa_id"}, 131008),
            ({**opt_in, "wa_id": "12"}, 100),
            ({**opt_in, "category": "SERVICE"}, 100),
            ({**opt_in, "action": "resume"}, 100),
            ({**opt_in, "wording": None}, 131008),
            ({**opt_in, "actor": 7}, 100),
            ({**opt_in, "timestamp": "soon"}, 100),
            ({**opt_in, "timestamp": int(clock.now().timestamp()) + 600}, 100),
        ]
        for body, code in bad:
            response = await api.post(url, json=body)
            assert (response.status_code, response.json()["error"]["code"]) == (400, code), body
        assert (await api.post(url, content=b"[1]")).json()["error"]["code"] == 100
        assert (await api.get(url, params={"limit": 0})).status_code == 400
        assert (await api.get(url, headers={"Authorization": "Bearer nope"})).status_code == 401
        assert len((await api.get(url)).json()["data"]) == 2  # the refusals changed nothing
