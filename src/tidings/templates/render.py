"""Render a template send: check the `components` a business sent against the approved version
and produce the E2E content the customer's device displays. PURE: no I/O.

The result follows the content contract (`{"type": "template", "template": {...}}` minus the
outer wrapper): header, body, footer and buttons with every parameter filled in. A media header
still names the business's media (`id` or `link`); delivery swaps it for an attachment.

Refusals carry Meta's codes (reference/cloud-api.md §7):
- 132000 a parameter missing or extra (count mismatch)
- 132012 a parameter of the wrong kind (text for an IMAGE header, a named value sent to a
  positional template, a malformed currency or date_time)
- 132005 the rendered header (60) or body (1024) too long, an authentication code over 15
- 132007 a text parameter with a newline, a tab or more than four consecutive spaces
- 131009 / 131008 a malformed component (unknown index, missing parameter object)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tidings.templates.definition import AUTHENTICATION, NAMED, PLACEHOLDER

BODY_MAX = 1024
HEADER_MAX = 60
AUTH_CODE_MAX = 15
COUPON_CODE_MAX = 15
QUICK_REPLY_PAYLOAD_MAX = 256  # what the inbound `button.payload` can carry back
URL_SUFFIX_MAX = 2000
MEDIA_FORMATS = {"IMAGE": "image", "VIDEO": "video", "GIF": "video", "DOCUMENT": "document"}
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_COUPON = re.compile(r"[A-Za-z0-9]+")
_TOO_MANY_SPACES = re.compile(r" {5,}")
# Default labels Meta shows on OTP buttons when the template leaves the text empty.
_OTP_LABELS = {"ONE_TAP": "Autofill", "ZERO_TAP": "Autofill"}
_ACTION_BUTTONS = ("FLOW", "CATALOG", "MPM", "SPM")


class TemplateSendRefused(Exception):
    """A send the template does not allow; `code` is the Graph error code."""

    def __init__(self, code: int, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


@dataclass(frozen=True)
class ApprovedVersion:
    """The approved version a send renders (from `TemplateDesk.approved_for_sending`)."""

    name: str
    language: str
    category: str
    parameter_format: str
    components: Sequence[Mapping[str, Any]]


def _refuse(code: int, details: str) -> TemplateSendRefused:
    return TemplateSendRefused(code, details)


def _placeholders(text: str) -> list[str]:
    """Distinct placeholder names in the order they first appear."""
    return list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(text)))


def _fill(text: str, values: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def _check_policy(value: str, where: str) -> None:
    if "\n" in value or "\r" in value or "\t" in value or _TOO_MANY_SPACES.search(value):
        raise _refuse(
            132007,
            f"{where}: a text parameter cannot contain newlines, tabs or more than 4"
            " consecutive spaces.",
        )


def _text_value(parameter: Mapping[str, Any], where: str) -> str:
    """The displayed value of a text, currency or date_time parameter."""
    kind = str(parameter.get("type", "")).lower()
    if kind == "text":
        value = parameter.get("text")
        if value is None:
            raise _refuse(131008, f"{where}: the parameter text is required.")
        if not isinstance(value, str):
            raise _refuse(132012, f"{where}: text must be a string.")
        if not value.strip():
            raise _refuse(131008, f"{where}: text must not be empty.")
        _check_policy(value, where)
        return value
    if kind == "currency":
        currency = parameter.get("currency")
        if not isinstance(currency, Mapping):
            raise _refuse(132012, f"{where}: currency must be an object.")
        fallback, code, amount = (
            currency.get("fallback_value"),
            currency.get("code"),
            currency.get("amount_1000"),
        )
        if not isinstance(fallback, str) or not fallback.strip():
            raise _refuse(132012, f"{where}: currency.fallback_value must be a non-empty string.")
        if not isinstance(code, str) or not _CURRENCY_CODE.fullmatch(code):
            raise _refuse(132012, f"{where}: currency.code must be an ISO 4217 code such as USD.")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise _refuse(132012, f"{where}: currency.amount_1000 must be an integer.")
        _check_policy(fallback, where)
        return fallback
    if kind == "date_time":
        moment = parameter.get("date_time")
        if not isinstance(moment, Mapping):
            raise _refuse(132012, f"{where}: date_time must be an object.")
        fallback = moment.get("fallback_value")
        if not isinstance(fallback, str) or not fallback.strip():
            raise _refuse(132012, f"{where}: date_time.fallback_value must be a non-empty string.")
        _check_policy(fallback, where)
        return fallback
    raise _refuse(
        132012,
        f"{where}: a {kind or 'typeless'} parameter cannot fill a text placeholder"
        " (use text, currency or date_time).",
    )


def _text_values(
    text: str, parameters: Sequence[Mapping[str, Any]], parameter_format: str, where: str
) -> dict[str, str]:
    """Map each placeholder of `text` to the value the send gives it."""
    wanted = _placeholders(text)
    named = [p for p in parameters if p.get("parameter_name") is not None]
    if parameter_format == NAMED:
        if len(named) != len(parameters):
            raise _refuse(
                132012,
                f"{where}: this template uses named parameters; every parameter needs a"
                " parameter_name.",
            )
    elif named:
        raise _refuse(
            132012,
            f"{where}: this template uses positional parameters; parameter_name is not allowed.",
        )
    if len(parameters) != len(wanted):
        raise _refuse(
            132000, f"{where}: expected {len(wanted)} parameters, received {len(parameters)}."
        )
    values: dict[str, str] = {}
    for i, parameter in enumerate(parameters):
        if not isinstance(parameter, Mapping):
            raise _refuse(132012, f"{where}.parameters[{i}] must be an object.")
        if parameter_format == NAMED:
            name = parameter.get("parameter_name")
            if name not in wanted:
                raise _refuse(132012, f"{where}: the template has no parameter named {name!r}.")
            if name in values:
                raise _refuse(132000, f"{where}: parameter {name!r} is given twice.")
            key = str(name)
        else:
            key = wanted[i]
        values[key] = _text_value(parameter, f"{where}.parameters[{i}]")
    return values


def _by_type(
    sent: Sequence[Mapping[str, Any]],
) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None, dict[int, Mapping[str, Any]]]:
    header = body = None
    buttons: dict[int, Mapping[str, Any]] = {}
    for i, component in enumerate(sent):
        kind = str(component.get("type", "")).lower()
        if kind in ("header", "body"):
            if (header if kind == "header" else body) is not None:
                raise _refuse(131009, f"components[{i}]: only one {kind} component is allowed.")
            if kind == "header":
                header = component
            else:
                body = component
        elif kind == "button":
            index = component.get("index")
            if not isinstance(index, str) or not index.isdigit():
                raise _refuse(131009, f"components[{i}]: a button component needs an index.")
            if int(index) in buttons:
                raise _refuse(131009, f"components[{i}]: button {index} is given twice.")
            buttons[int(index)] = component
        else:
            raise _refuse(
                131009, f"components[{i}].type must be header, body or button, not {kind!r}."
            )
    return header, body, buttons


def _parameters(component: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    if component is None:
        return []
    parameters = component.get("parameters") or []
    if not isinstance(parameters, list) or not all(isinstance(p, Mapping) for p in parameters):
        raise _refuse(131009, "component parameters must be a list of objects.")
    return list(parameters)


def _media(fmt: str, parameter: Mapping[str, Any]) -> dict[str, Any]:
    key = MEDIA_FORMATS[fmt]
    kind = str(parameter.get("type", "")).lower()
    accepted = {key, "gif"} if fmt == "GIF" else {key}
    if kind not in accepted:
        raise _refuse(
            132012,
            f"header: this template's header is {fmt}; a {kind or 'typeless'}"
            " parameter cannot fill it.",
        )
    media = parameter.get(kind)
    if not isinstance(media, Mapping):
        raise _refuse(131008, f"header: the parameter {kind} is required.")
    has_id, has_link = isinstance(media.get("id"), str), isinstance(media.get("link"), str)
    if has_id == has_link or not (media.get("id") or media.get("link")):
        raise _refuse(131009, f"header.{kind} must have exactly one of id or link.")
    ref: dict[str, Any] = {"id": media["id"]} if has_id else {"link": media["link"]}
    if key == "document" and isinstance(media.get("filename"), str) and media["filename"]:
        ref["filename"] = media["filename"]
    return {"format": fmt, key: ref}


def _coordinate(value: Any, limit: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if -limit <= value <= limit else None


def _location(parameter: Mapping[str, Any]) -> dict[str, Any]:
    if str(parameter.get("type", "")).lower() != "location":
        raise _refuse(132012, "header: this template's header is LOCATION; send a location.")
    place = parameter.get("location")
    if not isinstance(place, Mapping):
        raise _refuse(131008, "header: the parameter location is required.")
    lat, lon = _coordinate(place.get("latitude"), 90), _coordinate(place.get("longitude"), 180)
    if lat is None or lon is None:
        raise _refuse(132012, "header: location needs a latitude and a longitude in range.")
    result: dict[str, Any] = {"latitude": lat, "longitude": lon}
    for key in ("name", "address"):
        if isinstance(place.get(key), str) and place[key]:
            result[key] = place[key]
    return {"format": "LOCATION", "location": result}


def _header(
    template: Mapping[str, Any] | None, sent: Mapping[str, Any] | None, parameter_format: str
) -> dict[str, Any] | None:
    parameters = _parameters(sent)
    if template is None:
        if sent is not None:
            raise _refuse(132000, "header: this template has no header.")
        return None
    fmt = str(template.get("format", "TEXT")).upper()
    if fmt == "TEXT":
        text = str(template.get("text", ""))
        values = _text_values(text, parameters, parameter_format, "header")
        rendered = _fill(text, values)
        if len(rendered) > HEADER_MAX:
            raise _refuse(132005, f"header: the rendered header is over {HEADER_MAX} characters.")
        return {"format": "TEXT", "text": rendered}
    if len(parameters) != 1:
        raise _refuse(
            132000, f"header: a {fmt} header takes exactly 1 parameter, received {len(parameters)}."
        )
    if fmt == "LOCATION":
        return _location(parameters[0])
    return _media(fmt, parameters[0])


def _single_text(component: Mapping[str, Any] | None, where: str) -> str | None:
    """The one text parameter of a button (None when the send gives none)."""
    parameters = _parameters(component)
    if not parameters:
        return None
    if len(parameters) != 1:
        raise _refuse(132000, f"{where}: expected 1 parameter, received {len(parameters)}.")
    parameter = parameters[0]
    if str(parameter.get("type", "")).lower() != "text" or not isinstance(
        parameter.get("text"), str
    ):
        raise _refuse(132012, f"{where}: the parameter must be of type text.")
    value = str(parameter["text"])
    if not value:
        raise _refuse(131008, f"{where}: text must not be empty.")
    return value


def _quick_reply_payload(parameter: Mapping[str, Any], where: str) -> str:
    """A quick reply's payload: `{"type": "payload", "payload": ...}`, or a `text` parameter,
    which Meta's own sample sends (`{"type": "text", "text": true}`)."""
    kind = str(parameter.get("type", "")).lower()
    value = parameter.get(kind) if kind in ("payload", "text") else None
    if isinstance(value, (bool, int, float)):
        value = json.dumps(value)
    if not isinstance(value, str) or not value:
        raise _refuse(132012, f"{where}: a quick reply takes a payload parameter.")
    if len(value) > QUICK_REPLY_PAYLOAD_MAX:
        raise _refuse(131009, f"{where}: the payload is over 256 characters.")
    return value


def _button(
    position: int, template: Mapping[str, Any], sent: Mapping[str, Any] | None
) -> dict[str, Any]:
    kind = str(template.get("type", "")).upper()
    where = f"button {position}"
    sub_type = str(sent.get("sub_type") or "").lower() if sent is not None else ""
    text = str(template.get("text") or "")
    if kind == "QUICK_REPLY":
        if sent is not None and sub_type != "quick_reply":
            raise _refuse(132012, f"{where} is a quick reply; sub_type must be quick_reply.")
        payload = text
        parameters = _parameters(sent)
        if len(parameters) > 1:
            raise _refuse(132000, f"{where}: expected 1 parameter, received {len(parameters)}.")
        if parameters:
            payload = _quick_reply_payload(parameters[0], where)
        return {"type": kind, "text": text, "payload": payload}
    if kind == "URL":
        if sent is not None and sub_type != "url":
            raise _refuse(132012, f"{where} is a URL button; sub_type must be url.")
        url = str(template.get("url") or "")
        dynamic = bool(PLACEHOLDER.search(url))
        suffix = _single_text(sent, where)
        if dynamic and suffix is None:
            raise _refuse(132000, f"{where}: the URL needs its suffix parameter.")
        if not dynamic and suffix is not None:
            raise _refuse(132000, f"{where}: the URL takes no parameter.")
        if suffix is not None:
            if len(suffix) > URL_SUFFIX_MAX or any(c.isspace() for c in suffix):
                raise _refuse(132007, f"{where}: the URL suffix cannot contain spaces.")
            url = PLACEHOLDER.sub(lambda _m: suffix, url)
        return {"type": kind, "text": text, "url": url}
    if kind == "COPY_CODE":
        if sent is None:
            raise _refuse(132000, f"{where}: the copy-code button needs its coupon_code.")
        if sub_type != "copy_code":
            raise _refuse(132012, f"{where} is a copy-code button; sub_type must be copy_code.")
        parameters = _parameters(sent)
        if len(parameters) != 1:
            raise _refuse(132000, f"{where}: expected 1 parameter, received {len(parameters)}.")
        code = parameters[0].get("coupon_code")
        if str(parameters[0].get("type", "")).lower() != "coupon_code" or not isinstance(code, str):
            raise _refuse(132012, f"{where}: a copy-code button takes a coupon_code parameter.")
        if len(code) > COUPON_CODE_MAX or not _COUPON.fullmatch(code):
            raise _refuse(132012, f"{where}: a coupon code is up to 15 letters and digits.")
        return {"type": kind, "text": text or "Copy offer code", "code": code}
    if kind == "OTP":
        # Meta's authentication sends fill the OTP button as a url sub_type with the code.
        if sent is not None and sub_type not in ("url", "copy_code", "one_tap", "zero_tap"):
            raise _refuse(132012, f"{where} is an OTP button; sub_type must be url.")
        code = _single_text(sent, where)
        if code is None:
            raise _refuse(132000, f"{where}: the OTP button needs the code.")
        if len(code) > AUTH_CODE_MAX:
            raise _refuse(132005, f"{where}: a one-time code is at most 15 characters.")
        otp_type = str(template.get("otp_type") or "COPY_CODE").upper()
        return {"type": kind, "text": text or _OTP_LABELS.get(otp_type, "Copy code"), "code": code}
    given = _parameters(sent)
    if kind in _ACTION_BUTTONS:
        # Flow, catalog and product buttons take an `action` parameter (flow token, thumbnail)
        # that only matters to a client able to open them; the button shows its text.
        if any(str(p.get("type", "")).lower() != "action" for p in given):
            raise _refuse(132012, f"{where}: a {kind} button takes an action parameter.")
    elif given:
        raise _refuse(132000, f"{where}: a {kind} button takes no parameter.")
    button: dict[str, Any] = {"type": kind, "text": text}
    if kind == "PHONE_NUMBER":
        button["phone_number"] = template.get("phone_number")
    return button


def render(approved: ApprovedVersion, sent: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `template` content for a send of `approved` with the `sent` components."""
    parts = {str(c.get("type", "")).upper(): c for c in approved.components}
    sent_header, sent_body, sent_buttons = _by_type(sent)
    content: dict[str, Any] = {
        "name": approved.name,
        "language": approved.language,
        "category": approved.category,
    }
    header = _header(parts.get("HEADER"), sent_header, approved.parameter_format)
    if header is not None:
        content["header"] = header
    body_text = str((parts.get("BODY") or {}).get("text", ""))
    values = _text_values(body_text, _parameters(sent_body), approved.parameter_format, "body")
    if approved.category == AUTHENTICATION and any(len(v) > AUTH_CODE_MAX for v in values.values()):
        raise _refuse(132005, "body: a one-time code is at most 15 characters.")
    rendered = _fill(body_text, values)
    if len(rendered) > BODY_MAX:
        raise _refuse(132005, f"body: the rendered body is over {BODY_MAX} characters.")
    content["body"] = {"text": rendered}
    footer = (parts.get("FOOTER") or {}).get("text")
    if footer:
        content["footer"] = {"text": str(footer)}
    template_buttons = list((parts.get("BUTTONS") or {}).get("buttons") or [])
    unknown = sorted(i for i in sent_buttons if i >= len(template_buttons))
    if unknown:
        raise _refuse(131009, f"button index {unknown[0]}: this template has no such button.")
    if template_buttons:
        content["buttons"] = [
            _button(i, button, sent_buttons.get(i)) for i, button in enumerate(template_buttons)
        ]
    return content


def media_reference(content: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """(kind, {id|link}) of a rendered template's media header, if it has one."""
    header = content.get("header")
    if not isinstance(header, Mapping):
        return None
    key = MEDIA_FORMATS.get(str(header.get("format")))
    if key is None or not isinstance(header.get(key), Mapping):
        return None
    return key, header[key]
