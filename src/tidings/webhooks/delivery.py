"""The dispatcher: claims due deliveries, POSTs them signed, records what happened.

One pass (`run_once`):

1. claim up to `batch_size` due rows in one short transaction, leasing them (PostgreSQL skips
   rows another node is claiming; a lease that runs out makes a row due again, so a node that
   dies mid-send loses nothing);
2. POST each target's run of events (the claim hands a target the run of due events behind
   its earliest waiting one, in commit order), targets concurrently: at most `max_in_flight`
   requests overall. One event per POST: the stored body is sent as is, so a retry or replay is
   byte-identical (merging events would change the bytes between attempts). POSTs go through
   `WebhookPoster` (keep-alive connections, the outbound policy checked before every request,
   the whole exchange capped at the policy's timeout);
3. record every outcome in one transaction: 200 is delivered; anything else, a timeout or a
   connection error is retried on the backoff schedule until 7 days after the event, then the
   delivery is dead (kept, visible in health and replayable).

A target has up to `per_target_in_flight` of its events in flight at once, the way Meta
delivers concurrently (reference/cloud-api.md: receivers are asked to take three status
webhooks per message sent); each customer's events leave one after the other in commit order,
the next once the previous was answered (`ordering_key` says whose an event is). One at a
time, a target's rate is one event per round trip, and a round trip through a loaded event
loop is tens of milliseconds: the sustained benchmark's 100 customers at 400 sends/s left
17,000 webhooks queued behind one receiver taking about 50 a second. Different customers'
requests may arrive out of order; 1 keeps the whole target strictly one after the other. A run opens
its window like TCP's slow start: one request first, and twice as many in flight after each
success, so a receiver that is down costs one request per pass; a target that kept
succeeding starts its next run with the window its last one reached.

Once a target fails in a pass, no more of its deliveries start in that pass: the rest are put
back unattempted rather than sent into a receiver that is down (those already in flight
finish), and a pass stops starting new requests after `pass_budget_s`; both keep a pass well
inside its lease.

Nothing here logs or stores payload content: errors are reduced to short reasons.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from tidings import __version__
from tidings.crypto.errors import SealError
from tidings.crypto.sealing import Sealer
from tidings.db.uow import Database
from tidings.kit.clock import Clock, monotonic
from tidings.kit.ids import new_uuid
from tidings.outbound import OutboundBlocked, OutboundPolicy
from tidings.webhooks.models import sealed_body_aad
from tidings.webhooks.poster import WebhookPoster
from tidings.webhooks.repository import (
    DEAD,
    DELIVERED,
    PENDING,
    AttemptRecord,
    ClaimedDelivery,
    WebhookRepository,
)
from tidings.webhooks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

SecretLookup = Callable[[str], Awaitable[str | None]]

RETRY_WINDOW = timedelta(days=7)
# Waits after the 1st, 2nd, ... failed attempt; the last repeats until the window closes.
BACKOFF = (
    timedelta(seconds=10),
    timedelta(seconds=30),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
)
USER_AGENT = f"Tidings-Webhooks/{__version__}"
# As httpx sent them (and Meta does), less Accept-Encoding: nothing of the answer is decoded.
_FIXED_HEADERS = (
    (b"Accept", b"*/*"),
    (b"Content-Type", b"application/json"),
    (b"User-Agent", USER_AGENT.encode()),
)
_SIGNATURE = SIGNATURE_HEADER.encode()
_EVENT_ID = EVENT_ID_HEADER.encode()


def backoff(failed_attempts: int) -> timedelta:
    """The wait after the `failed_attempts`-th consecutive failure of a delivery."""
    return BACKOFF[min(max(failed_attempts, 1), len(BACKOFF)) - 1]


def after_failure(attempts: int, failed_at: datetime, expires_at: datetime) -> tuple[str, datetime]:
    """Status and next attempt time of a delivery that just failed its `attempts`-th try. The
    last try happens at the window's end, so a receiver back by then still gets the event."""
    if failed_at >= expires_at:
        return DEAD, failed_at
    return PENDING, min(failed_at + backoff(attempts), expires_at)


@dataclass(frozen=True)
class Outcome:
    delivery: ClaimedDelivery
    attempted: bool  # False: put back without trying (target already failing, or out of time)
    status_code: int | None = None
    error: str | None = None
    latency_ms: int | None = None
    finished_at: float = 0.0  # monotonic, to order outcomes for health
    retry_in: timedelta = timedelta(0)  # for a delivery put back unattempted

    @property
    def delivered(self) -> bool:
        return self.attempted and self.status_code == 200


class Dispatcher:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        sealer: Sealer,
        secret_for: SecretLookup,
        policy: OutboundPolicy,
        poster: WebhookPoster | None = None,
        doorbell: asyncio.Event | None = None,
        batch_size: int = 100,
        max_in_flight: int = 32,
        per_target_in_flight: int = 8,
        pass_budget_s: float = 60.0,
        idle_poll_s: float = 30.0,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._secret_for = secret_for
        self._policy = policy
        self._poster = poster
        self.doorbell = doorbell or asyncio.Event()
        self.batch_size = batch_size
        self._max_in_flight = max_in_flight
        if per_target_in_flight < 1:
            raise ValueError("a target needs at least one request in flight")
        self.per_target_in_flight = per_target_in_flight
        # Each target's window as its last run left it (gone after a failure): a target that
        # keeps succeeding does not start every batch again from one request.
        self._windows: dict[tuple[str, str], int] = {}
        self._pass_budget_s = pass_budget_s
        self._idle_poll_s = idle_poll_s
        # Long enough for a whole pass: the budget, one last request, and slack for recording.
        self.lease = timedelta(seconds=pass_budget_s + 2 * policy.timeout_s + 30)

    def window(self, waba_id: str, target_url: str) -> int:
        """How many requests the target's next run may start at once."""
        return self._windows.get((waba_id, target_url), 1)

    def ring(self) -> None:
        """Wake `run_forever` now (called after a commit that queued deliveries)."""
        self.doorbell.set()

    def _http(self) -> WebhookPoster:
        if self._poster is None:
            self._poster = WebhookPoster(self._policy)
        return self._poster

    async def aclose(self) -> None:
        if self._poster is not None:
            await self._poster.aclose()

    # -- one pass ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Deliver everything due, batch after batch. Returns the number of requests attempted.

        A target takes its events in commit order (see `claim_due`): a batch holds the run of
        due events behind each target's earliest waiting one.
        """
        attempted = 0
        deadline = monotonic() + self._pass_budget_s
        while monotonic() < deadline:
            sent = await self._run_batch()
            if sent <= 0:
                break
            attempted += sent
        return attempted

    async def _run_batch(self) -> int:
        """Claim, send and record one batch; -1 when nothing was claimable."""
        now = self._clock.now()
        token = new_uuid()
        async with self._database.unit_of_work() as uow:
            claimed = await WebhookRepository(uow.session).claim_due(
                now, now + self.lease, token, self.batch_size
            )
        if not claimed:
            return -1
        outcomes = await self._send_all(claimed)
        await self._record(token, outcomes)
        return sum(1 for o in outcomes if o.attempted)

    async def _send_all(self, claimed: list[ClaimedDelivery]) -> list[Outcome]:
        secrets: dict[str, str | None] = {}
        for waba_id in {c.waba_id for c in claimed}:
            try:
                secrets[waba_id] = await self._secret_for(waba_id)
            except Exception:  # the business domain failing must not stop other WABAs
                log.exception("looking up the app secret of WABA %s failed", waba_id)
                secrets[waba_id] = None
        # `claimed` is in commit order; each (WABA, URL) keeps it.
        by_target: dict[tuple[str, str], list[ClaimedDelivery]] = defaultdict(list)
        for item in claimed:
            by_target[(item.waba_id, item.target_url)].append(item)
        overall = asyncio.Semaphore(self._max_in_flight)
        deadline = monotonic() + self._pass_budget_s
        groups = await asyncio.gather(
            *(self._send_target(items, secrets, overall, deadline) for items in by_target.values())
        )
        return [outcome for group in groups for outcome in group]

    async def _send_target(
        self,
        items: list[ClaimedDelivery],
        secrets: dict[str, str | None],
        overall: asyncio.Semaphore,
        deadline: float,
    ) -> list[Outcome]:
        """POST a target's run of events: a customer's events one after the other in commit
        order, different customers' at once within a window that opens from one request as
        they succeed (see the module's docstring). After a failure nothing more starts: the
        rest go back unattempted, to be retried behind the failed one."""
        target = (items[0].waba_id, items[0].target_url)  # a run is one target
        secret = secrets.get(target[0])
        window = _Window(self.per_target_in_flight, self._windows.pop(target, 1))
        outcomes: list[Outcome | None] = [None] * len(items)
        # Per customer, the moment its previous event of the run is done with.
        previous: dict[str, asyncio.Event] = {}

        async def attempt(index: int, body: bytes | None, after: asyncio.Event | None) -> None:
            item = items[index]
            outcome: Outcome | None = None
            try:
                if after is not None:
                    await after.wait()
                await window.turn()
                if window.failed:
                    outcome = Outcome(item, attempted=False, retry_in=backoff(1))
                elif monotonic() >= deadline:
                    outcome = Outcome(item, attempted=False)
                else:
                    window.started()
                    try:
                        async with overall:
                            outcome = await self._attempt(item, secret, body)
                    finally:
                        window.finished(outcome is not None and outcome.delivered)
                outcomes[index] = outcome
            finally:
                done[index].set()

        done = [asyncio.Event() for _ in items]
        async with asyncio.TaskGroup() as running:
            for index, item in enumerate(items):
                body = self._open(item)
                # One at a time, every event of the target is in one line.
                key = ordering_key(body) if self.per_target_in_flight > 1 else ""
                running.create_task(attempt(index, body, previous.get(key)))
                previous[key] = done[index]
        if not window.failed:
            self._windows[target] = window.size
        return [outcome for outcome in outcomes if outcome is not None]

    def _open(self, item: ClaimedDelivery) -> bytes | None:
        """The event's stored bytes, or None if they cannot be opened."""
        try:
            return self._sealer.open(item.body_sealed, sealed_body_aad(item.event_id))
        except SealError:
            return None

    async def _attempt(
        self, item: ClaimedDelivery, secret: str | None, body: bytes | None
    ) -> Outcome:
        if not secret:
            # Never send unsigned: the receiver could not tell us from anyone else.
            return self._failed(item, error="no app secret is configured for this WABA")
        if body is None:
            return self._failed(item, error="the stored event could not be opened")
        headers = (
            *_FIXED_HEADERS,
            (_SIGNATURE, sign(secret, body).encode()),
            (_EVENT_ID, item.event_id.encode()),
        )
        started = monotonic()
        try:
            # The poster caps the whole exchange at the policy's timeout (a receiver trickling
            # bytes cannot hold the slot) and reads at most max_response_bytes of the answer.
            status_code = await self._http().post(item.target_url, body, headers)
        except OutboundBlocked as exc:
            return self._failed(item, error=f"refused by the outbound policy: {exc}"[:200])
        except TimeoutError:
            return self._failed(item, error="timed out", started=started)
        except httpx.HTTPError as exc:
            return self._failed(item, error=f"request failed: {type(exc).__name__}")
        latency_ms = int((monotonic() - started) * 1000)
        error = None if status_code == 200 else f"HTTP {status_code}"
        return Outcome(item, True, status_code, error, latency_ms, monotonic())

    @staticmethod
    def _failed(item: ClaimedDelivery, *, error: str, started: float | None = None) -> Outcome:
        latency = int((monotonic() - started) * 1000) if started is not None else None
        return Outcome(item, True, None, error, latency, monotonic())

    async def _record(self, token: str, outcomes: list[Outcome]) -> None:
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = WebhookRepository(uow.session)
            records = [self._attempt_record(token, now, o) for o in outcomes]
            # The usual outcome, success, is stored for the whole batch in one statement.
            await repository.record_delivered(
                [r for r in records if r.counted and r.status == DELIVERED]
            )
            for record in records:
                if not (record.counted and record.status == DELIVERED):
                    await repository.record(record)
            for (waba_id, target_url), group in _by_target(outcomes).items():
                await self._record_health(repository, waba_id, target_url, now, group)

    @staticmethod
    def _attempt_record(token: str, now: datetime, outcome: Outcome) -> AttemptRecord:
        item = outcome.delivery
        if not outcome.attempted:
            return AttemptRecord(
                item.delivery_id,
                token,
                PENDING,
                now + outcome.retry_in,
                now,
                None,
                None,
                None,
                counted=False,
            )
        if outcome.delivered:
            status, next_at = DELIVERED, now
        else:
            status, next_at = after_failure(item.attempts, now, item.expires_at)
        return AttemptRecord(
            delivery_id=item.delivery_id,
            claim_token=token,
            status=status,
            next_attempt_at=next_at,
            attempted_at=now,
            status_code=outcome.status_code,
            error=outcome.error,
            latency_ms=outcome.latency_ms,
            counted=True,
        )

    @staticmethod
    async def _record_health(
        repository: WebhookRepository,
        waba_id: str,
        target_url: str,
        now: datetime,
        outcomes: list[Outcome],
    ) -> None:
        attempted = sorted((o for o in outcomes if o.attempted), key=lambda o: o.finished_at)
        if not attempted:
            return
        successes = [i for i, o in enumerate(attempted) if o.delivered]
        failures = [o for o in attempted if not o.delivered]
        trailing = len(attempted) - (successes[-1] + 1) if successes else len(attempted)
        last_failure = failures[-1] if failures else None
        await repository.update_health(
            waba_id,
            target_url,
            successes=len(successes),
            failures_after_last_success=trailing,
            last_success_at=now if successes else None,
            last_failure_at=now if last_failure else None,
            last_failure_code=last_failure.status_code if last_failure else None,
            last_failure_error=last_failure.error if last_failure else None,
        )

    # -- the background loop ----------------------------------------------------------------

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set: a pass whenever the doorbell rings or the next delivery
        falls due (asked of the database, so other nodes' work and restarts are covered)."""
        errors = 0
        while not stop.is_set():
            # Cleared before the pass, so a ring during the pass triggers another one.
            self.doorbell.clear()
            try:
                attempted = await self.run_once()
                errors = 0
            except Exception:
                errors += 1
                pause = min(2.0**errors, 60.0)
                log.exception("webhook dispatch pass failed; next try in %.0f s", pause)
                await self._wait(stop, pause)
                continue
            if attempted >= self.batch_size:
                continue  # probably more due right now
            await self._wait(stop, await self._idle_seconds(attempted))

    async def _idle_seconds(self, attempted: int) -> float:
        try:
            async with self._database.read_only() as uow:
                due = await WebhookRepository(uow.session).next_due()
        except Exception:
            log.exception("reading the next webhook due time failed")
            return self._idle_poll_s
        if due is None:
            return self._idle_poll_s
        seconds = (due - self._clock.now()).total_seconds()
        # Due now but nothing claimed: another node holds those rows; do not spin on them.
        floor = 0.0 if attempted else 0.5
        return min(max(seconds, floor), self._idle_poll_s)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> None:
        waiters = [
            asyncio.ensure_future(self.doorbell.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await waiter


def _by_target(outcomes: list[Outcome]) -> dict[tuple[str, str], list[Outcome]]:
    groups: dict[tuple[str, str], list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[(outcome.delivery.waba_id, outcome.delivery.target_url)].append(outcome)
    return groups


class _Window:
    """How many of a target's requests may be in flight: `size` (one for a target not known
    to be answering), twice as many after each success up to `limit`, and none more once one
    failed."""

    def __init__(self, limit: int, size: int = 1) -> None:
        self._limit = limit
        self.size = min(max(size, 1), limit)
        self._in_flight = 0
        self.failed = False
        self._changed = asyncio.Event()

    async def turn(self) -> None:
        """Wait until another request may start, or until starting is pointless (failed)."""
        while not self.failed and self._in_flight >= self.size:
            self._changed.clear()
            await self._changed.wait()

    def started(self) -> None:
        self._in_flight += 1

    def finished(self, delivered: bool) -> None:
        self._in_flight -= 1
        if delivered:
            self.size = min(self.size * 2, self._limit)
        else:
            self.failed = True
        self._changed.set()


def ordering_key(body: bytes | None) -> str:
    """The customer an event is about, whose events a target must get in order: a status's
    recipient, an inbound message's sender. Events about no one customer (template and
    account updates) share one line, "", as do bodies that cannot be read."""
    if body is None:
        return ""
    try:
        value = json.loads(body)["entry"][0]["changes"][0]["value"]
        for field, name in (("statuses", "recipient_id"), ("contacts", "wa_id")):
            found = value.get(field)
            if found:
                return str(found[0][name])
        messages = value.get("messages")
        if messages:
            return str(messages[0]["from"])
    except (ValueError, LookupError, TypeError, AttributeError):
        pass
    return ""
