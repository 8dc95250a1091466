"""Meta's Graph API error model, on top of the server's one error base.

    AppError
     └─ GraphError          graph_code, title, graph_details, subcode, http_status

Every failure of the Cloud-API-compatible surface is answered with the Graph envelope

    {"error": {"message": "(#<code>) <title>", "type": "OAuthException", "code": <int>,
               "error_data": {"messaging_product": "whatsapp", "details": "..."},
               "error_subcode"?: <int>, "fbtrace_id": "..."}}

Clients map `code` to exception classes and read `error_data.details`; titles are for people.
HTTP statuses follow the "HTTP Status Code" column of Meta's older error-code table
(reference/cloud-api.md §7). Codes missing from it answer 400.

How a request validation failure becomes a code (`graph_error_from_validation`):

- a required parameter is missing                           → 131008 Required parameter is missing
- one value breaks its own rule (length, count, range,
  type, enum, format, unknown key)                          → 100 Invalid parameter
- a combination of values is invalid (duplicate ids or
  titles, both or neither of id/link, context on a reaction,
  too many rows across sections)                            → 131009 Parameter value is not valid

Models signal the last two kinds with `PydanticCustomError("graph_<code>", ...)`; see `graph_rule`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from tidings.errors import AppError
from tidings.protocol.codes import ErrorCode

ERROR_CODES_HREF = "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"


class GraphCode(IntEnum):
    """The Graph / Cloud API error codes Tidings answers with (not all of Meta's)."""

    AUTH_EXCEPTION = 0
    API_UNKNOWN = 1
    API_SERVICE = 2
    API_TOO_MANY_CALLS = 4
    PERMISSION_DENIED = 10
    INVALID_PARAMETER = 100
    ACCESS_TOKEN = 190
    API_PERMISSION = 200
    POLICY_BLOCKED = 368
    RATE_LIMIT_ISSUES = 80007
    USER_BLOCKED = 130403
    THROUGHPUT_RATE_LIMIT = 130429
    EXPERIMENT = 130472
    SOMETHING_WENT_WRONG = 131000
    ACCESS_DENIED = 131005
    REQUIRED_PARAMETER_MISSING = 131008
    PARAMETER_VALUE_INVALID = 131009
    SERVICE_UNAVAILABLE = 131016
    RECIPIENT_IS_SENDER = 131021
    UNDELIVERABLE = 131026
    ACCOUNT_LOCKED = 131031
    REENGAGEMENT = 131047
    SPAM_RATE_LIMIT = 131048
    ECOSYSTEM_ENGAGEMENT = 131049
    MARKETING_OPT_OUT = 131050
    UNSUPPORTED_MESSAGE_TYPE = 131051
    MEDIA_DOWNLOAD_ERROR = 131052
    MEDIA_UPLOAD_ERROR = 131053
    PAIR_RATE_LIMIT = 131056
    MAINTENANCE_MODE = 131057
    TEMPLATE_PARAM_COUNT = 132000
    TEMPLATE_NOT_FOUND = 132001
    TEMPLATE_TEXT_TOO_LONG = 132005
    TEMPLATE_FORMAT_POLICY = 132007
    TEMPLATE_PARAM_FORMAT = 132012
    TEMPLATE_PAUSED = 132015
    TEMPLATE_DISABLED = 132016
    FLOW_BLOCKED = 132068
    FLOW_THROTTLED = 132069
    SERVER_UNAVAILABLE = 133004
    PHONE_NOT_REGISTERED = 133010
    GENERIC_USER_ERROR = 135000


# Meta's titles (the "(#code) <title>" part of `message`), from its error-code page.
TITLES: dict[int, str] = {
    0: "AuthException",
    1: "API Unknown",
    2: "API Service",
    3: "API Method",
    4: "API Too Many Calls",
    10: "Permission Denied",
    33: "Parameter value is not valid",
    100: "Invalid parameter",
    190: "Access token has expired",
    200: "API Permission",
    368: "Temporarily blocked for policies violations",
    80007: "Rate limit issues",
    130403: "Business has blocked the user",
    130429: "Rate limit hit",
    130472: "User's number is part of an experiment",
    130497: "Business account is restricted from messaging users in this country",
    131000: "Something went wrong",
    131005: "Access denied",
    131008: "Required parameter is missing",
    131009: "Parameter value is not valid",
    131016: "Service unavailable",
    131021: "Recipient cannot be sender",
    131026: "Message undeliverable",
    131031: "Account has been locked",
    131037: "WhatsApp provided number needs display name approval before message can be sent",
    131042: "Business eligibility payment issue",
    131045: "Incorrect certificate",
    131047: "Re-engagement message",
    131048: "Spam rate limit hit",
    131049: "This message was not delivered to maintain healthy ecosystem engagement.",
    131050: "Unable to deliver the message. This recipient has chosen to stop receiving "
    "marketing messages on WhatsApp from your business.",
    131051: "Unsupported message type",
    131052: "Media download error",
    131053: "Media upload error",
    131056: "(Business, Consumer) pair rate limit hit",
    131057: "Account in maintenance mode",
    132000: "Number of parameters does not match the expected number of params",
    132001: "Template name does not exist in the translation",
    132005: "Translated text too long",
    132007: "Format character policy violated",
    132012: "Parameter format does not match format in the created template",
    132015: "Template is Paused",
    132016: "Template is Disabled",
    132068: "Flow is in blocked state",
    132069: "Flow is in throttled state",
    133000: "Incomplete deregistration",
    133004: "Server temporarily unavailable",
    133005: "Two step verification PIN Mismatch",
    133006: "Phone number re-verification needed",
    133008: "Too many two step verification PIN guesses for this phone number",
    133009: "Two step verification PIN was entered too quickly",
    133010: "Phone number Not Registered on the Whatsapp Business Platform",
    133015: "Please wait a few minutes before attempting to register this phone number",
    133016: "Account register deregister rate limit exceeded",
    135000: "Generic user error",
}

# Codes whose HTTP status is not 400 (Meta's older table; 200-299 handled in `http_status_for`).
_HTTP_STATUS: dict[int, int] = {
    0: 401,
    2: 503,
    3: 500,
    10: 403,
    190: 401,
    368: 403,
    131000: 500,
    131005: 403,
    131016: 500,
    131031: 403,
    131045: 500,
    131057: 500,
    132001: 404,
    133000: 500,
    133004: 503,
}

# The neutral core code each Graph code corresponds to (for logs and generic surfaces).
_RATE_CODES = frozenset({4, 80007, 130429, 131048, 131056, 133016})


def http_status_for(code: int) -> int:
    """The HTTP status Meta answers `code` with (400 when the table says nothing)."""
    if 200 <= code <= 299:
        return 403
    return _HTTP_STATUS.get(code, 400)


def title_for(code: int) -> str:
    if 200 <= code <= 299:
        return TITLES[200]
    return TITLES.get(code, "Unknown error")


def _core_code(code: int, status: int) -> ErrorCode:
    if code in _RATE_CODES:
        return ErrorCode.RATE_LIMITED
    return {
        401: ErrorCode.UNAUTHORIZED,
        403: ErrorCode.FORBIDDEN,
        404: ErrorCode.NOT_FOUND,
    }.get(status, ErrorCode.INTERNAL if status >= 500 else ErrorCode.VALIDATION_FAILED)


class GraphError(AppError):
    """A failure answered in Meta's Graph envelope.

    `graph_details` is the human sentence that goes into `error_data.details` (AppError already
    uses `details` for its structured dict, which here carries the same facts).
    """

    def __init__(
        self,
        code: int,
        details: str,
        *,
        title: str | None = None,
        subcode: int | None = None,
        http_status: int | None = None,
    ) -> None:
        self.graph_code = int(code)
        self.title = title if title is not None else title_for(self.graph_code)
        self.graph_details = details
        self.subcode = subcode
        self.http_status = http_status if http_status is not None else http_status_for(code)
        super().__init__(
            f"(#{self.graph_code}) {self.title}",
            code=_core_code(self.graph_code, self.http_status),
            status=self.http_status,
            details={"graph_code": self.graph_code, "details": details}
            | ({"error_subcode": subcode} if subcode is not None else {}),
        )

    def __repr__(self) -> str:
        return f"GraphError({self.graph_code}, {self.graph_details!r})"


def graph_envelope(error: GraphError, trace_id: str) -> dict[str, Any]:
    """The body of an error response, exactly as Meta shapes it."""
    body: dict[str, Any] = {
        "message": f"(#{error.graph_code}) {error.title}",
        "type": "OAuthException",
        "code": error.graph_code,
        "error_data": {"messaging_product": "whatsapp", "details": error.graph_details},
    }
    if error.subcode is not None:
        body["error_subcode"] = error.subcode
    body["fbtrace_id"] = trace_id
    return {"error": body}


def async_error(code: int, details: str, title: str | None = None) -> dict[str, Any]:
    """One entry of a webhook's `statuses[].errors[]`, `messages[].errors[]` or `value.errors[]`.

    Meta repeats the title as `message` in these (no "(#code)" prefix).
    """
    text = title if title is not None else title_for(code)
    return {
        "code": int(code),
        "title": text,
        "message": text,
        "error_data": {"details": details},
        "href": ERROR_CODES_HREF,
    }


# --- validation failures ---------------------------------------------------------------------

GRAPH_RULE_PREFIX = "graph_"


def graph_rule(code: int, predicate: str, **context: Any) -> PydanticCustomError:
    """A model-level rule violation that maps to `code`.

    `predicate` completes the sentence "Param <path> ...", e.g. "must have unique ids". For a
    conditionally required key use code 131008 and pass `field=<key>`: the details then read
    "The parameter <path>.<key> is required.".
    """
    return PydanticCustomError(f"{GRAPH_RULE_PREFIX}{int(code)}", predicate, context or None)


def format_loc(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """("interactive", "action", "buttons", 0, "reply") -> "interactive.action.buttons[0].reply"."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _items(n: Any) -> str:
    return "item" if n == 1 else "items"


def _details_for(err: ErrorDetails, loc: tuple[int | str, ...]) -> tuple[int, str]:
    kind = err["type"]
    path = format_loc(loc)
    ctx: dict[str, Any] = dict(err.get("ctx") or {})
    shown = path or "body"
    if kind.startswith(GRAPH_RULE_PREFIX):
        code = int(kind[len(GRAPH_RULE_PREFIX) :])
        if code == GraphCode.REQUIRED_PARAMETER_MISSING and "field" in ctx:
            field = str(ctx["field"])
            full = f"{path}{field}" if field.startswith("[") or not path else f"{path}.{field}"
            return code, f"The parameter {full} is required."
        return code, f"Param {shown} {err['msg']}."
    if kind == "missing":
        return GraphCode.REQUIRED_PARAMETER_MISSING, f"The parameter {shown} is required."
    if kind == "extra_forbidden":
        parent = format_loc(loc[:-1]) or "body"
        return GraphCode.INVALID_PARAMETER, f'Unexpected key "{loc[-1]}" on param "{parent}".'
    if kind == "string_too_long":
        n = ctx.get("max_length")
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be at most {n} characters long."
    if kind == "string_too_short":
        n = ctx.get("min_length")
        if n == 1:
            return GraphCode.INVALID_PARAMETER, f"Param {shown} must not be empty."
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be at least {n} characters long."
    if kind == "too_long":
        n = ctx.get("max_length")
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must have at most {n} {_items(n)}."
    if kind == "too_short":
        n = ctx.get("min_length")
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must have at least {n} {_items(n)}."
    bounds = {
        "greater_than_equal": ("at least", "ge"),
        "less_than_equal": ("at most", "le"),
        "greater_than": ("greater than", "gt"),
        "less_than": ("less than", "lt"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be {words} {ctx.get(key)}."
    if kind == "literal_error":
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be one of {ctx.get('expected')}."
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be an object."
    if kind == "list_type":
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be an array."
    if kind == "string_type":
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be a string."
    if kind in ("bool_type", "bool_parsing"):
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be a boolean."
    if kind in ("float_type", "float_parsing", "finite_number", "int_type", "int_parsing"):
        return GraphCode.INVALID_PARAMETER, f"Param {shown} must be a number."
    return GraphCode.INVALID_PARAMETER, f"Param {shown} is not valid: {err['msg']}."


def graph_error_from_validation(
    exc: ValidationError, *, prefix: tuple[int | str, ...] = ()
) -> GraphError:
    """Map a Pydantic failure on a request body to Meta's code and a details naming the field.

    Only the first error is reported, as Meta does. `prefix` is prepended to every location
    (a model that validated `body["text"]` passes `("text",)`).
    """
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic never raises an empty ValidationError
        return GraphError(GraphCode.INVALID_PARAMETER, "The request is not valid.")
    first = errors[0]
    code, details = _details_for(first, (*prefix, *first["loc"]))
    return GraphError(code, details)


# --- any other AppError ----------------------------------------------------------------------

INVALID_TOKEN_TITLE = "Invalid OAuth access token - Cannot parse access token"
NO_SUCH_OBJECT = (
    "Unsupported request. Object with ID '{id}' does not exist, cannot be loaded due to "
    "missing permissions, or does not support this operation."
)


def map_any_app_error(err: AppError) -> GraphError:
    """The Graph error for an AppError raised by a domain service.

    - unauthorized → 190 (401) titled like Meta's answer to a token it cannot parse; an auth
      layer that knows the token merely expired may raise GraphError(190) itself.
    - forbidden → 10 Permission Denied (403)
    - not found → 100 subcode 33 (400), Meta's "Object with ID ... does not exist"
    - rate limited → 80007 Rate limit issues (400); throughput (130429) and pair (131056)
      limits are raised as specific GraphErrors by their callers
    - internal → 131000 Something went wrong (500)
    - everything else (validation, conflict, payload too large, ...) → 100 Invalid parameter
    """
    if isinstance(err, GraphError):
        return err
    named = err.details.get("graph_code")
    if isinstance(named, int) and not isinstance(named, bool):
        return GraphError(named, err.message)  # a domain that knows Meta's code names it
    code = err.code
    if code == ErrorCode.UNAUTHORIZED:
        return GraphError(GraphCode.ACCESS_TOKEN, err.message, title=INVALID_TOKEN_TITLE)
    if code == ErrorCode.FORBIDDEN:
        return GraphError(GraphCode.PERMISSION_DENIED, err.message)
    if code in (ErrorCode.NOT_FOUND, ErrorCode.UNKNOWN_ACCOUNT):
        object_id = err.details.get("id")
        details = NO_SUCH_OBJECT.format(id=object_id) if object_id is not None else err.message
        return GraphError(GraphCode.INVALID_PARAMETER, details, subcode=33)
    if code == ErrorCode.RATE_LIMITED:
        return GraphError(GraphCode.RATE_LIMIT_ISSUES, err.message)
    if code == ErrorCode.INTERNAL or err.status >= 500:
        return GraphError(GraphCode.SOMETHING_WENT_WRONG, err.message)
    return GraphError(GraphCode.INVALID_PARAMETER, err.message)
