"""Webhook use cases: subscriptions, the outbox, the events API, replay and health.

Where an event goes is decided when it is enqueued: for every app subscribed to the WABA, the
phone number's override, else the subscription's (WABA) override, else the app's callback.
Each distinct URL gets a delivery row in the caller's transaction. Changing the configuration
later does not redirect events already queued (they keep retrying where they were sent); a
replay goes to the targets configured at the time of the replay.

Events are stored even when nobody is subscribed, so the events API (a Tidings extension)
can serve them and a later replay can deliver them.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx

from tidings.bus.base import Bus
from tidings.crypto.sealing import Sealer
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import Conflict, NotFound, ValidationFailed
from tidings.kit.clock import Clock
from tidings.kit.ids import new_uuid, numeric_code
from tidings.kit.jsonutil import loads
from tidings.outbound import OutboundPolicy, check_url, read_limited, safe_http_client
from tidings.webhooks.delivery import RETRY_WINDOW, Dispatcher
from tidings.webhooks.models import (
    OVERRIDE_URL_MAX,
    URL_MAX,
    WebhookEvent,
    WebhookPhoneOverride,
    WebhookSubscription,
    sealed_body_aad,
)
from tidings.webhooks.repository import PENDING, TargetRoute, WebhookRepository
from tidings.webhooks.signing import encode_body, envelope
from tidings.webhooks.views import (
    DeliverySummary,
    EventView,
    SubscribedApp,
    TargetHealth,
)

DEFAULT_APP_ID = "tidings"
MAX_BODY_BYTES = 3 * 1024 * 1024  # Meta's payload limit
MAX_FIELD_LENGTH = 64
MAX_PAGE = 1000
LATENCY_SAMPLE = 100
# Meta's error code for a failed callback verification, for the Graph error envelope.
GRAPH_CALLBACK_VERIFICATION_FAILED = 2200
GRAPH_INVALID_PARAMETER = 100


def resolve_targets(routes: Sequence[TargetRoute]) -> list[str]:
    """Where an event goes: per subscribed app, phone override > WABA override > app callback.
    Apps that resolve to the same URL share one delivery."""
    targets: list[str] = []
    for route in routes:
        url = route.phone_override or route.waba_override or route.app_callback
        if url and url not in targets:
            targets.append(url)
    return targets


WEBHOOK_DOORBELL = "webhooks.doorbell"


async def relay_doorbell(bus: Bus, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    """Ring this node's dispatcher when another node queued deliveries (several nodes)."""
    async with bus.subscribe(WEBHOOK_DOORBELL) as subscription:
        while not stop.is_set():
            if await subscription.get(timeout=1.0) is not None:
                dispatcher.ring()


class WebhookService:
    def __init__(
        self,
        database: Database,
        clock: Clock,
        sealer: Sealer,
        secret_for: Callable[[str], Awaitable[str | None]],
        policy: OutboundPolicy,
        transport: httpx.AsyncBaseTransport | None = None,  # handshakes' (POSTs: WebhookPoster)
        *,
        app_id: str = DEFAULT_APP_ID,
        batch_size: int = 100,
        max_in_flight: int = 32,
        per_target_in_flight: int = 8,
    ) -> None:
        self._database = database
        self._clock = clock
        self._sealer = sealer
        self._policy = policy
        self._transport = transport
        self.app_id = app_id
        self.dispatcher = Dispatcher(
            database=database,
            clock=clock,
            sealer=sealer,
            secret_for=secret_for,
            policy=policy,
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            per_target_in_flight=per_target_in_flight,
        )
        # Tells the other nodes' dispatchers (set by the runtime to a bus publish).
        self.announce: Callable[[], Awaitable[None]] | None = None
        # Where a transaction's events go, per (WABA, phone number id): resolved once per
        # transaction, however many events it queues (a batch of statuses queues dozens).
        self._routes: weakref.WeakKeyDictionary[
            UnitOfWork, dict[tuple[str, str | None], list[str]]
        ] = weakref.WeakKeyDictionary()
        self._client: httpx.AsyncClient | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background dispatcher on the running loop (at application start-up)."""
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(
                self.dispatcher.run_forever(self._stop), name="webhook-dispatcher"
            )

    async def close(self) -> None:
        """Stop the dispatcher (after its current pass) and close HTTP clients."""
        if self._task is not None and self._stop is not None:
            self._stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.dispatcher.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the outbox -------------------------------------------------------------------------

    async def enqueue(
        self,
        uow: UnitOfWork,
        *,
        waba_id: str,
        phone_number_id: str | None,
        field: str,
        value: dict[str, Any],
    ) -> str:
        """Queue one webhook event in the caller's transaction; returns its event id.

        Takes the WABA's stream counter lock until the caller commits (that is what keeps
        positions in commit order), so call it late in the transaction.
        """
        [event_id] = await self.enqueue_many(
            uow, waba_id=waba_id, phone_number_id=phone_number_id, field=field, values=[value]
        )
        return event_id

    async def enqueue_many(
        self,
        uow: UnitOfWork,
        *,
        waba_id: str,
        phone_number_id: str | None,
        field: str,
        values: Sequence[dict[str, Any]],
    ) -> list[str]:
        """Queue one event per value, at consecutive positions in the given order, with one
        position allocation and one insert of events and of deliveries (a delivery pass
        records a hundred statuses at a time); returns the event ids."""
        if not field or len(field) > MAX_FIELD_LENGTH:
            raise ValidationFailed("a webhook field name is required (at most 64 characters)")
        if not values:
            return []
        now = self._clock.now()
        # Meta puts `time` on the entry for every field except messages.
        entry_time = None if field == "messages" else int(now.timestamp())
        bodies: list[bytes] = []
        for value in values:
            if not isinstance(value, dict):
                raise ValidationFailed("a webhook value must be a JSON object")
            body = encode_body(envelope(waba_id, field, value, entry_time))
            if len(body) > MAX_BODY_BYTES:
                raise ValidationFailed("the webhook payload is over Meta's 3 MB limit")
            bodies.append(body)
        repository = WebhookRepository(uow.session)
        routes = self._routes.setdefault(uow, {})
        targets = routes.get((waba_id, phone_number_id))
        if targets is None:
            targets = await self._targets(repository, waba_id, phone_number_id)
            routes[(waba_id, phone_number_id)] = targets
        last = await repository.allocate(waba_id, len(bodies))
        event_ids = [new_uuid() for _ in bodies]
        first = last - len(bodies) + 1
        await repository.insert_events(
            [
                {
                    "id": event_id,
                    "waba_id": waba_id,
                    "position": first + index,
                    "phone_number_id": phone_number_id,
                    "field": field,
                    "body_sealed": self._sealer.seal(body, sealed_body_aad(event_id)),
                    "created_at": now,
                }
                for index, (event_id, body) in enumerate(zip(event_ids, bodies, strict=True))
            ]
        )
        await repository.insert_deliveries(
            [
                {
                    "event_id": event_id,
                    "waba_id": waba_id,
                    "target_url": url,
                    "position": first + index,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "expires_at": now + RETRY_WINDOW,
                    "created_at": now,
                }
                for index, event_id in enumerate(event_ids)
                for url in targets
            ]
        )
        self._ring_after_commit(uow)
        return event_ids

    def _ring_after_commit(self, uow: UnitOfWork) -> None:
        """Ring the dispatcher's doorbell once the unit commits: once per unit, however many
        events it queues."""

        async def ring() -> None:
            self.dispatcher.ring()
            if self.announce is not None:
                await self.announce()

        uow.after_commit_once((self, "doorbell"), ring)

    async def _targets(
        self, repository: WebhookRepository, waba_id: str, phone_number_id: str | None
    ) -> list[str]:
        return resolve_targets(await repository.target_routes(waba_id, phone_number_id))

    # -- subscriptions ----------------------------------------------------------------------

    async def subscribe_app(
        self,
        waba_id: str,
        override_callback_uri: str | None = None,
        verify_token: str | None = None,
        *,
        app_id: str | None = None,
    ) -> None:
        """`POST /{waba_id}/subscribed_apps`. An override is verified (GET handshake) first;
        subscribing again without one removes a previous override."""
        override = override_callback_uri or None
        if override is not None:
            await self._require_verified(override, verify_token, max_length=OVERRIDE_URL_MAX)
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = WebhookRepository(uow.session)
            app = await repository.ensure_app(app_id or self.app_id, now)
            subscription = await repository.subscription(waba_id, app.app_id)
            if subscription is None:
                subscription = WebhookSubscription(waba_id=waba_id, app_id=app.app_id)
                subscription.created_at = now
                repository.add(subscription)
            subscription.override_callback_uri = override
            subscription.verify_token = verify_token if override else None

    async def unsubscribe_app(self, waba_id: str, *, app_id: str | None = None) -> bool:
        """`DELETE /{waba_id}/subscribed_apps`. Returns whether a subscription existed; events
        already queued are still delivered."""
        async with self._database.unit_of_work() as uow:
            return await WebhookRepository(uow.session).delete_subscription(
                waba_id, app_id or self.app_id
            )

    async def list_subscribed_apps(self, waba_id: str) -> list[SubscribedApp]:
        async with self._database.read_only() as uow:
            rows = await WebhookRepository(uow.session).subscriptions(waba_id)
            # Read inside the session: its closing rollback expires every loaded row.
            return [
                SubscribedApp(app.app_id, app.name, app.link, subscription.override_callback_uri)
                for subscription, app in rows
            ]

    async def set_phone_override(
        self, phone_number_id: str, waba_id: str, url: str | None, verify_token: str | None
    ) -> None:
        """`POST /{phone_number_id}` with `webhook_configuration`; an empty URL removes it."""
        if url:
            await self._require_verified(url, verify_token, max_length=OVERRIDE_URL_MAX)
        async with self._database.unit_of_work() as uow:
            repository = WebhookRepository(uow.session)
            if not url:
                await repository.delete_phone_override(phone_number_id)
                return
            row = await repository.phone_override(phone_number_id)
            if row is None:
                row = WebhookPhoneOverride(phone_number_id=phone_number_id)
                repository.add(row)
            row.waba_id = waba_id
            row.override_callback_uri = url
            row.verify_token = verify_token
            row.updated_at = self._clock.now()

    async def set_app_callback(
        self,
        callback_url: str | None,
        verify_token: str | None,
        *,
        app_id: str | None = None,
        name: str | None = None,
        link: str | None = None,
    ) -> None:
        """The app's default callback (lowest precedence); verified first. None clears it."""
        if callback_url:
            await self._require_verified(callback_url, verify_token, max_length=URL_MAX)
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            app = await WebhookRepository(uow.session).ensure_app(app_id or self.app_id, now)
            app.callback_url = callback_url or None
            app.verify_token = verify_token if callback_url else None
            if name is not None:
                app.name = name
            if link is not None:
                app.link = link
            app.updated_at = now

    async def verify_endpoint(self, url: str, verify_token: str) -> bool:
        """Meta's handshake: GET with hub.mode, hub.challenge and hub.verify_token; the endpoint
        is verified iff it answers 200 with the challenge as the body."""
        return await self._handshake(url, verify_token) is None

    async def _handshake(self, url: str, verify_token: str) -> str | None:
        """None on success, else why the handshake failed (safe to show the business)."""
        try:
            await check_url(url, self._policy)
        except ValidationFailed as exc:
            return exc.message
        challenge = str(int(numeric_code(10)) or 1)
        params = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": verify_token,
        }
        try:
            async with asyncio.timeout(self._policy.timeout_s):
                async with self._http().stream("GET", url, params=params) as response:
                    body = await read_limited(response, self._policy.max_response_bytes)
                    status_code = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return "the callback did not answer in time"
        except httpx.HTTPError as exc:
            return f"the callback could not be reached ({type(exc).__name__})"
        if status_code != 200:
            return f"the callback answered HTTP {status_code} instead of 200"
        if body.decode("utf-8", "replace").strip() != challenge:
            return "the callback did not echo hub.challenge"
        return None

    async def _require_verified(
        self, url: str, verify_token: str | None, *, max_length: int
    ) -> None:
        if len(url) > max_length:
            raise ValidationFailed(
                f"the callback URL is longer than {max_length} characters",
                details={"graph_code": GRAPH_INVALID_PARAMETER},
            )
        if not verify_token:
            raise ValidationFailed(
                "verify_token is required with a callback URL",
                details={"graph_code": GRAPH_INVALID_PARAMETER},
            )
        reason = await self._handshake(url, verify_token)
        if reason is not None:
            raise ValidationFailed(
                f"Callback verification failed: {reason}",
                details={"graph_code": GRAPH_CALLBACK_VERIFICATION_FAILED},
            )

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = safe_http_client(self._policy, self._transport)
        return self._client

    # -- events API, replay, health ---------------------------------------------------------

    async def events_since(
        self, waba_id: str, after_position: int = 0, limit: int = 100
    ) -> tuple[list[EventView], int]:
        """Events after a cursor in commit order, and the cursor to pass next time."""
        limit = max(1, min(limit, MAX_PAGE))
        async with self._database.read_only() as uow:
            repository = WebhookRepository(uow.session)
            events = await repository.events_after(waba_id, max(after_position, 0), limit)
            deliveries = await repository.deliveries_of([e.id for e in events])
            by_event: dict[str, list[DeliverySummary]] = {}
            for d in deliveries:
                by_event.setdefault(d.event_id, []).append(
                    DeliverySummary(
                        d.target_url, d.status, d.attempts, d.last_status_code, d.last_error,
                        d.delivered_at,
                    )
                )  # fmt: skip
            views = [
                EventView(
                    id=event.id,
                    position=event.position,
                    field=event.field,
                    phone_number_id=event.phone_number_id,
                    created_at=event.created_at,
                    payload=self._value_of(event),
                    deliveries=by_event.get(event.id, []),
                )
                for event in events
            ]
        return views, (views[-1].position if views else max(after_position, 0))

    def event_body(self, event: WebhookEvent) -> bytes:
        """The exact bytes that are (and will again be) POSTed for `event`."""
        return self._sealer.open(event.body_sealed, sealed_body_aad(event.id))

    def _value_of(self, event: WebhookEvent) -> dict[str, Any]:
        document = loads(self.event_body(event))
        value: dict[str, Any] = document["entry"][0]["changes"][0]["value"]
        return value

    async def replay(
        self,
        waba_id: str,
        *,
        event_ids: Sequence[str] | None = None,
        after_position: int | None = None,
        limit: int = MAX_PAGE,
    ) -> int:
        """Deliver events again: same event id, same bytes, to the targets configured now.
        Returns the number of deliveries queued."""
        if (event_ids is None) == (after_position is None):
            raise ValidationFailed("give either event_ids or after")
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = WebhookRepository(uow.session)
            if event_ids is not None:
                wanted = list(dict.fromkeys(event_ids))[:MAX_PAGE]
                events = await repository.events_by_id(waba_id, wanted)
                missing = sorted(set(wanted) - {e.id for e in events})
                if missing:
                    raise NotFound("unknown webhook events", details={"event_ids": missing})
            else:
                limit = max(1, min(limit, MAX_PAGE))
                events = await repository.events_after(waba_id, after_position or 0, limit)
            queued = 0
            for event in events:
                targets = await self._targets(repository, waba_id, event.phone_number_id)
                if not targets:
                    raise Conflict("no webhook callback is configured for this WABA")
                for url in targets:
                    await repository.requeue(event, url, now, now + RETRY_WINDOW)
                    queued += 1
            if queued:
                self._ring_after_commit(uow)
            return queued

    async def endpoint_health(self, waba_id: str) -> list[TargetHealth]:
        """Per target URL: queue counts, last success and failure, latency."""
        async with self._database.read_only() as uow:
            repository = WebhookRepository(uow.session)
            health = await repository.health_rows(waba_id)
            result = []
            for counts in await repository.target_counts(waba_id):
                url = counts.target_url
                row = health.get(url)
                samples = await repository.recent_latencies(waba_id, url, LATENCY_SAMPLE)
                result.append(
                    TargetHealth(
                        target_url=url,
                        pending=counts.pending,
                        delivered=counts.delivered,
                        dead=counts.dead,
                        last_success_at=row.last_success_at if row else None,
                        last_failure_at=row.last_failure_at if row else None,
                        last_failure_code=row.last_failure_code if row else None,
                        last_failure_error=row.last_failure_error if row else None,
                        consecutive_failures=row.consecutive_failures if row else 0,
                        p50_latency_ms=float(statistics.median(samples)) if samples else None,
                    )
                )
            return result
