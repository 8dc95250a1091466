"""Messaging limits of businesses: counting customers reached, and scaling tiers up.

The rules are the pure core's (`tidings.policy.tiers`); this service keeps their facts. Sends
read and count usage inside their own transaction (`tier_facts` / `record_reach`, called by
the tier fact source), under the business's tier row lock, so two concurrent sends cannot
both take the last unit of the limit. `review_tiers` (a business worker chore) decides
automatic upgrades, puts them in force after the delay, and emits Meta's webhooks.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.messaging import WebhookSink
from tidings.business.service import BusinessService, PhoneInfo
from tidings.db.uow import Database, UnitOfWork
from tidings.kit.clock import Clock
from tidings.limits.models import BusinessTier
from tidings.limits.repository import LimitsRepository
from tidings.policy.quality import Quality
from tidings.policy.throughput import ThroughputLevel
from tidings.policy.tiers import (
    LIMIT_PERIOD,
    UPGRADE_DELAY,
    UPGRADE_LOOKBACK,
    QualityUpdateEvent,
    Tier,
    TierFacts,
    business_capability_update_value,
    phone_number_quality_update_value,
    scale_up,
)

log = logging.getLogger(__name__)


class QualityReader(Protocol):
    """The quality rating that gates automatic upgrades (the business's worst number)."""

    async def business_quality(self, business_id: int) -> Quality: ...


_QUALITY_ORDER = (Quality.RED, Quality.YELLOW, Quality.UNKNOWN, Quality.GREEN)


class WorstPhoneQuality:
    """A business's quality for upgrades: its worst-rated number (every number shares the
    limit, so one low-quality number holds the business back)."""

    def __init__(
        self, businesses: BusinessService, rate: Callable[[PhoneInfo], Awaitable[Quality]]
    ) -> None:
        self._businesses = businesses
        self._rate = rate

    async def business_quality(self, business_id: int) -> Quality:
        phones = [p for p in await self._businesses.all_phones() if p.business_id == business_id]
        ratings = [await self._rate(phone) for phone in phones]
        return min(ratings, key=_QUALITY_ORDER.index, default=Quality.GREEN)


@dataclass(frozen=True)
class TierSettings:
    initial_tier: Tier = Tier.TIER_250
    period: timedelta = LIMIT_PERIOD
    lookback: timedelta = UPGRADE_LOOKBACK
    upgrade_delay: timedelta = UPGRADE_DELAY
    throughput_upgrade_reach: int = 100_000
    # How often the worker reviews tiers (Meta upgrades "within 6 hours"; a review scans up
    # to 8 days of reaches per business, so not on every worker pass).
    review_every: timedelta = timedelta(minutes=10)


@dataclass(frozen=True)
class PhoneLimits:
    """What the phone node reports: the business's tier in force and the number's level."""

    tier: Tier
    throughput_level: ThroughputLevel


def peak_rolling_count(times: list[datetime], since: datetime, period: timedelta) -> int:
    """The highest number of `times` (sorted) in any span (t - period, t] with t > `since`.

    The count only rises at a reach, so checking the span ending at each reach is enough.
    """
    peak = 0
    start = 0
    for end, at in enumerate(times):
        while times[start] <= at - period:
            start += 1
        if at > since:
            peak = max(peak, end - start + 1)
    return peak


class MessagingLimits:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        businesses: BusinessService,
        webhooks: WebhookSink,
        quality: QualityReader,
        settings: TierSettings | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._businesses = businesses
        self._webhooks = webhooks
        # Upgrades need quality GREEN or YELLOW (runtime: the business's worst number).
        self.quality = quality
        self.settings = settings or TierSettings()
        self._reviewed_at: datetime | None = None

    # -- inside a send's transaction ---------------------------------------------------------

    def _in_force(self, row: BusinessTier, now: datetime) -> Tier:
        """The tier in force: an upgrade whose delay has passed counts at once, even before
        the worker records it and sends the webhooks."""
        due = row.pending_effective_at is not None and row.pending_effective_at <= now
        return Tier(row.pending_tier) if row.pending_tier and due else Tier(row.tier)

    async def tier_facts(
        self,
        session: AsyncSession,
        business_id: int,
        customer: str,
        now: datetime,
        *,
        lock: bool = True,
    ) -> TierFacts:
        """The business's usage for a send to `customer`. `lock` holds the tier row lock until
        the send commits, so concurrent sends count one at a time; without it (a preflight
        question) nothing is written."""
        repository = LimitsRepository(session)
        if lock:
            row: BusinessTier | None = await repository.tier_row(
                business_id, self.settings.initial_tier, now, lock=True
            )
        else:
            row = await repository.peek_tier(business_id)
        since = now - self.settings.period
        reached, oldest = await repository.reach_summary(business_id, since)
        return TierFacts(
            tier=self.settings.initial_tier if row is None else self._in_force(row, now),
            reached=reached,
            customer_reached=await repository.customer_reached(business_id, customer, since),
            oldest_reach_at=oldest,
        )

    async def record_reach(
        self, session: AsyncSession, business_id: int, customer: str, now: datetime
    ) -> None:
        LimitsRepository(session).add_reach(business_id, customer, now)

    async def throughput_level(self, session: AsyncSession, phone_pk: int) -> ThroughputLevel:
        level = await LimitsRepository(session).throughput_level(phone_pk)
        return ThroughputLevel(level) if level else ThroughputLevel.STANDARD

    # -- reading and operating ---------------------------------------------------------------

    async def phone_limits(self, phone: PhoneInfo) -> PhoneLimits:
        now = self._clock.now()
        async with self._database.read_only() as uow:
            repository = LimitsRepository(uow.session)
            row = await repository.peek_tier(phone.business_id)
            tier = self.settings.initial_tier if row is None else self._in_force(row, now)
            level = await self.throughput_level(uow.session, phone.phone_pk)
        return PhoneLimits(tier, level)

    async def limit_fields(self, uow: UnitOfWork, phone: PhoneInfo) -> dict[str, Any]:
        """The limit fields of a `phone_number_quality_update` sent for a quality change."""
        row = await LimitsRepository(uow.session).peek_tier(phone.business_id)
        now = self._clock.now()
        tier = self.settings.initial_tier if row is None else self._in_force(row, now)
        return {"current_limit": str(tier), "max_daily_conversations_per_business": str(tier)}

    async def set_throughput_level(self, phone: PhoneInfo, level: ThroughputLevel) -> None:
        """Set a number's level (the operator's upgrade); moving to HIGH emits Meta's
        `phone_number_quality_update` with event THROUGHPUT_UPGRADE."""
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = LimitsRepository(uow.session)
            before = await self.throughput_level(uow.session, phone.phone_pk)
            await repository.set_throughput_level(phone.phone_pk, str(level), now)
            if level is ThroughputLevel.HIGH and before is not ThroughputLevel.HIGH:
                row = await repository.tier_row(phone.business_id, self.settings.initial_tier, now)
                value = phone_number_quality_update_value(
                    phone.display_phone_number,
                    QualityUpdateEvent.THROUGHPUT_UPGRADE,
                    self._in_force(row, now),
                )
                await self._webhooks.enqueue(
                    uow,
                    waba_id=phone.waba_id,
                    phone_number_id=phone.phone_number_id,
                    field="phone_number_quality_update",
                    value=value,
                )

    # -- the worker's chore ------------------------------------------------------------------

    async def review_tiers_when_due(self) -> int:
        """`review_tiers` at most once per `settings.review_every` (the worker's chore)."""
        now = self._clock.now()
        if self._reviewed_at is not None and now < self._reviewed_at + self.settings.review_every:
            return 0
        self._reviewed_at = now
        return await self.review_tiers()

    async def review_tiers(self) -> int:
        """Decide due upgrades and put decided ones in force; returns how many took effect.

        Also forgets reaches older than the lookback plus one period (nothing reads them).
        """
        phones_of: dict[int, list[PhoneInfo]] = defaultdict(list)
        for phone in await self._businesses.all_phones():
            phones_of[phone.business_id].append(phone)
        applied = 0
        for business_id, phones in phones_of.items():
            quality = await self.quality.business_quality(business_id)
            try:
                applied += await self._review(business_id, phones, quality)
            except Exception:  # one business's failure must not stop the others
                log.exception("tier review of business %s failed", business_id)
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            horizon = now - self.settings.lookback - self.settings.period
            await LimitsRepository(uow.session).purge_reaches(horizon)
        return applied

    async def _review(self, business_id: int, phones: list[PhoneInfo], quality: Quality) -> int:
        now = self._clock.now()
        settings = self.settings
        applied = 0
        async with self._database.unit_of_work() as uow:
            repository = LimitsRepository(uow.session)
            row = await repository.tier_row(business_id, settings.initial_tier, now, lock=True)
            since = now - settings.lookback
            peak: int | None = None

            async def peak_usage() -> int:
                # Scans up to 8 days of reaches: only when a decision needs it.
                times = await repository.reach_times(business_id, since - settings.period)
                return peak_rolling_count(times, since, settings.period)

            if row.pending_tier is None and Tier(row.tier).next is not None:
                peak = await peak_usage()
                upgrade = scale_up(Tier(row.tier), peak, quality, now, settings.upgrade_delay)
                if upgrade is not None:
                    row.pending_tier = str(upgrade.to_tier)
                    row.pending_effective_at = upgrade.effective_at
                    row.updated_at = now
            effective_at = row.pending_effective_at
            if row.pending_tier is not None and effective_at is not None and effective_at <= now:
                old, new = Tier(row.tier), Tier(row.pending_tier)
                row.tier, row.pending_tier, row.pending_effective_at = str(new), None, None
                row.updated_at = now
                await self._announce(uow, phones, old, new)
                applied = 1
            if Tier(row.tier) is Tier.TIER_UNLIMITED and await self._any_standard(uow, phones):
                peak = peak if peak is not None else await peak_usage()
                if self._throughput_eligible(Tier(row.tier), peak, quality):
                    await self._raise_throughput(uow, phones, Tier(row.tier))
        return applied

    def _throughput_eligible(self, tier: Tier, peak: int, quality: Quality) -> bool:
        """Meta's rule for 1,000 messages per second: unlimited tier, quality YELLOW or better,
        and `throughput_upgrade_reach` (100,000) customers reached in 24 hours (the peak
        within the lookback here; the count is per business, not per number)."""
        return (
            tier is Tier.TIER_UNLIMITED
            and peak >= self.settings.throughput_upgrade_reach
            and quality in (Quality.GREEN, Quality.YELLOW)
        )

    async def _any_standard(self, uow: UnitOfWork, phones: list[PhoneInfo]) -> bool:
        for phone in phones:
            level = await self.throughput_level(uow.session, phone.phone_pk)
            if level is ThroughputLevel.STANDARD:
                return True
        return False

    async def _raise_throughput(self, uow: UnitOfWork, phones: list[PhoneInfo], tier: Tier) -> None:
        repository = LimitsRepository(uow.session)
        now = self._clock.now()
        for phone in phones:
            if await self.throughput_level(uow.session, phone.phone_pk) is not (
                ThroughputLevel.STANDARD
            ):
                continue  # already HIGH, or a coexistence number (fixed at 20/s)
            await repository.set_throughput_level(phone.phone_pk, str(ThroughputLevel.HIGH), now)
            await self._quality_update(uow, phone, QualityUpdateEvent.THROUGHPUT_UPGRADE, tier)

    async def _quality_update(
        self,
        uow: UnitOfWork,
        phone: PhoneInfo,
        event: QualityUpdateEvent,
        limit: Tier,
        old: Tier | None = None,
    ) -> None:
        await self._webhooks.enqueue(
            uow,
            waba_id=phone.waba_id,
            phone_number_id=phone.phone_number_id,
            field="phone_number_quality_update",
            value=phone_number_quality_update_value(phone.display_phone_number, event, limit, old),
        )

    async def _announce(
        self, uow: UnitOfWork, phones: list[PhoneInfo], old: Tier, new: Tier
    ) -> None:
        """Meta's webhooks for a new limit: `phone_number_quality_update` for every number and
        one `business_capability_update` for the business."""
        for phone in phones:
            await self._quality_update(uow, phone, QualityUpdateEvent.UPGRADE, new, old)
        await self._webhooks.enqueue(
            uow,
            waba_id=phones[0].waba_id,
            phone_number_id=None,
            field="business_capability_update",
            value=business_capability_update_value(new),
        )
