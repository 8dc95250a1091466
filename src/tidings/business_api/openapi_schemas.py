"""The schemas of the Business API's OpenAPI document (`openapi.py` assembles the paths).

Request bodies come from the Pydantic wire models (`model_json_schema`), so the document moves
with the validation. Responses are written out here: the handlers build plain dicts (as Meta's
shapes are), and no model stands behind them. Our own response objects are closed
(`additionalProperties: false`), so a test that validates responses catches a key the document
does not know.

Everything lands in `components.schemas`; a name two models define differently is a bug caught
when the document is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from tidings.business_api.pricing_routes import PRICING_CATEGORIES
from tidings.business_api.wire_interactive import (
    ButtonMessage,
    CtaUrlMessage,
    ListMessage,
    LocationRequestMessage,
)
from tidings.business_api.wire_messages import (
    SUPPORTED_TYPES,
    AudioObject,
    ContactsList,
    DocumentObject,
    Envelope,
    ImageObject,
    LocationObject,
    ReactionObject,
    ReadRequest,
    StickerObject,
    TemplateObject,
    TextObject,
    TypingIndicator,
    VideoObject,
)
from tidings.policy.tiers import Tier

REF_TEMPLATE = "#/components/schemas/{model}"
MESSAGING_LIMIT_TIERS = [tier.value for tier in Tier]
Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": REF_TEMPLATE.format(model=name)}


class SchemaSet:
    """`components.schemas` being filled: Pydantic models with their `$defs`, and literal ones."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def add(self, name: str, schema: Schema) -> Schema:
        """Register `schema` under `name`; returns a `$ref` to it."""
        known = self.schemas.setdefault(name, schema)
        if known != schema:
            raise ValueError(f"two different schemas are named {name!r}")
        return ref(name)

    def model(self, model: type[BaseModel] | TypeAdapter[Any], name: str | None = None) -> Schema:
        if isinstance(model, TypeAdapter):
            schema = model.json_schema(ref_template=REF_TEMPLATE)
        else:
            schema = model.model_json_schema(ref_template=REF_TEMPLATE)
            name = name or model.__name__
        if name is None:
            raise ValueError("a TypeAdapter's schema needs a name")
        for def_name, definition in schema.pop("$defs", {}).items():
            self.add(def_name, definition)
        return self.add(name, schema)


def closed(properties: dict[str, Schema], *, optional: tuple[str, ...] = ()) -> Schema:
    """An object with exactly these keys (all required but `optional`)."""
    return {
        "type": "object",
        "properties": properties,
        "required": [key for key in properties if key not in optional],
        "additionalProperties": False,
    }


STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_INTEGER: Schema = {"type": ["integer", "null"]}
TIMESTAMP: Schema = {"type": ["string", "null"], "format": "date-time"}


# --- requests ----------------------------------------------------------------------------------


def add_request_schemas(schemas: SchemaSet) -> None:
    """`SendMessageRequest`, `MarkReadRequest` and the message objects they carry."""
    objects = {
        "text": schemas.model(TextObject),
        "image": schemas.model(ImageObject),
        "video": schemas.model(VideoObject),
        "audio": schemas.model(AudioObject),
        "document": schemas.model(DocumentObject),
        "sticker": schemas.model(StickerObject),
        "location": schemas.model(LocationObject),
        "reaction": schemas.model(ReactionObject),
        "template": schemas.model(TemplateObject),
        "contacts": schemas.model(ContactsList, "ContactsList"),
        "interactive": schemas.add(
            "InteractiveObject",
            {
                "oneOf": [
                    schemas.model(ButtonMessage),
                    schemas.model(ListMessage),
                    schemas.model(CtaUrlMessage),
                    schemas.model(LocationRequestMessage),
                ]
            },
        ),
    }
    assert set(objects) == set(SUPPORTED_TYPES), "document every supported message type"
    envelope = Envelope.model_json_schema(ref_template=REF_TEMPLATE)
    for def_name, definition in envelope.pop("$defs", {}).items():
        schemas.add(def_name, definition)
    envelope["title"] = "SendMessageRequest"
    envelope["description"] = (
        "A message to one customer: the object named by `type` carries the content. Unknown"
        " top-level keys are ignored, as Meta ignores them; `type` defaults to the one message"
        " object present, else `text`."
    )
    envelope["properties"]["type"] = {"enum": list(SUPPORTED_TYPES), "default": "text"}
    envelope["properties"].update(objects)
    schemas.add("SendMessageRequest", envelope)

    read = ReadRequest.model_json_schema(ref_template=REF_TEMPLATE)
    # On the wire the indicator is an object; the model turns it into a flag.
    read["properties"]["typing_indicator"] = schemas.model(TypingIndicator)
    read["title"] = "MarkReadRequest"
    schemas.add("MarkReadRequest", read)

    schemas.add(
        "PhoneConfigurationRequest",
        {
            "type": "object",
            "properties": {
                "webhook_configuration": closed(
                    {"override_callback_uri": NULLABLE_STRING, "verify_token": NULLABLE_STRING},
                    optional=("override_callback_uri", "verify_token"),
                )
            },
            "required": ["webhook_configuration"],
        },
    )
    schemas.add(
        "MediaUploadRequest",
        {
            "type": "object",
            "properties": {
                "messaging_product": {"const": "whatsapp"},
                "file": {"type": "string", "format": "binary"},
                "type": {"type": "string", "description": "The MIME type (else sniffed)"},
            },
            "required": ["file"],
        },
    )
    # Mirrors tidings.webhooks.routes (a layer above this adapter); a test keeps them equal.
    bounded = {"type": ["string", "null"], "maxLength": 200}
    schemas.add(
        "SubscribeAppRequest",
        {
            "type": "object",
            "properties": {"override_callback_uri": bounded, "verify_token": bounded},
        },
    )
    schemas.add(
        "ReplayEventsRequest",
        {
            "type": "object",
            "properties": {
                "event_ids": {"type": ["array", "null"], "items": STRING, "maxItems": 1000},
                "after": {"type": ["integer", "null"], "minimum": 0},
            },
        },
    )


# --- responses ---------------------------------------------------------------------------------


def add_response_schemas(schemas: SchemaSet) -> None:
    schemas.add(
        "GraphError",
        closed(
            {
                "error": closed(
                    {
                        "message": {"type": "string", "pattern": r"^\(#\d+\) "},
                        "type": {"const": "OAuthException"},
                        "code": INTEGER,
                        "error_subcode": INTEGER,
                        "error_data": closed(
                            {"messaging_product": {"const": "whatsapp"}, "details": STRING}
                        ),
                        "fbtrace_id": {"type": "string", "minLength": 1},
                    },
                    optional=("error_subcode",),
                )
            }
        )
        | {
            "description": "Meta's Graph error envelope: build on `code` and"
            " `error_data.details`; `message` is `(#code) title`."
        },
    )
    schemas.add("Success", closed({"success": {"const": True}}))
    schemas.add(
        "SendMessageResponse",
        closed(
            {
                "messaging_product": {"const": "whatsapp"},
                "contacts": {
                    "type": "array",
                    "minItems": 1,
                    "items": closed(
                        {"input": STRING, "wa_id": STRING, "user_id": STRING},
                        optional=("user_id",),
                    ),
                },
                "messages": {
                    "type": "array",
                    "minItems": 1,
                    "items": closed(
                        {
                            "id": {"type": "string", "pattern": r"^wamid\."},
                            "message_status": {
                                "enum": ["accepted", "held_for_quality_assessment", "paused"]
                            },
                        },
                        optional=("message_status",),
                    ),
                },
            }
        ),
    )
    schemas.add(
        "PhoneNumber",
        closed(
            {
                "id": STRING,
                "verified_name": STRING,
                "display_phone_number": STRING,
                "quality_rating": {"enum": ["GREEN", "YELLOW", "RED", "UNKNOWN"]},
                "code_verification_status": STRING,
                "platform_type": STRING,
                "throughput": closed({"level": {"enum": ["STANDARD", "HIGH", "COEXISTENCE"]}}),
                "whatsapp_business_manager_messaging_limit": {"enum": MESSAGING_LIMIT_TIERS},
                "messaging_limit_tier": {"enum": MESSAGING_LIMIT_TIERS},
            }
        ),
    )
    pricing_point = closed(
        {
            "start": INTEGER,
            "end": INTEGER,
            "pricing_category": {"enum": list(PRICING_CATEGORIES)},
            "pricing_type": {"enum": ["REGULAR", "FREE_CUSTOMER_SERVICE", "FREE_ENTRY_POINT"]},
            "country": STRING,
            "phone_number": STRING,
            "volume": INTEGER,
            "cost": {"type": "number", "minimum": 0},
        },
        optional=(
            "pricing_category",
            "pricing_type",
            "country",
            "phone_number",
            "volume",
            "cost",
        ),
    )
    schemas.add(
        "BusinessAccount",
        closed(
            {
                "id": STRING,
                "pricing_analytics": closed(
                    {
                        "data": {
                            "type": "array",
                            "items": closed(
                                {"data_points": {"type": "array", "items": pricing_point}}
                            ),
                        }
                    }
                ),
            },
            optional=("pricing_analytics",),
        ),
    )
    schemas.add(
        "SubscribedApps",
        closed(
            {
                "data": {
                    "type": "array",
                    "items": closed(
                        {
                            "whatsapp_business_api_data": closed(
                                {"id": STRING, "link": STRING, "name": STRING}
                            ),
                            "override_callback_uri": STRING,
                        },
                        optional=("override_callback_uri",),
                    ),
                }
            }
        ),
    )
    delivery = closed(
        {
            "target_url": STRING,
            "status": STRING,
            "attempts": INTEGER,
            "last_status_code": NULLABLE_INTEGER,
            "last_error": NULLABLE_STRING,
            "delivered_at": TIMESTAMP,
        }
    )
    schemas.add(
        "WebhookEvents",
        closed(
            {
                "data": {
                    "type": "array",
                    "items": closed(
                        {
                            "id": STRING,
                            "position": INTEGER,
                            "field": STRING,
                            "phone_number_id": NULLABLE_STRING,
                            "created_at": {"type": "string", "format": "date-time"},
                            "payload": {
                                "type": "object",
                                "description": "The change's `value`, as the webhook carried it.",
                            },
                            "deliveries": {"type": "array", "items": delivery},
                        }
                    ),
                },
                "paging": closed({"cursors": closed({"after": INTEGER})}),
            }
        ),
    )
    schemas.add("MediaUploaded", closed({"id": STRING}))
    schemas.add(
        "MediaInfo",
        closed(
            {
                "messaging_product": {"const": "whatsapp"},
                "url": {"type": "string", "format": "uri"},
                "mime_type": STRING,
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "file_size": {"type": "integer", "minimum": 0},
                "id": STRING,
            }
        ),
    )
    schemas.add(
        "ReplayQueued",
        closed({"success": {"const": True}, "queued": {"type": "integer", "minimum": 0}}),
    )
    schemas.add(
        "WebhookHealth",
        closed(
            {
                "data": {
                    "type": "array",
                    "items": closed(
                        {
                            "target_url": STRING,
                            "pending": INTEGER,
                            "delivered": INTEGER,
                            "dead": INTEGER,
                            "last_success_at": TIMESTAMP,
                            "last_failure_at": TIMESTAMP,
                            "last_failure_code": NULLABLE_INTEGER,
                            "last_failure_error": NULLABLE_STRING,
                            "consecutive_failures": INTEGER,
                            "p50_latency_ms": {"type": ["number", "null"]},
                        }
                    ),
                }
            }
        ),
    )
