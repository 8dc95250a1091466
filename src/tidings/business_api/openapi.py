"""Our own OpenAPI 3.1 document for the Business API, served at `/business-api/openapi.json`.

FastAPI's generated `/openapi.json` cannot describe these routes: they read raw JSON bodies
(to answer Meta's error codes, not FastAPI's) and return plain dicts. So the document is built
here, from the wire models for requests and hand-written schemas for responses
(`openapi_schemas.py`). The tests validate every response they get against it.

Every error status an operation documents is the Graph envelope (`GraphError`). Paths are
written with their `{version}` prefix; every route also answers without it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from fastapi import APIRouter

from tidings import __version__
from tidings.business_api.idempotent import (
    IDEMPOTENCY_HEADER,
    IN_PROGRESS_RETRY_SECONDS,
    REPLAYED_HEADER,
)
from tidings.business_api.media_routes import DOWNLOAD_PATH
from tidings.business_api.openapi_policy import add_policy_schemas, policy_paths
from tidings.business_api.openapi_schemas import (
    Schema,
    SchemaSet,
    add_request_schemas,
    add_response_schemas,
    ref,
)

DOCUMENT_PATH = "/business-api/openapi.json"
JSON = "application/json"

DESCRIPTION = """\
The WhatsApp Cloud API, as Tidings serves it: send endpoint, phone number node and webhook
subscriptions keep Meta's paths, bodies and Graph error codes, so Cloud API clients work
unchanged. Every path also answers without the `/{version}` prefix.

Beyond Meta: the `Idempotency-Key` header on sends, the webhook event log
(`webhook_events`, `webhook_events/replay`, `webhook_health`), the consent ledger API
(`consents`) and send `preflight`.
"""

# What each error status means here; the details come in `error.code` / `error_data.details`.
ERROR_MEANINGS: dict[int, str] = {
    400: "Invalid or missing parameter (100, 131008, 131009), a refused send (131021,"
    " 131051, 131053), a template send the approved template does not allow (132000"
    " parameter count, 132005 too long, 132007 format characters, 132012 parameter format,"
    " 132015 paused, 132016 disabled), or an object of another business (100 with subcode 33)",
    401: "No access token, or one that is unknown, revoked or expired (190)",
    403: "The token lacks the permission this call needs (10)",
    404: "No such template (132001) or no such path (100)",
    409: "A request with this Idempotency-Key is still running (2); retry after"
    " `Retry-After` seconds",
    413: "The request body is over the server's size limit (100; 131053 for a media upload)",
    422: "This Idempotency-Key was first used with a different request body (100)",
    500: "Something went wrong on the server (131000); the server logged the details",
}
COMMON_ERRORS = (400, 401, 403, 500)


def graph_errors(*statuses: int) -> dict[str, Any]:
    return {
        str(status): {
            "description": ERROR_MEANINGS[status],
            "content": {JSON: {"schema": ref("GraphError")}},
        }
        for status in statuses
    }


def ok(schema: Schema, description: str = "OK", **extra: Any) -> dict[str, Any]:
    return {"200": {"description": description, "content": {JSON: {"schema": schema}}, **extra}}


def body(schema: Schema, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {JSON: {"schema": schema}}}


def path_param(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: Schema = {"type": "string"} | ({"pattern": pattern} if pattern else {})
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


VERSION = path_param("version", "Any Graph version, e.g. `v23.0`", r"^v\d+\.\d+$")
PHONE_NUMBER_ID = path_param("phone_number_id", "The business phone number's id", r"^\d{1,32}$")
NODE_ID = path_param("node_id", "A phone number, media or WABA id", r"^\d{1,32}$")
MEDIA_PHONE_NUMBER_ID = {
    "name": "phone_number_id",
    "in": "query",
    "description": "Media only: the media must belong to this phone number",
    "schema": {"type": "string"},
}
WABA_ID = path_param("waba_id", "The WhatsApp Business Account id")
WABA_FIELDS = {
    "name": "fields",
    "in": "query",
    "description": "WABA only: `id` and/or `pricing_analytics.start(<unix>).end(<unix>)"
    ".granularity(DAILY)`, optionally `.metric_types([COST,VOLUME])`,"
    " `.dimensions([PRICING_CATEGORY,PRICING_TYPE,COUNTRY,PHONE])`, `.pricing_types([...])`,"
    " `.pricing_categories([...])`, `.country_codes([...])` and `.phone_numbers([...])`."
    " Days are whole UTC days; other options answer 100.",
    "schema": {"type": "string"},
}

IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Beyond Meta. A retry with the same key and the same body (compared as"
    " canonical JSON) gets the first response back, and nothing is sent twice; the same key"
    " with another body is refused (422). Keys are per phone number and last 24 hours. 2xx"
    " and 4xx answers are kept; after a 5xx the key is free again.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}


def operation(
    operation_id: str, summary: str, tag: str, responses: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        **extra,
        "responses": responses,
    }


def messaging_paths() -> dict[str, Any]:
    send_responses = ok(
        {"oneOf": [ref("SendMessageResponse"), ref("Success")]},
        "Accepted for delivery (a send), or done (a read receipt)",
        headers={
            REPLAYED_HEADER: {
                "description": "`true` when this is the stored answer to an earlier request"
                " with the same Idempotency-Key",
                "schema": {"const": "true"},
            }
        },
    ) | graph_errors(*COMMON_ERRORS, 404, 409, 413, 422)
    send_responses["409"]["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "const": IN_PROGRESS_RETRY_SECONDS},
        }
    }
    return {
        "/{version}/{phone_number_id}/messages": {
            "parameters": [VERSION, PHONE_NUMBER_ID],
            "post": operation(
                "sendMessage",
                "Send a message, or mark one as read (optionally showing a typing indicator)",
                "Messages",
                send_responses,
                parameters=[IDEMPOTENCY_KEY],
                requestBody=body({"oneOf": [ref("SendMessageRequest"), ref("MarkReadRequest")]}),
            ),
        },
        # One template for every node id, as Graph has it: GET looks the id up (the caller's
        # media, else a phone number); POST configures a phone number; DELETE removes media.
        "/{version}/{node_id}": {
            "parameters": [VERSION, NODE_ID],
            "get": operation(
                "getNode",
                "A node by id: a phone number, media the caller uploaded, or the caller's"
                " WABA with `fields=pricing_analytics...` (what delivered messages cost, per"
                " day)",
                "Nodes",
                ok({"oneOf": [ref("PhoneNumber"), ref("MediaInfo"), ref("BusinessAccount")]})
                | graph_errors(*COMMON_ERRORS),
                parameters=[MEDIA_PHONE_NUMBER_ID, WABA_FIELDS],
            ),
            "post": operation(
                "configurePhoneNumber",
                "Set or remove a phone number's webhook override (verified by Meta's GET"
                " handshake)",
                "Nodes",
                ok(ref("Success")) | graph_errors(*COMMON_ERRORS, 413),
                requestBody=body(ref("PhoneConfigurationRequest")),
            ),
            "delete": operation(
                "deleteMedia",
                "Delete uploaded media",
                "Media",
                ok(ref("Success")) | graph_errors(*COMMON_ERRORS),
                parameters=[MEDIA_PHONE_NUMBER_ID],
            ),
        },
    }


def media_paths() -> dict[str, Any]:
    download_query = [
        {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
        for name in ("mid", "ext", "hash")
    ]
    return {
        "/{version}/{phone_number_id}/media": {
            "parameters": [VERSION, PHONE_NUMBER_ID],
            "post": operation(
                "uploadMedia",
                "Upload a file to send by id (multipart; `messaging_product` may also come in"
                " the query string)",
                "Media",
                ok(ref("MediaUploaded")) | graph_errors(*COMMON_ERRORS, 413),
                requestBody={
                    "required": True,
                    "content": {"multipart/form-data": {"schema": ref("MediaUploadRequest")}},
                },
            ),
        },
        DOWNLOAD_PATH: {
            "get": operation(
                "downloadMedia",
                "The bytes behind a media `url` (signed, valid 5 minutes, same bearer token)",
                "Media",
                {
                    "200": {
                        "description": "The file, with its MIME type",
                        "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                    }
                }
                | graph_errors(*COMMON_ERRORS),
                parameters=download_query,
            ),
        },
    }


def webhook_paths() -> dict[str, Any]:
    after = {
        "name": "after",
        "in": "query",
        "description": "Events after this position (the previous page's `paging.cursors.after`)",
        "schema": {"type": "integer", "minimum": 0, "default": 0},
    }
    limit = {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
    }
    return {
        "/{version}/{waba_id}/subscribed_apps": {
            "parameters": [VERSION, WABA_ID],
            "get": operation(
                "listSubscribedApps",
                "Apps subscribed to this WABA's webhooks",
                "Webhooks",
                ok(ref("SubscribedApps")) | graph_errors(*COMMON_ERRORS),
            ),
            "post": operation(
                "subscribeApp",
                "Subscribe the app, optionally with a callback override (verified first)",
                "Webhooks",
                ok(ref("Success")) | graph_errors(*COMMON_ERRORS, 413),
                requestBody=body(ref("SubscribeAppRequest"), required=False),
            ),
            "delete": operation(
                "unsubscribeApp",
                "Unsubscribe the app",
                "Webhooks",
                ok(ref("Success")) | graph_errors(*COMMON_ERRORS),
            ),
        },
        "/{version}/{waba_id}/webhook_events": {
            "parameters": [VERSION, WABA_ID],
            "get": operation(
                "listWebhookEvents",
                "Beyond Meta: this WABA's webhook events in commit order, with their deliveries",
                "Webhooks",
                ok(ref("WebhookEvents")) | graph_errors(*COMMON_ERRORS),
                parameters=[after, limit],
            ),
        },
        "/{version}/{waba_id}/webhook_events/replay": {
            "parameters": [VERSION, WABA_ID],
            "post": operation(
                "replayWebhookEvents",
                "Beyond Meta: deliver events again, by id or after a position",
                "Webhooks",
                ok(ref("ReplayQueued")) | graph_errors(*COMMON_ERRORS, 413),
                requestBody=body(ref("ReplayEventsRequest")),
            ),
        },
        "/{version}/{waba_id}/webhook_health": {
            "parameters": [VERSION, WABA_ID],
            "get": operation(
                "getWebhookHealth",
                "Beyond Meta: delivery health per callback URL",
                "Webhooks",
                ok(ref("WebhookHealth")) | graph_errors(*COMMON_ERRORS),
            ),
        },
    }


def template_paths() -> dict[str, Any]:
    """Message templates (Graph's management API). Their bodies follow Meta's template objects
    (reference/cloud-api.md §5); the schemas here only pin the envelope, not every field."""
    template_id = path_param("template_id", "A message template id")
    anything = {"type": "object"}
    return {
        "/{version}/{waba_id}/message_templates": {
            "parameters": [VERSION, WABA_ID],
            "get": operation(
                "listMessageTemplates",
                "Templates of this WABA, with fields=, summary=, filters and cursor paging",
                "Templates",
                ok(anything) | graph_errors(*COMMON_ERRORS),
            ),
            "post": operation(
                "createMessageTemplate",
                "Create a template; it is reviewed at once (or queued for a person)",
                "Templates",
                ok(anything) | graph_errors(*COMMON_ERRORS, 413),
                requestBody=body(anything),
            ),
            "delete": operation(
                "deleteMessageTemplate",
                "Delete by name (all languages), hsm_id or hsm_ids",
                "Templates",
                ok(ref("Success")) | graph_errors(*COMMON_ERRORS),
            ),
        },
        "/{version}/{template_id}/versions": {
            "parameters": [VERSION, template_id],
            "get": operation(
                "listTemplateVersions",
                "Beyond Meta: every submitted version of a template",
                "Templates",
                ok(anything) | graph_errors(*COMMON_ERRORS),
            ),
        },
        "/{version}/{template_id}/versions/diff": {
            "parameters": [VERSION, template_id],
            "get": operation(
                "diffTemplateVersions",
                "Beyond Meta: a structured diff between two versions",
                "Templates",
                ok(anything) | graph_errors(*COMMON_ERRORS),
            ),
        },
    }


@cache
def business_api_document() -> dict[str, Any]:
    """The document (built once; treat it as read-only)."""
    schemas = SchemaSet()
    add_request_schemas(schemas)
    add_response_schemas(schemas)
    add_policy_schemas(schemas)
    policy = policy_paths(
        version=VERSION,
        phone_number_id=PHONE_NUMBER_ID,
        operation=operation,
        ok=ok,
        body=body,
        graph_errors=graph_errors,
        common=COMMON_ERRORS,
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tidings Business API (WhatsApp Cloud API compatible)",
            "version": __version__,
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": [
            {"name": name}
            for name in ("Messages", "Nodes", "Media", "Webhooks", "Templates", "Policy")
        ],
        "paths": messaging_paths() | media_paths() | webhook_paths() | template_paths() | policy,
        "components": {
            "schemas": dict(sorted(schemas.schemas.items())),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A system-user access token (`tidings business token`);"
                    " Graph's `access_token` query parameter works too",
                }
            },
        },
    }


router = APIRouter()


@router.get(DOCUMENT_PATH, include_in_schema=False)
async def openapi_document() -> dict[str, Any]:
    return business_api_document()
