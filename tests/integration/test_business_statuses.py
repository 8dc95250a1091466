"""Status changes recorded a batch at a time: each message only moves forward, every change
that takes effect queues its status webhook in the batch's order, charges fall due once and
receipts become customer signals."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from limits_support import provision
from sqlalchemy import func, select

from tidings.billing.models import MessageCharge
from tidings.business.models import BusinessMessage
from tidings.business.repository import BusinessRepository
from tidings.business.service import PhoneInfo
from tidings.runtime import Runtime
from tidings.signals.models import CustomerSignal, CustomerWindow

BUSINESS = "+15550109999"
CUSTOMERS = ["+15550100001", "+15550100002", "+15550100003"]


@pytest.fixture
async def phone(local: Runtime) -> PhoneInfo:
    phone = await provision(local, BUSINESS, phone_number_id="900200")
    async with local.database.unit_of_work() as uow:
        for customer in CUSTOMERS:  # each wrote first: free-form messages may go
            uow.session.add(
                CustomerWindow(
                    phone_id=phone.phone_pk, customer=customer, last_inbound_at=local.clock.now()
                )
            )
    return phone


async def accepted(local: Runtime, phone: PhoneInfo) -> dict[str, int]:
    ids: dict[str, int] = {}
    for n, customer in enumerate(CUSTOMERS):
        local.clock.advance(seconds=1)
        callback = f"cb-{n}"
        wamid = await local.business_messaging.accept(
            phone, customer, "text", {"body": f"order {n}"}, callback_data=callback
        )
        async with local.database.read_only() as uow:
            row = await uow.session.scalar(
                select(BusinessMessage.id).where(BusinessMessage.wamid == wamid)
            )
        assert row is not None
        ids[wamid] = row
    return ids


async def statuses(local: Runtime, phone: PhoneInfo) -> list[dict[str, Any]]:
    views, _ = await local.webhooks.events_since(phone.waba_id, 0, 1000)
    return [v.payload["statuses"][0] for v in views if "statuses" in v.payload]


async def test_a_batch_moves_each_message_forward_only_and_queues_webhooks_in_order(
    local: Runtime, phone: PhoneInfo
) -> None:
    ids = await accepted(local, phone)
    (w0, i0), (w1, i1), (w2, i2) = ids.items()
    messaging = local.business_messaging
    await messaging._record_statuses(phone, [(i0, "sent", None), (i1, "sent", None)])
    await messaging._record_statuses(
        phone, [(i2, "failed", 131026), (i0, "read", None), (i1, "delivered", None)]
    )
    # Late or repeated: a delivered never undoes a read, nothing leaves failed, no repeats.
    await messaging._record_statuses(
        phone, [(i0, "delivered", None), (i2, "sent", None), (i1, "delivered", None)]
    )
    seen = [(s["id"], s["status"]) for s in await statuses(local, phone)]
    assert seen == [
        (w0, "sent"),
        (w1, "sent"),
        (w0, "read"),
        (w1, "delivered"),
        (w2, "failed"),
    ]
    by_status = {(s["id"], s["status"]): s for s in await statuses(local, phone)}
    assert by_status[(w0, "sent")]["biz_opaque_callback_data"] == "cb-0"
    assert by_status[(w2, "failed")]["errors"][0]["code"] == 131026
    assert by_status[(w1, "delivered")]["pricing"]["category"] == "service"
    async with local.database.read_only() as uow:
        rows = dict(
            (await uow.session.execute(select(BusinessMessage.id, BusinessMessage.status))).all()
        )
        assert (rows[i0], rows[i1], rows[i2]) == ("read", "delivered", "failed")
        due = dict(
            (
                await uow.session.execute(select(MessageCharge.wamid, MessageCharge.delivered_at))
            ).all()
        )
        assert due[w0] is not None and due[w1] is not None and due[w2] is None
        signals = (
            await uow.session.execute(
                select(CustomerSignal.customer, CustomerSignal.kind, func.count())
                .group_by(CustomerSignal.customer, CustomerSignal.kind)
                .order_by(CustomerSignal.customer, CustomerSignal.kind)
            )
        ).all()
    # A read straight after sent counts as delivered too; the late delivered counts nothing.
    assert [tuple(row) for row in signals] == [
        (CUSTOMERS[0], "delivered", 1),
        (CUSTOMERS[0], "read", 1),
        (CUSTOMERS[1], "delivered", 1),
    ]


async def test_a_journal_page_is_taken_once_by_moving_the_cursor_from_where_it_was(
    local: Runtime, phone: PhoneInfo
) -> None:
    async def move(cursor: int, to: int) -> bool:
        async with local.database.unit_of_work() as uow:
            return await BusinessRepository(uow.session).move_journal_cursor(
                phone.phone_pk, cursor, to
            )

    assert await BusinessRepository.journal_cursor(local.database, phone.phone_pk) == 0
    assert await move(0, 7)
    # A second pass that read the cursor before the first moved it takes nothing.
    assert not await move(0, 7)
    assert not await move(3, 9)
    assert await BusinessRepository.journal_cursor(local.database, phone.phone_pk) == 7
    # Two passes at once from the same cursor: exactly one takes the page.
    taken = await asyncio.gather(move(7, 12), move(7, 12))
    assert sorted(taken) == [False, True]
    assert await BusinessRepository.journal_cursor(local.database, phone.phone_pk) == 12
