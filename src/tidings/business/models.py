from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class Business(Base):
    """A WhatsApp Business Account (WABA) in Cloud API terms."""

    __tablename__ = "businesses"

    id: Mapped[int] = mapped_column(primary_key=True)
    waba_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BusinessApp(Base):
    """The app whose secret signs webhooks (one per business here)."""

    __tablename__ = "business_apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    app_id: Mapped[str] = mapped_column(String(32), unique=True)
    # Sealed, not hashed: the server needs the secret itself to sign webhook bodies.
    app_secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BusinessPhone(Base):
    """A business phone number, which owns an API device on the network."""

    __tablename__ = "business_phones"

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    phone_number_id: Mapped[str] = mapped_column(String(32), unique=True)
    phone: Mapped[str] = mapped_column(String(32), unique=True)
    verified_name: Mapped[str] = mapped_column(String(200))
    # Position in the API device's event journal up to which events are in our tables.
    journal_cursor: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AccessToken(Base):
    """A system-user access token, stored as a hash."""

    __tablename__ = "business_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    scopes: Mapped[str] = mapped_column(String(300))  # comma-separated
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BusinessMessage(Base):
    """A message a business phone number sent or received. Content is sealed at rest."""

    __tablename__ = "business_messages"
    __table_args__ = (
        Index("ix_business_messages_outbox", "phone_id", "direction", "status"),
        Index("ix_business_messages_e2e", "phone_id", "e2e_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    phone_id: Mapped[int] = mapped_column(ForeignKey("business_phones.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(100), unique=True)
    e2e_id: Mapped[str] = mapped_column(String(80))  # the message id inside the E2E payload
    direction: Mapped[str] = mapped_column(String(8))  # out | in
    customer: Mapped[str] = mapped_column(String(32))  # E.164
    type: Mapped[str] = mapped_column(String(32))
    content_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # out: accepted | sent | delivered | read | failed;  in: received | read
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[int | None] = mapped_column(Integer, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
