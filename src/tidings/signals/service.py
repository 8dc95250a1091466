"""What customers do, turned into windows, consent, blocks and quality signals.

`SignalService` observes the business platform's inbound side (business/messaging.py calls it
inside the transaction that applies each journal entry, so each takes effect exactly once):

- every customer message opens or renews the customer service window of (number, customer);
  a message with a referral that starts a conversation starts a free entry point;
- a message that is only a STOP/START keyword (policy/consent.py, 8 languages) records an
  opt-out or resume of marketing in the consent ledger, queues a `user_preferences` webhook
  and answers the customer with a confirmation in the keyword's language;
- the client's controls (content-contract.md) are not messages: "Stop promotions" /
  "Resume" (`preferences`) does what the keywords do; `block` blocks or unblocks the business
  (every number of it; sends then fail with 131026, which Meta uses so the business is never
  told), optionally reporting it;
- deliveries, reads, blocks, reports and opt-outs become `customer_signals` rows, charged to
  the template the customer last received (for quality ratings), and the quality hooks run.

Businesses record opt-ins (and their own opt-outs) through `record_consent` and export the
ledger as evidence through `consent_evidence`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tidings.business.inbound import referral_of
from tidings.business.messaging import BusinessMessaging, WebhookSink
from tidings.business.models import BusinessMessage
from tidings.business.service import PhoneInfo
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import ValidationFailed
from tidings.kit.clock import Clock
from tidings.policy.categories import TEMPLATE_CATEGORIES, Category
from tidings.policy.consent import (
    ConsentAction,
    ConsentEvent,
    ConsentSource,
    KeywordAction,
    confirmation_text,
    detect_keyword,
    keyword_event,
    user_preferences_item,
)
from tidings.policy.evaluate import Limits
from tidings.policy.quality import SignalKind
from tidings.policy.window import EntryPoint, renew, window_state
from tidings.signals.models import ConsentRecord, CustomerBlock, CustomerSignal, CustomerWindow
from tidings.signals.repository import SignalsRepository
from tidings.signals.sources import ledger_event

log = logging.getLogger(__name__)

# A block, report or opt-out is charged to the template the customer received last, if it
# arrived within this long before.
ATTRIBUTION_WINDOW = timedelta(days=7)
BLOCK_REASONS = frozenset({"spam", "offensive", "other"})

# Runs after signals are recorded, in the same unit of work: (uow, phone, template_id or None).
QualityHook = Callable[[UnitOfWork, PhoneInfo, str | None], Awaitable[object]]


@dataclass(frozen=True)
class ConsentEntry:
    """One ledger record as the consent API lists it."""

    id: int
    customer: str
    event: ConsentEvent

    def to_evidence(self) -> dict[str, Any]:
        return {"id": str(self.id), "wa_id": self.customer.lstrip("+"), **self.event.to_evidence()}


class SignalService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        messaging: BusinessMessaging,
        webhooks: WebhookSink,
        limits: Limits,
        confirm_opt_outs: bool = True,
    ) -> None:
        self._database = database
        self._clock = clock
        self._messaging = messaging
        self._webhooks = webhooks
        self._limits = limits
        self._confirm = confirm_opt_outs
        self.quality_hooks: list[QualityHook] = []

    def now(self) -> datetime:
        return self._clock.now()

    # -- the messaging observer -------------------------------------------------------------

    async def control(
        self, uow: UnitOfWork, phone: PhoneInfo, customer: str, content: dict[str, Any]
    ) -> bool:
        kind = content.get("type")
        if kind == "preferences":
            inner = content.get("preferences")
            choice = inner.get("marketing") if isinstance(inner, dict) else None
            if choice in ("stop", "resume"):
                action = ConsentAction.OPT_OUT if choice == "stop" else ConsentAction.RESUME
                event = ConsentEvent(
                    action,
                    Category.MARKETING,
                    self._clock.now(),
                    ConsentSource.CLIENT_ACTION,
                    actor=customer,
                    detail="Stop promotions" if choice == "stop" else "Resume promotions",
                )
                keyword = KeywordAction.STOP if choice == "stop" else KeywordAction.START
                await self._customer_consent(uow, phone, customer, event, keyword, "en")
            else:
                log.info("ignored malformed preferences control from a customer")
            return True
        if kind == "block":
            inner = content.get("block")
            if isinstance(inner, dict) and isinstance(inner.get("blocked"), bool):
                await self._block(uow, phone, customer, inner)
            else:
                log.info("ignored malformed block control from a customer")
            return True
        return False

    async def inbound(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        customer: str,
        content: dict[str, Any],
        wamid: str,
    ) -> None:
        now = self._clock.now()
        window = await SignalsRepository(uow.session).window_for_update(phone.phone_pk, customer)
        referral = referral_of(content)
        if referral is not None and not self._in_conversation(window, now):
            # A conversation started from the business's link or QR code: the business's first
            # answer within 24 hours opens the free entry point window (policy/window.py).
            window.entry_source = referral["source_type"]
            window.entry_started_at = now
            window.entry_replied_at = None
        window.last_inbound_at = renew(window.last_inbound_at, now)
        body = _text_of(content)
        match = detect_keyword(body) if body is not None else None
        if match is not None:
            event = keyword_event(match, now, actor=customer)
            await self._customer_consent(uow, phone, customer, event, match.action, match.language)

    async def receipts(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        changes: Sequence[tuple[BusinessMessage, str, str]],
    ) -> None:
        """Outbound messages advanced to delivered or read: (message, status, previous) in
        order. Each becomes a delivery or read signal, charged to the template it sent."""
        repository = SignalsRepository(uow.session)
        templates = await repository.templates_of(
            sorted({message.wamid for message, _s, _p in changes})
        )
        now = self._clock.now()
        rows: list[dict[str, Any]] = []
        for message, status, previous in changes:
            kinds = [SignalKind.DELIVERED] if status == "delivered" else [SignalKind.READ]
            if status == "read" and previous in ("accepted", "sent"):
                kinds.insert(0, SignalKind.DELIVERED)  # Meta skips "delivered" when both happen
            rows.extend(
                {
                    "phone_id": phone.phone_pk,
                    "customer": message.customer,
                    "template_id": templates.get(message.wamid),
                    "kind": str(kind),
                    "count": 1,
                    "at": now,
                }
                for kind in kinds
            )
        await repository.insert_signals(rows)

    def _in_conversation(self, window: CustomerWindow, now: datetime) -> bool:
        """A referral only starts an entry point when it starts a conversation: not while the
        customer service window is open or an entry point is pending or running."""
        state = window_state(
            window.last_inbound_at,
            None
            if window.entry_started_at is None
            else EntryPoint(window.entry_started_at, window.entry_replied_at),
            now,
            self._limits.windows,
        )
        return state.csw_open or state.fep_open or state.fep_opens_now

    # -- customer consent and blocks --------------------------------------------------------

    async def _customer_consent(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        customer: str,
        event: ConsentEvent,
        keyword: KeywordAction,
        language: str,
    ) -> None:
        """The customer stopped or resumed marketing: ledger, webhook, signal, confirmation."""
        self._append(uow, phone.business_id, customer, event)
        await self._webhooks.enqueue(
            uow,
            waba_id=phone.waba_id,
            phone_number_id=phone.phone_number_id,
            field="user_preferences",
            value=user_preferences_value(phone, customer, event),
        )
        if event.action is ConsentAction.OPT_OUT:
            await self._signal(uow, phone, customer, SignalKind.OPT_OUT)
        if self._confirm:
            text = confirmation_text(keyword, language, phone.verified_name)
            await self._reply(uow, phone, customer, text)

    async def _block(
        self, uow: UnitOfWork, phone: PhoneInfo, customer: str, control: dict[str, Any]
    ) -> None:
        repository = SignalsRepository(uow.session)
        now = self._clock.now()
        blocked = bool(control["blocked"])
        reported = control.get("report") is True
        reason = control.get("reason") if control.get("reason") in BLOCK_REASONS else None
        row = await repository.block(phone.business_id, customer)
        if row is None:
            row = CustomerBlock(business_id=phone.business_id, customer=customer, updated_at=now)
            repository.add(row)
        was_blocked = row.blocked if row.id is not None else False
        row.blocked, row.reported, row.reason, row.updated_at = blocked, reported, reason, now
        if blocked and not was_blocked:
            await self._signal(uow, phone, customer, SignalKind.BLOCK)
        if reported:
            await self._signal(uow, phone, customer, SignalKind.REPORT)

    async def _signal(
        self, uow: UnitOfWork, phone: PhoneInfo, customer: str, kind: SignalKind
    ) -> None:
        """A negative signal, charged to the template the customer received last."""
        repository = SignalsRepository(uow.session)
        now = self._clock.now()
        last = await repository.last_template_send(
            phone.phone_pk, customer, now - ATTRIBUTION_WINDOW
        )
        template_id = None if last is None else last.template_id
        repository.add(
            CustomerSignal(
                phone_id=phone.phone_pk,
                customer=customer,
                template_id=template_id,
                kind=str(kind),
                count=1,
                at=now,
            )
        )
        await uow.session.flush()
        for hook in self.quality_hooks:
            await hook(uow, phone, template_id)

    async def _reply(self, uow: UnitOfWork, phone: PhoneInfo, customer: str, text: str) -> None:
        """Confirm to the customer, if the policy lets a free-form message through now (a
        control outside the service window is recorded but not answered)."""
        await self._messaging.accept_in(
            uow, phone, customer, "text", {"body": text}, if_allowed=True
        )

    def _append(
        self, uow: UnitOfWork, business_id: int, customer: str, event: ConsentEvent
    ) -> ConsentRecord:
        record = ConsentRecord(
            business_id=business_id,
            customer=customer,
            category=str(event.category),
            action=str(event.action),
            source=str(event.source),
            actor=event.actor,
            wording=event.wording,
            detail=event.detail,
            at=event.at,
            recorded_at=self._clock.now(),
        )
        SignalsRepository(uow.session).add(record)
        return record

    # -- the consent API --------------------------------------------------------------------

    async def record_consent(
        self,
        phone: PhoneInfo,
        customer: str,
        *,
        category: str,
        action: str,
        actor: str,
        wording: str | None,
        at: datetime | None = None,
        detail: str | None = None,
    ) -> ConsentEntry:
        """A business records an opt-in (with the wording it showed) or an opt-out.

        An opt-in recorded this way never lifts an opt-out the customer made themselves
        (policy/consent.py); it stays in the ledger as evidence."""
        now = self._clock.now()
        try:
            parsed = Category(category.strip().upper()) if isinstance(category, str) else None
        except ValueError:
            parsed = None
        if parsed not in TEMPLATE_CATEGORIES:
            raise ValidationFailed(
                "category must be one of MARKETING, UTILITY, AUTHENTICATION",
                details={"graph_code": 100},
            )
        assert parsed is not None
        if action not in (ConsentAction.OPT_IN, ConsentAction.OPT_OUT):
            raise ValidationFailed("action must be opt_in or opt_out", details={"graph_code": 100})
        if action == ConsentAction.OPT_IN and not (wording and wording.strip()):
            raise ValidationFailed(
                "an opt-in needs the wording shown to the customer", details={"graph_code": 131008}
            )
        when = now if at is None else at
        if when > now:
            raise ValidationFailed("consent cannot be recorded in the future")
        event = ConsentEvent(
            ConsentAction(action), parsed, when, ConsentSource.API, actor, wording, detail
        )
        async with self._database.unit_of_work() as uow:
            record = self._append(uow, phone.business_id, customer, event)
            await uow.session.flush()
            return ConsentEntry(record.id, customer, event)

    async def consent_evidence(
        self, phone: PhoneInfo, customer: str | None, after: int = 0, limit: int = 100
    ) -> list[ConsentEntry]:
        """The business's ledger (of one customer, or all) in the order it was recorded."""
        async with self._database.read_only() as uow:
            rows = await SignalsRepository(uow.session).consent_export(
                phone.business_id, customer, after, limit
            )
            return [ConsentEntry(r.id, r.customer, ledger_event(r)) for r in rows]

    async def ledger(self, phone: PhoneInfo, customer: str) -> Sequence[ConsentEvent]:
        async with self._database.read_only() as uow:
            rows = await SignalsRepository(uow.session).consent_ledger(phone.business_id, customer)
            return [ledger_event(r) for r in rows]


def _text_of(content: dict[str, Any]) -> str | None:
    text = content.get("text")
    if isinstance(text, dict):
        text = text.get("body")
    return text if isinstance(text, str) and len(text) <= 200 else None


def user_preferences_value(phone: PhoneInfo, customer: str, event: ConsentEvent) -> dict[str, Any]:
    """The `user_preferences` webhook value (reference/cloud-api.md §4)."""
    wa_id = customer.lstrip("+")
    return {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": phone.display_phone_number,
            "phone_number_id": phone.phone_number_id,
        },
        "contacts": [{"profile": {"name": wa_id}, "wa_id": wa_id}],
        "user_preferences": [user_preferences_item(wa_id, event)],
    }
