"""Template use cases: create, list, read, edit and delete (the Cloud API's management calls).

Every creation and edit is reviewed (`review.py`) inside the same transaction that stores it,
and each status change queues its webhook (`message_template_status_update`, and
`template_category_update` when a template is re-categorized) in that transaction too, so a
template never changes without its event, nor an event goes out for a change rolled back.

Human review, versions and the send-side lookup are in `desk.py` (same tables, same rules).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidings.business.messaging import WebhookSink
from tidings.business.service import graph_id
from tidings.business_api.graph_errors import GraphError
from tidings.db.uow import Database, UnitOfWork
from tidings.errors import NotFound
from tidings.kit.clock import Clock
from tidings.templates.classifier import NaiveBayes
from tidings.templates.definition import (
    APPROVED,
    DELETED,
    DISABLED,
    PAUSED,
    PENDING,
    REJECTED,
    TemplateDraft,
)
from tidings.templates.labelled import default_model
from tidings.templates.models import MessageTemplate, MessageTemplateVersion
from tidings.templates.repository import TemplateFilter, TemplateRepository
from tidings.templates.review import ReviewContext, ReviewSettings, Verdict, review
from tidings.templates.schemas import parse_components
from tidings.templates.views import TemplateView, category_update_value, status_update_value

STATUS_FIELD = "message_template_status_update"
CATEGORY_FIELD = "template_category_update"
QUALITY_FIELD = "message_template_quality_update"
EDITABLE = (APPROVED, REJECTED, PAUSED)

# Graph codes we answer template-management failures with (Meta documents some; the others
# are its generic "invalid parameter" with the sub-code Meta uses for the same situation).
TEMPLATE_LIMIT = 2388019
CANNOT_EDIT = 2388039
RATE_LIMIT = 80007
# Titles for `message` ("(#code) title"); clients read the code, people the title.
TITLES = {
    2388040: "Message template character limit exceeded",
    2388047: "Message header or body format is incorrect",
    2388073: "Message footer format is incorrect",
    2388293: "Too many parameters for the length of the message",
    2388299: "Parameters can't be at the start or end of the template",
}
EXISTS_SUBCODE = 2388024
NAME_BLOCKED_SUBCODE = 2388023


@dataclass(frozen=True)
class TemplateLimits:
    max_templates: int = 250  # per WABA (Meta: 250 unverified, 6,000 verified)
    creations_per_hour: int = 100
    approved_edits_per_day: int = 1
    approved_edits_per_30_days: int = 10
    deleted_name_block_days: int = 30


@dataclass(frozen=True)
class EditRequest:
    components: Any = None  # raw JSON list, or None to keep the current ones
    category: str | None = None
    parameter_format: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TemplatePage:
    items: list[TemplateView]
    before: str | None  # cursor of the first item
    after: str | None  # cursor of the last item
    has_next: bool
    has_previous: bool


def encode_cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(f"tpl:{pk}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = raw.partition(":")
        if prefix != "tpl" or not number.isdigit():
            raise ValueError(cursor)
        return int(number)
    except (ValueError, UnicodeDecodeError, binascii.Error) as exc:
        raise GraphError(100, f"Invalid cursor: {cursor}") from exc


def not_found(template_id: str) -> NotFound:
    return NotFound(f"no template {template_id}", details={"id": template_id})


def body_and_footer(components: list[dict[str, Any]]) -> tuple[str, str]:
    by_type = {str(c.get("type")): c for c in components}
    return (
        str(by_type.get("BODY", {}).get("text", "")),
        str(by_type.get("FOOTER", {}).get("text", "")),
    )


class TemplateService:
    def __init__(
        self,
        *,
        database: Database,
        clock: Clock,
        webhooks: WebhookSink,
        model: NaiveBayes | None = None,
        limits: TemplateLimits | None = None,
        review_settings: ReviewSettings | None = None,
    ) -> None:
        self._database = database
        self._clock = clock
        self._webhooks = webhooks
        self._model = model or default_model()
        self.limits = limits or TemplateLimits()
        self.review_settings = review_settings or ReviewSettings()

    # -- create ---------------------------------------------------------------------------------

    async def create(
        self,
        business_id: int,
        waba_id: str,
        draft: TemplateDraft,
        components: list[dict[str, Any]],
        options: dict[str, Any],
    ) -> TemplateView:
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = TemplateRepository(uow.session)
            await repository.serialize_business(business_id)
            await self._check_can_create(repository, business_id, draft, now)
            verdict = await self._review(repository, business_id, draft, exclude_pk=None)
            row = MessageTemplate(
                template_id=graph_id(),
                business_id=business_id,
                waba_id=waba_id,
                name=draft.name,
                language=draft.language,
                category=verdict.category,
                previous_category=draft.category if verdict.recategorized else None,
                parameter_format=draft.parameter_format,
                status=verdict.status,
                rejected_reason=verdict.reason,
                components=json.dumps(components),
                options=json.dumps(options),
                review=json.dumps(review_json(verdict)),
                needs_human_review=verdict.needs_human,
                version=1,
                approved_version=1 if verdict.status == APPROVED else None,
                quality_score="UNKNOWN",
                pause_count=0,
                created_at=now,
                updated_at=now,
            )
            repository.add(row)
            await repository.flush()
            repository.add(self._version(row, verdict, edited_from=None, now=now))
            await self.emit_verdict(uow, row, verdict)
            return TemplateView.of(row)

    async def _check_can_create(
        self, repository: TemplateRepository, business_id: int, draft: TemplateDraft, now: datetime
    ) -> None:
        limits = self.limits
        if await repository.live(business_id, draft.name, draft.language) is not None:
            raise GraphError(
                100,
                f"Content in this language already exists: a template named {draft.name} in"
                f" {draft.language} exists; edit it or choose another name.",
                subcode=EXISTS_SUBCODE,
            )
        block = now - timedelta(days=limits.deleted_name_block_days)
        if await repository.recently_deleted_approved(business_id, draft.name, block):
            raise GraphError(
                100,
                f"The name {draft.name} belonged to an approved template deleted in the last"
                f" {limits.deleted_name_block_days} days; it cannot be used again yet.",
                subcode=NAME_BLOCKED_SUBCODE,
            )
        if await repository.count_live(business_id) >= limits.max_templates:
            raise GraphError(
                TEMPLATE_LIMIT,
                f"This business has reached its limit of {limits.max_templates} message"
                " templates; delete some before creating more.",
                title="Message Template Count Limit Reached",
            )
        recent = await repository.count_created_since(business_id, now - timedelta(hours=1))
        if recent >= limits.creations_per_hour:
            raise GraphError(
                RATE_LIMIT,
                f"This business created {recent} templates in the last hour; the limit is"
                f" {limits.creations_per_hour} per hour.",
            )

    async def _review(
        self,
        repository: TemplateRepository,
        business_id: int,
        draft: TemplateDraft,
        exclude_pk: int | None,
    ) -> Verdict:
        existing = frozenset(
            body_and_footer(json.loads(components))
            for pk, components in await repository.live_texts(business_id)
            if pk != exclude_pk
        )
        verdict = review(draft, self._model, ReviewContext(existing), self.review_settings)
        refusal = verdict.refusal
        if refusal is not None:
            others = [f.message for f in verdict.findings if f.outcome == "REFUSE"][1:]
            details = " ".join([f"[{refusal.rule}] {refusal.message}", *others])
            code = refusal.graph_code or 100
            raise GraphError(code, details, title=TITLES.get(code))
        return verdict

    def _version(
        self, row: MessageTemplate, verdict: Verdict, *, edited_from: str | None, now: datetime
    ) -> MessageTemplateVersion:
        decided = verdict.status != PENDING
        return MessageTemplateVersion(
            template_pk=row.id,
            version=row.version,
            category=row.category,
            parameter_format=row.parameter_format,
            components=row.components,
            status=verdict.status,
            edited_from=edited_from,
            review=row.review,
            decided_by="automated" if decided else None,
            submitted_at=now,
            decided_at=now if decided else None,
        )

    async def emit_verdict(self, uow: UnitOfWork, row: MessageTemplate, verdict: Verdict) -> None:
        """The webhooks of a reviewed submission: a category change first, then the status."""
        if verdict.status == APPROVED and verdict.recategorized:
            await self.emit(
                uow,
                row,
                CATEGORY_FIELD,
                category_update_value(
                    row, verdict.filed_category, verdict.category, self._clock.now()
                ),
            )
        rejection = None
        if verdict.status == REJECTED:
            rejection = (verdict.summary(), recommendation(verdict))
        await self.emit(
            uow,
            row,
            STATUS_FIELD,
            status_update_value(row, verdict.status, verdict.reason, rejection),
        )

    async def emit(
        self, uow: UnitOfWork, row: MessageTemplate, field_name: str, value: dict[str, Any]
    ) -> None:
        await self._webhooks.enqueue(
            uow, waba_id=row.waba_id, phone_number_id=None, field=field_name, value=value
        )

    # -- read -----------------------------------------------------------------------------------

    async def exists(self, template_id: str) -> bool:
        """Whether `template_id` names a live template (of any business): for node routing."""
        async with self._database.read_only() as uow:
            row = await TemplateRepository(uow.session).by_template_id(template_id)
            return row is not None and row.status != DELETED

    async def get(self, business_id: int, template_id: str) -> TemplateView:
        async with self._database.read_only() as uow:
            row = await TemplateRepository(uow.session).by_template_id(template_id)
            if row is None or row.business_id != business_id or row.status == DELETED:
                raise not_found(template_id)
            return TemplateView.of(row)

    async def list(
        self,
        business_id: int,
        where: TemplateFilter,
        limit: int,
        *,
        after: str | None = None,
        before: str | None = None,
    ) -> TemplatePage:
        after_pk = decode_cursor(after) if after else None
        before_pk = decode_cursor(before) if before else None
        async with self._database.read_only() as uow:
            repository = TemplateRepository(uow.session)
            rows = await repository.page(
                business_id, where, limit, after_pk=after_pk, before_pk=before_pk
            )
            if rows:
                newer = await repository.exists_beyond(business_id, where, rows[0].id, True)
                older = await repository.exists_beyond(business_id, where, rows[-1].id, False)
            else:
                newer = older = False
            return TemplatePage(
                items=[TemplateView.of(row) for row in rows],
                before=encode_cursor(rows[0].id) if rows else None,
                after=encode_cursor(rows[-1].id) if rows else None,
                has_next=older,
                has_previous=newer,
            )

    async def summary(self, business_id: int, where: TemplateFilter) -> dict[str, Any]:
        async with self._database.read_only() as uow:
            repository = TemplateRepository(uow.session)
            languages: dict[str, set[str]] = {}
            for name, language in await repository.languages_by_name(business_id):
                languages.setdefault(name, set()).add(language)
            every = set().union(*languages.values()) if languages else set()
            return {
                "total_count": await repository.count(business_id, where),
                "message_template_count": await repository.count_live(business_id),
                "message_template_limit": self.limits.max_templates,
                # Every name exists in every language any template of the business uses.
                "are_translations_complete": all(found == every for found in languages.values()),
            }

    # -- edit -----------------------------------------------------------------------------------

    async def edit(self, business_id: int, template_id: str, change: EditRequest) -> TemplateView:
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = TemplateRepository(uow.session)
            await repository.serialize_business(business_id)
            row = await repository.by_template_id(template_id, for_update=True)
            if row is None or row.business_id != business_id or row.status == DELETED:
                raise not_found(template_id)
            if row.status not in EDITABLE:
                raise GraphError(
                    CANNOT_EDIT,
                    f"A template with status {row.status} cannot be edited; only APPROVED,"
                    " REJECTED or PAUSED templates can.",
                    title="Message template can't be edited",
                )
            filed = row.previous_category or row.category
            category = change.category or filed
            if row.status == APPROVED:
                if change.category and change.category != row.category:
                    raise GraphError(100, "The category of an approved template cannot change.")
                category = row.category
                await self._check_edit_rate(repository, row, now)
            raw = change.components if change.components is not None else json.loads(row.components)
            parameter_format = change.parameter_format or row.parameter_format
            draft, components = parse_components(
                raw, category, parameter_format, row.name, row.language
            )
            verdict = await self._review(repository, business_id, draft, exclude_pk=row.id)
            edited_from = row.status
            row.version += 1
            row.category = verdict.category
            row.previous_category = draft.category if verdict.recategorized else None
            row.parameter_format = parameter_format
            row.status = verdict.status
            row.rejected_reason = verdict.reason
            row.components = json.dumps(components)
            row.options = json.dumps(json.loads(row.options or "{}") | change.options)
            row.review = json.dumps(review_json(verdict))
            row.needs_human_review = verdict.needs_human
            if verdict.status == APPROVED:
                row.approved_version = row.version
            row.updated_at = now
            repository.add(self._version(row, verdict, edited_from=edited_from, now=now))
            await self.emit_verdict(uow, row, verdict)
            return TemplateView.of(row)

    async def _check_edit_rate(
        self, repository: TemplateRepository, row: MessageTemplate, now: datetime
    ) -> None:
        limits = self.limits
        day = await repository.approved_edits_since(row.id, now - timedelta(days=1))
        month = await repository.approved_edits_since(row.id, now - timedelta(days=30))
        if day >= limits.approved_edits_per_day or month >= limits.approved_edits_per_30_days:
            raise GraphError(
                CANNOT_EDIT,
                f"An approved template can be edited {limits.approved_edits_per_day} time(s) per"
                f" 24 hours and {limits.approved_edits_per_30_days} times per 30 days; this one"
                f" was edited {day} time(s) in the last day and {month} in the last 30 days.",
                title="Message template can't be edited",
            )

    # -- delete ---------------------------------------------------------------------------------

    async def delete(
        self,
        business_id: int,
        *,
        name: str | None,
        hsm_id: str | None = None,
        hsm_ids: tuple[str, ...] = (),
    ) -> int:
        """Delete by name (every language), by name and id, or by up to 100 ids."""
        now = self._clock.now()
        async with self._database.unit_of_work() as uow:
            repository = TemplateRepository(uow.session)
            rows: list[MessageTemplate] = []
            if hsm_ids:
                for template_id in hsm_ids:
                    row = await repository.by_template_id(template_id, for_update=True)
                    if row is None or row.business_id != business_id or row.status == DELETED:
                        raise not_found(template_id)
                    rows.append(row)
            else:
                if not name:
                    raise GraphError(131008, "The parameter name is required.")
                rows = await repository.live_by_name(business_id, name)
                if hsm_id is not None:
                    rows = [row for row in rows if row.template_id == hsm_id]
                if not rows:
                    raise GraphError(100, f"Message template {name} was not found.")
            if any(row.status == DISABLED for row in rows):
                raise GraphError(100, "Disabled templates cannot be deleted.")
            for row in rows:
                row.status = DELETED
                row.deleted_at = now
                row.updated_at = now
                row.needs_human_review = False
                await self.emit(uow, row, STATUS_FIELD, status_update_value(row, DELETED))
            return len(rows)


def review_json(verdict: Verdict) -> dict[str, Any]:
    """The verdict as stored with the template and shown to operators."""
    prediction = verdict.prediction
    return {
        "status": verdict.status,
        "filed_category": verdict.filed_category,
        "category": verdict.category,
        "reason": verdict.reason,
        "needs_human": verdict.needs_human,
        "findings": [f.to_json() for f in verdict.findings],
        "summary": verdict.summary(),
        "classifier": None
        if prediction is None
        else {
            "label": prediction.label,
            "probabilities": dict(prediction.probabilities),
            "evidence": list(prediction.evidence),
        },
    }


def recommendation(verdict: Verdict) -> str:
    rules = {f.rule for f in verdict.findings if f.outcome == "REJECT"}
    if "category_check" in rules:
        return "Resubmit it in the category its content belongs to."
    if rules & {"abusive_content", "sensitive_data_request", "scam_content"}:
        return "Remove the content that breaks the messaging policy and resubmit."
    return "Fix the formatting problems listed and resubmit."
