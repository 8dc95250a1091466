"""Cloud API template routes: `/{waba_id}/message_templates` (create, list, delete), the template
node (`get_template_node`, `edit_template_node`, routed by the app's shared `/{node_id}`
dispatcher), and Tidings' versions extension (`/{template_id}/versions[/diff]`).

Every path exists with a `/vNN.N` prefix and without one. The services are
`request.app.state.templates` (TemplateService) and `request.app.state.template_desk`
(TemplateDesk).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from tidings.business.service import MANAGEMENT, BusinessCaller
from tidings.business_api.auth import business_caller, businesses_of
from tidings.business_api.graph_errors import GraphError
from tidings.templates.desk import TemplateDesk
from tidings.templates.repository import TemplateFilter
from tidings.templates.schemas import (
    check_category,
    check_parameter_format,
    parse_create,
)
from tidings.templates.service import EditRequest, TemplateService
from tidings.templates.views import TemplateView

router = APIRouter()
Handler = Callable[..., Any]
VERSION_PATTERN = r"^v\d+\.\d+$"
DEFAULT_FIELDS = ("id", "name", "language", "status", "category", "parameter_format", "components")
LIST_DEFAULT_LIMIT = 25
LIST_MAX_LIMIT = 1000
DELETE_MAX_IDS = 100
SUMMARY_KEYS = (
    "total_count",
    "message_template_count",
    "message_template_limit",
    "are_translations_complete",
)


def graph_version(version: Annotated[str, Path(pattern=VERSION_PATTERN)]) -> None:
    """Validates the `/{version}` prefix; the API does not vary by version."""


def templates_of(request: Request) -> TemplateService:
    service: TemplateService = request.app.state.templates
    return service


def desk_of(request: Request) -> TemplateDesk:
    desk: TemplateDesk = request.app.state.template_desk
    return desk


async def manager(request: Request) -> BusinessCaller:
    caller = await business_caller(request)
    caller.require(MANAGEMENT)
    return caller


async def waba_manager(request: Request, waba_id: str) -> BusinessCaller:
    caller = await manager(request)
    await businesses_of(request).check_waba(caller, waba_id)
    return caller


def _both(method: str, suffix: str) -> Callable[[Handler], Handler]:
    """Register at `/{version}/{node}<suffix>` and at `/{node}<suffix>`."""

    def register(handler: Handler) -> Handler:
        route = getattr(router, method)
        node = "{waba_id}" if suffix == "/message_templates" else "{template_id}"
        route(f"/{{version}}/{node}{suffix}", dependencies=[Depends(graph_version)])(handler)
        route(f"/{node}{suffix}")(handler)
        return handler

    return register


async def json_body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GraphError(100, f"The request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise GraphError(100, "The request body must be a JSON object")
    return body


# -- rendering ------------------------------------------------------------------------------------


def _requested(raw: str | None) -> tuple[str, ...]:
    if not raw:
        return DEFAULT_FIELDS
    fields = tuple(dict.fromkeys(f.strip() for f in raw.split(",") if f.strip()))
    return ("id", *(f for f in fields if f != "id"))


def graph_template(view: TemplateView, fields: tuple[str, ...]) -> dict[str, Any]:
    """A template as Graph shows it, limited to `fields` (unknown fields are left out, as
    clients ask for ones only newer Graph versions have)."""
    quality_date = view.quality_updated_at or view.created_at
    values: dict[str, Any] = {
        "id": view.template_id,
        "name": view.name,
        "language": view.language,
        "status": view.status,
        "category": view.category,
        "parameter_format": view.parameter_format,
        "components": view.components,
        "rejected_reason": view.rejected_reason,
        "quality_score": {"score": view.quality_score, "date": int(quality_date.timestamp())},
    }
    optional = {
        "previous_category": view.previous_category,
        "correct_category": view.correct_category,
        "message_send_ttl_seconds": view.options.get("message_send_ttl_seconds"),
        "sub_category": view.options.get("sub_category"),
        "cta_url_link_tracking_opted_out": view.options.get("cta_url_link_tracking_opted_out"),
    }
    values |= {key: value for key, value in optional.items() if value is not None}
    return {field: values[field] for field in fields if field in values}


# -- /{waba_id}/message_templates ---------------------------------------------------------------


@_both("post", "/message_templates")
async def create_template(request: Request, waba_id: str) -> dict[str, Any]:
    caller = await waba_manager(request, waba_id)
    draft, components, options = parse_create(await json_body(request))
    view = await templates_of(request).create(
        caller.business_id, caller.waba_id, draft, components, options
    )
    return {"id": view.template_id, "status": view.status, "category": view.category}


def _listed(value: str | None, upper: bool = True) -> tuple[str, ...]:
    if not value:
        return ()
    items = [v.strip() for v in value.strip("[]").replace('"', "").split(",") if v.strip()]
    return tuple(v.upper() if upper else v for v in items)


def _timestamp(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    if not value.isdigit():
        raise GraphError(100, f"Param {name} must be a unix timestamp.")
    return datetime.fromtimestamp(int(value), UTC)


def list_filter(query: dict[str, str]) -> TemplateFilter:
    return TemplateFilter(
        name=query.get("name") or None,
        content=query.get("content") or None,
        name_or_content=query.get("name_or_content") or None,
        statuses=_listed(query.get("status")),
        categories=_listed(query.get("category")),
        languages=_listed(query.get("language"), upper=False),
        quality_scores=_listed(query.get("quality_score")),
        since=_timestamp(query.get("since"), "since"),
        until=_timestamp(query.get("until"), "until"),
    )


@_both("get", "/message_templates")
async def list_templates(request: Request, waba_id: str) -> dict[str, Any]:
    caller = await waba_manager(request, waba_id)
    query = dict(request.query_params)
    raw_limit = query.get("limit", str(LIST_DEFAULT_LIMIT))
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_MAX_LIMIT:
        raise GraphError(100, f"Param limit must be a number from 1 to {LIST_MAX_LIMIT}.")
    where = list_filter(query)
    service = templates_of(request)
    page = await service.list(
        caller.business_id,
        where,
        int(raw_limit),
        after=query.get("after") or None,
        before=query.get("before") or None,
    )
    fields = _requested(query.get("fields"))
    body: dict[str, Any] = {"data": [graph_template(v, fields) for v in page.items]}
    if page.items:
        paging: dict[str, Any] = {"cursors": {"before": page.before, "after": page.after}}
        # Absolute, on the host the client used: clients GET `next` as it is.
        if page.has_next:
            paging["next"] = str(
                request.url.remove_query_params("before").include_query_params(after=page.after)
            )
        if page.has_previous:
            paging["previous"] = str(
                request.url.remove_query_params("after").include_query_params(before=page.before)
            )
        body["paging"] = paging
    summary = query.get("summary")
    if summary:
        wanted = SUMMARY_KEYS[:1] if summary.lower() in ("true", "1") else _listed(summary, False)
        counts = await service.summary(caller.business_id, where)
        body["summary"] = {key: counts[key] for key in wanted if key in counts}
    return body


@_both("delete", "/message_templates")
async def delete_templates(request: Request, waba_id: str) -> dict[str, bool]:
    caller = await waba_manager(request, waba_id)
    query = request.query_params
    hsm_ids = _listed(query.get("hsm_ids"), upper=False)
    if len(hsm_ids) > DELETE_MAX_IDS:
        raise GraphError(100, f"Param hsm_ids can list at most {DELETE_MAX_IDS} ids.")
    await templates_of(request).delete(
        caller.business_id,
        name=query.get("name") or None,
        hsm_id=query.get("hsm_id") or None,
        hsm_ids=hsm_ids,
    )
    return {"success": True}


# -- the template node ----------------------------------------------------------------------------


async def template_exists(request: Request, node_id: str) -> bool:
    """For the app's `/{node_id}` dispatcher: is this id a template (of anyone)?"""
    return await templates_of(request).exists(node_id)


async def get_template_node(request: Request, template_id: str) -> dict[str, Any]:
    """`GET /{template_id}?fields=`."""
    caller = await manager(request)
    view = await templates_of(request).get(caller.business_id, template_id)
    return graph_template(view, _requested(request.query_params.get("fields")))


async def edit_template_node(request: Request, template_id: str) -> dict[str, Any]:
    """`POST /{template_id}`: new components and/or category; the edit is reviewed again."""
    caller = await manager(request)
    body = await json_body(request)
    if not any(
        k in body
        for k in ("components", "category", "parameter_format", "message_send_ttl_seconds")
    ):
        raise GraphError(131008, "The parameter components is required.")
    options: dict[str, Any] = {}
    if "message_send_ttl_seconds" in body:
        ttl = body["message_send_ttl_seconds"]
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise GraphError(100, "Param message_send_ttl_seconds must be a number of seconds.")
        options["message_send_ttl_seconds"] = ttl
    change = EditRequest(
        components=body.get("components"),
        category=check_category(body["category"]) if body.get("category") else None,
        parameter_format=check_parameter_format(body["parameter_format"])
        if body.get("parameter_format")
        else None,
        options=options,
    )
    await templates_of(request).edit(caller.business_id, template_id, change)
    return {"success": True}


# -- versions (a Tidings extension) ---------------------------------------------------------------


@_both("get", "/versions")
async def template_versions(request: Request, template_id: str) -> dict[str, Any]:
    caller = await manager(request)
    versions = await desk_of(request).versions(template_id, caller.business_id)
    return {"data": [v.to_json() for v in versions]}


@_both("get", "/versions/diff")
async def template_diff(request: Request, template_id: str) -> dict[str, Any]:
    caller = await manager(request)
    query = request.query_params
    numbers = [query.get("from_version", ""), query.get("to_version", "")]
    if not all(n.isdigit() for n in numbers):
        raise GraphError(100, "Params from_version and to_version must be version numbers.")
    found = await desk_of(request).diff(
        template_id, int(numbers[0]), int(numbers[1]), caller.business_id
    )
    return found.to_json()


__all__ = ["edit_template_node", "get_template_node", "router", "template_exists"]
