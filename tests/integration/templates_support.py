"""A server for template tests (optionally with its own review settings), and helpers."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI

from conftest import RunningServer, ServerThread
from tidings.app import create_app
from tidings.runtime import Runtime
from tidings.templates.desk import TemplateDesk
from tidings.templates.review import ReviewSettings
from tidings.templates.service import TemplateLimits, TemplateService


def templates_app(
    runtime: Runtime,
    *,
    limits: TemplateLimits | None = None,
    review_settings: ReviewSettings | None = None,
) -> FastAPI:
    """The real app; a test may swap in template services with its own limits and review."""
    app = create_app(runtime)
    if limits is not None or review_settings is not None:
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
    return app


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


def file_three_for_review(graph: Graph) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """File three templates for a held business, in this order: a plain shipping notice, a
    promotion filed as UTILITY (the classifier proposes MARKETING), and an account notice."""
    shipped = graph.create(body("shipping_notice")).json()
    promo = graph.create(
        body(
            "order_followup",
            "Hi {{1}}, order {{2}} shipped! Get 15% off your next order"
            " with code AGAIN15, shop now.",
        )
    ).json()
    doubtful = graph.create(body("account_notice")).json()
    return shipped, promo, doubtful
