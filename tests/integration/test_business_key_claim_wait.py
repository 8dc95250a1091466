"""A business that hits the core's one-time-key claim limit waits and delivers later, in order;
the message does not fail with 131026 (a 429 is transient, not a refusal)."""

from __future__ import annotations

import asyncio
import logging

import business_support
import httpx
import pytest
from business_support import Receiver, provision_shop, serving
from network_support import link_companion
from test_business_api import collect, customer_device, messages

BUSINESS = "+15550109999"
ANN = "+15550100001"
BEN = "+15550100002"


receiver = business_support.receiver


@pytest.fixture
def shop(settings, clock, receiver):
    """A business whose API device may claim keys once a minute."""
    settings = settings.model_copy(
        update={"limits": settings.limits.model_copy(update={"key_claims_per_minute": 1})}
    )
    made = provision_shop(settings, receiver, BUSINESS)
    with serving(settings, clock) as server:
        yield made, server


def statuses_of(receiver: Receiver, wamid: str) -> list[str]:
    return [s["status"] for s in receiver.statuses() if s["id"] == wamid]


async def wait_for_log(caplog: pytest.LogCaptureFixture, text: str, timeout: float = 20) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(text in record.getMessage() for record in caplog.records):
        if loop.time() > deadline:
            raise AssertionError(f"no log line with {text!r}")
        await asyncio.sleep(0.05)


async def test_a_rate_limited_key_claim_defers_the_message_until_claims_are_allowed(
    shop, receiver, settings, clock, tmp_path, caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="tidings.business.messaging")
    made, server = shop
    ann = await customer_device(settings, clock, server.url, tmp_path, ANN)
    ben = await customer_device(settings, clock, server.url, tmp_path, BEN)
    # Each customer's new laptop shares no session with the business: sending needs a claim.
    ann_laptop = await link_companion(ann, tmp_path, "ann-laptop")
    ben_laptop = await link_companion(ben, tmp_path, "ben-laptop")
    headers = {"Authorization": f"Bearer {made.access_token}"}
    url = f"/v23.0/{made.phone_number_id}/messages"

    async def send(to: str, body: str) -> str:
        message = {"messaging_product": "whatsapp", "to": to, "type": "text"}
        response = await api.post(url, json={**message, "text": {"body": body}})
        assert response.status_code == 200, response.text
        return str(response.json()["messages"][0]["id"])

    async with httpx.AsyncClient(base_url=server.url, headers=headers) as api:
        try:
            to_ann = await send(ANN, "for ann")  # uses the minute's one claim
            receiver.wait_for(lambda _posts: "sent" in statuses_of(receiver, to_ann))
            first = await send(BEN, "ben one")
            await wait_for_log(caplog, f"delivery of {first} deferred")
            assert statuses_of(receiver, first) == []  # waiting, not failed

            clock.advance(seconds=61)
            second = await send(BEN, "ben two")  # rings the worker again
            receiver.wait_for(
                lambda _posts: (
                    "sent" in statuses_of(receiver, second)
                    and "sent" in statuses_of(receiver, first)
                )
            )
            assert statuses_of(receiver, first) == ["sent"]
            for device in (ben, ben_laptop):
                got = messages(await collect(device, lambda ev: len(messages(ev)) >= 2))
                assert [m.text for m in got] == ["ben one", "ben two"]
            got = messages(await collect(ann_laptop, lambda ev: messages(ev)))
            assert [m.text for m in got] == ["for ann"]
            assert not [s for s in receiver.statuses() if s["status"] == "failed"]
        finally:
            for device in (ann, ben, ann_laptop, ben_laptop):
                await device.close()
