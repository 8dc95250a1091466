"""Tables of the signals domain: windows, the consent ledger, blocks, signals and sends."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class CustomerWindow(Base):
    """The service window and free entry point of one (business phone number, customer).

    `last_inbound_at` is when the platform received the customer's latest message (the
    platform's clock, not the client's claim). An entry point is the customer's first message
    through the business's link or QR code; `entry_replied_at` is the business's first answer
    to it, which opens the 72-hour free entry point window.
    """

    __tablename__ = "customer_windows"
    __table_args__ = (UniqueConstraint("phone_id", "customer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_id: Mapped[int] = mapped_column(ForeignKey("business_phones.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(String(32))
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    entry_source: Mapped[str | None] = mapped_column(String(16), default=None)  # link | qr | ad
    entry_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    entry_replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class ConsentRecord(Base):
    """One entry of the consent ledger of (business, customer). Append-only."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_ledger", "business_id", "customer", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(16))  # MARKETING | UTILITY | AUTHENTICATION
    action: Mapped[str] = mapped_column(String(16))  # opt_in | opt_out | resume
    source: Mapped[str] = mapped_column(String(16))  # api | client_action | keyword | operator
    actor: Mapped[str] = mapped_column(String(200))
    wording: Mapped[str | None] = mapped_column(Text, default=None)
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerBlock(Base):
    """Whether a customer blocks a business (every number of it), and why."""

    __tablename__ = "customer_blocks"
    __table_args__ = (UniqueConstraint("business_id", "customer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(String(32))
    blocked: Mapped[bool] = mapped_column(Boolean, default=True)
    reported: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(16), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CustomerSignal(Base):
    """One thing a customer did with a number's messages (delivered, read, block, report,
    opt_out): the input of quality ratings. `template_id` names the template it concerns."""

    __tablename__ = "customer_signals"
    __table_args__ = (
        Index("ix_customer_signals_phone_at", "phone_id", "at"),
        Index("ix_customer_signals_template_at", "template_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_id: Mapped[int] = mapped_column(ForeignKey("business_phones.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(String(32))
    template_id: Mapped[str | None] = mapped_column(String(32), default=None)
    kind: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer, default=1)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class PolicySend(Base):
    """A send the policy allowed: its category and template (for the marketing cap across all
    businesses, and to attribute receipts and blocks to a template)."""

    __tablename__ = "policy_sends"
    __table_args__ = (
        Index("ix_policy_sends_customer_category_at", "customer", "category", "at"),
        Index("ix_policy_sends_phone_customer_at", "phone_id", "customer", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_id: Mapped[int] = mapped_column(ForeignKey("business_phones.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(String(32))
    wamid: Mapped[str] = mapped_column(String(100), unique=True)
    category: Mapped[str] = mapped_column(String(16))
    template_id: Mapped[str | None] = mapped_column(String(32), default=None)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class PhoneQuality(Base):
    """The last quality rating computed for a phone number (to notice changes)."""

    __tablename__ = "phone_quality"

    phone_id: Mapped[int] = mapped_column(
        ForeignKey("business_phones.id", ondelete="CASCADE"), primary_key=True
    )
    rating: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
