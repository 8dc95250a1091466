"""The quality rating of each business phone number (GREEN / YELLOW / RED), from the customer
signals of the last 7 days weighted by recency (policy/quality.py holds the formula).

- `current(phone)` computes the rating now: the phone node's `quality_rating` and the tier
  code (`limits.WorstPhoneQuality`: scale-up needs the business's worst number GREEN or
  YELLOW) read it.
- `evaluate(uow, phone)` stores the rating and, when it changed, queues a
  `phone_number_quality_update` webhook: `event` FLAGGED when the rating got worse, UNFLAGGED
  when it got better (Meta's values), plus `quality_rating` / `previous_quality_rating`
  (beyond Meta). It runs after every negative signal (blocks, reports, opt-outs: what can
  lower a rating quickly) and for every number on the business worker's housekeeping pass
  (ratings also recover as old signals age out).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from tidings.business.messaging import WebhookSink
from tidings.business.service import BusinessService, PhoneInfo
from tidings.db.uow import Database, UnitOfWork
from tidings.kit.clock import Clock
from tidings.policy.quality import Quality, QualityParams, Signal, SignalKind, phone_quality
from tidings.signals.models import PhoneQuality
from tidings.signals.repository import SignalsRepository

_RANK = {Quality.GREEN: 0, Quality.YELLOW: 1, Quality.RED: 2}
FIELD = "phone_number_quality_update"

# Extra fields of the webhook from the messaging-limit code (current_limit, ...), if wired.
LimitFields = Callable[[UnitOfWork, PhoneInfo], Awaitable[dict[str, Any]]]


def as_signals(totals: list[tuple[str, datetime, int]]) -> list[Signal]:
    return [Signal(SignalKind(kind), at, count) for kind, at, count in totals]


class PhoneQualityService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        businesses: BusinessService,
        webhooks: WebhookSink,
        params: QualityParams = QualityParams(),
    ) -> None:
        self._database = database
        self._clock = clock
        self._businesses = businesses
        self._webhooks = webhooks
        self._params = params
        self.limit_fields: LimitFields | None = None

    async def current(self, phone: PhoneInfo) -> Quality:
        """The number's rating now (GREEN while there is too little to judge)."""
        async with self._database.read_only() as uow:
            return await self._rate(uow, phone)

    async def _rate(self, uow: UnitOfWork, phone: PhoneInfo) -> Quality:
        now = self._clock.now()
        totals = await SignalsRepository(uow.session).signal_totals(
            now - self._params.lookback, phone_pk=phone.phone_pk
        )
        return phone_quality(as_signals(totals), now, self._params)

    async def evaluate(
        self, uow: UnitOfWork, phone: PhoneInfo, _template_id: str | None = None
    ) -> Quality:
        """Store the rating now; queue the webhook if it changed. (A signal hook too.)"""
        rating = await self._rate(uow, phone)
        repository = SignalsRepository(uow.session)
        stored = await repository.phone_quality(phone.phone_pk)
        previous = Quality(stored.rating) if stored is not None else Quality.GREEN
        now = self._clock.now()
        if stored is None:
            repository.add(
                PhoneQuality(phone_id=phone.phone_pk, rating=str(rating), updated_at=now)
            )
        elif rating is not previous:
            stored.rating, stored.updated_at = str(rating), now
        if rating is previous:
            return rating
        value: dict[str, Any] = {
            "display_phone_number": phone.display_phone_number,
            "event": "FLAGGED" if _RANK[rating] > _RANK[previous] else "UNFLAGGED",
            "quality_rating": str(rating),
            "previous_quality_rating": str(previous),
        }
        if self.limit_fields is not None:
            value |= await self.limit_fields(uow, phone)
        await self._webhooks.enqueue(
            uow,
            waba_id=phone.waba_id,
            phone_number_id=phone.phone_number_id,
            field=FIELD,
            value=value,
        )
        return rating

    async def evaluate_all(self) -> int:
        """Housekeeping: every number, each in its own unit of work; how many changed."""
        changed = 0
        for phone in await self._businesses.all_phones():
            async with self._database.unit_of_work() as uow:
                before = await SignalsRepository(uow.session).phone_quality(phone.phone_pk)
                old = None if before is None else before.rating
                rating = await self.evaluate(uow, phone)
                changed += int(old is not None and old != str(rating))
        return changed
