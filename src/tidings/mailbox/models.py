from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime


class Mailbox(Base):
    """The per-device sequence counter.

    Positions are allocated by incrementing this row, whose lock is held until commit, so a
    device reading "everything after N" can never miss a row that commits later with a lower seq.
    """

    __tablename__ = "mailboxes"

    device_pk: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)


class EnvelopeRow(Base):
    __tablename__ = "envelopes"
    __table_args__ = (UniqueConstraint("device_pk", "sender_phone", "kind", "message_id"),)

    device_pk: Mapped[int] = mapped_column(
        ForeignKey("mailboxes.device_pk", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(80))
    sender_phone: Mapped[str] = mapped_column(String(32))
    sender_device: Mapped[int] = mapped_column(Integer)
    olm_type: Mapped[int] = mapped_column(Integer)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    server_ts: Mapped[datetime] = mapped_column(UTCDateTime())
