"""Cost totals over HTTP (`GET /{waba_id}?fields=pricing_analytics...`, every answer checked
against our OpenAPI document) and from `tidings business costs`, after a day's traffic was
priced and delivered in another runtime (another process) with an injected clock."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from limits_support import provision, send, template
from openapi_support import checked_client

from conftest import run_in_thread, serving
from tidings.business.service import ALL_SCOPES, MESSAGING
from tidings.policy.categories import Category, PricingCategory
from tidings.policy.pricing import DEFAULT_RATE_CARD
from tidings.runtime import build_runtime

DAY = datetime(2026, 3, 10, tzinfo=UTC)
START = int(DAY.timestamp())
END = START + 86_400
TRAFFIC = [  # wamid, customer, category
    ("m1", "+5511900000001", Category.MARKETING),
    ("m2", "+5511900000002", Category.MARKETING),
    ("u1", "+5511900000001", Category.UTILITY),
    ("a1", "+4915112345678", Category.AUTHENTICATION),
]
MARKETING_BR = DEFAULT_RATE_CARD.price(PricingCategory.MARKETING, "BR")
UTILITY_BR = DEFAULT_RATE_CARD.price(PricingCategory.UTILITY, "BR")
AUTH_DE = DEFAULT_RATE_CARD.price(PricingCategory.AUTHENTICATION, "DE")
DAY_TOTAL = 2 * MARKETING_BR + UTILITY_BR + AUTH_DE


@pytest.fixture
def priced(settings, clock):
    """A business whose day of traffic was sent and delivered, then the server started."""
    clock.set(DAY.replace(hour=9))

    async def traffic():  # type: ignore[no-untyped-def]
        other = build_runtime(settings, clock=clock)
        try:
            phone = await provision(other, "+15550109999")
            for wamid, customer, category in TRAFFIC:
                assert (
                    await send(other, phone, customer, use=template(category), wamid=wamid)
                ).allowed
                async with other.database.unit_of_work() as uow:
                    await other.billing.on_statuses(
                        uow.session, [(wamid, "delivered")], clock.now()
                    )
            token = await other.businesses.issue_token(phone.waba_id, (MESSAGING,))
            stranger = await other.businesses.create("Other Shop", "+15550108888")
            return phone, token, stranger
        finally:
            await other.close()

    phone, messaging_token, stranger = run_in_thread(traffic)
    made = run_in_thread(lambda: _token_of(settings, clock, phone.waba_id))
    with serving(settings, clock) as server:
        yield server.url, phone, made, messaging_token, stranger


async def _token_of(settings, clock, waba_id: str) -> str:
    runtime = build_runtime(settings, clock=clock)
    try:
        return await runtime.businesses.issue_token(waba_id, ALL_SCOPES)
    finally:
        await runtime.close()


def analytics(*options: str) -> str:
    return f"pricing_analytics.start({START}).end({END}).granularity(DAILY)" + "".join(options)


async def test_pricing_analytics_match_the_rate_card(priced) -> None:
    url, phone, token, _, _ = priced
    async with checked_client(url, headers={"Authorization": f"Bearer {token}"}) as client:
        by_category = await client.get(
            f"/v23.0/{phone.waba_id}",
            params={"fields": analytics(".dimensions([PRICING_CATEGORY,PRICING_TYPE])")},
        )
        assert by_category.status_code == 200, by_category.text
        body = by_category.json()
        assert body["id"] == phone.waba_id
        [series] = body["pricing_analytics"]["data"]
        points = {p["pricing_category"]: p for p in series["data_points"]}
        assert points["MARKETING"] == {
            "start": START,
            "end": END,
            "pricing_category": "MARKETING",
            "pricing_type": "REGULAR",
            "volume": 2,
            "cost": pytest.approx(float(2 * MARKETING_BR)),
        }
        assert points["UTILITY"]["cost"] == pytest.approx(float(UTILITY_BR))
        assert points["AUTHENTICATION"]["cost"] == pytest.approx(float(AUTH_DE))

        # No dimensions: one point for the day; and without the version prefix.
        total = (await client.get(f"/{phone.waba_id}", params={"fields": analytics()})).json()
        [point] = total["pricing_analytics"]["data"][0]["data_points"]
        assert point["volume"] == 4 and point["cost"] == pytest.approx(float(DAY_TOTAL))

        only = await client.get(
            f"/v23.0/{phone.waba_id}",
            params={
                "fields": "id,"
                + analytics(".metric_types([VOLUME])", '.pricing_categories(["UTILITY"])')
            },
        )
        assert only.json()["pricing_analytics"]["data"][0]["data_points"] == [
            {"start": START, "end": END, "volume": 1}
        ]
        # Per country and number, and filtered by them.
        by_country = await client.get(
            f"/v23.0/{phone.waba_id}",
            params={"fields": analytics(".dimensions([COUNTRY,PHONE])")},
        )
        points = by_country.json()["pricing_analytics"]["data"][0]["data_points"]
        assert {(p["country"], p["phone_number"], p["volume"]) for p in points} == {
            ("BR", phone.display_phone_number, 3),
            ("DE", phone.display_phone_number, 1),
        }
        assert {p["country"]: p["cost"] for p in points}["DE"] == pytest.approx(float(AUTH_DE))
        german = await client.get(
            f"/v23.0/{phone.waba_id}",
            params={"fields": analytics('.country_codes(["de"])')},
        )
        [point] = german.json()["pricing_analytics"]["data"][0]["data_points"]
        assert point["volume"] == 1 and "country" not in point
        for numbers, volume in (([phone.display_phone_number], 4), (["+15550100077"], 0)):
            listed = ",".join(numbers)
            answer = await client.get(
                f"/v23.0/{phone.waba_id}",
                params={"fields": analytics(f".phone_numbers([{listed}])")},
            )
            found = answer.json()["pricing_analytics"]["data"][0]["data_points"]
            assert sum(p["volume"] for p in found) == volume
        # A day without traffic has no points.
        quiet = await client.get(
            f"/v23.0/{phone.waba_id}",
            params={
                "fields": f"pricing_analytics.start({END}).end({END + 86_400}).granularity(DAILY)"
            },
        )
        assert quiet.json()["pricing_analytics"]["data"] == [{"data_points": []}]


@pytest.mark.parametrize(
    ("fields", "details"),
    [
        (analytics().replace("DAILY", "MONTHLY"), "granularity must be DAILY"),
        (f"pricing_analytics.start({START}).granularity(DAILY)", "requires end"),
        (f"pricing_analytics.start({END}).end({START}).granularity(DAILY)", "end must come"),
        ("pricing_analytics.start(yesterday).end(1).granularity(DAILY)", "unix timestamp"),
        (analytics(".dimensions([TIER])"), "dimensions accepts"),
        (analytics(".phone_numbers([1])"), "phone_numbers has values that are not valid"),
        (analytics(".country_codes([BRA])"), "country_codes has values that are not valid"),
        (analytics(".country_codes([])"), "must be a non-empty list"),
        (analytics(".tiers([1])"), "does not support tiers"),
        (analytics(".dimensions(PRICING_TYPE)"), "must be a list"),
        (analytics(".start(1)"), "given twice"),
        (analytics() + ")", "Syntax error"),
        ("message_templates", "nonexisting field (message_templates)"),
    ],
)
async def test_bad_analytics_requests_get_graph_error_100(priced, fields, details) -> None:
    url, phone, token, _, _ = priced
    async with checked_client(url, headers={"Authorization": f"Bearer {token}"}) as client:
        response = await client.get(f"/v23.0/{phone.waba_id}", params={"fields": fields})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100
    assert details in error["error_data"]["details"]


async def test_costs_need_the_management_permission_and_stay_within_the_business(
    priced,
) -> None:
    url, phone, token, messaging_token, stranger = priced
    async with checked_client(url) as client:
        fields = {"fields": analytics()}
        no_token = await client.get(f"/v23.0/{phone.waba_id}", params=fields)
        assert no_token.status_code == 401
        forbidden = await client.get(
            f"/v23.0/{phone.waba_id}",
            params=fields,
            headers={"Authorization": f"Bearer {messaging_token}"},
        )
        assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == 10
        # Another business's WABA looks like no object at all.
        theirs = await client.get(
            f"/v23.0/{stranger.waba_id}",
            params=fields,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert theirs.status_code == 400 and theirs.json()["error"]["code"] == 100
        assert "pricing_analytics" not in theirs.text


def test_the_costs_command_prints_the_days_totals(priced, settings) -> None:
    _, phone, _, _, _ = priced
    base = [sys.executable, "-m", "tidings.cli.main", "business", "costs"]
    where = ["--data", str(settings.data_dir), "--db", settings.database_url]
    as_json = subprocess.run(
        [*base, "--waba-id", phone.waba_id, "--start", "2026-03-10", "--end", "2026-03-10",
         *where, "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    report = json.loads(as_json.stdout)
    assert report["total"] == str(DAY_TOTAL)
    assert {(d["pricing_category"], d["volume"]) for d in report["data"]} == {
        ("marketing", 2),
        ("utility", 1),
        ("authentication", 1),
    }
    table = subprocess.run(
        [*base, "--waba-id", phone.waba_id, "--start", "2026-03-09", "--end", "2026-03-11",
         *where],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "2026-03-10" in table.stdout and "marketing" in table.stdout
    assert f"{DAY_TOTAL:f} USD" in table.stdout
    for bad in (["--start", "10/03/2026"], ["--start", "2026-03-11", "--end", "2026-03-10"]):
        refused = subprocess.run(
            [*base, "--waba-id", phone.waba_id, *bad, *where], capture_output=True, text=True
        )
        assert refused.returncode != 0 and "--" in refused.stderr + refused.stdout
    unknown = subprocess.run([*base, "--waba-id", "999", *where], capture_output=True, text=True)
    assert unknown.returncode != 0 and "no business" in unknown.stderr + unknown.stdout
