"""Fact sources of the policy gate for messaging limits, throughput and pair rate.

Each one fills its `SendFacts` fields in the send's transaction and records what an allowed
send used (see `tidings.business.policy_gate`).

Throughput and pair rate are stepped *while gathering*, in a `CounterStore` shared by every
process, and reported to `evaluate` as verdicts: an atomic check-and-count is the only exact
way when several processes send for one number. So a request counts against them as soon as
it reaches the policy check, even if another rule then refuses it, as requests reaching
Meta's edge do.

A question (`SendContext.peek`, preflight, in a unit of work that is rolled back) counts and
locks nothing: the counters are peeked at and the tier row is only read.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from tidings.business.policy_gate import SendContext
from tidings.db.counters import CounterStore
from tidings.limits.service import MessagingLimits
from tidings.policy.evaluate import Decision, Limits


def throughput_key(phone_number_id: str) -> str:
    return f"throughput:{phone_number_id}"


def pair_key(phone_number_id: str, customer: str) -> str:
    return f"pair:{phone_number_id}:{customer}"


class ThroughputSource:
    """Messages per second of the sending number (130429), at the number's stored level."""

    def __init__(self, counters: CounterStore, limits: Limits, service: MessagingLimits) -> None:
        self._counters = counters
        self._limits = limits
        self._service = service

    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        level = await self._service.throughput_level(session, send.phone.phone_pk)
        # A preflight (`send.peek`) asks without counting.
        count = self._counters.peek if send.peek else self._counters.step
        verdict = await count(
            session,
            throughput_key(send.phone.phone_number_id),
            self._limits.throughput.for_level(level),
            send.now,
        )
        return {"throughput_level": level, "throughput_verdict": verdict}

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        return None  # counted while gathering


class PairRateSource:
    """Messages from the sending number to this customer (131056)."""

    def __init__(self, counters: CounterStore, limits: Limits) -> None:
        self._counters = counters
        self._limits = limits

    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        count = self._counters.peek if send.peek else self._counters.step
        verdict = await count(
            session,
            pair_key(send.phone.phone_number_id, send.customer),
            self._limits.pair_rate,
            send.now,
        )
        return {"pair_verdict": verdict}

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        return None  # counted while gathering


class TierSource:
    """The business's messaging-limit usage; records each new customer reached outside a
    window. Only templates can count, so free-form sends skip the lock."""

    def __init__(self, service: MessagingLimits) -> None:
        self._service = service

    async def gather(self, session: AsyncSession, send: SendContext) -> dict[str, Any]:
        if send.template is None:
            return {}
        usage = await self._service.tier_facts(
            session, send.phone.business_id, send.customer, send.now, lock=not send.peek
        )
        return {"usage": usage}

    async def record(self, session: AsyncSession, send: SendContext, decision: Decision) -> None:
        if decision.counts_toward_limit:
            await self._service.record_reach(
                session, send.phone.business_id, send.customer, send.now
            )
