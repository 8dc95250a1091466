"""Shared pieces of the Cloud API request models: the base model, media references, helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tidings.business_api.graph_errors import (
    GraphCode,
    GraphError,
    graph_error_from_validation,
    graph_rule,
)

# Meta's documented limits (reference/cloud-api.md §2, §3).
TEXT_BODY_MAX = 4096
CAPTION_MAX = 1024
BIZ_OPAQUE_MAX = 512
HEADER_TEXT_MAX = 60
FOOTER_TEXT_MAX = 60
BUTTON_BODY_MAX = 1024
LIST_BODY_MAX = 4096
REPLY_BUTTONS_MAX = 3
REPLY_BUTTON_ID_MAX = 256
REPLY_BUTTON_TITLE_MAX = 20
LIST_BUTTON_MAX = 20
LIST_SECTIONS_MAX = 10
LIST_ROWS_MAX = 10  # across all sections
LIST_SECTION_TITLE_MAX = 24
LIST_ROW_ID_MAX = 200
LIST_ROW_TITLE_MAX = 24
LIST_ROW_DESCRIPTION_MAX = 72
CTA_DISPLAY_TEXT_MAX = 20
# Our own sanity bound (Meta documents none): phone numbers, group ids and user ids fit easily.
TO_MAX = 128

M = TypeVar("M", bound=BaseModel)


class WireIn(BaseModel):
    """A request object of the Cloud API: unknown keys are refused, as Meta refuses them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def validate_part(model: type[M], data: Any, prefix: tuple[int | str, ...]) -> M:
    """Validate `data` (found at `prefix` in the request body) or raise the GraphError for it."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise graph_error_from_validation(exc, prefix=prefix) from None


def dump(model: BaseModel) -> dict[str, Any]:
    """The validated object as JSON-ready data: defaults applied, None fields dropped."""
    return model.model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A well-formed request for something Tidings does not do yet (product lists, flows, ...).

    The endpoint answers it with `error()` after authenticating the caller, so that a client
    sees the same answer whatever else is wrong with its setup.
    """

    code: int
    details: str

    def error(self) -> GraphError:
        return GraphError(self.code, self.details)


def unsupported_type(what: str) -> Unsupported:
    return Unsupported(
        GraphCode.UNSUPPORTED_MESSAGE_TYPE, f"{what} is not supported by this server yet."
    )


class MediaRef(WireIn):
    """A media object sent by reference: exactly one of an uploaded media `id` or a `link`.

    `link` is not checked for a scheme here: Meta accepts any string and fails the fetch later
    (131053 in a status webhook), and its own examples carry placeholders such as
    "<http(s)://audio-url>". The media fetcher enforces http(s).
    """

    id: str | None = Field(default=None, min_length=1)
    link: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_of_id_or_link(self) -> MediaRef:
        if (self.id is None) == (self.link is None):
            raise graph_rule(
                GraphCode.PARAMETER_VALUE_INVALID, "must have exactly one of id or link"
            )
        return self
