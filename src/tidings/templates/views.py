"""What the template service hands out, and the webhook values it emits (cloud-api.md §4)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidings.templates.models import MessageTemplate, MessageTemplateVersion
from tidings.templates.versions import Snapshot


@dataclass(frozen=True)
class TemplateView:
    template_id: str
    waba_id: str
    name: str
    language: str
    category: str
    previous_category: str | None
    correct_category: str | None
    parameter_format: str
    status: str
    rejected_reason: str
    components: list[dict[str, Any]]
    options: dict[str, Any]
    review: dict[str, Any]
    needs_human_review: bool
    version: int
    approved_version: int | None
    quality_score: str
    quality_updated_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: MessageTemplate) -> TemplateView:
        return cls(
            template_id=row.template_id,
            waba_id=row.waba_id,
            name=row.name,
            language=row.language,
            category=row.category,
            previous_category=row.previous_category,
            correct_category=row.correct_category,
            parameter_format=row.parameter_format,
            status=row.status,
            rejected_reason=row.rejected_reason,
            components=json.loads(row.components),
            options=json.loads(row.options or "{}"),
            review=json.loads(row.review or "{}"),
            needs_human_review=row.needs_human_review,
            version=row.version,
            approved_version=row.approved_version,
            quality_score=row.quality_score,
            quality_updated_at=row.quality_updated_at,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


def review_entry(view: TemplateView) -> dict[str, Any]:
    """A template waiting for a person, with what the automated review found (CLI and admin
    API show the same entry)."""
    review = view.review
    classifier = review.get("classifier") or {}
    return {
        "template_id": view.template_id,
        "waba_id": view.waba_id,
        "name": view.name,
        "language": view.language,
        "filed_category": review.get("filed_category", view.category),
        "proposed_category": view.category,
        "classifier": classifier.get("probabilities", {}),
        "evidence": classifier.get("evidence", []),
        "findings": review.get("findings", []),
        "components": view.components,
    }


@dataclass(frozen=True)
class VersionView:
    version: int
    category: str
    parameter_format: str
    components: list[dict[str, Any]]
    status: str
    edited_from: str | None
    decided_by: str | None
    review: dict[str, Any]
    submitted_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, row: MessageTemplateVersion) -> VersionView:
        return cls(
            version=row.version,
            category=row.category,
            parameter_format=row.parameter_format,
            components=json.loads(row.components),
            status=row.status,
            edited_from=row.edited_from,
            decided_by=row.decided_by,
            review=json.loads(row.review or "{}"),
            submitted_at=row.submitted_at,
            decided_at=row.decided_at,
        )

    def snapshot(self) -> Snapshot:
        return Snapshot(self.version, self.category, self.parameter_format, tuple(self.components))

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "category": self.category,
            "parameter_format": self.parameter_format,
            "components": self.components,
            "edited_from": self.edited_from,
            "decided_by": self.decided_by,
            "review": self.review,
            "submitted_at": int(self.submitted_at.timestamp()),
            "decided_at": int(self.decided_at.timestamp()) if self.decided_at else None,
        }


@dataclass(frozen=True)
class SendableTemplate:
    """What a send needs: the template's state now and the version approved for sending."""

    template_id: str
    name: str
    language: str
    status: str  # APPROVED, PAUSED, DISABLED, PENDING (an edit in review), ...
    category: str
    parameter_format: str
    version: int | None  # None: never approved (a send answers 132001)
    components: list[dict[str, Any]]
    paused_until: datetime | None
    quality_score: str


def status_update_value(
    row: MessageTemplate,
    event: str,
    reason: str = "NONE",
    rejection: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A `message_template_status_update` value (no messaging_product or metadata, as Meta)."""
    value: dict[str, Any] = {
        "event": event,
        "message_template_id": int(row.template_id),
        "message_template_name": row.name,
        "message_template_language": row.language,
        "reason": reason,
        "message_template_category": row.category,
    }
    if rejection is not None:
        value["rejection_info"] = {"reason": rejection[0], "recommendation": rejection[1]}
    return value


def category_update_value(
    row: MessageTemplate, previous: str, new: str, when: datetime
) -> dict[str, Any]:
    """A `template_category_update` value."""
    return {
        "message_template_id": int(row.template_id),
        "message_template_name": row.name,
        "message_template_language": row.language,
        "previous_category": previous,
        "new_category": new,
        "category_update_timestamp": int(when.timestamp()),
    }
