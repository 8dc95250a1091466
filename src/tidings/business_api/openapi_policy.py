"""The policy paths of the Business API document (beyond Meta): the consent ledger API and
send preflight (signals/routes.py). `openapi.py` merges them into the document."""

from __future__ import annotations

from typing import Any

from tidings.business_api.openapi_schemas import (
    INTEGER,
    NULLABLE_STRING,
    STRING,
    Schema,
    SchemaSet,
    closed,
    ref,
)

NUMBER_OR_NULL: Schema = {"type": ["number", "null"]}
BOOLEAN: Schema = {"type": "boolean"}
CATEGORY: Schema = {"enum": ["MARKETING", "UTILITY", "AUTHENTICATION"]}


def add_policy_schemas(schemas: SchemaSet) -> None:
    schemas.add(
        "ConsentRequest",
        {
            "type": "object",
            "description": "A consent the business collected. An opt-in needs the wording shown"
            " to the customer; it never lifts an opt-out the customer made themselves.",
            "properties": {
                "wa_id": {"type": "string", "description": "The customer (E.164, + optional)"},
                "category": {
                    "type": "string",
                    "description": "MARKETING, UTILITY or AUTHENTICATION (any case)",
                },
                "action": {"enum": ["opt_in", "opt_out"]},
                "actor": {"type": "string", "maxLength": 200, "description": "Who recorded it"},
                "wording": {"type": "string", "maxLength": 4096},
                "timestamp": {
                    "type": ["integer", "string"],
                    "description": "Unix seconds when it was given (default: now; never later)",
                },
                "detail": {"type": "string", "maxLength": 200, "description": "e.g. the form"},
            },
            "required": ["wa_id", "category", "action", "actor"],
        },
    )
    schemas.add("ConsentRecorded", closed({"success": {"const": True}, "id": STRING}))
    record = closed(
        {
            "id": STRING,
            "wa_id": STRING,
            "action": {"enum": ["opt_in", "opt_out", "resume"]},
            "category": CATEGORY,
            "at": {"type": "string", "format": "date-time"},
            "source": {"enum": ["api", "client_action", "keyword", "operator"]},
            "actor": STRING,
            "wording": NULLABLE_STRING,
            "detail": NULLABLE_STRING,
        }
    )
    schemas.add(
        "ConsentEvidence",
        closed(
            {
                "data": {"type": "array", "items": record},
                "paging": closed({"cursors": closed({"after": STRING})}),
            }
        ),
    )
    reason = closed(
        {
            "rule": {
                "enum": [
                    "template", "window", "block", "consent", "cap", "tier", "throughput",
                    "pair_rate",
                ]
            },
            "code": INTEGER,
            "title": STRING,
            "details": STRING,
            "reporting": {"enum": ["sync", "async"]},
            "retry_after": NUMBER_OR_NULL,
        }
    )  # fmt: skip
    schemas.add(
        "Preflight",
        closed(
            {
                "messaging_product": {"const": "whatsapp"},
                "to": STRING,
                "checked_at": {"type": "string", "format": "date-time"},
                "allowed": BOOLEAN,
                "category": {"enum": ["MARKETING", "UTILITY", "AUTHENTICATION", "SERVICE"]},
                "reasons": {"type": "array", "items": reason},
                "retry_at": {"type": ["string", "null"], "format": "date-time"},
                "customer_service_window_open": BOOLEAN,
                "free_entry_point_window_open": BOOLEAN,
                "pricing": {
                    "oneOf": [
                        {"type": "null"},
                        closed(
                            {
                                "billable": BOOLEAN,
                                "type": STRING,
                                "category": STRING,
                                "amount": STRING,
                                "currency": STRING,
                            }
                        ),
                    ]
                },
                "template": closed(
                    {
                        "id": STRING,
                        "name": STRING,
                        "language": STRING,
                        "category": CATEGORY,
                        "status": STRING,
                    }
                ),
            },
            optional=("template",),
        )
        | {
            "description": "Whether the message could be sent now: `reasons` lists every rule"
            " it breaks (Meta's code, how Meta reports it, seconds to wait), `retry_at` the"
            " earliest time it could go (null when waiting alone will not do)."
        },
    )


def policy_paths(
    *,
    version: dict[str, Any],
    phone_number_id: dict[str, Any],
    operation: Any,
    ok: Any,
    body: Any,
    graph_errors: Any,
    common: tuple[int, ...],
) -> dict[str, Any]:
    def query(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": required,
            "description": description,
            "schema": {"type": "string"} | schema,
        }

    return {
        "/{version}/{phone_number_id}/consents": {
            "parameters": [version, phone_number_id],
            "post": operation(
                "recordConsent",
                "Beyond Meta: record an opt-in (with the wording shown) or an opt-out",
                "Policy",
                ok(ref("ConsentRecorded")) | graph_errors(*common, 413),
                requestBody=body(ref("ConsentRequest")),
            ),
            "get": operation(
                "exportConsents",
                "Beyond Meta: the consent ledger as evidence, in the order it was recorded",
                "Policy",
                ok(ref("ConsentEvidence")) | graph_errors(*common),
                parameters=[
                    query("wa_id", "Only this customer"),
                    query("after", "Records after this id (`paging.cursors.after`)"),
                    query("limit", "At most this many (1-1000, default 100)"),
                ],
            ),
        },
        "/{version}/{phone_number_id}/preflight": {
            "parameters": [version, phone_number_id],
            "get": operation(
                "preflightSend",
                "Beyond Meta: could this message be sent now? Every reason it could not, and"
                " the earliest time it could; nothing is sent or counted",
                "Policy",
                ok(ref("Preflight")) | graph_errors(*common, 404),
                parameters=[
                    query("to", "The customer (E.164, + optional)", required=True),
                    query("template", "A template name (omit for a free-form message)"),
                    query("language", "The template's language code, e.g. en_US"),
                ],
            ),
        },
    }
