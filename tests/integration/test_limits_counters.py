"""Throughput and pair rate through the runtime's policy gate, on a real database (and on
Redis shared by two runtimes, as two server processes would share it). Injected clock."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from limits_support import customers, provision, send, template

from tidings.business.policy_gate import SendContext
from tidings.config import Settings
from tidings.db.counters import RedisCounters
from tidings.kit.clock import FrozenClock
from tidings.policy.reasons import MetaCode, Rule
from tidings.policy.throughput import RateLimit, ThroughputLevel
from tidings.runtime import build_runtime

BUSINESS = "+15550109999"
CUSTOMER = "+5511900000001"


@pytest.fixture
async def runtime(settings: Settings, clock: FrozenClock):
    made = build_runtime(settings, clock=clock)
    yield made
    await made.close()


async def test_pair_rate_refuses_the_46th_rapid_message_then_one_per_six_seconds(
    runtime, clock
) -> None:
    phone = await provision(runtime, BUSINESS)
    for n in range(45):
        decision = await send(runtime, phone, CUSTOMER)
        assert decision.allowed, (n, decision.reasons)
    refused = await send(runtime, phone, CUSTOMER)
    assert not refused.allowed
    assert refused.rules == (Rule.PAIR_RATE,)
    assert refused.primary is not None and refused.primary.code == MetaCode.PAIR_RATE_LIMIT
    assert refused.primary.retry_after == pytest.approx(6.0)
    # Another customer of the same number has a pair counter of its own.
    assert (await send(runtime, phone, "+5511900000002")).allowed
    # A refusal did not use the pair's quota: 6 s later exactly one more passes.
    clock.advance(seconds=5.999)
    assert not (await send(runtime, phone, CUSTOMER)).allowed
    clock.advance(seconds=0.001)
    assert (await send(runtime, phone, CUSTOMER)).allowed
    assert not (await send(runtime, phone, CUSTOMER)).allowed


async def test_throughput_refuses_the_81st_message_in_a_second_and_follows_the_level(
    runtime, clock
) -> None:
    phone = await provision(runtime, BUSINESS)
    targets = customers(81)
    for n, customer in enumerate(targets[:80]):
        assert (await send(runtime, phone, customer)).allowed, n
    refused = await send(runtime, phone, targets[80])
    assert refused.rules == (Rule.THROUGHPUT,)
    assert refused.primary is not None and refused.primary.code == MetaCode.THROUGHPUT
    assert refused.primary.retry_after == pytest.approx(0.0125)
    assert "80 messages per second" in refused.primary.details
    clock.advance(seconds=0.0125)
    assert (await send(runtime, phone, targets[80])).allowed

    # The upgrade to HIGH is stored per number and read on the next send.
    await runtime.messaging_limits.set_throughput_level(phone, ThroughputLevel.HIGH)
    assert (await runtime.messaging_limits.phone_limits(phone)).throughput_level is (
        ThroughputLevel.HIGH
    )
    clock.advance(seconds=1)
    for customer in customers(150, start=1000):  # over 80 in one instant
        assert (await send(runtime, phone, customer)).allowed
    events, _ = await runtime.webhooks.events_since(phone.waba_id)
    [upgrade] = [e.payload for e in events if e.field == "phone_number_quality_update"]
    assert upgrade["event"] == "THROUGHPUT_UPGRADE"
    assert upgrade["display_phone_number"] == phone.display_phone_number


async def test_counters_are_per_number(runtime) -> None:
    first = await provision(runtime, BUSINESS)
    second = await provision(runtime, "+15550108888", name="Other Shop")
    for _ in range(45):
        assert (await send(runtime, first, CUSTOMER)).allowed
    assert not (await send(runtime, first, CUSTOMER)).allowed
    assert (await send(runtime, second, CUSTOMER)).allowed


async def test_a_refused_send_for_another_rule_still_counts_toward_the_pair_rate(
    runtime, clock
) -> None:
    """Counters are stepped atomically before the rules are weighed (docs/policy.md): a
    request that reached the check counts, as at Meta's edge."""
    phone = await provision(runtime, BUSINESS)
    for _ in range(44):
        assert (await send(runtime, phone, CUSTOMER)).allowed
    # A free-form message outside the window is refused (131047) but used the 45th slot.
    window_refusal = await send(runtime, phone, CUSTOMER, free_form=True)
    assert Rule.WINDOW in window_refusal.rules and Rule.PAIR_RATE not in window_refusal.rules
    assert (await send(runtime, phone, CUSTOMER)).rules == (Rule.PAIR_RATE,)


@pytest.mark.redis
def test_two_runtimes_sharing_redis_share_the_pair_rate(
    settings: Settings, clock: FrozenClock, backend: str
) -> None:
    """Two runtimes (two server processes) on one PostgreSQL and one Redis: the 46th rapid
    message is refused whichever node takes it."""
    if backend != "postgresql":
        pytest.skip("several nodes share PostgreSQL, never one SQLite file")
    shared = settings.model_copy(update={"bus": settings.bus.model_copy(update={"kind": "redis"})})

    async def run() -> None:
        node_a = build_runtime(shared, clock=clock)
        node_b = build_runtime(shared, clock=clock)
        try:
            phone = await provision(node_a, BUSINESS)
            nodes = (node_a, node_b)
            for n in range(45):
                assert (await send(nodes[n % 2], phone, CUSTOMER)).allowed, n
            for node in nodes:
                assert (await send(node, phone, CUSTOMER)).rules == (Rule.PAIR_RATE,)
            clock.advance(timedelta(seconds=6))
            assert (await send(node_b, phone, CUSTOMER)).allowed
            assert (await send(node_a, phone, CUSTOMER)).rules == (Rule.PAIR_RATE,)
            # Sixty sends racing on both nodes for another customer: exactly the burst passes.
            racing = [send(nodes[n % 2], phone, "+5511900000009") for n in range(60)]
            decisions = await asyncio.gather(*racing)
            assert sum(d.allowed for d in decisions) == 45
        finally:
            await node_a.close()
            await node_b.close()

    asyncio.run(run())


@pytest.mark.redis
@pytest.mark.parametrize(
    ("limit", "burst", "step_us"),
    [(RateLimit.per_second(80), 80, 12_500), (RateLimit.per_second(1000), 1000, 1_000)],
)
async def test_redis_counters_are_exact_at_the_burst_edge(
    limit: RateLimit, burst: int, step_us: int
) -> None:
    """Integer microseconds in the script: exactly `burst` pass at one instant, the next waits
    one interval (float seconds would drift and refuse the last of the burst)."""
    counters = RedisCounters(Settings().bus.redis_url, prefix=f"tidings:test:{uuid.uuid4().hex}:")
    now = datetime(2026, 3, 10, 12, 0, 0, 123_457, tzinfo=UTC)
    try:
        verdicts = [await counters.step(None, "throughput", limit, now) for _ in range(burst)]  # type: ignore[arg-type]
        assert all(v.allowed for v in verdicts)
        peeked = await counters.peek(None, "throughput", limit, now)  # type: ignore[arg-type]
        refused = await counters.step(None, "throughput", limit, now)  # type: ignore[arg-type]
        assert peeked == refused
        assert not refused.allowed and refused.retry_after == step_us / 1_000_000
        later = now + timedelta(microseconds=step_us - 1)
        assert not (await counters.step(None, "throughput", limit, later)).allowed  # type: ignore[arg-type]
        later = now + timedelta(microseconds=step_us)
        for _ in range(3):  # asking does not count
            assert (await counters.peek(None, "throughput", limit, later)).allowed  # type: ignore[arg-type]
        assert (await counters.step(None, "throughput", limit, later)).allowed  # type: ignore[arg-type]
        assert not (await counters.step(None, "throughput", limit, later)).allowed  # type: ignore[arg-type]
    finally:
        await counters.close()


async def test_a_preflight_question_counts_nothing(runtime, clock) -> None:
    """A send without a wamid is only asked about (preflight, read-only): counters peek."""
    phone = await provision(runtime, BUSINESS)
    question = SendContext(phone, CUSTOMER, template(), clock.now())
    for _ in range(44):
        assert (await send(runtime, phone, CUSTOMER)).allowed
    for _ in range(10):
        assert (await runtime.business_messaging.preflight(question)).allowed
    assert (await send(runtime, phone, CUSTOMER)).allowed  # the 45th
    refused = await runtime.business_messaging.preflight(question)
    assert refused.rules == (Rule.PAIR_RATE,)
    assert (await send(runtime, phone, CUSTOMER)).rules == (Rule.PAIR_RATE,)


async def test_concurrent_sends_to_one_customer_pass_exactly_the_burst(runtime) -> None:
    phone = await provision(runtime, BUSINESS)
    decisions = await asyncio.gather(*(send(runtime, phone, CUSTOMER) for _ in range(60)))
    assert sum(d.allowed for d in decisions) == 45
    assert all(d.rules == (Rule.PAIR_RATE,) for d in decisions if not d.allowed)
