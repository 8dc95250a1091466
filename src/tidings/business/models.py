from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
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


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` on a send and the response it got (see business/idempotency).

    `response_status` is None while the first request is still running (`lease_until` bounds
    how long that claim holds if its process dies).
    """

    __tablename__ = "business_idempotency_keys"
    __table_args__ = (
        UniqueConstraint("business_id", "phone_number_id", "key"),
        Index("ix_business_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    business_id: Mapped[int] = mapped_column(ForeignKey("businesses.id", ondelete="CASCADE"))
    phone_number_id: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the canonical body
    owner: Mapped[str] = mapped_column(String(32))  # which request holds the claim
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    response_status: Mapped[int | None] = mapped_column(Integer, default=None)
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BusinessMedia(Base):
    """A media file of a business phone number (uploaded, fetched by link or received).

    The bytes are in the blob store under `blob_key`, sealed with a key only the platform
    holds (AAD names the media id); this row holds what the Cloud API reports about them.
    """

    __tablename__ = "business_media"
    __table_args__ = (Index("ix_business_media_expires_at", "expires_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    media_id: Mapped[str] = mapped_column(String(32), unique=True)  # Graph-style numeric id
    phone_id: Mapped[int] = mapped_column(ForeignKey("business_phones.id", ondelete="CASCADE"))
    origin: Mapped[str] = mapped_column(String(8))  # upload | inbound
    mime_type: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))  # hex digest of the plaintext
    file_size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(255), default=None)
    blob_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
