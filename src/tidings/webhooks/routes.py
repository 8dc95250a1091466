"""HTTP routes: Meta's `subscribed_apps`, plus Tidings' events API, replay and health.

Every route exists with a Graph version prefix (`/v23.0/...`) and without one, as clients use
both. The business caller is authenticated and authorized by `require_waba_access`; the service
is `request.app.state.webhooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from tidings.business_api.auth import require_waba_access
from tidings.webhooks.service import MAX_PAGE, WebhookService

router = APIRouter()
Handler = Callable[..., Any]

VERSION_PATTERN = r"^v\d+\.\d+$"


def graph_version(version: Annotated[str, Path(pattern=VERSION_PATTERN)]) -> None:
    """Validates the `/{version}` prefix (`v23.0`); the API does not vary by version."""


def webhooks_of(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.webhooks
    return service


class SubscribeBody(BaseModel):
    override_callback_uri: str | None = Field(default=None, max_length=200)
    verify_token: str | None = Field(default=None, max_length=200)


class ReplayBody(BaseModel):
    event_ids: list[str] | None = Field(default=None, max_length=MAX_PAGE)
    after: int | None = Field(default=None, ge=0)


def _both(method: str, suffix: str) -> Callable[[Handler], Handler]:
    """Register a handler at `/{version}/{waba_id}<suffix>` and at `/{waba_id}<suffix>`."""

    def register(handler: Handler) -> Handler:
        route = getattr(router, method)
        versioned = [Depends(graph_version), Depends(require_waba_access)]
        route(f"/{{version}}/{{waba_id}}{suffix}", dependencies=versioned)(handler)
        route(f"/{{waba_id}}{suffix}", dependencies=[Depends(require_waba_access)])(handler)
        return handler

    return register


@_both("get", "/subscribed_apps")
async def list_subscribed_apps(request: Request, waba_id: str) -> dict[str, Any]:
    apps = await webhooks_of(request).list_subscribed_apps(waba_id)
    return {"data": [app.to_graph() for app in apps]}


@_both("post", "/subscribed_apps")
async def subscribe_app(
    request: Request, waba_id: str, body: SubscribeBody | None = None
) -> dict[str, bool]:
    body = body or SubscribeBody()
    await webhooks_of(request).subscribe_app(waba_id, body.override_callback_uri, body.verify_token)
    return {"success": True}


@_both("delete", "/subscribed_apps")
async def unsubscribe_app(request: Request, waba_id: str) -> dict[str, bool]:
    await webhooks_of(request).unsubscribe_app(waba_id)
    return {"success": True}


@_both("get", "/webhook_events")
async def webhook_events(
    request: Request,
    waba_id: str,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> dict[str, Any]:
    events, cursor = await webhooks_of(request).events_since(waba_id, after, limit)
    return {"data": [e.to_json() for e in events], "paging": {"cursors": {"after": cursor}}}


@_both("post", "/webhook_events/replay")
async def replay_webhook_events(request: Request, waba_id: str, body: ReplayBody) -> dict[str, Any]:
    queued = await webhooks_of(request).replay(
        waba_id, event_ids=body.event_ids, after_position=body.after
    )
    return {"success": True, "queued": queued}


@_both("get", "/webhook_health")
async def webhook_health(request: Request, waba_id: str) -> dict[str, Any]:
    targets = await webhooks_of(request).endpoint_health(waba_id)
    return {"data": [t.to_json() for t in targets]}
