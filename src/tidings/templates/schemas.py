"""Cloud API request bodies for templates, turned into a `TemplateDraft` (or a Graph error).

Only the JSON shape is checked here (types, required keys, known enums, name and language
rules); what a template may *say* is the review's business (`review.py`). Components are also
kept as normalised JSON (types upper-cased, unknown keys dropped) for storage and listing,
since clients read `components` back with their `example`s exactly as they sent them.
"""

from __future__ import annotations

import re
from typing import Any

from tidings.business_api.graph_errors import GraphError
from tidings.templates.definition import (
    AUTHENTICATION,
    BUTTON_TYPES,
    CATEGORIES,
    HEADER_FORMATS,
    LANGUAGES,
    NAMED,
    POSITIONAL,
    Button,
    Header,
    TemplateDraft,
    TextPart,
    authentication_body,
)

NAME_MAX = 512
_NAME = re.compile(r"[a-z0-9_]+")
_COMPONENT_TYPES = ("HEADER", "BODY", "FOOTER", "BUTTONS")
_BUTTON_KEYS = (
    "type",
    "text",
    "url",
    "example",
    "phone_number",
    "otp_type",
    "autofill_text",
    "package_name",
    "signature_hash",
    "supported_apps",
    "zero_tap_terms_accepted",
    "flow_id",
    "flow_name",
    "flow_json",
    "flow_action",
    "navigate_screen",
)


def invalid(details: str) -> GraphError:
    return GraphError(100, details)


def _str(value: Any, where: str, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise invalid(f"Param {where} must be a string.")
    return value


def check_name(name: Any) -> str:
    text = _str(name, "name")
    if not text or len(text) > NAME_MAX or not _NAME.fullmatch(text):
        raise invalid(
            "Param name must be 1 to 512 characters of lowercase letters, digits and underscores."
        )
    return text


def check_language(language: Any) -> str:
    code = _str(language, "language")
    if code not in LANGUAGES:
        raise invalid(f"Param language '{code}' is not a supported template language.")
    return code


def check_category(category: Any) -> str:
    value = _str(category, "category").upper()
    if value not in CATEGORIES:
        raise invalid(f"Param category must be one of {', '.join(CATEGORIES)}.")
    return value


def check_parameter_format(value: Any) -> str:
    if value is None:
        return POSITIONAL
    text = _str(value, "parameter_format").upper()
    if text not in (POSITIONAL, NAMED):
        raise invalid("Param parameter_format must be 'named' or 'positional'.")
    return text


def _examples(example: Any, positional_key: str, named_key: str, where: str) -> TextPart:
    """The example values of a header or body, whichever way they were given."""
    if example is None:
        return TextPart("")
    if not isinstance(example, dict):
        raise invalid(f"Param {where}.example must be an object.")
    if named_key in example:
        items = example[named_key]
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("param_name"), str) for i in items
        ):
            raise invalid(
                f"Param {where}.example.{named_key} must be a list of {{param_name, example}}."
            )
        pairs = tuple((i["param_name"], str(i.get("example") or "")) for i in items)
        return TextPart("", pairs, len(pairs))
    if positional_key in example:
        values = example[positional_key]
        # body_text is a list of rows (Meta takes the first); header_text is a flat list.
        if values and isinstance(values, list) and isinstance(values[0], list):
            values = values[0]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise invalid(f"Param {where}.example.{positional_key} must list strings.")
        pairs = tuple((str(i + 1), v) for i, v in enumerate(values))
        return TextPart("", pairs, len(pairs))
    return TextPart("")


def _text_part(component: dict[str, Any], kind: str, where: str) -> TextPart:
    text = _str(component.get("text"), f"{where}.text")
    found = _examples(component.get("example"), f"{kind}_text", f"{kind}_text_named_params", where)
    return TextPart(text, found.examples, found.examples_given)


def _button(raw: Any, where: str) -> tuple[Button, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise invalid(f"Param {where} must be an object.")
    kind = _str(raw.get("type"), f"{where}.type").upper()
    if kind not in BUTTON_TYPES:
        raise invalid(f"Param {where}.type must be one of {', '.join(BUTTON_TYPES)}.")
    example = raw.get("example")
    first_example = example[0] if isinstance(example, list) and example else example
    if first_example is not None and not isinstance(first_example, str):
        raise invalid(f"Param {where}.example must be a string or a list of strings.")
    otp_type = raw.get("otp_type")
    button = Button(
        type=kind,
        text=_str(raw.get("text"), f"{where}.text", required=False),
        url=_str(raw.get("url"), f"{where}.url", required=False) or None,
        url_example=first_example if kind == "URL" else None,
        phone_number=_str(raw.get("phone_number"), f"{where}.phone_number", required=False) or None,
        example=first_example if kind == "COPY_CODE" else None,
        otp_type=str(otp_type).upper() if otp_type is not None else None,
    )
    stored = {k: raw[k] for k in _BUTTON_KEYS if k in raw} | {"type": kind}
    if kind == "OTP" and button.otp_type:
        stored["otp_type"] = button.otp_type
    return button, stored


def parse_components(
    raw: Any, category: str, parameter_format: str, name: str, language: str
) -> tuple[TemplateDraft, list[dict[str, Any]]]:
    """The draft the review reads, and the components as they will be stored and listed."""
    if not isinstance(raw, list) or not raw:
        raise GraphError(131008, "The parameter components is required.")
    seen: dict[str, dict[str, Any]] = {}
    for i, component in enumerate(raw):
        if not isinstance(component, dict):
            raise invalid(f"Param components[{i}] must be an object.")
        kind = _str(component.get("type"), f"components[{i}].type").upper()
        if kind not in _COMPONENT_TYPES:
            raise invalid(
                f"Param components[{i}].type must be one of {', '.join(_COMPONENT_TYPES)}"
                " (carousel and limited-time-offer templates are not supported here)."
            )
        if kind in seen:
            raise invalid(f"A template can have only one {kind} component.")
        seen[kind] = component
    if "BODY" not in seen:
        raise invalid("A template needs exactly one BODY component.")
    stored: list[dict[str, Any]] = []
    header = None
    if "HEADER" in seen:
        component = seen["HEADER"]
        fmt = _str(component.get("format"), "header.format").upper()
        if fmt not in HEADER_FORMATS:
            raise invalid(f"Param header.format must be one of {', '.join(HEADER_FORMATS)}.")
        entry: dict[str, Any] = {"type": "HEADER", "format": fmt}
        if fmt == "TEXT":
            header = Header(fmt, text=_text_part(component, "header", "header"))
            entry["text"] = header.text.text if header.text else ""
        else:
            handles = (component.get("example") or {}).get("header_handle") or []
            handle = handles[0] if isinstance(handles, list) and handles else None
            header = Header(fmt, media_handle=handle if isinstance(handle, str) else None)
        if "example" in component and fmt != "LOCATION":
            entry["example"] = component["example"]
        stored.append(entry)
    body_component = seen["BODY"]
    security = bool(body_component.get("add_security_recommendation", False))
    if category == AUTHENTICATION:
        # Meta writes an authentication body itself; a business only chooses the options.
        body = TextPart(authentication_body(security), (("1", "123456"),), 1)
        stored.append(
            {
                "type": "BODY",
                "text": body.text,
                "add_security_recommendation": security,
                "example": {"body_text": [["123456"]]},
            }
        )
    else:
        body = _text_part(body_component, "body", "body")
        entry = {"type": "BODY", "text": body.text}
        if "example" in body_component:
            entry["example"] = body_component["example"]
        stored.append(entry)
    footer = None
    minutes = None
    if "FOOTER" in seen:
        component = seen["FOOTER"]
        if category == AUTHENTICATION:
            minutes = component.get("code_expiration_minutes")
            if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, int)):
                raise invalid("Param footer.code_expiration_minutes must be a number.")
            footer = f"This code expires in {minutes} minutes." if minutes else None
            stored.append(
                {"type": "FOOTER", "text": footer or "", "code_expiration_minutes": minutes}
            )
        else:
            footer = _str(component.get("text"), "footer.text")
            stored.append({"type": "FOOTER", "text": footer})
    buttons: list[Button] = []
    if "BUTTONS" in seen:
        raw_buttons = seen["BUTTONS"].get("buttons")
        if not isinstance(raw_buttons, list) or not raw_buttons:
            raise invalid("Param buttons.buttons must be a non-empty list.")
        stored_buttons = []
        for i, raw_button in enumerate(raw_buttons):
            button, entry = _button(raw_button, f"buttons[{i}]")
            buttons.append(button)
            stored_buttons.append(entry)
        stored.append({"type": "BUTTONS", "buttons": stored_buttons})
    draft = TemplateDraft(
        name=name,
        language=language,
        category=category,
        parameter_format=parameter_format,
        body=body,
        header=header,
        footer=footer,
        buttons=tuple(buttons),
        add_security_recommendation=security,
        code_expiration_minutes=minutes,
    )
    return draft, stored


def parse_create(
    body: dict[str, Any],
) -> tuple[TemplateDraft, list[dict[str, Any]], dict[str, Any]]:
    """`POST /{waba_id}/message_templates`: the draft, stored components and other options."""
    for key in ("name", "language", "category"):
        if body.get(key) in (None, ""):
            raise GraphError(131008, f"The parameter {key} is required.")
    name = check_name(body.get("name"))
    language = check_language(body.get("language"))
    category = check_category(body.get("category"))
    parameter_format = check_parameter_format(body.get("parameter_format"))
    draft, stored = parse_components(
        body.get("components"), category, parameter_format, name, language
    )
    return draft, stored, _options(body)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    ttl = body.get("message_send_ttl_seconds")
    if ttl is not None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not -1 <= ttl <= 86400:
            raise invalid("Param message_send_ttl_seconds must be a number of seconds.")
        options["message_send_ttl_seconds"] = ttl
    for key in ("cta_url_link_tracking_opted_out",):
        if key in body:
            options[key] = bool(body[key])
    if "sub_category" in body:
        options["sub_category"] = _str(body["sub_category"], "sub_category")
    return options
