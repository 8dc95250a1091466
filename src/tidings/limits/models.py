from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class BusinessTier(Base):
    """A business's messaging limit tier, and the automatic upgrade decided but not yet in force.

    Since October 2025 Meta sets the limit per business portfolio, shared by all its numbers.
    The row is also the lock that serialises counting new customers against the limit.
    """

    __tablename__ = "business_tiers"

    business_id: Mapped[int] = mapped_column(
        ForeignKey("businesses.id", ondelete="CASCADE"), primary_key=True
    )
    tier: Mapped[str] = mapped_column(String(24))
    pending_tier: Mapped[str | None] = mapped_column(String(24), default=None)
    pending_effective_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LimitReach(Base):
    """One customer reached by a template outside their service window (a unit of the limit).

    A customer gets a new row only when no row of theirs lies in the last 24 hours, so any
    24-hour span holds at most one row per customer: counting rows counts unique customers.
    """

    __tablename__ = "business_limit_reaches"
    __table_args__ = (
        Index("ix_business_limit_reaches_business_at", "business_id", "reached_at"),
        Index("ix_business_limit_reaches_customer", "business_id", "customer", "reached_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    customer: Mapped[str] = mapped_column(String(32))  # E.164
    reached_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PhoneThroughput(Base):
    """A number's throughput level (STANDARD 80/s, HIGH 1,000/s, COEXISTENCE 20/s).

    Absent means STANDARD, Meta's default for a newly registered number.
    """

    __tablename__ = "business_phone_throughput"

    phone_id: Mapped[int] = mapped_column(
        ForeignKey("business_phones.id", ondelete="CASCADE"), primary_key=True
    )
    level: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
