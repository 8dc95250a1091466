"""Tables of the templates domain: templates and every submitted version of them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class MessageTemplate(Base):
    """A template in one language, as its business sees it now.

    Deleted templates keep their row (status DELETED, `deleted_at`): an approved name stays
    blocked for 30 days and creations are counted per hour, both as Meta does.
    """

    __tablename__ = "message_templates"
    __table_args__ = (
        # One live template per name and language; deleted rows do not count.
        Index(
            "ix_message_templates_live_name",
            "business_id",
            "name",
            "language",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_message_templates_business_created", "business_id", "created_at"),
        Index("ix_message_templates_review_queue", "needs_human_review", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[str] = mapped_column(String(32), unique=True)  # Graph-style numeric id
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    waba_id: Mapped[str] = mapped_column(String(32))  # for webhooks, which are per WABA
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    previous_category: Mapped[str | None] = mapped_column(String(32), default=None)
    correct_category: Mapped[str | None] = mapped_column(String(32), default=None)
    parameter_format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    rejected_reason: Mapped[str] = mapped_column(String(32), default="NONE")
    components: Mapped[str] = mapped_column(Text)  # JSON, as listed back to clients
    options: Mapped[str] = mapped_column(Text, default="{}")  # JSON: ttl, sub_category, ...
    review: Mapped[str] = mapped_column(Text, default="{}")  # JSON: the last verdict
    needs_human_review: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)  # latest submitted version
    approved_version: Mapped[int | None] = mapped_column(Integer, default=None)
    # Quality and pausing (computed from customer signals; see the item 4).
    quality_score: Mapped[str] = mapped_column(String(16), default="UNKNOWN")
    quality_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    pause_count: Mapped[int] = mapped_column(Integer, default=0)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class MessageTemplateVersion(Base):
    """One submission of a template (create or edit) and its review outcome.

    Rows are never changed after the decision: an approved version stays what was approved,
    so a message sent with it can always be rendered again.
    """

    __tablename__ = "message_template_versions"
    __table_args__ = (UniqueConstraint("template_pk", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_pk: Mapped[int] = mapped_column(ForeignKey("message_templates.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(32))
    parameter_format: Mapped[str] = mapped_column(String(16))
    components: Mapped[str] = mapped_column(Text)  # JSON snapshot
    status: Mapped[str] = mapped_column(String(24))  # PENDING | APPROVED | REJECTED
    # The template's status when this version was submitted: edits of APPROVED templates are
    # rate-limited (1 per 24 hours, 10 per 30 days).
    edited_from: Mapped[str | None] = mapped_column(String(24), default=None)
    review: Mapped[str] = mapped_column(Text, default="{}")
    decided_by: Mapped[str | None] = mapped_column(
        String(100), default=None
    )  # automated | operator
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
