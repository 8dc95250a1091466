"""A server with the templates routes mounted (until app.py wires them), and helpers.

The app is `create_app(runtime)` with the template services on `app.state` and the templates
router placed first; the shared `/{version}/{node_id}` dispatcher the lead will add is stood in
for by `node_get` / `node_post`, which send template ids to the template node and everything
else to the phone node.
"""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter, FastAPI, Request

from conftest import RunningServer, ServerThread
from tidings.app import create_app
from tidings.business_api import routes as business_routes
from tidings.runtime import Runtime
from tidings.templates.desk import TemplateDesk
from tidings.templates.review import ReviewSettings
from tidings.templates.routes import (
    edit_template_node,
    get_template_node,
    template_exists,
)
from tidings.templates.routes import router as templates_router
from tidings.templates.service import TemplateLimits, TemplateService

# The business API's own GET dispatcher (media, then phone) when it has one.
_business_get = getattr(business_routes, "get_node", business_routes.phone_node)


async def node_get(request: Request, node_id: str, version: str | None = None) -> Any:
    if await template_exists(request, node_id):
        return await get_template_node(request, node_id)
    return await _business_get(request, node_id, version)


async def node_post(request: Request, node_id: str, version: str | None = None) -> Any:
    if await template_exists(request, node_id):
        return await edit_template_node(request, node_id)
    return await business_routes.configure_phone(request, node_id, version)


def templates_app(
    runtime: Runtime,
    *,
    limits: TemplateLimits | None = None,
    review_settings: ReviewSettings | None = None,
) -> FastAPI:
    app = create_app(runtime)
    templates = TemplateService(
        database=runtime.database,
        clock=runtime.clock,
        webhooks=runtime.webhooks,
        limits=limits,
        review_settings=review_settings,
    )
    app.state.templates = templates
    app.state.template_desk = TemplateDesk(
        database=runtime.database, clock=runtime.clock, templates=templates
    )
    nodes = APIRouter()
    for path in ("/{version}/{node_id}", "/{node_id}"):
        nodes.add_api_route(path, node_get, methods=["GET"])
        nodes.add_api_route(path, node_post, methods=["POST"])
    # Both go just before the first router with Graph catch-all paths (`/{version}/{id}`),
    # where the lead's wiring will put the templates router and the template node.
    app.include_router(templates_router)
    app.include_router(nodes)
    routes = app.router.routes
    added = routes[-2:]
    del routes[-2:]
    first_graph = next(i for i, r in enumerate(routes) if _has_graph_paths(r))
    routes[first_graph:first_graph] = added
    return app


def _has_graph_paths(route: Any) -> bool:
    inner = getattr(route, "original_router", None) or getattr(route, "router", None)
    paths = [getattr(r, "path", "") for r in getattr(inner, "routes", [])] or [
        getattr(route, "path", "")
    ]
    return any(p.startswith("/{version}/") for p in paths)


class TemplatesServer(ServerThread):
    def __init__(self, runtime: Runtime, app: FastAPI) -> None:
        super().__init__(runtime)
        self.server.config.app = app


def start(
    runtime: Runtime, settings, clock, **options: Any
) -> tuple[TemplatesServer, RunningServer]:
    thread = TemplatesServer(runtime, templates_app(runtime, **options))
    thread.start()
    return thread, RunningServer(f"http://127.0.0.1:{thread.port}", runtime, settings, clock)


class Graph:
    """Raw Graph requests with a business's token."""

    def __init__(self, base: str, token: str, waba_id: str) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        self.waba_id = waba_id

    def create(self, body: dict[str, Any], version: str = "v23.0") -> httpx.Response:
        return self.client.post(f"/{version}/{self.waba_id}/message_templates", json=body)

    def list(self, **params: Any) -> httpx.Response:
        return self.client.get(f"/v23.0/{self.waba_id}/message_templates", params=params)

    def events(self, field: str | None = None) -> list[dict[str, Any]]:
        response = self.client.get(f"/v23.0/{self.waba_id}/webhook_events", params={"limit": 1000})
        assert response.status_code == 200, response.text
        return [
            e["payload"] for e in response.json()["data"] if field is None or e["field"] == field
        ]

    def close(self) -> None:
        self.client.close()


def body(
    name: str,
    text: str | None = None,
    examples: list[str] | None = None,
    category: str = "UTILITY",
    language: str = "en_US",
    **extra: Any,
) -> dict[str, Any]:
    # Each name gets its own wording: identical bodies are refused as duplicates.
    text = text or f"Hi {{{{1}}}}, your {name.replace('_', ' ')} order {{{{2}}}} has shipped."
    component: dict[str, Any] = {"type": "BODY", "text": text}
    values = examples if examples is not None else ["Ann", "A-1001"][: text.count("{{")]
    if values:
        component["example"] = {"body_text": [values]}
    return {
        "name": name,
        "language": language,
        "category": category,
        "components": [component, *extra.pop("components", [])],
        **extra,
    }


def error_of(response: httpx.Response) -> tuple[int, int]:
    return response.status_code, response.json()["error"]["code"]
