"""`type: "interactive"` request objects: reply buttons, lists, CTA URL, location request.

Limits are Meta's (reference/cloud-api.md §3). Other interactive types that Meta knows
(product, product_list, catalog_message, flow, order_details, ...) parse into an `Unsupported`
marker; an interactive type nobody knows is an invalid parameter (100).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from tidings.business_api.graph_errors import GraphCode, GraphError, graph_rule
from tidings.business_api.wire_base import (
    BUTTON_BODY_MAX,
    CTA_DISPLAY_TEXT_MAX,
    FOOTER_TEXT_MAX,
    HEADER_TEXT_MAX,
    LIST_BODY_MAX,
    LIST_BUTTON_MAX,
    LIST_ROW_DESCRIPTION_MAX,
    LIST_ROW_ID_MAX,
    LIST_ROW_TITLE_MAX,
    LIST_ROWS_MAX,
    LIST_SECTION_TITLE_MAX,
    LIST_SECTIONS_MAX,
    REPLY_BUTTON_ID_MAX,
    REPLY_BUTTON_TITLE_MAX,
    REPLY_BUTTONS_MAX,
    MediaRef,
    Unsupported,
    WireIn,
    dump,
    unsupported_type,
    validate_part,
)

SUPPORTED_INTERACTIVE = ("button", "list", "cta_url", "location_request_message")
# Interactive types Meta offers that Tidings does not implement yet.
UNSUPPORTED_INTERACTIVE = (
    "product",
    "product_list",
    "catalog_message",
    "flow",
    "order_details",
    "order_status",
    "address_message",
    "call_permission_request",
    "voice_call",
    "carousel",
)


def _text(max_length: int) -> Any:
    return Field(min_length=1, max_length=max_length)


BodyText1024 = Annotated[str, _text(BUTTON_BODY_MAX)]
BodyText4096 = Annotated[str, _text(LIST_BODY_MAX)]
FooterText = Annotated[str, _text(FOOTER_TEXT_MAX)]
HeaderText = Annotated[str, _text(HEADER_TEXT_MAX)]


class Body1024(WireIn):
    text: BodyText1024


class Body4096(WireIn):
    text: BodyText4096


class Footer(WireIn):
    text: FooterText


class HeaderDocument(MediaRef):
    filename: str | None = None


class Header(WireIn):
    """A text header (≤60) or an image, video or document header."""

    type: Literal["text", "image", "video", "document"]
    text: str | None = Field(default=None, min_length=1, max_length=HEADER_TEXT_MAX)
    image: MediaRef | None = None
    video: MediaRef | None = None
    document: HeaderDocument | None = None

    @model_validator(mode="after")
    def _matches_type(self) -> Header:
        if getattr(self, self.type) is None:
            raise graph_rule(GraphCode.REQUIRED_PARAMETER_MISSING, "", field=self.type)
        others = [k for k in ("text", "image", "video", "document") if k != self.type]
        extra = [k for k in others if getattr(self, k) is not None]
        if extra:
            raise graph_rule(
                GraphCode.PARAMETER_VALUE_INVALID,
                f"of type {self.type} must not carry {extra[0]}",
            )
        return self


class TextHeader(WireIn):
    type: Literal["text"]
    text: HeaderText


def _first_duplicate(values: list[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


# --- reply buttons ---------------------------------------------------------------------------


class Reply(WireIn):
    id: Annotated[str, _text(REPLY_BUTTON_ID_MAX)]
    title: Annotated[str, _text(REPLY_BUTTON_TITLE_MAX)]


class ReplyButton(WireIn):
    type: Literal["reply"]
    reply: Reply


class ButtonAction(WireIn):
    buttons: list[ReplyButton] = Field(min_length=1, max_length=REPLY_BUTTONS_MAX)

    @field_validator("buttons")
    @classmethod
    def _unique(cls, buttons: list[ReplyButton]) -> list[ReplyButton]:
        for attr in ("id", "title"):
            dup = _first_duplicate([getattr(b.reply, attr) for b in buttons])
            if dup is not None:
                raise graph_rule(
                    GraphCode.PARAMETER_VALUE_INVALID,
                    f"must have unique reply {attr}s: {dup!r} is repeated",
                )
        return buttons


class ButtonMessage(WireIn):
    type: Literal["button"]
    header: Header | None = None
    body: Body1024
    footer: Footer | None = None
    action: ButtonAction


# --- list --------------------------------------------------------------------------------------


class Row(WireIn):
    id: Annotated[str, _text(LIST_ROW_ID_MAX)]
    title: Annotated[str, _text(LIST_ROW_TITLE_MAX)]
    description: str | None = Field(default=None, max_length=LIST_ROW_DESCRIPTION_MAX)


class Section(WireIn):
    title: str | None = Field(default=None, min_length=1, max_length=LIST_SECTION_TITLE_MAX)
    rows: list[Row] = Field(min_length=1, max_length=LIST_ROWS_MAX)


class ListAction(WireIn):
    button: Annotated[str, _text(LIST_BUTTON_MAX)]
    sections: list[Section] = Field(min_length=1, max_length=LIST_SECTIONS_MAX)

    @field_validator("sections")
    @classmethod
    def _across_sections(cls, sections: list[Section]) -> list[Section]:
        if len(sections) > 1:
            for i, section in enumerate(sections):
                if section.title is None:
                    raise graph_rule(GraphCode.REQUIRED_PARAMETER_MISSING, "", field=f"[{i}].title")
        rows = [row for section in sections for row in section.rows]
        if len(rows) > LIST_ROWS_MAX:
            raise graph_rule(
                GraphCode.PARAMETER_VALUE_INVALID,
                f"must have at most {LIST_ROWS_MAX} rows in total, got {len(rows)}",
            )
        dup = _first_duplicate([row.id for row in rows])
        if dup is not None:
            raise graph_rule(
                GraphCode.PARAMETER_VALUE_INVALID, f"must have unique row ids: {dup!r} is repeated"
            )
        return sections


class ListMessage(WireIn):
    type: Literal["list"]
    header: TextHeader | None = None
    body: Body4096
    footer: Footer | None = None
    action: ListAction


# --- call to action URL ------------------------------------------------------------------------


class CtaParameters(WireIn):
    display_text: Annotated[str, _text(CTA_DISPLAY_TEXT_MAX)]
    url: str

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise graph_rule(GraphCode.INVALID_PARAMETER, "must be an http or https URL")
        return url


class CtaAction(WireIn):
    name: Literal["cta_url"]
    parameters: CtaParameters


class CtaUrlMessage(WireIn):
    type: Literal["cta_url"]
    header: Header | None = None
    body: Body1024
    footer: Footer | None = None
    action: CtaAction


# --- location request --------------------------------------------------------------------------


class LocationRequestAction(WireIn):
    name: Literal["send_location"]


class LocationRequestMessage(WireIn):
    type: Literal["location_request_message"]
    body: Body1024
    action: LocationRequestAction


_MODELS: dict[str, type[WireIn]] = {
    "button": ButtonMessage,
    "list": ListMessage,
    "cta_url": CtaUrlMessage,
    "location_request_message": LocationRequestMessage,
}


def parse_interactive(obj: Any) -> tuple[dict[str, Any], Unsupported | None]:
    """Validate `body["interactive"]`: (normalized payload, unsupported marker or None)."""
    if not isinstance(obj, dict):
        raise GraphError(GraphCode.INVALID_PARAMETER, "Param interactive must be an object.")
    kind = obj.get("type")
    if kind is None:
        raise GraphError(
            GraphCode.REQUIRED_PARAMETER_MISSING, "The parameter interactive.type is required."
        )
    if kind in UNSUPPORTED_INTERACTIVE:
        return dict(obj), unsupported_type(f"Interactive message type {kind!r}")
    model = _MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        known = ", ".join(SUPPORTED_INTERACTIVE + UNSUPPORTED_INTERACTIVE)
        raise GraphError(
            GraphCode.INVALID_PARAMETER,
            f"Param interactive.type must be one of {{{known}}}, got {kind!r}.",
        )
    return dump(validate_part(model, obj, ("interactive",))), None
