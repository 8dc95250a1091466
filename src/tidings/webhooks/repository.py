"""All SQL of the webhook domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement, FromClause

from tidings.db.direct import direct
from tidings.webhooks.models import (
    WebhookApp,
    WebhookDelivery,
    WebhookEvent,
    WebhookPhoneOverride,
    WebhookStream,
    WebhookSubscription,
    WebhookTargetHealth,
)

PENDING, DELIVERING, DELIVERED, DEAD = "pending", "delivering", "delivered", "dead"
WAITING = (PENDING, DELIVERING)  # not final: will be (re)tried
_INSERT_EVENT = direct(insert(cast(Table, WebhookEvent.__table__)))
_INSERT_DELIVERY = direct(insert(cast(Table, WebhookDelivery.__table__)))


_deliveries = cast(Table, WebhookDelivery.__table__)
_events = cast(Table, WebhookEvent.__table__)


def _waiting(deliveries: FromClause) -> ColumnElement[bool]:
    """`status IN ('pending', 'delivering')` with the values in the SQL text, as the partial
    index ix_webhook_deliveries_waiting_order states it (WAITING_PREDICATE): a planner proves
    that a query may use a partial index from the statement's text, and a bound value (or
    PostgreSQL's generic plan) hides them. Literal values also keep the statement free of the
    expanding parameter that the direct statements below cannot take."""
    return deliveries.c.status.in_(
        [literal_column(f"'{PENDING}'"), literal_column(f"'{DELIVERING}'")]
    )


_WAITING = _waiting(_deliveries)

# The dispatcher's claim, prebuilt: building its ORM queries with their aliases cost several
# milliseconds a claim, more than running them, and a steady trickle claims a few at a time.
# Each delivery carries its event's position, so ordering a target's deliveries reads the
# waiting-order index alone; the event is joined only for the body of the rows returned.
_this_event = _events.alias("this_event")
_earlier = _deliveries.alias("earlier")
_CLAIMED_COLUMNS = (
    _deliveries.c.id,
    _deliveries.c.event_id,
    _deliveries.c.waba_id,
    _deliveries.c.target_url,
    _deliveries.c.status,
    _deliveries.c.attempts,
    _deliveries.c.next_attempt_at,
    _deliveries.c.expires_at,
    _deliveries.c.position,
    _this_event.c.body_sealed,
)
# Where the delivery's target is in its queue: the position of its first waiting delivery,
# one seek into the waiting-order index. A delivery is its target's head when it is that first
# one (positions are unique per target), which is "no earlier delivery is waiting" written so
# that PostgreSQL cannot turn it into a hash anti-join: with one busy target every waiting row
# lands in one hash bucket and is compared with every other (6.4 s a claim at 10,000 queued).
_HEAD_POSITION = (
    select(func.min(_earlier.c.position))
    .where(
        _earlier.c.waba_id == _deliveries.c.waba_id,
        _earlier.c.target_url == _deliveries.c.target_url,
        _waiting(_earlier),
    )
    .scalar_subquery()
)
_CLAIM_HEADS = direct(
    select(*_CLAIMED_COLUMNS)
    .join(_this_event, _this_event.c.id == _deliveries.c.event_id)
    .where(
        _WAITING,
        _deliveries.c.next_attempt_at <= bindparam("now"),
        _deliveries.c.position == _HEAD_POSITION,
    )
    .order_by(_deliveries.c.next_attempt_at, _deliveries.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=_deliveries)
)
_CLAIM_FOLLOWERS = direct(
    select(*_CLAIMED_COLUMNS)
    .join(_this_event, _this_event.c.id == _deliveries.c.event_id)
    .where(
        _deliveries.c.waba_id == bindparam("waba_id"),
        _deliveries.c.target_url == bindparam("target_url"),
        _WAITING,
        _deliveries.c.position > bindparam("position"),
    )
    .order_by(_deliveries.c.position)
    .limit(bindparam("room"))
    .with_for_update(of=_deliveries)
)
_LEASE = direct(
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"))
    .values(
        status=DELIVERING,
        next_attempt_at=bindparam("lease_until"),
        claim_token=bindparam("claim_token"),
        attempts=_deliveries.c.attempts + 1,
    )
)
_RECORD_DELIVERED = direct(
    update(_deliveries)
    .where(_deliveries.c.id == bindparam("b_id"), _deliveries.c.claim_token == bindparam("b_token"))
    .values(
        status=DELIVERED,
        next_attempt_at=bindparam("b_at"),
        claim_token=None,
        last_attempt_at=bindparam("b_at"),
        last_status_code=bindparam("b_code"),
        last_error=None,
        last_latency_ms=bindparam("b_latency"),
        delivered_at=bindparam("b_at"),
    )
)
_NEXT_DUE = direct(select(func.min(_deliveries.c.next_attempt_at)).where(_WAITING))


_health = cast(Table, WebhookTargetHealth.__table__)


def _health_upsert(insert_for: Any) -> Any:
    """A pass's outcomes for one target folded into its health row, in one prebuilt upsert:
    failures count on from the stored run unless the pass had a success, and a time, code or
    error the pass did not produce keeps its stored value."""
    statement = insert_for(_health).values(
        waba_id=bindparam("waba_id"),
        target_url=bindparam("target_url"),
        consecutive_failures=bindparam("trailing"),
        last_success_at=bindparam("success_at", type_=_health.c.last_success_at.type),
        last_failure_at=bindparam("failure_at", type_=_health.c.last_failure_at.type),
        last_failure_code=bindparam("failure_code", type_=_health.c.last_failure_code.type),
        last_failure_error=bindparam("failure_error", type_=_health.c.last_failure_error.type),
    )
    new = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=[_health.c.waba_id, _health.c.target_url],
        set_={
            "consecutive_failures": case(
                (bindparam("successes") > 0, new.consecutive_failures),
                else_=_health.c.consecutive_failures + new.consecutive_failures,
            ),
            "last_success_at": func.coalesce(new.last_success_at, _health.c.last_success_at),
            "last_failure_at": func.coalesce(new.last_failure_at, _health.c.last_failure_at),
            "last_failure_code": case(
                (new.last_failure_at.is_(None), _health.c.last_failure_code),
                else_=new.last_failure_code,
            ),
            "last_failure_error": case(
                (new.last_failure_at.is_(None), _health.c.last_failure_error),
                else_=new.last_failure_error,
            ),
        },
    )


_HEALTH_SQLITE = direct(_health_upsert(sqlite_insert))
_HEALTH_PG = _health_upsert(pg_insert)


_subscriptions = cast(Table, WebhookSubscription.__table__)
_apps = cast(Table, WebhookApp.__table__)
_overrides = cast(Table, WebhookPhoneOverride.__table__)
# Every run of statuses asks where its events go.
_TARGET_ROUTES = direct(
    select(
        _overrides.c.override_callback_uri,
        _subscriptions.c.override_callback_uri,
        _apps.c.callback_url,
    )
    .select_from(
        _subscriptions.join(_apps, _apps.c.app_id == _subscriptions.c.app_id).outerjoin(
            _overrides,
            and_(
                _overrides.c.phone_number_id == bindparam("phone_number_id"),
                _overrides.c.waba_id == _subscriptions.c.waba_id,
            ),
        )
    )
    .where(_subscriptions.c.waba_id == bindparam("waba_id"))
    .order_by(_subscriptions.c.app_id)
)


_streams = cast(Table, WebhookStream.__table__)


def _allocate(insert_for: Any) -> Any:
    statement = insert_for(_streams).values(
        waba_id=bindparam("waba_id"), last_position=bindparam("count")
    )
    return statement.on_conflict_do_update(
        index_elements=[_streams.c.waba_id],
        set_={"last_position": _streams.c.last_position + statement.excluded.last_position},
    ).returning(_streams.c.last_position)


_ALLOCATE_SQLITE = direct(_allocate(sqlite_insert))
_ALLOCATE_PG = _allocate(pg_insert)


class TargetRoute(NamedTuple):
    phone_override: str | None
    waba_override: str | None
    app_callback: str | None


@dataclass(frozen=True)
class ClaimedDelivery:
    delivery_id: int
    event_id: str
    waba_id: str
    target_url: str
    attempts: int  # including the one just claimed
    expires_at: datetime
    body_sealed: bytes


@dataclass(frozen=True)
class AttemptRecord:
    """What one attempt changed on its delivery row."""

    delivery_id: int
    claim_token: str
    status: str
    next_attempt_at: datetime
    attempted_at: datetime
    status_code: int | None
    error: str | None
    latency_ms: int | None
    # False when the delivery was put back without being tried: its claim does not count.
    counted: bool = True


@dataclass(frozen=True)
class TargetCounts:
    target_url: str
    pending: int
    delivered: int
    dead: int


class WebhookRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _insert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        return pg_insert if dialect == "postgresql" else sqlite_insert

    # -- configuration ----------------------------------------------------------------------

    async def app(self, app_id: str) -> WebhookApp | None:
        return await self.session.get(WebhookApp, app_id)

    async def ensure_app(self, app_id: str, now: datetime) -> WebhookApp:
        app = await self.app(app_id)
        if app is None:
            app = WebhookApp(app_id=app_id, name=app_id, updated_at=now)
            self.session.add(app)
            await self.session.flush()
        return app

    async def subscription(self, waba_id: str, app_id: str) -> WebhookSubscription | None:
        return await self.session.get(WebhookSubscription, (waba_id, app_id))

    async def subscriptions(self, waba_id: str) -> list[tuple[WebhookSubscription, WebhookApp]]:
        rows = await self.session.execute(
            select(WebhookSubscription, WebhookApp)
            .join(WebhookApp, WebhookApp.app_id == WebhookSubscription.app_id)
            .where(WebhookSubscription.waba_id == waba_id)
            .order_by(WebhookSubscription.app_id)
        )
        return [(s, a) for s, a in rows]

    async def delete_subscription(self, waba_id: str, app_id: str) -> bool:
        result = await self.session.execute(
            delete(WebhookSubscription).where(
                WebhookSubscription.waba_id == waba_id, WebhookSubscription.app_id == app_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def target_routes(self, waba_id: str, phone_number_id: str | None) -> list[TargetRoute]:
        """Per app subscribed to the WABA, the URLs that could take its events: the number's
        override (only while the number is still in this WABA), the subscription's, the app's
        callback."""
        rows = await self.session.execute(
            _TARGET_ROUTES, {"waba_id": waba_id, "phone_number_id": phone_number_id}
        )
        return [TargetRoute(*row) for row in rows]

    async def phone_override(self, phone_number_id: str) -> WebhookPhoneOverride | None:
        return await self.session.get(WebhookPhoneOverride, phone_number_id)

    async def delete_phone_override(self, phone_number_id: str) -> None:
        await self.session.execute(
            delete(WebhookPhoneOverride).where(
                WebhookPhoneOverride.phone_number_id == phone_number_id
            )
        )

    def add(self, row: object) -> None:
        self.session.add(row)

    # -- the outbox -------------------------------------------------------------------------

    async def allocate(self, waba_id: str, count: int = 1) -> int:
        """Reserve the WABA's next `count` positions and return the last. The upsert takes the
        counter row's lock, held until commit, which is what keeps positions in commit order."""
        dialect = self.session.get_bind().dialect.name
        statement = _ALLOCATE_PG if dialect == "postgresql" else _ALLOCATE_SQLITE
        result = await self.session.execute(statement, {"waba_id": waba_id, "count": count})
        return int(result.scalar_one())

    async def insert_events(self, rows: Sequence[dict[str, Any]]) -> None:
        """Outbox events, inserted at once with one Core statement (executemany)."""
        await self.session.execute(_INSERT_EVENT, list(rows))

    async def insert_deliveries(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            await self.session.execute(_INSERT_DELIVERY, list(rows))

    async def events_after(self, waba_id: str, after: int, limit: int) -> list[WebhookEvent]:
        rows = await self.session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.waba_id == waba_id, WebhookEvent.position > after)
            .order_by(WebhookEvent.position)
            .limit(limit)
        )
        return list(rows)

    async def events_by_id(self, waba_id: str, event_ids: Sequence[str]) -> list[WebhookEvent]:
        rows = await self.session.scalars(
            select(WebhookEvent)
            .where(WebhookEvent.waba_id == waba_id, WebhookEvent.id.in_(event_ids))
            .order_by(WebhookEvent.position)
        )
        return list(rows)

    async def deliveries_of(self, event_ids: Sequence[str]) -> list[WebhookDelivery]:
        if not event_ids:
            return []
        rows = await self.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.event_id.in_(event_ids))
            .order_by(WebhookDelivery.id)
        )
        return list(rows)

    async def requeue(
        self, event: WebhookEvent, target_url: str, now: datetime, expires_at: datetime
    ) -> None:
        """Make the (event, target) delivery due now, whatever state it was in."""
        fresh = {
            "status": PENDING,
            "next_attempt_at": now,
            "expires_at": expires_at,
            "claim_token": None,
            "attempts": 0,  # a replay starts a fresh retry schedule
        }
        statement = (
            self._insert()(WebhookDelivery)
            .values(
                event_id=event.id,
                waba_id=event.waba_id,
                target_url=target_url,
                position=event.position,
                created_at=now,
                **fresh,
            )
            .on_conflict_do_update(
                index_elements=[WebhookDelivery.event_id, WebhookDelivery.target_url], set_=fresh
            )
        )
        await self.session.execute(statement)

    # -- dispatch ---------------------------------------------------------------------------

    async def claim_due(
        self, now: datetime, lease_until: datetime, claim_token: str, limit: int
    ) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries, each target's in commit order. On PostgreSQL,
        rows another worker is claiming right now are skipped, not waited for; SQLite has one
        writer, so there is no race.

        Each target gets its events in the order they were committed (a customer's statuses
        arrive sent, delivered, read). A target's *head* is its earliest waiting delivery; it
        is claimable when due. Holding the head's lock is what gives one claimer the target, so
        the claimer also takes the run of due deliveries right behind it (up to `limit` in
        all), stopping at the first one that is not due or is leased elsewhere: a busy target
        takes many events per claim rather than one. A failing endpoint holds its later events
        back until it recovers or the earlier ones go dead.
        """
        heads = list(await self.session.execute(_CLAIM_HEADS, {"now": now, "limit": limit}))
        if not heads:
            return []
        due = list(heads)
        room = limit - len(heads)
        for head in heads:
            if room <= 0:
                break
            followers = await self.session.execute(
                _CLAIM_FOLLOWERS,
                {
                    "waba_id": head.waba_id,
                    "target_url": head.target_url,
                    "position": head.position,
                    "room": room,
                },
            )
            for row in followers:
                if row.status != PENDING or row.next_attempt_at > now:
                    break  # the run stops here: later events wait for this one
                due.append(row)
                room -= 1
        await self.session.execute(
            _LEASE,
            [
                {"b_id": row.id, "lease_until": lease_until, "claim_token": claim_token}
                for row in due
            ],
        )
        due.sort(key=lambda row: (row.position, row.id))
        return [
            ClaimedDelivery(
                row.id,
                row.event_id,
                row.waba_id,
                row.target_url,
                row.attempts + 1,
                row.expires_at,
                row.body_sealed,
            )
            for row in due
        ]

    async def record_delivered(self, attempts: Sequence[AttemptRecord]) -> None:
        """Store many successful attempts with one statement run once per row (executemany),
        each unless its lease was lost meanwhile."""
        if not attempts:
            return
        await self.session.execute(
            _RECORD_DELIVERED,
            [
                {
                    "b_id": a.delivery_id,
                    "b_token": a.claim_token,
                    "b_at": a.attempted_at,
                    "b_code": a.status_code,
                    "b_latency": a.latency_ms,
                }
                for a in attempts
            ],
        )

    async def record(self, attempt: AttemptRecord) -> bool:
        """Store an attempt's outcome, unless the lease was lost to another claim meanwhile."""
        values: dict[str, Any] = {
            "status": attempt.status,
            "next_attempt_at": attempt.next_attempt_at,
            "claim_token": None,
        }
        if not attempt.counted:
            values["attempts"] = WebhookDelivery.attempts - 1
        else:
            values["last_attempt_at"] = attempt.attempted_at
            values["last_status_code"] = attempt.status_code
            values["last_error"] = attempt.error
            if attempt.latency_ms is not None:
                values["last_latency_ms"] = attempt.latency_ms
            if attempt.status == DELIVERED:
                values["delivered_at"] = attempt.attempted_at
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == attempt.delivery_id,
                WebhookDelivery.claim_token == attempt.claim_token,
            )
            .values(**values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def next_due(self) -> datetime | None:
        value: datetime | None = (await self.session.execute(_NEXT_DUE)).scalar()
        return value

    # -- health -----------------------------------------------------------------------------

    async def update_health(
        self,
        waba_id: str,
        target_url: str,
        *,
        successes: int,
        failures_after_last_success: int,
        last_success_at: datetime | None,
        last_failure_at: datetime | None,
        last_failure_code: int | None,
        last_failure_error: str | None,
    ) -> None:
        """Fold one pass's outcomes for a target into its running health row."""
        dialect = self.session.get_bind().dialect.name
        await self.session.execute(
            _HEALTH_PG if dialect == "postgresql" else _HEALTH_SQLITE,
            {
                "waba_id": waba_id,
                "target_url": target_url,
                "successes": successes,
                "trailing": failures_after_last_success,
                "success_at": last_success_at,
                "failure_at": last_failure_at,
                "failure_code": last_failure_code,
                "failure_error": last_failure_error,
            },
        )

    async def target_counts(self, waba_id: str) -> list[TargetCounts]:
        status = WebhookDelivery.status
        rows = await self.session.execute(
            select(
                WebhookDelivery.target_url,
                func.sum(case((status.in_(WAITING), 1), else_=0)),
                func.sum(case((status == DELIVERED, 1), else_=0)),
                func.sum(case((status == DEAD, 1), else_=0)),
            )
            .where(WebhookDelivery.waba_id == waba_id)
            .group_by(WebhookDelivery.target_url)
            .order_by(WebhookDelivery.target_url)
        )
        return [TargetCounts(url, int(p or 0), int(d or 0), int(x or 0)) for url, p, d, x in rows]

    async def health_rows(self, waba_id: str) -> dict[str, WebhookTargetHealth]:
        rows = await self.session.scalars(
            select(WebhookTargetHealth).where(WebhookTargetHealth.waba_id == waba_id)
        )
        return {row.target_url: row for row in rows}

    async def recent_latencies(self, waba_id: str, target_url: str, limit: int) -> list[int]:
        rows = await self.session.scalars(
            select(WebhookDelivery.last_latency_ms)
            .where(
                and_(
                    WebhookDelivery.waba_id == waba_id,
                    WebhookDelivery.target_url == target_url,
                    WebhookDelivery.status == DELIVERED,
                    WebhookDelivery.last_latency_ms.is_not(None),
                )
            )
            .order_by(WebhookDelivery.delivered_at.desc())
            .limit(limit)
        )
        return [int(v) for v in rows if v is not None]
