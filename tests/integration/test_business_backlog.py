"""Admission control: while a number's accepted messages wait for delivery beyond the bound,
its sends are refused with 130429 and a Retry-After, and nothing is stored; once the backlog
is sent (and counted again), sends are accepted again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update

from tidings.app import create_app
from tidings.business.models import BusinessMessage
from tidings.cli.business import _create
from tidings.runtime import build_runtime
from tidings.signals.models import CustomerWindow

CUSTOMER = "+15550100007"


def text(n: int) -> dict[str, object]:
    return {
        "messaging_product": "whatsapp",
        "to": CUSTOMER,
        "type": "text",
        "text": {"body": f"Order {n} has shipped"},
    }


@asynccontextmanager
async def graph_api(
    settings, clock, bound: int
) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """A business whose number's backlog bound is `bound`, a customer with an open window, and
    a Graph client on the app in process. No worker runs (the app's lifespan is not started),
    so accepted messages wait."""
    settings = settings.model_copy(
        update={"business": settings.business.model_copy(update={"max_outbound_backlog": bound})}
    )
    made = await _create(settings, "Backlog Shop", "+15550109990")
    runtime = build_runtime(settings, clock=clock)
    try:
        phone = await runtime.businesses.phone_by_number_id(made.phone_number_id)
        async with runtime.database.unit_of_work() as uow:
            uow.session.add(
                CustomerWindow(
                    phone_id=phone.phone_pk, customer=CUSTOMER, last_inbound_at=clock.now()
                )
            )
        transport = httpx.ASGITransport(app=create_app(runtime))
        auth = {"Authorization": f"Bearer {made.access_token}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=auth) as api:
            yield runtime, api, f"/v23.0/{made.phone_number_id}/messages"
    finally:
        await runtime.close()


async def test_sends_beyond_the_backlog_are_refused_until_it_is_sent(settings, clock) -> None:
    async with graph_api(settings, clock, 3) as (runtime, api, url):

        async def stored() -> int:
            async with runtime.database.read_only() as uow:
                count = await uow.session.scalar(select(func.count()).select_from(BusinessMessage))
                return int(count or 0)

        for n in range(3):
            assert (await api.post(url, json=text(n))).status_code == 200
        refused = await api.post(url, json=text(3))
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == 130429
        assert "3 messages of this number are waiting" in error["error_data"]["details"]
        assert int(refused.headers["Retry-After"]) == 1
        assert await stored() == 3  # the refused send stored nothing

        # Still refused within the second, even though the backlog is gone meanwhile...
        async with runtime.database.unit_of_work() as uow:
            await uow.session.execute(update(BusinessMessage).values(status="sent"))
        assert (await api.post(url, json=text(4))).json()["error"]["code"] == 130429
        # ...and accepted once it is counted again.
        clock.advance(timedelta(seconds=1))
        assert (await api.post(url, json=text(5))).status_code == 200
        assert await stored() == 4


async def test_no_bound_when_it_is_off(settings, clock) -> None:
    async with graph_api(settings, clock, 0) as (_runtime, api, url):
        for n in range(5):
            assert (await api.post(url, json=text(n))).status_code == 200


async def test_sends_arriving_together_are_each_stored_or_refused_on_their_own(
    settings, clock
) -> None:
    """Sends that arrive in one turn of the loop share a unit of work (db/batches.py): each
    gets its own wamid, and one refused (a quoted message that is not this number's) stores
    nothing while the others are stored."""
    async with graph_api(settings, clock, 0) as (runtime, api, url):
        bad = {**text(99), "context": {"message_id": "wamid.not-one-of-ours"}}
        answers = await asyncio.gather(
            *(api.post(url, json=text(n)) for n in range(3)),
            api.post(url, json=bad),
            *(api.post(url, json=text(n)) for n in range(3, 5)),
        )
        assert [a.status_code for a in answers] == [200, 200, 200, 400, 200, 200]
        assert answers[3].json()["error"]["code"] == 100
        assert "context.message_id" in answers[3].json()["error"]["error_data"]["details"]
        wamids = [a.json()["messages"][0]["id"] for a in answers if a.status_code == 200]
        assert len(set(wamids)) == 5
        async with runtime.database.read_only() as uow:
            stored = set(await uow.session.scalars(select(BusinessMessage.wamid)))
        assert stored == set(wamids)
