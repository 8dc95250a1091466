"""The operator's HTTP API for templates: the human review queue and template versions.

    GET  /admin/v1/templates/review[?waba_id=]            templates waiting for a person
    GET  /admin/v1/templates/{template_id}                one template, as the operator sees it
    POST /admin/v1/templates/{template_id}/approve        approve in the proposed category
    POST /admin/v1/templates/{template_id}/reject         {"explanation", "reason"?}
    POST /admin/v1/templates/{template_id}/recategorize   {"category"}
    GET  /admin/v1/templates/{template_id}/versions       every submitted version
    GET  /admin/v1/templates/{template_id}/versions/diff?from=&to=

Every route needs `Authorization: Bearer <operator token>` (`tidings admin token create`).
Errors use the core envelope `{"error": {"code", "message", "details"}}` (app.py sends
`/admin/` paths there, not to the Graph envelope). The work is the template desk's, shared
with `tidings templates review`; decisions record the operator's token label.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from tidings.admin.service import Operator, OperatorTokens
from tidings.business_api.graph_errors import GraphError
from tidings.errors import NotFound, ValidationFailed
from tidings.templates.desk import REJECTION_REASONS, TemplateDesk
from tidings.templates.views import TemplateView, review_entry

PREFIX = "/admin/v1"


async def operator(request: Request) -> Operator:
    tokens: OperatorTokens = request.app.state.operator_tokens
    return await tokens.authenticate(request.headers.get("authorization"))


Caller = Annotated[Operator, Depends(operator)]
router = APIRouter(prefix=PREFIX, dependencies=[Depends(operator)])


def desk_of(request: Request) -> TemplateDesk:
    desk: TemplateDesk = request.app.state.template_desk
    return desk


async def json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ValidationFailed("the request body must be a JSON object")
    return body


def _text(body: dict[str, Any], key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{key} is required and must be a non-empty string")
    return value


def template_json(view: TemplateView) -> dict[str, Any]:
    return {
        "id": view.template_id,
        "waba_id": view.waba_id,
        "name": view.name,
        "language": view.language,
        "status": view.status,
        "category": view.category,
        "previous_category": view.previous_category,
        "rejected_reason": view.rejected_reason,
        "parameter_format": view.parameter_format,
        "needs_human_review": view.needs_human_review,
        "version": view.version,
        "approved_version": view.approved_version,
        "components": view.components,
        "review": view.review,
    }


@router.get("/templates/review")
async def review_queue(request: Request, waba_id: str | None = None) -> dict[str, Any]:
    views = await desk_of(request).queue(waba_id or None)
    return {"data": [review_entry(v) for v in views]}


@router.get("/templates/{template_id}")
async def get_template(request: Request, template_id: str) -> dict[str, Any]:
    return template_json(await desk_of(request).view(template_id))


@router.post("/templates/{template_id}/approve")
async def approve(request: Request, template_id: str, caller: Caller) -> dict[str, Any]:
    view = await desk_of(request).approve(template_id, operator=caller.name)
    return template_json(view)


@router.post("/templates/{template_id}/reject")
async def reject(request: Request, template_id: str, caller: Caller) -> dict[str, Any]:
    body = await json_object(request)
    explanation = _text(body, "explanation")
    reason = (_text(body, "reason", required=False) or "NONE").upper()
    if reason not in REJECTION_REASONS:
        raise ValidationFailed(f"reason must be one of {', '.join(REJECTION_REASONS)}")
    assert explanation is not None
    view = await desk_of(request).reject(
        template_id, explanation, reason=reason, operator=caller.name
    )
    return template_json(view)


@router.post("/templates/{template_id}/recategorize")
async def recategorize(request: Request, template_id: str, caller: Caller) -> dict[str, Any]:
    category = _text(await json_object(request), "category")
    assert category is not None
    view = await desk_of(request).recategorize(template_id, category, operator=caller.name)
    return template_json(view)


@router.get("/templates/{template_id}/versions")
async def versions(request: Request, template_id: str) -> dict[str, Any]:
    found = await desk_of(request).versions(template_id)
    return {"data": [v.to_json() for v in found]}


def _version_number(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or not raw.isdigit() or int(raw) < 1:
        raise ValidationFailed(f"query parameter {name!r} must be a version number (1, 2, ...)")
    return int(raw)


@router.get("/templates/{template_id}/versions/diff")
async def version_diff(request: Request, template_id: str) -> dict[str, Any]:
    start, end = _version_number(request, "from"), _version_number(request, "to")
    try:
        found = await desk_of(request).diff(template_id, start, end)
    except GraphError as exc:  # the desk speaks Graph to businesses; operators get the core
        raise NotFound(exc.graph_details, details={"id": template_id}) from None
    return found.to_json()
