"""System-user tokens: hashed at rest, scoped, expiring, revocable, and confined to their
business (Graph codes 190 and 10, and 100/33 for another business's objects)."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from business_support import provision_shop, run_in_thread, serving
from test_core_registration import _dump_database

from tidings.cli.business import _create, _revoke, _token

GOOD = {
    "messaging_product": "whatsapp",
    "to": "+15550100001",
    "type": "text",
    "text": {"body": "hi"},
}


@pytest.fixture
def served(settings, clock):
    made = provision_shop(settings, name="Acme")
    with serving(settings, clock) as server:
        yield made, server


def send(server, made, token: str) -> httpx.Response:
    with httpx.Client(base_url=server.url) as client:
        return client.post(
            f"/v23.0/{made.phone_number_id}/messages",
            json=GOOD,
            headers={"Authorization": f"Bearer {token}"},
        )


def graph_code(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error"]["code"]


def test_tokens_expire_and_can_be_revoked(served, settings) -> None:
    made, server = served
    short = run_in_thread(
        lambda: _token(settings, made.waba_id, ("whatsapp_business_messaging",), 1)
    )
    assert send(server, made, short).status_code == 200
    server.clock.advance(timedelta(days=2))  # the CLI issued it on the system clock
    assert graph_code(send(server, made, short)) == (401, 190)
    assert send(server, made, made.access_token).status_code == 200  # no expiry
    run_in_thread(lambda: _revoke(settings, made.access_token))
    assert graph_code(send(server, made, made.access_token)) == (401, 190)


def test_scopes_are_enforced(served, settings) -> None:
    made, server = served
    management_only = run_in_thread(
        lambda: _token(settings, made.waba_id, ("whatsapp_business_management",), None)
    )
    assert graph_code(send(server, made, management_only)) == (403, 10)
    with httpx.Client(base_url=server.url) as client:
        listed = client.get(
            f"/v23.0/{made.waba_id}/subscribed_apps",
            headers={"Authorization": f"Bearer {management_only}"},
        )
        assert listed.status_code == 200, listed.text
        messaging_only = run_in_thread(
            lambda: _token(settings, made.waba_id, ("whatsapp_business_messaging",), None)
        )
        refused = client.get(
            f"/v23.0/{made.waba_id}/subscribed_apps",
            headers={"Authorization": f"Bearer {messaging_only}"},
        )
        assert graph_code(refused) == (403, 10)


def test_a_token_never_reaches_another_business(served, settings) -> None:
    made, server = served
    other = run_in_thread(lambda: _create(settings, "Other", "+15550109998"))
    with httpx.Client(base_url=server.url) as client:
        headers = {"Authorization": f"Bearer {made.access_token}"}
        for method, path in [
            ("POST", f"/v23.0/{other.phone_number_id}/messages"),
            ("GET", f"/v23.0/{other.phone_number_id}"),
            ("GET", f"/v23.0/{other.waba_id}/subscribed_apps"),
            ("GET", f"/{other.waba_id}/webhook_events"),
        ]:
            response = client.request(
                method, path, json=GOOD if method == "POST" else None, headers=headers
            )
            body = response.json()["error"]
            assert (response.status_code, body["code"], body.get("error_subcode")) == (
                400,
                100,
                33,
            ), path


def test_tokens_and_secrets_are_not_stored_in_the_clear(served) -> None:
    made, server = served
    dump = _dump_database(server)
    assert made.access_token not in dump
    assert made.app_secret not in dump
