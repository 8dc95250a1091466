from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class Attachment(Base):
    """An uploaded ciphertext. The key to read it exists only inside E2E messages."""

    __tablename__ = "attachments"
    __table_args__ = (Index("ix_attachments_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # 128 random bits, hex
    # Who uploaded it, for accounting and abuse handling; kept (no foreign key) when the
    # device goes, since recipients may still need the file until it expires.
    uploader_device_pk: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    blob_key: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
