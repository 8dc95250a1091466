"""`POST /{version}/{phone_number_id}/messages`: request models, parsing and normalization.

`parse_messages_request(body)` turns a decoded JSON body into either a `SendRequest` (whose
`.message` is an `OutboundMessage`) or a `ReadRequest` (mark as read, optionally with a
typing indicator), or raises the `GraphError` Meta would answer with. Codes (see
graph_errors for the general rule):

- body not an object, `messaging_product` not "whatsapp", a `type` nobody knows    → 100
- a required parameter missing (`messaging_product`, `to`, the object named by `type`,
  `text.body`, ...)                                                                  → 131008
- a combination that is not allowed (context on a reaction, id and link, duplicates) → 131009
- a type Meta has but Tidings does not do yet (group sends, product lists, flows,
  orders, ...) parses into `OutboundMessage.unsupported`; `require_supported()` raises
  131051 Unsupported message type. An unknown `type` is 100, not 131051: Meta's parameter
  validator answers an out-of-enum value with 100, and 131051 tells a client "valid, but not
  here", which is only true for types Meta does support.

Lenient where real clients are (reference/cloud-api.md, Appendix): `recipient_type` missing,
`type` missing (Meta's own "preview URL" and "reply to list" examples omit it: it is the one
message object the body carries, else text),
`text.preview_url` missing or null, `image.caption: ""`, `to` with `+ - ( )` and spaces or as a
number, `template.language.code: null`, `language.policy`, mixed-case component types.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from tidings.business_api.graph_errors import (
    GraphCode,
    GraphError,
    graph_error_from_validation,
    graph_rule,
)
from tidings.business_api.wire_base import (
    BIZ_OPAQUE_MAX,
    CAPTION_MAX,
    TEXT_BODY_MAX,
    TO_MAX,
    MediaRef,
    Unsupported,
    WireIn,
    dump,
    unsupported_type,
    validate_part,
)
from tidings.business_api.wire_interactive import parse_interactive
from tidings.kit.phone import InvalidPhoneNumber, normalize_phone

# --- per-type objects -------------------------------------------------------------------------


class TextObject(WireIn):
    body: str = Field(min_length=1, max_length=TEXT_BODY_MAX)
    preview_url: bool = False

    @field_validator("preview_url", mode="before")
    @classmethod
    def _null_is_false(cls, value: Any) -> Any:
        return False if value is None else value


class CaptionedMedia(MediaRef):
    caption: str | None = Field(default=None, max_length=CAPTION_MAX)

    @field_validator("caption")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None  # clients send caption "" for "no caption"


class ImageObject(CaptionedMedia):
    pass


class VideoObject(CaptionedMedia):
    pass


class DocumentObject(CaptionedMedia):
    filename: str | None = Field(default=None, min_length=1)


class AudioObject(MediaRef):
    voice: bool | None = None


class StickerObject(MediaRef):
    pass


class LocationObject(WireIn):
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    name: str | None = None
    address: str | None = None


class ContactName(WireIn):
    formatted_name: str = Field(min_length=1)
    first_name: str | None = None
    last_name: str | None = None
    middle_name: str | None = None
    prefix: str | None = None
    suffix: str | None = None


class ContactPhone(WireIn):
    phone: str | None = None
    type: str | None = None
    wa_id: str | None = None


class ContactEmail(WireIn):
    email: str | None = None
    type: str | None = None


class ContactAddress(WireIn):
    street: str | None = None
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    country: str | None = None
    country_code: str | None = None
    type: str | None = None


class ContactOrg(WireIn):
    company: str | None = None
    department: str | None = None
    title: str | None = None


class ContactUrl(WireIn):
    url: str | None = None
    type: str | None = None


_BIRTHDAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class Contact(WireIn):
    name: ContactName
    phones: list[ContactPhone] | None = None
    emails: list[ContactEmail] | None = None
    addresses: list[ContactAddress] | None = None
    org: ContactOrg | None = None
    urls: list[ContactUrl] | None = None
    birthday: str | None = None

    @field_validator("birthday")
    @classmethod
    def _iso_date(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            if not _BIRTHDAY.fullmatch(value):
                raise ValueError(value)
            date.fromisoformat(value)
        except ValueError:
            raise graph_rule(GraphCode.INVALID_PARAMETER, "must be a date as YYYY-MM-DD") from None
        return value


ContactsList = TypeAdapter(Annotated[list[Contact], Field(min_length=1)])


class ReactionObject(WireIn):
    message_id: str = Field(min_length=1)
    emoji: str  # "" removes an earlier reaction

    @field_validator("emoji")
    @classmethod
    def _single_emoji(cls, value: str) -> str:
        if value and not is_single_emoji(value):
            raise graph_rule(GraphCode.INVALID_PARAMETER, "must be a single emoji")
        return value


class TemplateLanguage(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    code: str | None = None
    policy: str | None = None


class TemplateComponent(BaseModel):
    """Loose on purpose: the templates module checks components against the stored template."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: str
    sub_type: str | None = None
    index: str | None = None
    parameters: list[dict[str, Any]] = Field(default_factory=list)

    @field_validator("type", "sub_type", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value

    @field_validator("index", mode="before")
    @classmethod
    def _index_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class TemplateObject(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    name: str = Field(min_length=1, max_length=512)
    language: TemplateLanguage
    components: list[TemplateComponent] = Field(default_factory=list)


_TYPE_MODELS: dict[str, type[BaseModel]] = {
    "text": TextObject,
    "image": ImageObject,
    "video": VideoObject,
    "audio": AudioObject,
    "document": DocumentObject,
    "sticker": StickerObject,
    "location": LocationObject,
    "reaction": ReactionObject,
    "template": TemplateObject,
}
SUPPORTED_TYPES = (*_TYPE_MODELS, "contacts", "interactive")
# Message types Meta documents (or clients send) that Tidings does not implement yet.
UNSUPPORTED_TYPES = ("order", "product", "product_list", "catalog_message", "flow")


# --- the envelope -----------------------------------------------------------------------------


class Context(WireIn):
    message_id: str = Field(min_length=1)


class Envelope(BaseModel):
    """The fields every send shares. Unknown top-level keys are ignored, as Meta does."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    messaging_product: Literal["whatsapp"]
    recipient_type: Literal["individual", "group"] = "individual"
    to: str = Field(max_length=TO_MAX)
    type: str = "text"
    context: Context | None = None
    biz_opaque_callback_data: str | None = Field(default=None, max_length=BIZ_OPAQUE_MAX)

    @field_validator("recipient_type", mode="before")
    @classmethod
    def _recipient_type(cls, value: Any) -> Any:
        if value is None:
            return "individual"
        return value.lower() if isinstance(value, str) else value

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: Any) -> Any:
        return "text" if value is None else value


class TypingIndicator(WireIn):
    type: Literal["text"]


class ReadRequest(BaseModel):
    """Mark `message_id` as read; with `typing_indicator` also show "typing…" for up to 25 s."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    messaging_product: Literal["whatsapp"]
    status: Literal["read"]
    message_id: str = Field(min_length=1)
    typing_indicator: bool = False  # given as {"type": "text"}; True means "show typing…"

    @field_validator("typing_indicator", mode="before")
    @classmethod
    def _typing(cls, value: Any) -> Any:
        if value is None:
            return False
        if isinstance(value, dict):
            TypingIndicator.model_validate(value)  # errors are reported under typing_indicator
            return True
        return value


# --- the normalized result --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A validated send, normalized for the rest of the platform.

    - `to_input` is `to` exactly as sent: the response echoes it in `contacts[0].input`.
      Normalize it with `recipient_e164` (or `candidate_e164` + `kit.phone.normalize_phone`).
    - `payload` is the object named by `type` (a dict; a list for `contacts`), validated, with
      defaults applied and None fields dropped. Treat it as read-only.
    - `unsupported` is set for a well-formed request Tidings cannot serve yet; call
      `require_supported()` once the caller is authenticated.
    """

    to_input: str
    type: str
    payload: Any
    context_message_id: str | None = None
    biz_opaque_callback_data: str | None = None
    recipient_type: str = "individual"
    unsupported: Unsupported | None = None

    @property
    def interactive_type(self) -> str | None:
        if self.type == "interactive" and isinstance(self.payload, dict):
            kind = self.payload.get("type")
            return kind if isinstance(kind, str) else None
        return None

    def require_supported(self) -> None:
        if self.unsupported is not None:
            raise self.unsupported.error()


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A parsed send: `message` is what the rest of the platform works with."""

    message: OutboundMessage

    def require_supported(self) -> None:
        self.message.require_supported()


def parse_messages_request(body: Any) -> SendRequest | ReadRequest:
    """Validate a `/messages` body: a send, or a read receipt when it carries `status`."""
    if not isinstance(body, dict):
        raise GraphError(GraphCode.INVALID_PARAMETER, "The request body must be a JSON object.")
    if "status" in body:
        return validate_part(ReadRequest, body, ())
    if body.get("type") is None:
        present = [k for k in SUPPORTED_TYPES + UNSUPPORTED_TYPES if body.get(k) is not None]
        body = {**body, "type": present[0] if len(present) == 1 else "text"}
    env = validate_part(Envelope, body, ())
    kind = env.type
    if not isinstance(kind, str) or kind not in SUPPORTED_TYPES + UNSUPPORTED_TYPES:
        known = ", ".join(SUPPORTED_TYPES)
        raise GraphError(
            GraphCode.INVALID_PARAMETER, f"Param type must be one of {{{known}}}, got {kind!r}."
        )
    common: dict[str, Any] = {
        "to_input": env.to,
        "type": kind,
        "context_message_id": env.context.message_id if env.context else None,
        "biz_opaque_callback_data": env.biz_opaque_callback_data,
        "recipient_type": env.recipient_type,
    }
    obj = body.get(kind)
    if kind in UNSUPPORTED_TYPES:
        marker = unsupported_type(f"Message type {kind!r}")
        return SendRequest(OutboundMessage(payload=obj, unsupported=marker, **common))
    if obj is None:
        raise GraphError(GraphCode.REQUIRED_PARAMETER_MISSING, f"The parameter {kind} is required.")
    if kind == "reaction" and env.context is not None:
        raise GraphError(
            GraphCode.PARAMETER_VALUE_INVALID,
            "Param context must not be used with a reaction message.",
        )
    unsupported: Unsupported | None = None
    payload: Any
    if kind == "interactive":
        payload, unsupported = parse_interactive(obj)
    elif kind == "contacts":
        try:
            contacts = ContactsList.validate_python(obj)
        except ValidationError as exc:
            raise graph_error_from_validation(exc, prefix=("contacts",)) from None
        payload = [dump(contact) for contact in contacts]
    else:
        payload = dump(validate_part(_TYPE_MODELS[kind], obj, (kind,)))
    if env.recipient_type == "group" and unsupported is None:
        unsupported = unsupported_type("Group messaging (recipient_type 'group')")
    return SendRequest(OutboundMessage(payload=payload, unsupported=unsupported, **common))


# --- recipients -------------------------------------------------------------------------------

_FORMATTING = re.compile(r"[\s\-().]")


def candidate_e164(to: str) -> str:
    """`to` without formatting (spaces, `-`, `(`, `)`, `.`) and with a leading '+'.

    Meta reads a number without '+' as national to the *business* number's country and
    prepends that country code, so "6505551234" sent from a +44 number goes to +44 650...
    Tidings does not copy that footgun: digits without '+' are read as a full international
    number, which is what clients that omit '+' (most of them) mean.
    """
    text = _FORMATTING.sub("", to)
    return text if text.startswith("+") else f"+{text}"


def recipient_e164(to: str) -> str:
    """The E.164 recipient for `to`, or GraphError 100 naming why it is not a phone number."""
    try:
        return normalize_phone(candidate_e164(to))
    except InvalidPhoneNumber as exc:
        raise GraphError(
            GraphCode.INVALID_PARAMETER, f"Param to is not a valid phone number: {exc}."
        ) from None


def wa_id_of(e164: str) -> str:
    """WhatsApp ids are E.164 without the '+'."""
    return e164.removeprefix("+")


# --- emoji ------------------------------------------------------------------------------------

_ZWJ = "\u200d"
_KEYCAP = re.compile("[0-9#*]\ufe0f?\u20e3")
_MODIFIERS = {0xFE0F, 0xFE0E, 0x20E3, *range(0x1F3FB, 0x1F400), *range(0xE0020, 0xE0080)}
_REGIONAL = range(0x1F1E6, 0x1F200)
_EMOJI_BLOCKS = (
    (0x1F000, 0x1FAFF),
    (0x2190, 0x21FF),
    (0x2300, 0x23FF),
    (0x2460, 0x27BF),
    (0x2900, 0x297F),
    (0x2B00, 0x2BFF),
    (0x3030, 0x3030),
    (0x303D, 0x303D),
    (0x3297, 0x3299),
    (0x00A9, 0x00A9),
    (0x00AE, 0x00AE),
    (0x203C, 0x203C),
    (0x2049, 0x2049),
    (0x2122, 0x2122),
    (0x2139, 0x2139),
)


def _is_emoji_base(ch: str) -> bool:
    cp = ord(ch)
    if cp in _REGIONAL or cp in _MODIFIERS:
        return False
    if not any(lo <= cp <= hi for lo, hi in _EMOJI_BLOCKS):
        return False
    return unicodedata.category(ch) in ("So", "Sm", "Sk")


def is_single_emoji(text: str) -> bool:
    """True for one emoji: a pictograph with its modifiers, a ZWJ sequence, a flag, a keycap."""
    if _KEYCAP.fullmatch(text):
        return True
    if len(text) == 2 and all(ord(c) in _REGIONAL for c in text):
        return True
    parts = text.split(_ZWJ)
    if len(parts) > 10:
        return False
    for part in parts:
        if not part or not _is_emoji_base(part[0]):
            return False
        if any(ord(c) not in _MODIFIERS for c in part[1:]):
            return False
    return True
