"""Templates over HTTP: pywa's template calls and raw Graph requests against a real server.

Lifecycle (create → APPROVED / REJECTED / re-categorized → list with paging, fields, filters and
summary → edit → delete), the webhooks each change queues, Graph error codes for bad input,
the per-business limits, and tenant isolation.
"""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from business_support import ToOurServer, run_in_thread
from pywa import WhatsApp
from pywa.types import Pagination
from pywa.types import templates as t
from templates_support import Graph, body, error_of, start

from tidings.cli.business import _create
from tidings.runtime import build_runtime
from tidings.templates.service import TemplateLimits


@pytest.fixture
def shop(settings, clock):
    made = run_in_thread(lambda: _create(settings, "Acme Shop", "+15550109999"))
    runtime = build_runtime(settings, clock=clock)
    thread, server = start(runtime, settings, clock, limits=TemplateLimits(max_templates=6))
    graph = Graph(server.url, made.access_token, made.waba_id)
    yield made, server, graph
    graph.close()
    thread.stop()


def pywa_client(made, url: str) -> WhatsApp:
    return WhatsApp(
        phone_id=made.phone_number_id,
        token=made.access_token,
        session=httpx.Client(transport=ToOurServer(url)),
        waba_id=made.waba_id,
        api_version="23.0",
    )


def test_pywa_creates_lists_pages_and_deletes_templates(shop) -> None:
    made, server, graph = shop
    wa = pywa_client(made, server.url)
    created = wa.create_template(
        template=t.Template(
            name="seasonal_promotion",
            category=t.TemplateCategory.MARKETING,
            language=t.TemplateLanguage.ENGLISH_US,
            parameter_format=t.ParamFormat.NAMED,
            components=[
                t.HeaderText(text="Our {{sale_name}} is on!", sale_name="Summer Sale"),
                t.BodyText(
                    text="Shop now through {{end_date}} and use code {{discount_code}} to get"
                    " {{discount_amount}} off all merchandise.",
                    end_date="the end of August",
                    discount_code="25OFF",
                    discount_amount="25%",
                ),
                t.FooterText(text="Tap below to manage your marketing messages"),
                t.Buttons(
                    buttons=[
                        t.QuickReplyButton(text="Stop promotions"),
                        t.URLButton(
                            text="Shop",
                            url="https://shop.example/{{1}}",
                            example="https://shop.example/summer",
                        ),
                        t.CopyCodeButton(example="25OFF"),
                    ]
                ),
            ],
        )
    )
    assert (created.status, created.category) == ("APPROVED", "MARKETING")
    assert created.id.isdigit()
    auth = wa.create_template(
        template=t.Template(
            name="login_code",
            category=t.TemplateCategory.AUTHENTICATION,
            language=t.TemplateLanguage.ENGLISH_US,
            components=[
                t.AuthenticationBody(add_security_recommendation=True),
                t.AuthenticationFooter(code_expiration_minutes=10),
                t.Buttons(buttons=[t.CopyCodeOTPButton(text="Copy code")]),
            ],
        )
    )
    assert auth.status == "APPROVED"
    for i in range(3):
        assert graph.create(body(f"shipping_update_{i}")).status_code == 200

    everything = wa.get_templates()
    assert everything.total_count == 5 and everything.message_template_limit == 6
    by_name = {d.name: d for d in everything}
    promo = by_name["seasonal_promotion"]
    assert promo.parameter_format == t.ParamFormat.NAMED
    assert promo.category == t.TemplateCategory.MARKETING
    assert any(isinstance(c, t.BodyText) for c in promo.components)

    first = wa.get_templates(pagination=Pagination(limit=2))
    seen = [d.name for d in first]
    page = first
    while page.has_next:
        # pywa 4.5's TemplatesResult.next() is broken (it passes an argument its own
        # constructor refuses), so follow the `after` cursor as its docs suggest.
        page = wa.get_templates(pagination=Pagination(limit=2, after=page.after))
        seen.extend(d.name for d in page)
    assert sorted(seen) == sorted(by_name)

    marketing = wa.get_templates(categories=[t.TemplateCategory.MARKETING])
    assert [d.name for d in marketing] == ["seasonal_promotion"]
    assert wa.get_template(promo.id).name == "seasonal_promotion"

    assert wa.delete_template("shipping_update_0")
    assert wa.delete_template("shipping_update_1", template_id=by_name["shipping_update_1"].id)
    assert {d.name for d in wa.get_templates()} == {
        "seasonal_promotion",
        "login_code",
        "shipping_update_2",
    }


def test_raw_paging_fields_filters_and_summary(shop) -> None:
    made, server, graph = shop
    ids = [graph.create(body(f"notice_{i}")).json()["id"] for i in range(5)]
    first = graph.list(limit=2, fields="name,status", summary="total_count")
    assert first.status_code == 200, first.text
    page = first.json()
    assert [item["name"] for item in page["data"]] == ["notice_4", "notice_3"]
    assert set(page["data"][0]) == {"id", "name", "status"}
    assert page["summary"] == {"total_count": 5}
    assert page["paging"]["next"].startswith(server.url + "/v23.0/")
    second = graph.client.get(page["paging"]["next"]).json()
    assert [item["name"] for item in second["data"]] == ["notice_2", "notice_1"]
    back = graph.client.get(second["paging"]["previous"]).json()
    assert [item["name"] for item in back["data"]] == ["notice_4", "notice_3"]
    default = graph.list(name="notice_0").json()["data"]
    assert [item["id"] for item in default] == [ids[0]]
    assert set(default[0]) == {
        "id",
        "name",
        "language",
        "status",
        "category",
        "parameter_format",
        "components",
    }
    assert default[0]["components"][0]["example"] == {"body_text": [["Ann", "A-1001"]]}
    assert graph.list(content="notice 3 order", status="APPROVED").json()["data"]
    assert graph.list(status="REJECTED").json()["data"] == []
    assert graph.list(language="pt_BR").json()["data"] == []
    node = graph.client.get(f"/v23.0/{ids[0]}", params={"fields": "status"})
    assert node.json() == {"id": ids[0], "status": "APPROVED"}
    assert error_of(graph.list(after="not-a-cursor")) == (400, 100)
    # Unversioned paths work too.
    assert graph.client.get(f"/{made.waba_id}/message_templates").status_code == 200


def test_review_outcomes_and_their_webhooks(shop) -> None:
    _made, _server, graph = shop
    upsell = graph.create(
        body(
            "order_thanks",
            "Hi {{1}}, your order {{2}} has shipped! Use code THANKS10 to get 10% off your next"
            " purchase, shop now.",
        )
    )
    assert upsell.json()["category"] == "MARKETING"  # filed UTILITY, reads as promotional
    assert upsell.json()["status"] == "APPROVED"
    phishing = graph.create(
        body("card_check", "Dear {{1}}, please reply with your full card number and PIN today.")
    )
    assert phishing.json()["status"] == "REJECTED"
    listed = graph.list(fields="name,rejected_reason,previous_category,category").json()["data"]
    by_name = {item["name"]: item for item in listed}
    assert by_name["card_check"]["rejected_reason"] == "SCAM"
    assert by_name["order_thanks"]["previous_category"] == "UTILITY"

    categories = graph.events("template_category_update")
    assert categories == [
        {
            "message_template_id": int(upsell.json()["id"]),
            "message_template_name": "order_thanks",
            "message_template_language": "en_US",
            "previous_category": "UTILITY",
            "new_category": "MARKETING",
            "category_update_timestamp": categories[0]["category_update_timestamp"],
        }
    ]
    statuses = graph.events("message_template_status_update")
    assert [(s["message_template_name"], s["event"], s["reason"]) for s in statuses] == [
        ("order_thanks", "APPROVED", "NONE"),
        ("card_check", "REJECTED", "SCAM"),
    ]
    assert statuses[0]["message_template_id"] == int(upsell.json()["id"])
    assert statuses[0]["message_template_category"] == "MARKETING"
    assert "sensitive_data_request" in statuses[1]["rejection_info"]["reason"]


def test_edit_rules_and_versions(shop) -> None:
    _made, server, graph = shop
    created = graph.create(body("delivery_notice")).json()
    template_id = created["id"]
    new_text = "Hello {{1}}, parcel {{2}} is on its way and arrives before noon."
    edit = {
        "components": [
            {"type": "BODY", "text": new_text, "example": {"body_text": [["Ann", "P-1"]]}}
        ]
    }
    assert graph.client.post(f"/v23.0/{template_id}", json=edit).json() == {"success": True}
    again = graph.client.post(f"/v23.0/{template_id}", json=edit)
    assert error_of(again) == (400, 2388039)  # one edit of an approved template per 24 hours
    server.clock.advance(timedelta(hours=25))
    edit["components"][0]["text"] = new_text.replace("noon", "six")
    assert graph.client.post(f"/{template_id}", json=edit).status_code == 200
    category = graph.client.post(f"/v23.0/{template_id}", json={"category": "MARKETING"})
    assert error_of(category) == (400, 100)  # an approved template keeps its category
    versions = graph.client.get(f"/v23.0/{template_id}/versions").json()["data"]
    assert [(v["version"], v["status"], v["edited_from"]) for v in versions] == [
        (1, "APPROVED", None),
        (2, "APPROVED", "APPROVED"),
        (3, "APPROVED", "APPROVED"),
    ]
    diff = graph.client.get(
        f"/v23.0/{template_id}/versions/diff", params={"from_version": 1, "to_version": 3}
    ).json()
    assert [c["path"] for c in diff["changes"]] == ["BODY.example", "BODY.text"]
    assert "noon" not in diff["changes"][1]["new"]

    rejected = graph.create(body("bad_format", "Hello {{1}}{{2}} there, your parcel is here."))
    assert rejected.json()["status"] == "REJECTED"  # adjacent parameters
    fixed = {
        "components": [
            {
                "type": "BODY",
                "text": "Hello {{1}}, parcel {{2}} is here now.",
                "example": {"body_text": [["Ann", "P-2"]]},
            }
        ]
    }
    rid = rejected.json()["id"]
    assert graph.client.post(f"/v23.0/{rid}", json=fixed).status_code == 200
    assert graph.client.get(f"/v23.0/{rid}", params={"fields": "status"}).json()["status"] == (
        "APPROVED"
    )


def test_bad_input_gets_meta_error_codes(shop) -> None:
    made, _server, graph = shop
    cases = [
        ({"language": "en_US", "category": "UTILITY", "components": []}, 131008),
        (body("Bad-Name"), 100),
        (body("ok_name", language="xx_XX"), 100),
        (body("ok_name", category="PROMO"), 100),
        (body("ok_name", "{{1}} is ready for pickup at the front desk.", ["A-1"]), 2388299),
        (body("ok_name", "x" * 1025, []), 2388040),
        (body("ok_name", "Order {{1}} {{2}} {{3}} ok.", ["a", "b", "c"]), 2388293),
        (body("ok_name", "Your order {{ 1 }} is ready for pickup.", []), 2388047),
        (body("ok_name", examples=[]), 100),  # parameters without examples
        (
            body(
                "ok_name",
                components=[{"type": "FOOTER", "text": "Ref {{1}}"}],
            ),
            2388073,
        ),
    ]
    for request, code in cases:
        response = graph.create(request)
        assert error_of(response)[1] == code, (request, response.text)
        assert response.json()["error"]["error_data"]["details"]
    assert graph.list().json()["data"] == []
    for i in range(6):
        assert graph.create(body(f"filler_{i}")).status_code == 200
    assert error_of(graph.create(body("one_too_many"))) == (400, 2388019)
    duplicate = graph.create(body("filler_0"))
    assert duplicate.json()["error"]["error_subcode"] == 2388024
    assert error_of(
        graph.client.delete(
            f"/v23.0/{made.waba_id}/message_templates", params={"name": "nothing_here"}
        )
    ) == (400, 100)


def test_creations_are_limited_per_hour(settings, clock) -> None:
    made = run_in_thread(lambda: _create(settings, "Busy", "+15550109997"))
    runtime = build_runtime(settings, clock=clock)
    thread, server = start(runtime, settings, clock, limits=TemplateLimits(creations_per_hour=2))
    graph = Graph(server.url, made.access_token, made.waba_id)
    try:
        assert graph.create(body("first")).status_code == 200
        assert graph.create(body("second")).status_code == 200
        assert error_of(graph.create(body("third"))) == (400, 80007)
        clock.advance(timedelta(minutes=61))
        assert graph.create(body("third")).status_code == 200
        # A deleted approved name stays blocked for 30 days.
        graph.client.delete(f"/{made.waba_id}/message_templates", params={"name": "first"})
        blocked = graph.create(body("first"))
        assert blocked.json()["error"]["error_subcode"] == 2388023
    finally:
        graph.close()
        thread.stop()


def test_templates_are_confined_to_their_business(shop, settings) -> None:
    made, server, graph = shop
    other = run_in_thread(lambda: _create(settings, "Other", "+15550109998"))
    mine = graph.create(body("private_notice")).json()["id"]
    theirs = Graph(server.url, other.access_token, other.waba_id)
    try:
        attempts = [
            theirs.client.get(f"/v23.0/{mine}"),
            theirs.client.post(f"/v23.0/{mine}", json={"category": "UTILITY"}),
            theirs.client.get(f"/v23.0/{mine}/versions"),
            theirs.client.get(f"/v23.0/{made.waba_id}/message_templates"),
            theirs.client.post(f"/v23.0/{made.waba_id}/message_templates", json=body("x_y")),
            theirs.client.delete(
                f"/v23.0/{other.waba_id}/message_templates", params={"hsm_ids": f"[{mine}]"}
            ),
        ]
        for response in attempts:
            error = response.json()["error"]
            assert (response.status_code, error["code"], error.get("error_subcode")) == (
                400,
                100,
                33,
            ), response.request.url
        assert theirs.list().json()["data"] == []
        assert graph.list().json()["data"][0]["id"] == mine
    finally:
        theirs.close()
