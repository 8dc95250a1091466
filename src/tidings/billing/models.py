from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class MessageCharge(Base):
    """The pricing of one outbound message, fixed when the send was accepted.

    It is due only once the message is delivered (`delivered_at`), and only if `billable`.
    Amounts are integer millionths of `currency`, so sums are exact on both databases.
    """

    __tablename__ = "message_charges"
    __table_args__ = (
        Index("ix_message_charges_business_delivered", "business_id", "delivered_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    phone_id: Mapped[int] = mapped_column(ForeignKey("business_phones.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(100), unique=True)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    pricing_category: Mapped[str] = mapped_column(String(40))
    pricing_type: Mapped[str] = mapped_column(String(32))
    billable: Mapped[bool] = mapped_column(Boolean)
    amount_micros: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    accepted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
