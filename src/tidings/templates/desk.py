"""The operator's side of templates: the human review queue, versions and their diffs, and the
lookup a send uses (the approved version, never a draft under review).

Operators reach it from `tidings templates review` (and, later, an admin HTTP API). Each
decision changes the template and queues its webhook in one transaction, as the automated
review does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from tidings.business_api.graph_errors import GraphError
from tidings.db.uow import Database
from tidings.errors import Conflict, ValidationFailed
from tidings.kit.clock import Clock
from tidings.templates.definition import (
    APPROVED,
    CATEGORIES,
    DELETED,
    PAUSED,
    PENDING,
    REJECTED,
)
from tidings.templates.models import MessageTemplate, MessageTemplateVersion
from tidings.templates.repository import TemplateRepository
from tidings.templates.service import (
    CATEGORY_FIELD,
    STATUS_FIELD,
    TemplateService,
    not_found,
)
from tidings.templates.versions import VersionDiff, diff
from tidings.templates.views import (
    SendableTemplate,
    TemplateView,
    VersionView,
    category_update_value,
    status_update_value,
)

REJECTION_REASONS = (
    "ABUSIVE_CONTENT",
    "CATEGORY_NOT_AVAILABLE",
    "INCORRECT_CATEGORY",
    "INVALID_FORMAT",
    "NONE",
    "PROMOTIONAL",
    "SCAM",
    "TAG_CONTENT_MISMATCH",
)


class TemplateDesk:
    """Human review and versions. `business_id=None` means an operator (any business)."""

    def __init__(self, *, database: Database, clock: Clock, templates: TemplateService) -> None:
        self._database = database
        self._clock = clock
        self._templates = templates

    def now(self) -> datetime:
        return self._clock.now()

    async def _row(
        self, repository: TemplateRepository, template_id: str, business_id: int | None
    ) -> MessageTemplate:
        row = await repository.by_template_id(template_id, for_update=True)
        if row is None or row.status == DELETED:
            raise not_found(template_id)
        if business_id is not None and row.business_id != business_id:
            raise not_found(template_id)
        return row

    async def view(self, template_id: str) -> TemplateView:
        """One template of any business, as the operator sees it."""
        async with self._database.read_only() as uow:
            row = await TemplateRepository(uow.session).by_template_id(template_id)
            if row is None or row.status == DELETED:
                raise not_found(template_id)
            return TemplateView.of(row)

    # -- the human review queue -----------------------------------------------------------------

    async def queue(self, waba_id: str | None = None) -> list[TemplateView]:
        async with self._database.read_only() as uow:
            rows = await TemplateRepository(uow.session).review_queue(waba_id)
            return [TemplateView.of(row) for row in rows]

    async def approve(self, template_id: str, *, operator: str = "operator") -> TemplateView:
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = TemplateRepository(uow.session)
            row, version, filed = await self._pending_version(repository, template_id)
            row.status = APPROVED
            row.rejected_reason = "NONE"
            row.needs_human_review = False
            row.approved_version = row.version
            row.previous_category = filed if filed != row.category else None
            row.updated_at = now
            self._decide(version, row, APPROVED, operator, now)
            if filed != row.category:
                await self._templates.emit(
                    uow, row, CATEGORY_FIELD, category_update_value(row, filed, row.category, now)
                )
            await self._templates.emit(uow, row, STATUS_FIELD, status_update_value(row, APPROVED))
            return TemplateView.of(row)

    async def reject(
        self,
        template_id: str,
        explanation: str,
        *,
        reason: str = "NONE",
        operator: str = "operator",
    ) -> TemplateView:
        if reason not in REJECTION_REASONS:
            raise ValidationFailed(f"reason must be one of {', '.join(REJECTION_REASONS)}")
        if not explanation.strip():
            raise ValidationFailed("a rejection needs an explanation the business can act on")
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = TemplateRepository(uow.session)
            row, version, filed = await self._pending_version(repository, template_id)
            row.category = filed  # a rejected template keeps the category it was filed in
            row.previous_category = None
            row.status = REJECTED
            row.rejected_reason = reason
            row.needs_human_review = False
            row.updated_at = now
            self._decide(version, row, REJECTED, operator, now, note=explanation)
            value = status_update_value(
                row, REJECTED, reason, (explanation, "Address the reviewer's note and resubmit.")
            )
            await self._templates.emit(uow, row, STATUS_FIELD, value)
            return TemplateView.of(row)

    async def recategorize(
        self, template_id: str, category: str, *, operator: str = "operator"
    ) -> TemplateView:
        """Put a template in another category: a pending one waits on with it; an approved one
        stays APPROVED under the new category (a new approved version records the change)."""
        category = category.upper()
        if category not in CATEGORIES:
            raise ValidationFailed(f"category must be one of {', '.join(CATEGORIES)}")
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = TemplateRepository(uow.session)
            row = await self._row(repository, template_id, None)
            if row.status not in (PENDING, APPROVED, PAUSED):
                raise Conflict(f"a {row.status} template cannot be re-categorized")
            previous = row.category
            if previous == category:
                return TemplateView.of(row)
            row.category = category
            row.updated_at = now
            if row.status == PENDING:
                version = await repository.version(row.id, row.version)
                assert version is not None
                version.category = category  # not decided yet, so still the submission's own
            else:
                row.previous_category = previous
                row.version += 1
                row.approved_version = row.version
                repository.add(
                    MessageTemplateVersion(
                        template_pk=row.id,
                        version=row.version,
                        category=category,
                        parameter_format=row.parameter_format,
                        components=row.components,
                        status=APPROVED,
                        edited_from=None,  # an operator's audit, not a business's edit
                        review=json.dumps({"recategorized_from": previous}),
                        decided_by=operator,
                        submitted_at=now,
                        decided_at=now,
                    )
                )
                await self._templates.emit(
                    uow, row, CATEGORY_FIELD, category_update_value(row, previous, category, now)
                )
            return TemplateView.of(row)

    async def _pending(self, repository: TemplateRepository, template_id: str) -> MessageTemplate:
        row = await self._row(repository, template_id, None)
        if row.status != PENDING or not row.needs_human_review:
            raise Conflict(f"template {template_id} is not waiting for review ({row.status})")
        return row

    async def _pending_version(
        self, repository: TemplateRepository, template_id: str
    ) -> tuple[MessageTemplate, MessageTemplateVersion, str]:
        """A template waiting for a person's decision, the version under review, and the
        category the business filed it in (review may have re-categorized it)."""
        row = await self._pending(repository, template_id)
        version = await repository.version(row.id, row.version)
        assert version is not None
        filed: str = json.loads(row.review or "{}").get("filed_category", row.category)
        return row, version, filed

    @staticmethod
    def _decide(
        version: MessageTemplateVersion,
        row: MessageTemplate,
        status: str,
        operator: str,
        now: Any,
        note: str | None = None,
    ) -> None:
        version.status = status
        version.category = row.category
        version.decided_by = operator
        version.decided_at = now
        if note:
            version.review = json.dumps(json.loads(version.review or "{}") | {"operator": note})
            row.review = json.dumps(json.loads(row.review or "{}") | {"operator": note})

    # -- versions -------------------------------------------------------------------------------

    async def versions(self, template_id: str, business_id: int | None = None) -> list[VersionView]:
        async with self._database.read_only() as uow:
            repository = TemplateRepository(uow.session)
            row = await repository.by_template_id(template_id)
            if row is None or row.status == DELETED:
                raise not_found(template_id)
            if business_id is not None and row.business_id != business_id:
                raise not_found(template_id)
            return [VersionView.of(v) for v in await repository.versions(row.id)]

    async def diff(
        self,
        template_id: str,
        from_version: int,
        to_version: int,
        business_id: int | None = None,
    ) -> VersionDiff:
        by_number = {v.version: v for v in await self.versions(template_id, business_id)}
        missing = [n for n in (from_version, to_version) if n not in by_number]
        if missing:
            raise GraphError(100, f"Template {template_id} has no version {missing[0]}.")
        return diff(by_number[from_version].snapshot(), by_number[to_version].snapshot())

    async def approved_for_sending(
        self, waba_id: str, name: str, language: str | None
    ) -> SendableTemplate | None:
        """The template a send names, with the version last approved (None: no such template).

        While an edit is in review the template is PENDING and its previous approved version
        is still returned; the caller decides what a status allows (132001/132015/132016).
        Clients do send `language.code: null`: then a name that exists in one language only
        names that template.
        """
        async with self._database.read_only() as uow:
            repository = TemplateRepository(uow.session)
            if language is None:
                languages = await repository.live_languages(waba_id, name)
                if len(languages) != 1:
                    return None
                language = languages[0]
            row = await repository.live_for_sending(waba_id, name, language)
            if row is None:
                return None
            approved = (
                await repository.version(row.id, row.approved_version)
                if row.approved_version is not None
                else None
            )
            return SendableTemplate(
                template_id=row.template_id,
                name=row.name,
                language=row.language,
                status=row.status,
                category=approved.category if approved else row.category,
                parameter_format=approved.parameter_format if approved else row.parameter_format,
                version=approved.version if approved else None,
                components=json.loads(approved.components) if approved else [],
                paused_until=row.paused_until,
                quality_score=row.quality_score,
            )
