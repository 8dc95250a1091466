"""Tables of the webhook domain: where events go (subscriptions), the outbox, delivery state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from tidings.db.base import Base, UTCDateTime

URL_MAX = 2048
OVERRIDE_URL_MAX = 200  # Meta's limit on override_callback_uri
# A delivery that will still be (re)tried: pending or delivering.
WAITING_PREDICATE = "status IN ('pending', 'delivering')"


class WebhookApp(Base):
    """An app that can be subscribed to WABAs, with its default callback (the lowest-precedence
    target). Tidings usually has one app per installation."""

    __tablename__ = "webhook_apps"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    link: Mapped[str | None] = mapped_column(String(URL_MAX), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(String(URL_MAX), nullable=True)
    verify_token: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookSubscription(Base):
    """`POST /{waba_id}/subscribed_apps`: the app gets this WABA's events, optionally at a
    per-WABA override URL."""

    __tablename__ = "webhook_subscriptions"

    waba_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    app_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_apps.app_id", ondelete="CASCADE"), primary_key=True
    )
    override_callback_uri: Mapped[str | None] = mapped_column(
        String(OVERRIDE_URL_MAX), nullable=True
    )
    verify_token: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookPhoneOverride(Base):
    """`POST /{phone_number_id}` with `webhook_configuration`: the highest-precedence target."""

    __tablename__ = "webhook_phone_overrides"

    phone_number_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    waba_id: Mapped[str] = mapped_column(String(64), index=True)
    override_callback_uri: Mapped[str] = mapped_column(String(OVERRIDE_URL_MAX))
    verify_token: Mapped[str | None] = mapped_column(String(200), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookStream(Base):
    """The per-WABA position counter. Its row lock, held until commit, keeps event positions in
    commit order, so "events after N" never skips one that commits later with a lower number."""

    __tablename__ = "webhook_streams"

    waba_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_position: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookEvent(Base):
    """One outbox entry: the exact body to POST, sealed (it carries message text)."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("waba_id", "position"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    waba_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger)
    phone_number_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    field: Mapped[str] = mapped_column(String(64))
    # AES-GCM over the exact envelope bytes; the associated data names the event id.
    body_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookDelivery(Base):
    """Attempt state of one event towards one target URL.

    `next_attempt_at` doubles as the lease: claiming sets status `delivering` and moves
    `next_attempt_at` to the lease's end, so a worker that dies mid-send leaves a row that is
    simply due again later. `claim_token` tells the claimer's result apart from a later claim's.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "target_url"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
        # The claim's in-order check and its run behind a head read one target's waiting
        # deliveries by position. Holding only the waiting rows, in position order, each is a
        # seek and a short walk however long the queue or the delivered history. The predicate
        # is written as the claim writes it: planners use a partial index only for a query
        # whose WHERE clause visibly implies it.
        Index(
            "ix_webhook_deliveries_waiting_order",
            "waba_id",
            "target_url",
            "position",
            sqlite_where=text(WAITING_PREDICATE),
            postgresql_where=text(WAITING_PREDICATE),
        ),
        # The endpoint health page counts a WABA's deliveries per target and reads a target's
        # delivered latencies: without this they would scan every delivery ever made.
        Index("ix_webhook_deliveries_target_waiting", "waba_id", "target_url", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    waba_id: Mapped[str] = mapped_column(String(64))
    target_url: Mapped[str] = mapped_column(String(URL_MAX))
    # The event's position, copied here so that ordering a target's deliveries needs no join.
    position: Mapped[int] = mapped_column(BigInteger)
    # pending | delivering | delivered | dead
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Retries stop here (7 days after the event, or after a replay) and the row goes dead.
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claim_token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # A short reason ("HTTP 500", "timeout"); never response or payload content.
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebhookTargetHealth(Base):
    """Running health of one target URL of a WABA, updated after each dispatch pass."""

    __tablename__ = "webhook_target_health"

    waba_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_url: Mapped[str] = mapped_column(String(URL_MAX), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_failure_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_failure_error: Mapped[str | None] = mapped_column(String(200), nullable=True)


def sealed_body_aad(event_id: str) -> bytes:
    """Associated data of an event's sealed body: a body moved to another event fails to open."""
    return f"tidings/webhook-event/{event_id}".encode()
