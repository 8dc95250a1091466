"""Subscriptions: the GET handshake, subscribed_apps, overrides and their precedence."""

from __future__ import annotations

import pytest
from test_webhooks_helpers import (
    PHONE,
    VERIFY_TOKEN,
    WABA,
    Harness,
    enqueue,
    harness,
    receiver,
    subscribe,
)

from tidings.errors import ValidationFailed

__all__ = ["harness", "receiver"]  # fixtures


async def test_handshake_succeeds_when_the_challenge_is_echoed(harness: Harness, receiver) -> None:
    assert await harness.service.verify_endpoint(receiver.url(), VERIFY_TOKEN)
    [get] = receiver.received
    assert get.method == "GET"
    assert get.query["hub.mode"] == ["subscribe"]
    assert get.query["hub.verify_token"] == [VERIFY_TOKEN]
    assert get.query["hub.challenge"][0].isdigit()


async def test_handshake_fails_on_wrong_token_wrong_echo_or_non_200(
    harness: Harness, receiver
) -> None:
    assert not await harness.service.verify_endpoint(receiver.url(), "wrong token")
    receiver.echo_challenge = False
    assert not await harness.service.verify_endpoint(receiver.url(), VERIFY_TOKEN)
    receiver.echo_challenge = True
    receiver.handshake_status = 500
    assert not await harness.service.verify_endpoint(receiver.url(), VERIFY_TOKEN)
    receiver.handshake_status = 204
    assert not await harness.service.verify_endpoint(receiver.url(), VERIFY_TOKEN)


async def test_a_failed_handshake_refuses_the_subscription_and_stores_nothing(
    harness: Harness, receiver
) -> None:
    receiver.handshake_status = 404
    with pytest.raises(ValidationFailed, match="Callback verification failed") as failure:
        await harness.service.subscribe_app(WABA, receiver.url("/waba"), VERIFY_TOKEN)
    assert "HTTP 404" in failure.value.message
    assert failure.value.details["graph_code"] == 2200
    assert await harness.service.list_subscribed_apps(WABA) == []
    receiver.handshake_status = 200
    with pytest.raises(ValidationFailed, match="HTTP 403"):  # the receiver refuses the token
        await harness.service.set_phone_override(PHONE, WABA, receiver.url("/p"), "wrong token")
    receiver.echo_challenge = False
    with pytest.raises(ValidationFailed, match=r"did not echo hub\.challenge"):
        await harness.service.set_phone_override(PHONE, WABA, receiver.url("/p"), VERIFY_TOKEN)
    receiver.echo_challenge = True
    with pytest.raises(ValidationFailed, match="verification failed"):
        await harness.service.set_app_callback(receiver.url("/app"), "wrong token")


async def test_override_limits(harness: Harness, receiver) -> None:
    too_long = receiver.url("/" + "x" * 200)
    with pytest.raises(ValidationFailed, match="200 characters"):
        await harness.service.subscribe_app(WABA, too_long, VERIFY_TOKEN)
    with pytest.raises(ValidationFailed, match="verify_token"):
        await harness.service.subscribe_app(WABA, receiver.url(), None)
    assert receiver.received == []


async def test_subscribe_list_and_unsubscribe(harness: Harness, receiver) -> None:
    await harness.service.set_app_callback(
        receiver.url("/app"), VERIFY_TOKEN, name="Acme CRM", link="https://acme.example"
    )
    await harness.service.subscribe_app(WABA)
    [app] = await harness.service.list_subscribed_apps(WABA)
    assert app.to_graph() == {
        "whatsapp_business_api_data": {
            "id": "tidings",
            "link": "https://acme.example",
            "name": "Acme CRM",
        }
    }
    await harness.service.subscribe_app(WABA, receiver.url("/waba"), VERIFY_TOKEN)
    [app] = await harness.service.list_subscribed_apps(WABA)
    assert app.to_graph()["override_callback_uri"] == receiver.url("/waba")
    await harness.service.subscribe_app(WABA)  # again without an override: back to the app's
    [app] = await harness.service.list_subscribed_apps(WABA)
    assert app.override_callback_uri is None
    assert await harness.service.list_subscribed_apps("another-waba") == []
    assert await harness.service.unsubscribe_app(WABA)
    assert not await harness.service.unsubscribe_app(WABA)
    assert await harness.service.list_subscribed_apps(WABA) == []


async def test_unsubscribed_wabas_keep_events_but_send_nothing(harness: Harness, receiver) -> None:
    event_id = await enqueue(harness, {"nobody": "listens"})
    assert await harness.run() == 0
    events, _ = await harness.service.events_since(WABA, 0)
    assert [e.id for e in events] == [event_id]
    assert events[0].deliveries == []


async def test_precedence_phone_then_waba_then_app(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver, "/app")
    to_app = await enqueue(harness, {"n": 1})
    await harness.service.subscribe_app(WABA, receiver.url("/waba"), VERIFY_TOKEN)
    to_waba = await enqueue(harness, {"n": 2})
    await harness.service.set_phone_override(PHONE, WABA, receiver.url("/phone"), VERIFY_TOKEN)
    to_phone = await enqueue(harness, {"n": 3})
    other_number = await enqueue(harness, {"n": 4}, phone="phone-other")
    no_number = await enqueue(harness, {"n": 5}, phone=None)
    await harness.service.set_phone_override(PHONE, WABA, "", None)  # removed
    after_removal = await enqueue(harness, {"n": 6})
    assert await harness.run() == 6

    def ids(path: str) -> set[str]:
        return {p.headers["x-tidings-event-id"] for p in receiver.posts(path)}

    assert ids("/app") == {to_app}
    assert ids("/waba") == {to_waba, other_number, no_number, after_removal}
    assert ids("/phone") == {to_phone}


async def test_a_phone_override_of_another_waba_is_ignored(harness: Harness, receiver) -> None:
    await subscribe(harness, receiver, "/app")
    await harness.service.set_phone_override(
        PHONE, "some-other-waba", receiver.url("/phone"), VERIFY_TOKEN
    )
    await enqueue(harness, {"n": 1})
    assert await harness.run() == 1
    assert len(receiver.posts("/app")) == 1
