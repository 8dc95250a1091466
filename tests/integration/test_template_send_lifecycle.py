"""The whole template lifecycle over HTTP: pywa creates a template that waits for a person, an
operator approves it through the admin API, pywa sends it (named parameters, every button kind)
and the customer's device shows it; an edit waits for review while sends keep using the
approved version; the diff between versions is read back; pywa gets Meta's exception classes
for paused and unknown templates."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from business_support import ToOurServer, run_in_thread
from pywa import WhatsApp
from pywa import errors as pywa_errors
from pywa.types import templates as t
from templates_support import start
from typer.testing import CliRunner

from conftest import issue_invite
from tidings.cli.business import _create
from tidings.cli.main import app as tidings_cli
from tidings.runtime import build_runtime
from tidings.sdk import DeviceClient, IncomingMessage
from tidings.templates.review import ReviewSettings

BUSINESS = "+15550109994"
CUSTOMER = "+15550100001"


@pytest.fixture
def held(settings, clock):
    made = run_in_thread(lambda: _create(settings, "Careful Co", BUSINESS))
    runtime = build_runtime(settings, clock=clock)
    thread, server = start(
        runtime, settings, clock, review_settings=ReviewSettings(human_review="always")
    )
    created = CliRunner().invoke(
        tidings_cli,
        [
            *("admin", "token", "create", "--label", "carol", "--json"),
            *("--data", str(settings.data_dir), "--db", settings.database_url),
        ],
    )
    assert created.exit_code == 0, created.output
    admin = httpx.Client(
        base_url=f"{server.url}/admin/v1",
        headers={"Authorization": f"Bearer {json.loads(created.output)['token']}"},
        timeout=30,
    )
    wa = WhatsApp(
        phone_id=made.phone_number_id,
        token=made.access_token,
        session=httpx.Client(transport=ToOurServer(server.url)),
        waba_id=made.waba_id,
        api_version="23.0",
    )
    yield made, server, admin, wa
    admin.close()
    thread.stop()


PROMO = t.Template(
    name="seasonal_promotion",
    category=t.TemplateCategory.MARKETING,
    language=t.TemplateLanguage.ENGLISH_US,
    parameter_format=t.ParamFormat.NAMED,
    components=[
        header := t.HeaderText(text="Our {{sale_name}} is on!", sale_name="Summer Sale"),
        body := t.BodyText(
            text="Shop now through {{end_date}} and use code {{discount_code}} to get"
            " {{discount_amount}} off all merchandise.",
            end_date="the end of August",
            discount_code="25OFF",
            discount_amount="25%",
        ),
        t.FooterText(text="Tap below to manage your marketing messages"),
        t.Buttons(
            buttons=[
                stop := t.QuickReplyButton(text="Stop promotions"),
                shop := t.URLButton(
                    text="Shop",
                    url="https://shop.example/{{1}}",
                    example="https://shop.example/summer",
                ),
                coupon := t.CopyCodeButton(example="25OFF"),
            ]
        ),
    ],
)
PROMO_PARAMS = [
    header.params(sale_name="Autumn Sale"),
    body.params(end_date="October 31", discount_code="FALL30", discount_amount="30%"),
    stop.params(callback_data="stop-promos", index=0),
    shop.params(url_variable="autumn?src=wa", index=1),
    coupon.params(coupon_code="FALL30", index=2),
]


async def next_template(client: DeviceClient) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 20
    while loop.time() < deadline:
        for event in await client.receive_once(5):
            if isinstance(event, IncomingMessage):
                return event.content["template"]
    raise AssertionError("no template message arrived")


async def test_create_review_send_edit_and_diff(held, settings, clock, tmp_path) -> None:
    made, server, admin, wa = held
    created = await asyncio.to_thread(wa.create_template, template=PROMO)
    assert created.status == "PENDING"
    with pytest.raises(pywa_errors.TemplateNotExists):  # not approved yet
        await asyncio.to_thread(wa.send_template, to=CUSTOMER, template=PROMO, params=PROMO_PARAMS)
    queue = admin.get("/templates/review").json()["data"]
    assert [q["name"] for q in queue] == ["seasonal_promotion"]
    assert admin.post(f"/templates/{created.id}/approve").status_code == 200

    code = await asyncio.to_thread(issue_invite, settings, CUSTOMER, clock)
    customer = await DeviceClient.register(server.url, CUSTOMER, code, tmp_path / "customer")
    try:
        sent = await asyncio.to_thread(
            wa.send_template, to=CUSTOMER, template=PROMO, params=PROMO_PARAMS
        )
        assert sent.id.startswith("wamid.")
        shown = await next_template(customer)
        assert shown["header"] == {"format": "TEXT", "text": "Our Autumn Sale is on!"}
        assert shown["body"]["text"] == (
            "Shop now through October 31 and use code FALL30 to get 30% off all merchandise."
        )
        assert shown["footer"]["text"] == "Tap below to manage your marketing messages"
        assert shown["buttons"] == [
            {"type": "QUICK_REPLY", "text": "Stop promotions", "payload": "stop-promos"},
            {"type": "URL", "text": "Shop", "url": "https://shop.example/autumn?src=wa"},
            {"type": "COPY_CODE", "text": "Copy offer code", "code": "FALL30"},
        ]

        # The business edits the footer: the edit waits for review, sends keep version 1.
        graph = httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {made.access_token}"}
        )
        listed = await graph.get(f"/v23.0/{created.id}", params={"fields": "components"})
        components = listed.json()["components"]
        for component in components:
            if component["type"] == "FOOTER":
                component["text"] = "Reply STOP to opt out of offers"
        edited = await graph.post(f"/v23.0/{created.id}", json={"components": components})
        assert edited.status_code == 200, edited.text
        await asyncio.to_thread(wa.send_template, to=CUSTOMER, template=PROMO, params=PROMO_PARAMS)
        assert (await next_template(customer))["footer"]["text"].startswith("Tap below")
        assert admin.post(f"/templates/{created.id}/approve").status_code == 200
        await asyncio.to_thread(wa.send_template, to=CUSTOMER, template=PROMO, params=PROMO_PARAMS)
        assert (await next_template(customer))["footer"]["text"] == (
            "Reply STOP to opt out of offers"
        )
        await graph.aclose()
    finally:
        await customer.close()

    diff = admin.get(f"/templates/{created.id}/versions/diff?from=1&to=2").json()
    assert [(c["path"], c["old"], c["new"]) for c in diff["changes"]] == [
        (
            "FOOTER.text",
            "Tap below to manage your marketing messages",
            "Reply STOP to opt out of offers",
        )
    ]
    versions = admin.get(f"/templates/{created.id}/versions").json()["data"]
    assert [(v["version"], v["status"], v["decided_by"]) for v in versions] == [
        (1, "APPROVED", "operator:carol"),
        (2, "APPROVED", "operator:carol"),
    ]

    with pytest.raises(pywa_errors.TemplateParamCountMismatch):
        await asyncio.to_thread(
            wa.send_template,
            to=CUSTOMER,
            name="seasonal_promotion",
            language=t.TemplateLanguage.ENGLISH_US,
            params=PROMO_PARAMS[1:],
        )
    with pytest.raises(pywa_errors.TemplateNotExists):
        await asyncio.to_thread(
            wa.send_template,
            to=CUSTOMER,
            name="seasonal_promotion",
            language=t.TemplateLanguage.FRENCH,
            params=PROMO_PARAMS,
        )
