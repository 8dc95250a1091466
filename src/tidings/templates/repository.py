"""All SQL of the templates domain."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.templates.definition import DELETED
from tidings.templates.models import MessageTemplate, MessageTemplateVersion


@dataclass(frozen=True)
class TemplateFilter:
    """The list endpoint's filters (each optional; lists mean "any of")."""

    name: str | None = None  # substring
    content: str | None = None  # substring of the components' text
    name_or_content: str | None = None
    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    quality_scores: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None


class TemplateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, *rows: object) -> None:
        self.session.add_all(rows)

    async def flush(self) -> None:
        await self.session.flush()

    async def by_template_id(
        self, template_id: str, *, for_update: bool = False
    ) -> MessageTemplate | None:
        query = select(MessageTemplate).where(MessageTemplate.template_id == template_id)
        if for_update:
            query = query.with_for_update()
        result: MessageTemplate | None = await self.session.scalar(query)
        return result

    async def live(self, business_id: int, name: str, language: str) -> MessageTemplate | None:
        result: MessageTemplate | None = await self.session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.business_id == business_id,
                MessageTemplate.name == name,
                MessageTemplate.language == language,
                MessageTemplate.deleted_at.is_(None),
            )
        )
        return result

    async def live_by_name(self, business_id: int, name: str) -> list[MessageTemplate]:
        return list(
            await self.session.scalars(
                select(MessageTemplate)
                .where(
                    MessageTemplate.business_id == business_id,
                    MessageTemplate.name == name,
                    MessageTemplate.deleted_at.is_(None),
                )
                .order_by(MessageTemplate.id)
                .with_for_update()
            )
        )

    async def live_texts(self, business_id: int) -> list[tuple[int, str]]:
        """(pk, components JSON) of every live template, for the duplicate check."""
        rows = await self.session.execute(
            select(MessageTemplate.id, MessageTemplate.components).where(
                MessageTemplate.business_id == business_id,
                MessageTemplate.deleted_at.is_(None),
            )
        )
        return [(pk, components) for pk, components in rows]

    async def count_live(self, business_id: int) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    MessageTemplate.business_id == business_id,
                    MessageTemplate.deleted_at.is_(None),
                )
            )
            or 0
        )

    async def count_created_since(self, business_id: int, since: datetime) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    MessageTemplate.business_id == business_id,
                    MessageTemplate.created_at > since,
                )
            )
            or 0
        )

    async def recently_deleted_approved(
        self, business_id: int, name: str, since: datetime
    ) -> MessageTemplate | None:
        result: MessageTemplate | None = await self.session.scalar(
            select(MessageTemplate)
            .where(
                MessageTemplate.business_id == business_id,
                MessageTemplate.name == name,
                MessageTemplate.status == DELETED,
                MessageTemplate.approved_version.is_not(None),
                MessageTemplate.deleted_at > since,
            )
            .limit(1)
        )
        return result

    def _filtered(self, business_id: int, where: TemplateFilter) -> Select[Any]:
        query = select(MessageTemplate).where(
            MessageTemplate.business_id == business_id, MessageTemplate.deleted_at.is_(None)
        )
        if where.name:
            query = query.where(MessageTemplate.name.contains(where.name, autoescape=True))
        if where.content:
            query = query.where(MessageTemplate.components.contains(where.content, autoescape=True))
        if where.name_or_content:
            query = query.where(
                or_(
                    MessageTemplate.name.contains(where.name_or_content, autoescape=True),
                    MessageTemplate.components.contains(where.name_or_content, autoescape=True),
                )
            )
        if where.statuses:
            query = query.where(MessageTemplate.status.in_(where.statuses))
        if where.categories:
            query = query.where(
                or_(
                    MessageTemplate.category.in_(where.categories),
                    MessageTemplate.previous_category.in_(where.categories),
                )
            )
        if where.languages:
            query = query.where(MessageTemplate.language.in_(where.languages))
        if where.quality_scores:
            query = query.where(MessageTemplate.quality_score.in_(where.quality_scores))
        if where.since is not None:
            query = query.where(MessageTemplate.updated_at >= where.since)
        if where.until is not None:
            query = query.where(MessageTemplate.updated_at <= where.until)
        return query

    async def page(
        self,
        business_id: int,
        where: TemplateFilter,
        limit: int,
        *,
        after_pk: int | None = None,
        before_pk: int | None = None,
    ) -> list[MessageTemplate]:
        """Newest first: up to `limit` rows after (older than) or before (newer than) a row."""
        query = self._filtered(business_id, where)
        if before_pk is not None:
            query = query.where(MessageTemplate.id > before_pk).order_by(MessageTemplate.id)
        else:
            if after_pk is not None:
                query = query.where(MessageTemplate.id < after_pk)
            query = query.order_by(MessageTemplate.id.desc())
        rows = list(await self.session.scalars(query.limit(limit)))
        if before_pk is not None:
            rows.reverse()
        return rows

    async def exists_beyond(
        self, business_id: int, where: TemplateFilter, pk: int, newer: bool
    ) -> bool:
        query = self._filtered(business_id, where).where(
            MessageTemplate.id > pk if newer else MessageTemplate.id < pk
        )
        return (await self.session.scalar(query.limit(1))) is not None

    async def count(self, business_id: int, where: TemplateFilter) -> int:
        subquery = self._filtered(business_id, where).subquery()
        return int(await self.session.scalar(select(func.count()).select_from(subquery)) or 0)

    async def languages_by_name(self, business_id: int) -> list[tuple[str, str]]:
        rows = await self.session.execute(
            select(MessageTemplate.name, MessageTemplate.language).where(
                MessageTemplate.business_id == business_id, MessageTemplate.deleted_at.is_(None)
            )
        )
        return [(name, language) for name, language in rows]

    async def review_queue(self, waba_id: str | None = None) -> list[MessageTemplate]:
        query = select(MessageTemplate).where(
            MessageTemplate.needs_human_review.is_(True), MessageTemplate.deleted_at.is_(None)
        )
        if waba_id is not None:
            query = query.where(MessageTemplate.waba_id == waba_id)
        return list(await self.session.scalars(query.order_by(MessageTemplate.id)))

    async def live_for_sending(
        self, waba_id: str, name: str, language: str
    ) -> MessageTemplate | None:
        result: MessageTemplate | None = await self.session.scalar(
            select(MessageTemplate).where(
                MessageTemplate.waba_id == waba_id,
                MessageTemplate.name == name,
                MessageTemplate.language == language,
                MessageTemplate.deleted_at.is_(None),
            )
        )
        return result

    async def live_languages(self, waba_id: str, name: str) -> list[str]:
        """The languages a live template called `name` exists in (for a send without one)."""
        rows = await self.session.scalars(
            select(MessageTemplate.language).where(
                MessageTemplate.waba_id == waba_id,
                MessageTemplate.name == name,
                MessageTemplate.deleted_at.is_(None),
            )
        )
        return sorted(rows)

    # -- versions -------------------------------------------------------------------------------

    async def version(self, template_pk: int, number: int) -> MessageTemplateVersion | None:
        result: MessageTemplateVersion | None = await self.session.scalar(
            select(MessageTemplateVersion).where(
                MessageTemplateVersion.template_pk == template_pk,
                MessageTemplateVersion.version == number,
            )
        )
        return result

    async def versions(self, template_pk: int) -> Sequence[MessageTemplateVersion]:
        return list(
            await self.session.scalars(
                select(MessageTemplateVersion)
                .where(MessageTemplateVersion.template_pk == template_pk)
                .order_by(MessageTemplateVersion.version)
            )
        )

    async def approved_edits_since(self, template_pk: int, since: datetime) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).where(
                    MessageTemplateVersion.template_pk == template_pk,
                    MessageTemplateVersion.edited_from == "APPROVED",
                    MessageTemplateVersion.submitted_at > since,
                )
            )
            or 0
        )

    async def serialize_business(self, business_id: int) -> None:
        """Serialise template writes of one business until commit (limits count rows).

        SQLite already has one writer; PostgreSQL takes a transaction-scoped advisory lock.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_SPACE + business_id}
            )


_LOCK_SPACE = 0x54504C << 32  # "TPL": keeps these keys apart from other advisory locks
