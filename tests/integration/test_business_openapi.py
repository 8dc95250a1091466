"""Our OpenAPI document for the Business API: valid OpenAPI 3.1, served by the app, covering
every Graph route, and true: every documented endpoint is called over real HTTP (successes and
errors) and each answer is validated against the document (openapi_support.checked_client)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import business_support
import httpx
import jsonschema
import pytest
from business_support import provision_shop, run_in_thread, serving
from openapi_spec_validator import validate
from openapi_support import DOCUMENT, Coverage, check_response, checked_client, template_of
from test_business_api import BUSINESS, CUSTOMER, INTERACTIVE_BUTTONS, KINDS, customer_device

from tidings.app import create_app
from tidings.business.idempotency import KeyScope, request_fingerprint
from tidings.business.service import MANAGEMENT, MESSAGING
from tidings.business_api.openapi import DOCUMENT_PATH, business_api_document
from tidings.cli.business import _create
from tidings.config import load_settings
from tidings.runtime import build_runtime
from tidings.webhooks.routes import ReplayBody, SubscribeBody

SEND = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": "hi"}}
SCHEMAS = DOCUMENT["components"]["schemas"]


def test_the_document_is_valid_openapi_3_1() -> None:
    validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"
    assert DOCUMENT["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_documented_error_is_the_graph_envelope() -> None:
    for template, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            assert any(s.startswith("2") for s in operation["responses"]), (template, method)
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    assert response["content"] == {
                        "application/json": {"schema": {"$ref": "#/components/schemas/GraphError"}}
                    }, (template, method, status)


def test_every_graph_route_of_the_app_is_documented(tmp_path) -> None:
    runtime = build_runtime(load_settings(tmp_path / "data"))  # connects to nothing
    app = create_app(runtime)
    asyncio.run(runtime.close())
    # FastAPI's own document lists every route, though it cannot describe the Graph ones.
    served = {
        (template_of(example_path(path)), method)
        for path, item in app.openapi()["paths"].items()
        # The core (/v1/) and the operator's admin API (/admin/) are not Graph routes.
        if not path.startswith(("/v1/", "/admin/")) and path != "/healthz"
        for method in item
    }
    documented = {
        (template, method)
        for template, item in DOCUMENT["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert served == documented


def example_path(route_path: str) -> str:
    """A concrete path for a route: `/{version}/{node_id}` -> `/v1.0/123`."""
    return re.sub(r"\{[^}]+\}", "123", route_path.replace("{version}", "v1.0"))


def test_the_request_schemas_accept_what_the_server_accepts() -> None:
    validator = _validator({"$ref": "#/components/schemas/SendMessageRequest"})
    for kind, payload in KINDS:
        message = {"messaging_product": "whatsapp", "to": CUSTOMER, "type": kind, kind: payload}
        assert not list(validator.iter_errors(message)), kind
    read = _validator({"$ref": "#/components/schemas/MarkReadRequest"})
    body = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}
    assert not list(read.iter_errors({**body, "typing_indicator": {"type": "text"}}))
    # Hand-written mirrors of the webhooks routes' models (a layer above the adapter).
    for model, name in (
        (SubscribeBody, "SubscribeAppRequest"),
        (ReplayBody, "ReplayEventsRequest"),
    ):
        assert set(SCHEMAS[name]["properties"]) == set(model.model_json_schema()["properties"])


def _validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({**schema, "components": DOCUMENT["components"]})


def test_the_checker_catches_a_wrong_body() -> None:
    template = "/{version}/{phone_number_id}/messages"
    with pytest.raises(AssertionError, match="does not match"):
        check_response(template, "POST", 200, {"messages": [{"id": "nope"}]})
    with pytest.raises(AssertionError, match="does not list"):
        check_response(template, "POST", 418, {})


receiver = business_support.receiver


@pytest.fixture
def shop(settings, clock):
    made = provision_shop(settings, phone=BUSINESS)
    with serving(settings, clock) as server:
        yield made, server


async def test_the_app_serves_the_document(shop) -> None:
    _made, server = shop
    async with httpx.AsyncClient(base_url=server.url) as client:
        served = await client.get(DOCUMENT_PATH)
    assert served.status_code == 200 and served.json() == business_api_document()


async def test_every_endpoint_answers_as_documented(
    shop, settings, clock, receiver, tmp_path, monkeypatch
) -> None:
    made, server = shop
    local = build_runtime(settings, clock=clock)
    other = await asyncio.to_thread(
        run_in_thread, lambda: _create(settings, "Other Co", "+15550109998")
    )
    management_only = await local.businesses.issue_token(made.waba_id, (MANAGEMENT,))
    messaging_only = await local.businesses.issue_token(made.waba_id, (MESSAGING,))
    coverage = Coverage()
    auth = {"Authorization": f"Bearer {made.access_token}"}
    customer = await customer_device(settings, clock, server.url, tmp_path)
    try:
        async with checked_client(server.url, coverage, headers=auth) as api:
            phone, waba = f"/v23.0/{made.phone_number_id}", f"/v23.0/{made.waba_id}"
            await exercise_messages(
                api, coverage, phone, made, management_only, local, monkeypatch, server
            )
            await exercise_nodes(api, phone, other, management_only, messaging_only, receiver)
            await exercise_media(api, made, other, management_only)
            await exercise_webhooks(api, waba, other, messaging_only, receiver)
            await exercise_templates(api, waba, other)
            await exercise_policy(api, phone)
            # A customer writes; the business marks it read (the other success of /messages).
            await customer.send_text(BUSINESS, "hello?")
            wamid = await inbound_wamid(api, waba)
            read = await api.post(
                f"/{made.phone_number_id}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "status": "read",
                    "message_id": wamid,
                    "typing_indicator": {"type": "text"},
                },
            )
            assert read.json() == {"success": True}
    finally:
        await customer.close()
        await local.close()
    for template, item in DOCUMENT["paths"].items():
        for method in (m for m in item if m != "parameters"):
            seen = coverage.statuses(template, method)
            assert any(s < 300 for s in seen), f"no success of {method} {template}: {seen}"
            assert any(s >= 400 for s in seen), f"no error of {method} {template}: {seen}"
    send_statuses = coverage.statuses("/{version}/{phone_number_id}/messages", "POST")
    assert send_statuses == {200, 400, 401, 403, 404, 409, 413, 422, 500}


async def exercise_messages(
    api, coverage, phone, made, management_only, local, monkeypatch, server
) -> None:
    url = f"{phone}/messages"
    assert (await api.post(url, json=SEND)).status_code == 200
    interactive = {**SEND, "type": "interactive", "interactive": INTERACTIVE_BUTTONS}
    assert (await api.post(url, json=interactive)).status_code == 200
    expect = [
        (api.post(url, json={k: v for k, v in SEND.items() if k != "to"}), 400),
        (api.post(url, json=SEND, headers={"Authorization": "Bearer nope"}), 401),
        (api.post(url, json=SEND, headers={"Authorization": f"Bearer {management_only}"}), 403),
        (
            api.post(
                url,
                json={**SEND, "type": "template", "template": {"name": "x", "language": {}}},
            ),
            404,
        ),
        (api.post(url, content=b"{" + b" " * 3 * 1024 * 1024 + b"}"), 413),
    ]
    for call, status in expect:
        assert (await call).status_code == status
    # Idempotency-Key answers: a claim still running (409), the key reused (422).
    caller = await local.businesses.authenticate(made.access_token)
    held = KeyScope(caller.business_id, made.phone_number_id, "held")
    await local.idempotency.reserve(
        held, request_fingerprint(httpx.Request("POST", "/", json=SEND).content)
    )
    assert (await api.post(url, json=SEND, headers={"Idempotency-Key": "held"})).status_code == 409
    await api.post(url, json=SEND, headers={"Idempotency-Key": "used"})
    other_body = {**SEND, "text": {"body": "changed"}}
    reused = await api.post(url, json=other_body, headers={"Idempotency-Key": "used"})
    assert reused.status_code == 422
    monkeypatch.setattr(server.runtime.business_messaging, "accept", _explode)
    # The server closes a connection after an unexpected error: spend a connection of its own.
    async with checked_client(server.url, coverage, headers=dict(api.headers)) as once:
        assert (await once.post(url, json=SEND)).status_code == 500
    monkeypatch.undo()


async def _explode(*_args: Any, **_kwargs: Any) -> str:
    raise RuntimeError("boom")


async def exercise_nodes(api, phone, other, management_only, messaging_only, receiver) -> None:
    assert (await api.get(phone)).json()["id"] == phone.rsplit("/", 1)[1]
    assert (await api.get(f"/v23.0/{other.phone_number_id}")).status_code == 400
    assert (await api.get(phone, headers={"Authorization": "Bearer nope"})).status_code == 401
    forbidden = await api.get(phone, headers={"Authorization": f"Bearer {management_only}"})
    assert forbidden.status_code == 403
    override = {
        "webhook_configuration": {
            "override_callback_uri": receiver.url,
            "verify_token": receiver.verify_token,
        }
    }
    assert (await api.post(phone, json=override)).json() == {"success": True}
    assert (await api.post(phone, json={})).status_code == 400
    assert (await api.post(phone, json=override, headers={"Authorization": "Bearer x"})).is_error
    manager = {"Authorization": f"Bearer {messaging_only}"}
    assert (await api.post(phone, json=override, headers=manager)).status_code == 403


async def exercise_media(api, made, other, management_only) -> None:
    upload_url = f"/v23.0/{made.phone_number_id}/media"
    file = {"file": ("note.txt", b"Your invoice", "text/plain")}
    form = {"messaging_product": "whatsapp"}
    uploaded = await api.post(upload_url, files=file, data=form)
    media_id = uploaded.json()["id"]
    assert (await api.post(upload_url, files=file, data={})).status_code == 400
    denied = {"Authorization": f"Bearer {management_only}"}
    assert (await api.post(upload_url, files=file, data=form, headers=denied)).status_code == 403
    info = (await api.get(f"/v23.0/{media_id}")).json()
    assert info["id"] == media_id and info["file_size"] == len(b"Your invoice")
    downloaded = await api.get(info["url"])
    assert downloaded.content == b"Your invoice"
    assert (await api.get(info["url"], headers={"Authorization": "Bearer nope"})).is_error
    assert (await api.delete(f"/v23.0/{media_id}")).json() == {"success": True}
    assert (await api.delete(f"/v23.0/{media_id}")).status_code == 400
    assert (await api.get(f"/v23.0/{media_id}")).status_code == 400


async def exercise_webhooks(api, waba, other, messaging_only, receiver) -> None:
    apps = f"{waba}/subscribed_apps"
    subscription = {"override_callback_uri": receiver.url, "verify_token": receiver.verify_token}
    assert (await api.post(apps, json=subscription)).json() == {"success": True}
    assert (await api.get(apps)).json()["data"][0]["override_callback_uri"] == receiver.url
    assert (await api.get(f"/v23.0/{other.waba_id}/subscribed_apps")).status_code == 400
    manager = {"Authorization": f"Bearer {messaging_only}"}
    assert (await api.post(apps, headers=manager)).status_code == 403
    events = await api.get(f"{waba}/webhook_events", params={"limit": 5})
    assert events.status_code == 200
    assert (await api.get(f"{waba}/webhook_events", params={"limit": 0})).status_code == 400
    replay = await api.post(f"{waba}/webhook_events/replay", json={"after": 0})
    assert replay.json()["success"] is True
    bad_replay = await api.post(f"{waba}/webhook_events/replay", json={"after": -1})
    assert bad_replay.status_code == 400
    assert (await api.get(f"{waba}/webhook_health")).status_code == 200
    assert (await api.get(f"{waba}/webhook_health", headers=manager)).status_code == 403
    assert (await api.delete(apps)).json() == {"success": True}
    assert (await api.delete(apps, headers={"Authorization": "Bearer nope"})).status_code == 401


async def inbound_wamid(api, waba: str, timeout: float = 20.0) -> str:
    """The id of the first customer message, from the webhook event log."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        events = (await api.get(f"{waba}/webhook_events", params={"limit": 1000})).json()
        for event in events["data"]:
            for message in event["payload"].get("messages", []):
                return str(message["id"])
        await asyncio.sleep(0.1)
    raise AssertionError("the customer's message did not arrive")


async def exercise_policy(api, phone: str) -> None:
    """Consents and preflight: one success and one error each."""
    consent = {
        "wa_id": CUSTOMER,
        "category": "MARKETING",
        "action": "opt_in",
        "actor": "test",
        "wording": "Offers on WhatsApp?",
    }
    assert (await api.post(f"{phone}/consents", json=consent)).status_code == 200
    assert (await api.post(f"{phone}/consents", json={"wa_id": CUSTOMER})).status_code == 400
    assert (await api.get(f"{phone}/consents")).status_code == 200
    assert (await api.get(f"{phone}/consents", params={"limit": "x"})).status_code == 400
    assert (await api.get(f"{phone}/preflight", params={"to": CUSTOMER})).status_code == 200
    assert (await api.get(f"{phone}/preflight")).status_code == 400


async def exercise_templates(api, waba: str, other) -> None:
    """Templates: one success and one error for each documented operation."""
    from templates_support import body as template_body

    created = await api.post(f"{waba}/message_templates", json=template_body("order_ready"))
    assert created.status_code == 200, created.text
    template_id = created.json()["id"]
    assert (await api.post(f"{waba}/message_templates", json={"name": "x"})).status_code == 400
    assert (await api.get(f"{waba}/message_templates", params={"limit": 5})).status_code == 200
    assert (await api.get(f"/v23.0/{other.waba_id}/message_templates")).status_code == 400
    versions = await api.get(f"/v23.0/{template_id}/versions")
    assert versions.status_code == 200
    assert (await api.get("/v23.0/999999999999999/versions")).status_code == 400
    diff = await api.get(
        f"/v23.0/{template_id}/versions/diff", params={"from_version": 1, "to_version": 1}
    )
    assert diff.status_code == 200, diff.text
    missing = await api.get(
        f"/v23.0/{template_id}/versions/diff", params={"from_version": 1, "to_version": 9}
    )
    assert missing.status_code >= 400
    deleted = await api.delete(f"{waba}/message_templates", params={"name": "order_ready"})
    assert deleted.json() == {"success": True}
    assert (await api.delete(f"{waba}/message_templates")).status_code == 400
