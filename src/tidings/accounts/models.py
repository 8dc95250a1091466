from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")  # person | business
    # Ed25519 public key that signs the device list; replaced only by re-registration.
    account_key: Mapped[str] = mapped_column(String(64))
    # Device ids are never reused within an account, so a stale id can never alias a new device.
    next_device_id: Mapped[int] = mapped_column(Integer, default=1)
    device_list_version: Mapped[int] = mapped_column(Integer, default=0)
    device_list_payload: Mapped[str | None] = mapped_column(Text, default=None)
    device_list_signature: Mapped[str | None] = mapped_column(String(100), default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VerificationCode(Base):
    """A one-time registration code, stored only as a peppered hash."""

    __tablename__ = "verification_codes"
    __table_args__ = (Index("ix_verification_codes_phone_created", "phone", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(32))
    code_hash: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16))  # invite | sms
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    used_by_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )


class AccountBlock(Base):
    """An account refuses envelopes from `blocked_phone` (a customer blocking a business).

    The core files nothing from a blocked sender into any device of the blocker; the sender is
    told so (`blocked`), which the business platform reports as 131026, as Meta does.
    """

    __tablename__ = "account_blocks"
    __table_args__ = (UniqueConstraint("account_id", "blocked_phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    blocked_phone: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
