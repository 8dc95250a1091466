"""Message models for every kind a chat can carry, and the replies a customer sends back.

`parse(content)` turns decrypted content (a dict from an untrusted sender) into one frozen
model a client can render; anything malformed becomes `Unsupported` rather than raising, so a
bad message never breaks a conversation. The reply builders produce the shapes the business
platform understands (see the content contract: Cloud API message shapes end to end):

    button_reply(button)         {"type":"interactive","interactive":{"type":"button_reply",...}}
    list_reply(row)              {"type":"interactive","interactive":{"type":"list_reply",...}}
    template_quick_reply(...)    {"type":"button","button":{"text","payload"},"context":{...}}
    marketing_preference(stop)   {"type":"preferences","preferences":{"marketing":"stop"}}
    block_request(...)           {"type":"block","block":{"blocked","report","reason"?}}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
_URL = re.compile(r"https?://[^\s<>\"']+")


def find_links(text: str) -> list[str]:
    """The http(s) links in `text`, in order, without trailing punctuation."""
    return [m.group(0).rstrip(".,;:!?)") for m in _URL.finditer(text)]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True)
class Quote:
    """A reply's reference to the message it quotes (its end-to-end id and sender)."""

    message_id: str
    sender: str | None


@dataclass(frozen=True)
class Text:
    body: str

    @property
    def links(self) -> list[str]:
        return find_links(self.body)


@dataclass(frozen=True)
class Media:
    kind: str  # image | video | audio | document | sticker
    descriptor: dict[str, Any] | None  # the attachment descriptor (holds the file's key)
    caption: str | None = None
    filename: str | None = None
    mime_type: str | None = None
    voice: bool = False


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


@dataclass(frozen=True)
class Contact:
    name: str
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contacts:
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class Reaction:
    target: str | None  # the reacted-to message's id, when the sender told us
    emoji: str  # "" removes an earlier reaction


@dataclass(frozen=True)
class Button:
    """A reply button (interactive) or a template's quick reply: tapping it sends a reply."""

    id: str
    title: str
    kind: Literal["reply", "quick_reply"] = "reply"


@dataclass(frozen=True)
class LinkButton:
    """A button that opens something rather than replying (URL, phone number, copy code)."""

    kind: Literal["url", "phone", "copy"]
    title: str
    value: str


@dataclass(frozen=True)
class ListRow:
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class ListSection:
    title: str | None
    rows: tuple[ListRow, ...]


@dataclass(frozen=True)
class Header:
    text: str | None = None
    media: Media | None = None
    location: Location | None = None


@dataclass(frozen=True)
class Interactive:
    """Business → customer interactive message: buttons, a list, a CTA URL or a location
    request. `menu` is the list's button label; `sections` its rows."""

    kind: str  # button | list | cta_url | location_request_message | other
    body: str
    header: Header | None = None
    footer: str | None = None
    buttons: tuple[Button, ...] = ()
    menu: str | None = None
    sections: tuple[ListSection, ...] = ()
    link: LinkButton | None = None

    @property
    def rows(self) -> list[ListRow]:
        return [row for section in self.sections for row in section.rows]


@dataclass(frozen=True)
class InteractiveReply:
    """What a customer chose: a reply button, a list row, or a template quick reply."""

    kind: Literal["button_reply", "list_reply", "button"]
    id: str
    title: str
    description: str | None = None


@dataclass(frozen=True)
class Template:
    name: str
    category: str | None
    body: str
    header: Header | None = None
    footer: str | None = None
    buttons: tuple[Button, ...] = ()
    links: tuple[LinkButton, ...] = ()


@dataclass(frozen=True)
class PaymentRequest:
    reference: str | None
    amount: str | None
    description: str | None


@dataclass(frozen=True)
class Control:
    """A customer control sent to a business (stop promotions, block, report)."""

    summary: str


@dataclass(frozen=True)
class Unsupported:
    kind: str


Body = (
    Text
    | Media
    | Location
    | Contacts
    | Reaction
    | Interactive
    | InteractiveReply
    | Template
    | PaymentRequest
    | Control
    | Unsupported
)


@dataclass(frozen=True)
class Parsed:
    kind: str
    body: Body
    quote: Quote | None = field(default=None)


# -- parsing --------------------------------------------------------------------------------


def parse(content: dict[str, Any]) -> Parsed:
    kind = _str(content.get("type"))
    if kind is None and isinstance(content.get("text"), str):
        kind = "text"  # person-to-person clients send {"type": "text", "text": "..."}
    kind = kind or "unknown"
    context = _dict(content.get("context"))
    quote = None
    if _str(context.get("message_id")):
        quote = Quote(str(context["message_id"]), _str(context.get("from")))
    try:
        body = _parse_body(kind, content)
    except (KeyError, TypeError, ValueError):
        body = None
    return Parsed(kind, body if body is not None else Unsupported(kind), quote)


def _parse_body(kind: str, content: dict[str, Any]) -> Body | None:
    inner = content.get(kind)
    if kind == "text":
        text = inner if isinstance(inner, str) else _str(_dict(inner).get("body"))
        return None if text is None else Text(text)
    if kind in MEDIA_KINDS:
        return _media(kind, _dict(inner))
    if kind == "location":
        return _location(_dict(inner))
    if kind == "contacts":
        return _contacts(_list(inner))
    if kind == "reaction":
        reaction = _dict(inner)
        context = _dict(content.get("context"))
        target = _str(context.get("message_id")) or _str(reaction.get("message_id"))
        emoji = _str(reaction.get("emoji"))
        return None if emoji is None else Reaction(target, emoji)
    if kind == "interactive":
        return _interactive(_dict(inner))
    if kind == "button":
        button = _dict(inner)
        payload = _str(button.get("payload"))
        if payload is None:
            return None
        return InteractiveReply("button", payload, _str(button.get("text")) or payload)
    if kind == "template":
        return _template(_dict(inner))
    if kind in ("payment_request", "order_details"):
        payment = _dict(inner)
        return PaymentRequest(
            _str(payment.get("reference_id")),
            _str(payment.get("amount")) or _str(_dict(payment.get("total_amount")).get("value")),
            _str(payment.get("description")),
        )
    if kind == "preferences":
        wanted = _str(_dict(inner).get("marketing"))
        summary = {"stop": "Stopped promotions", "resume": "Resumed promotions"}.get(wanted or "")
        return None if summary is None else Control(summary)
    if kind == "block":
        block = _dict(inner)
        if block.get("blocked") is True:
            return Control("Blocked and reported" if block.get("report") else "Blocked")
        return Control("Unblocked")
    return None


def _media(kind: str, inner: dict[str, Any]) -> Media:
    descriptor = inner.get("attachment")
    descriptor = descriptor if isinstance(descriptor, dict) else None
    return Media(
        kind=kind,
        descriptor=descriptor,
        caption=_str(inner.get("caption")),
        filename=_str(inner.get("filename")) or _str(_dict(descriptor).get("filename")),
        mime_type=_str(_dict(descriptor).get("mime_type")) or _str(inner.get("mime_type")),
        voice=inner.get("voice") is True,
    )


def _location(inner: dict[str, Any]) -> Location | None:
    latitude, longitude = _number(inner.get("latitude")), _number(inner.get("longitude"))
    if latitude is None or longitude is None:
        return None
    return Location(latitude, longitude, _str(inner.get("name")), _str(inner.get("address")))


def _contacts(items: list[Any]) -> Contacts | None:
    contacts = []
    for item in items:
        entry = _dict(item)
        name = _dict(entry.get("name"))
        shown = _str(name.get("formatted_name")) or _str(name.get("first_name")) or "(no name)"
        phones = tuple(
            p for p in (_str(_dict(x).get("phone")) for x in _list(entry.get("phones"))) if p
        )
        emails = tuple(
            e for e in (_str(_dict(x).get("email")) for x in _list(entry.get("emails"))) if e
        )
        contacts.append(Contact(shown, phones, emails))
    return Contacts(tuple(contacts)) if contacts else None


def _header(raw: dict[str, Any]) -> Header | None:
    if not raw:
        return None
    kind = (_str(raw.get("type")) or _str(raw.get("format")) or "").lower()
    if kind == "text":
        return Header(text=_str(raw.get("text")))
    if kind in MEDIA_KINDS:
        return Header(media=_media(kind, _dict(raw.get(kind))))
    if kind == "location":
        return Header(location=_location(_dict(raw.get("location"))))
    return None


def _interactive(inner: dict[str, Any]) -> Interactive | InteractiveReply | None:
    kind = _str(inner.get("type")) or "other"
    if not inner:
        return None
    if kind in ("button_reply", "list_reply"):
        reply = _dict(inner.get(kind))
        reply_id = _str(reply.get("id"))
        if reply_id is None:
            return None
        reply_kind: Literal["button_reply", "list_reply"] = (
            "button_reply" if kind == "button_reply" else "list_reply"
        )
        return InteractiveReply(
            reply_kind, reply_id, _str(reply.get("title")) or "", _str(reply.get("description"))
        )
    action = _dict(inner.get("action"))
    body = _str(_dict(inner.get("body")).get("text")) or ""
    common: dict[str, Any] = {
        "kind": kind,
        "body": body,
        "header": _header(_dict(inner.get("header"))),
        "footer": _str(_dict(inner.get("footer")).get("text")),
    }
    if kind == "button":
        buttons = []
        for raw in _list(action.get("buttons")):
            reply = _dict(_dict(raw).get("reply"))
            if _str(reply.get("id")) is not None:
                buttons.append(Button(str(reply["id"]), _str(reply.get("title")) or ""))
        return Interactive(buttons=tuple(buttons), **common)
    if kind == "list":
        sections = []
        for raw in _list(action.get("sections")):
            section = _dict(raw)
            rows = tuple(
                ListRow(str(r["id"]), _str(r.get("title")) or "", _str(r.get("description")))
                for r in map(_dict, _list(section.get("rows")))
                if _str(r.get("id")) is not None
            )
            sections.append(ListSection(_str(section.get("title")), rows))
        return Interactive(menu=_str(action.get("button")), sections=tuple(sections), **common)
    if kind == "cta_url":
        parameters = _dict(action.get("parameters"))
        url = _str(parameters.get("url"))
        link = (
            None
            if url is None
            else LinkButton("url", _str(parameters.get("display_text")) or url, url)
        )
        return Interactive(link=link, **common)
    if kind != "location_request_message" and not body:
        return None  # a kind this client does not know, with nothing to show
    return Interactive(**common)


def _template(inner: dict[str, Any]) -> Template | None:
    name = _str(inner.get("name"))
    if name is None:
        return None
    buttons: list[Button] = []
    links: list[LinkButton] = []
    for raw in map(_dict, _list(inner.get("buttons"))):
        kind, text = (_str(raw.get("type")) or "").upper(), _str(raw.get("text")) or ""
        if kind == "QUICK_REPLY":
            buttons.append(Button(_str(raw.get("payload")) or text, text, "quick_reply"))
        elif kind == "URL" and _str(raw.get("url")):
            links.append(LinkButton("url", text, str(raw["url"])))
        elif kind == "PHONE_NUMBER" and _str(raw.get("phone_number")):
            links.append(LinkButton("phone", text, str(raw["phone_number"])))
        elif kind in ("COPY_CODE", "OTP") and _str(raw.get("code")):
            links.append(LinkButton("copy", text, str(raw["code"])))
    return Template(
        name=name,
        category=_str(inner.get("category")),
        body=_str(_dict(inner.get("body")).get("text")) or "",
        header=_header(_dict(inner.get("header"))),
        footer=_str(_dict(inner.get("footer")).get("text")),
        buttons=tuple(buttons),
        links=tuple(links),
    )


# -- replies --------------------------------------------------------------------------------


def button_reply(button: Button) -> dict[str, Any]:
    return {
        "type": "interactive",
        "interactive": {
            "type": "button_reply",
            "button_reply": {"id": button.id, "title": button.title},
        },
    }


def list_reply(row: ListRow) -> dict[str, Any]:
    reply: dict[str, Any] = {"id": row.id, "title": row.title}
    if row.description:
        reply["description"] = row.description
    return {"type": "interactive", "interactive": {"type": "list_reply", "list_reply": reply}}


def template_quick_reply(button: Button, template_message_id: str, sender: str) -> dict[str, Any]:
    return {
        "type": "button",
        "button": {"text": button.title, "payload": button.id},
        "context": {"message_id": template_message_id, "from": sender},
    }


def reply_to(content: dict[str, Any], message_id: str, sender: str) -> dict[str, Any]:
    """`content` sent as a reply quoting `message_id` (sent by `sender`)."""
    return {**content, "context": {"message_id": message_id, "from": sender}}


def location(latitude: float, longitude: float, name: str | None = None) -> dict[str, Any]:
    inner: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name:
        inner["name"] = name
    return {"type": "location", "location": inner}


def marketing_preference(stop: bool) -> dict[str, Any]:
    return {"type": "preferences", "preferences": {"marketing": "stop" if stop else "resume"}}


def block_request(blocked: bool, report: bool = False, reason: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"blocked": blocked, "report": report}
    if reason:
        block["reason"] = reason
    return {"type": "block", "block": block}


def preview(content: dict[str, Any]) -> str:
    """One line for a chat list: the text, or what kind of message it is."""
    body = parse(content).body
    if isinstance(body, Text):
        return body.body
    if isinstance(body, Media):
        return f"[{body.kind}] {body.caption or body.filename or ''}".strip()
    if isinstance(body, Location):
        return f"[location] {body.name or ''}".strip()
    if isinstance(body, Contacts):
        return "[contact] " + ", ".join(c.name for c in body.contacts)
    if isinstance(body, Reaction):
        return f"reacted {body.emoji}" if body.emoji else "removed a reaction"
    if isinstance(body, Interactive | Template):
        return body.body
    if isinstance(body, InteractiveReply):
        return body.title
    if isinstance(body, PaymentRequest):
        return f"[payment request] {body.amount or ''}".strip()
    if isinstance(body, Control):
        return body.summary
    return f"[{body.kind} message]"
