"""The consent ledger, customer controls and blocks on a real database, through the same
observer calls the business platform makes when it applies a customer's message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from limits_support import provision
from sqlalchemy import select
from test_policy_gate import BUSINESS, CUSTOMER, customer_writes, decide, template

from tidings.business.models import BusinessMessage
from tidings.business.service import PhoneInfo
from tidings.errors import ValidationFailed
from tidings.policy.categories import Category
from tidings.runtime import Runtime
from tidings.signals.models import CustomerSignal


@pytest.fixture
async def phone(local: Runtime) -> PhoneInfo:
    return await provision(local, BUSINESS, phone_number_id="900100")


def said(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": text}}


async def control(runtime: Runtime, phone: PhoneInfo, content: dict[str, Any]) -> bool:
    async with runtime.database.unit_of_work() as uow:
        return await runtime.signals.control(uow, phone, CUSTOMER, content)


async def outbound_texts(runtime: Runtime) -> list[str]:
    async with runtime.database.read_only() as uow:
        rows = (
            await uow.session.scalars(
                select(BusinessMessage)
                .where(BusinessMessage.direction == "out")
                .order_by(BusinessMessage.id)
            )
        ).all()
        return [runtime.business_messaging.content_of(m)["content"]["text"]["body"] for m in rows]


async def events(runtime: Runtime, phone: PhoneInfo, field: str) -> list[dict[str, Any]]:
    views, _ = await runtime.webhooks.events_since(phone.waba_id, 0, 1000)
    return [v.payload for v in views if v.field == field]


async def test_stop_in_spanish_opts_out_confirms_and_tells_the_business(
    local, phone, clock
) -> None:
    await customer_writes(local, phone, said("  Baja. "))
    [ledger] = await local.signals.ledger(phone, CUSTOMER)
    assert (ledger.action, ledger.category, ledger.source) == ("opt_out", "MARKETING", "keyword")
    assert ledger.detail == "es:baja" and ledger.actor == CUSTOMER
    refused = await decide(local, phone, template(Category.MARKETING))
    assert [(r.rule, r.code) for r in refused.reasons] == [("consent", 131050)]
    assert (await decide(local, phone, template(Category.UTILITY))).allowed
    assert (await decide(local, phone)).allowed  # free-form replies inside the window
    [confirmation] = await outbound_texts(local)
    assert confirmation.startswith("Ya no recibirás mensajes promocionales de Acme Shop")
    [value] = await events(local, phone, "user_preferences")
    assert value["user_preferences"] == [
        {
            "wa_id": CUSTOMER.lstrip("+"),
            "detail": "User requested to stop marketing messages",
            "category": "marketing_messages",
            "value": "stop",
            "timestamp": int(clock.now().timestamp()),
        }
    ]
    assert value["metadata"]["phone_number_id"] == phone.phone_number_id
    assert value["contacts"][0]["wa_id"] == CUSTOMER.lstrip("+")
    # The business's own opt-in does not lift the customer's opt-out; the customer's START does.
    clock.advance(minutes=5)
    await local.signals.record_consent(
        phone, CUSTOMER, category="MARKETING", action="opt_in", actor="crm", wording="Yes!"
    )
    assert not (await decide(local, phone, template(Category.MARKETING))).allowed
    clock.advance(minutes=5)
    await customer_writes(local, phone, said("ALTA"))
    assert (await decide(local, phone, template(Category.MARKETING))).allowed
    resumed = (await events(local, phone, "user_preferences"))[-1]["user_preferences"][0]
    assert resumed["value"] == "resume"
    assert (await outbound_texts(local))[-1].startswith("Volverás a recibir")


@pytest.mark.parametrize(
    ("text", "stops"),
    [
        ("STOP", True),
        ("Arrêt", True),
        ("abmelden", True),
        ("basta!", True),
        ("berhenti berlangganan", True),
        ("बंद करो", True),
        ("don't stop", False),
        ("stop sending me this", False),
        ("bus stop", False),
    ],
)
async def test_keywords_in_many_languages_and_not_inside_sentences(
    local, phone, text, stops
) -> None:
    await customer_writes(local, phone, said(text))
    assert bool(await local.signals.ledger(phone, CUSTOMER)) is stops
    assert (await decide(local, phone, template(Category.MARKETING))).allowed is not stops


async def test_stop_promotions_in_the_client_is_a_control_not_a_message(
    local, phone, clock
) -> None:
    assert await control(
        local, phone, {"type": "preferences", "preferences": {"marketing": "stop"}}
    )
    [event] = await local.signals.ledger(phone, CUSTOMER)
    assert (event.action, event.source) == ("opt_out", "client_action")
    assert not (await decide(local, phone, template(Category.MARKETING))).allowed
    # Outside any service window the control is recorded but not answered (that would need a
    # template); the business still hears of it.
    assert await outbound_texts(local) == []
    assert len(await events(local, phone, "user_preferences")) == 1
    clock.advance(seconds=1)
    assert await control(
        local, phone, {"type": "preferences", "preferences": {"marketing": "resume"}}
    )
    assert (await decide(local, phone, template(Category.MARKETING))).allowed
    # Malformed controls are swallowed and change nothing; ordinary content is no control.
    malformed = [
        {"type": "preferences", "preferences": {"marketing": "maybe"}},
        {"type": "preferences"},
        {"type": "block", "block": {"blocked": "yes"}},
    ]
    for bad in malformed:
        assert await control(local, phone, bad)
    assert len(await local.signals.ledger(phone, CUSTOMER)) == 2
    assert not await control(local, phone, said("stop"))


async def test_a_block_stops_everything_with_131026_and_is_charged_to_the_template(
    local, phone, clock
) -> None:
    await customer_writes(local, phone)
    marketing = template(Category.MARKETING)
    await local.business_messaging.accept(phone, CUSTOMER, "template", {}, template=marketing)
    clock.advance(minutes=1)
    blocked = {"type": "block", "block": {"blocked": True, "report": True, "reason": "spam"}}
    assert await control(local, phone, blocked)
    for use in (None, template(Category.UTILITY), marketing):
        decision = await decide(local, phone, use)
        assert ("block", 131026) in [(r.rule, r.code) for r in decision.reasons]
    # A free-form send is accepted and fails as undeliverable: the business is not told why.
    wamid = await local.business_messaging.accept(phone, CUSTOMER, "text", {"body": "hello?"})
    [status] = [
        s
        for v in await events(local, phone, "messages")
        for s in v.get("statuses", [])
        if s["id"] == wamid
    ]
    assert status["status"] == "failed" and status["errors"][0]["code"] == 131026
    async with local.database.read_only() as uow:
        signals = (await uow.session.scalars(select(CustomerSignal))).all()
        assert sorted((s.kind, s.template_id) for s in signals) == [
            ("block", "1001"),
            ("report", "1001"),
        ]
    clock.advance(days=1)
    assert await control(local, phone, {"type": "block", "block": {"blocked": False}})
    assert (await decide(local, phone, template(Category.UTILITY))).allowed


async def test_recording_consent_through_the_api_checks_its_input(local, phone, clock) -> None:
    entry = await local.signals.record_consent(
        phone,
        CUSTOMER,
        category="marketing",
        action="opt_in",
        actor="checkout-page",
        wording="Send me offers on WhatsApp",
        at=clock.now() - timedelta(days=1),
    )
    assert entry.to_evidence()["wording"] == "Send me offers on WhatsApp"
    bad = [
        {"category": "SERVICE", "action": "opt_in", "wording": "x"},
        {"category": "PROMO", "action": "opt_in", "wording": "x"},
        {"category": "MARKETING", "action": "resume", "wording": "x"},
        {"category": "MARKETING", "action": "opt_in", "wording": " "},
    ]
    for fields in bad:
        with pytest.raises(ValidationFailed):
            await local.signals.record_consent(phone, CUSTOMER, actor="crm", **fields)
    with pytest.raises(ValidationFailed, match="future"):
        await local.signals.record_consent(
            phone, CUSTOMER, category="UTILITY", action="opt_out", actor="crm",
            wording=None, at=clock.now() + timedelta(minutes=1),
        )  # fmt: skip
    assert [e.to_evidence()["id"] for e in await local.signals.consent_evidence(phone, None)] == [
        str(entry.id)
    ]
