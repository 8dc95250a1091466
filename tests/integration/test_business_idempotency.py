"""`Idempotency-Key` on sends (beyond Meta): a retry answers the first response and sends
nothing twice; a reused key with another body is refused; concurrent duplicates send once;
keys expire after 24 h; refusals (4xx) are replayed, server failures (5xx) are not."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest
from business_support import provision_shop, run_in_thread, serving
from openapi_support import checked_client
from sqlalchemy import func, select
from test_business_api import CUSTOMER, collect, customer_device, messages

from tidings.business.idempotency import (
    KEY_TTL,
    LEASE,
    Claim,
    KeyInProgress,
    KeyReused,
    KeyScope,
    Replay,
    request_fingerprint,
)
from tidings.business.models import BusinessMessage, IdempotencyKey
from tidings.cli.business import _create
from tidings.runtime import Runtime

BUSINESS = "+15550109999"


def text(body: str, to: str = CUSTOMER) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"body": body}}


@pytest.fixture
def shop(settings, clock):
    made = provision_shop(settings, phone=BUSINESS)
    with serving(settings, clock) as server:
        yield made, server


@pytest.fixture
async def api(shop):
    """Every answer is also checked against the Business API's OpenAPI document."""
    made, server = shop
    headers = {"Authorization": f"Bearer {made.access_token}"}
    async with checked_client(server.url, headers=headers) as client:
        yield client


def url_of(made) -> str:
    return f"/v23.0/{made.phone_number_id}/messages"


async def outbound_count(runtime: Runtime) -> int:
    async with runtime.database.read_only() as uow:
        count = await uow.session.scalar(
            select(func.count())
            .select_from(BusinessMessage)
            .where(BusinessMessage.direction == "out")
        )
    return int(count or 0)


async def test_retry_answers_the_first_response_and_the_customer_gets_one_message(
    shop, api, local, settings, clock, tmp_path
) -> None:
    made, server = shop
    customer = await customer_device(settings, clock, server.url, tmp_path)
    try:
        key = {"Idempotency-Key": "order-42-shipped"}
        first = await api.post(url_of(made), json=text("Your order shipped"), headers=key)
        assert first.status_code == 200, first.text
        # Same request, keys in another order and other spacing: the same canonical body.
        retry = await api.post(
            f"/{made.phone_number_id}/messages",
            content=b'{"type":"text","text":{"body":"Your order shipped"},'
            b' "to":"' + CUSTOMER.encode() + b'","messaging_product":"whatsapp"}',
            headers={**key, "content-type": "application/json"},
        )
        assert retry.status_code == 200
        assert retry.content == first.content
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        # A marker sent after the retry: once it arrives, a duplicate would have arrived too.
        marker = await api.post(url_of(made), json=text("marker"))
        assert marker.status_code == 200
        got = messages(
            await collect(customer, lambda ev: any(m.text == "marker" for m in messages(ev)))
        )
        assert [m.text for m in got] == ["Your order shipped", "marker"]
        assert await outbound_count(local) == 2
    finally:
        await customer.close()


async def test_same_key_with_another_body_is_refused_and_sends_nothing(shop, api, local) -> None:
    made, _server = shop
    key = {"Idempotency-Key": "k-1"}
    assert (await api.post(url_of(made), json=text("first"), headers=key)).status_code == 200
    refused = await api.post(url_of(made), json=text("second"), headers=key)
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["code"] == 100 and error["type"] == "OAuthException"
    assert "different request" in error["error_data"]["details"]
    assert await outbound_count(local) == 1
    # The refusal is not stored: the original request still replays.
    again = await api.post(url_of(made), json=text("first"), headers=key)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"


async def test_concurrent_duplicates_send_once(shop, api, local) -> None:
    made, _server = shop
    key = {"Idempotency-Key": "burst"}
    answers = await asyncio.gather(
        *(api.post(url_of(made), json=text("only once"), headers=key) for _ in range(6))
    )
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409} and 200 in statuses, [a.text for a in answers]
    assert len({a.content for a in answers if a.status_code == 200}) == 1
    for busy in (a for a in answers if a.status_code == 409):
        assert busy.json()["error"]["code"] == 2 and busy.headers["Retry-After"] == "1"
    assert await outbound_count(local) == 1


async def test_a_request_still_running_gets_409_until_its_lease_lapses(
    shop, api, local, clock
) -> None:
    made, _server = shop
    body = text("slow")
    # Another node holds the key: claimed, no response yet.
    caller = await local.businesses.authenticate(made.access_token)
    scope = KeyScope(caller.business_id, made.phone_number_id, "held")
    fingerprint = request_fingerprint(httpx.Request("POST", "/", json=body).content)
    assert isinstance(await local.idempotency.reserve(scope, fingerprint), Claim)
    busy = await api.post(url_of(made), json=body, headers={"Idempotency-Key": "held"})
    assert busy.status_code == 409
    error = busy.json()["error"]
    assert error["code"] == 2 and "still being processed" in error["error_data"]["details"]
    assert await outbound_count(local) == 0
    # That node died: after the lease the key is taken over and the send goes through.
    clock.advance(LEASE + timedelta(seconds=1))
    taken = await api.post(url_of(made), json=body, headers={"Idempotency-Key": "held"})
    assert taken.status_code == 200 and await outbound_count(local) == 1


async def test_keys_expire_after_24_hours(shop, api, local, clock) -> None:
    made, _server = shop
    key = {"Idempotency-Key": "daily-digest"}
    first = await api.post(url_of(made), json=text("digest"), headers=key)
    clock.advance(KEY_TTL - timedelta(seconds=1))
    assert (await api.post(url_of(made), json=text("digest"), headers=key)).content == first.content
    clock.advance(timedelta(seconds=2))
    # Expired: the same key is free again, for any body, and sends anew.
    fresh = await api.post(url_of(made), json=text("next digest"), headers=key)
    assert fresh.status_code == 200 and "Idempotent-Replayed" not in fresh.headers
    assert fresh.json()["messages"][0]["id"] != first.json()["messages"][0]["id"]
    assert await outbound_count(local) == 2
    # Expired rows are purged.
    clock.advance(KEY_TTL + timedelta(seconds=1))
    assert await local.idempotency.purge_expired() == 1
    async with local.database.read_only() as uow:
        assert await uow.session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


async def test_a_refused_send_is_replayed_verbatim(shop, api, local) -> None:
    made, _server = shop
    key = {"Idempotency-Key": "to-self"}
    first = await api.post(url_of(made), json=text("hi", to=BUSINESS), headers=key)
    assert first.status_code == 400 and first.json()["error"]["code"] == 131021
    again = await api.post(url_of(made), json=text("hi", to=BUSINESS), headers=key)
    assert (again.status_code, again.content) == (400, first.content)  # same fbtrace_id too
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_a_server_failure_releases_the_key(shop, api, local, monkeypatch) -> None:
    made, server = shop
    messaging = server.runtime.business_messaging
    real_accept = messaging.accept
    calls = 0

    async def fail_once(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("disk on fire")
        return await real_accept(*args, **kwargs)

    monkeypatch.setattr(messaging, "accept", fail_once)
    key = {"Idempotency-Key": "flaky"}
    # The server closes a connection after an unexpected error: spend a connection of its own.
    async with checked_client(server.url, headers=dict(api.headers)) as once:
        failed = await once.post(url_of(made), json=text("hello"), headers=key)
    assert failed.status_code == 500 and failed.json()["error"]["code"] == 131000
    retried = await api.post(url_of(made), json=text("hello"), headers=key)
    assert retried.status_code == 200 and "Idempotent-Replayed" not in retried.headers
    assert await outbound_count(local) == 1


async def test_without_a_key_every_request_sends(shop, api, local) -> None:
    made, _server = shop
    one = await api.post(url_of(made), json=text("same"))
    two = await api.post(url_of(made), json=text("same"))
    assert one.status_code == two.status_code == 200
    assert one.json()["messages"][0]["id"] != two.json()["messages"][0]["id"]
    assert await outbound_count(local) == 2


@pytest.mark.parametrize("bad_key", ["", "x" * 256, "tab\there", "caf\u00e9"])
async def test_a_malformed_key_is_refused(shop, api, local, bad_key) -> None:
    made, _server = shop
    refused = await api.post(
        url_of(made), json=text("hi"), headers={"Idempotency-Key": bad_key.encode("utf-8")}
    )
    assert refused.status_code == 400 and refused.json()["error"]["code"] == 100
    assert "Idempotency-Key" in refused.json()["error"]["error_data"]["details"]
    assert await outbound_count(local) == 0


async def test_keys_are_scoped_to_the_phone_number(shop, local, settings) -> None:
    made, _server = shop
    other = await asyncio.to_thread(
        run_in_thread, lambda: _create(settings, "Other Co", "+15550109998")
    )
    keys = local.idempotency
    mine = KeyScope(
        (await local.businesses.authenticate(made.access_token)).business_id,
        made.phone_number_id,
        "shared-key",
    )
    theirs = KeyScope(
        (await local.businesses.authenticate(other.access_token)).business_id,
        other.phone_number_id,
        "shared-key",
    )
    claim = await keys.reserve(mine, "a" * 64)
    assert isinstance(claim, Claim)
    assert isinstance(await keys.reserve(theirs, "b" * 64), Claim)
    with pytest.raises(KeyInProgress):
        await keys.reserve(mine, "a" * 64)
    with pytest.raises(KeyReused):
        await keys.reserve(mine, "c" * 64)
    await keys.complete(claim, 200, '{"ok":true}')
    assert await keys.reserve(mine, "a" * 64) == Replay(200, '{"ok":true}')
