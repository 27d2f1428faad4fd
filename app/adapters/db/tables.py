"""The database schema: broadcast requests and one row per call, which is also the queue."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON,
                           list[Any]: JSON}


class BroadcastRow(Base):
    """One accepted `POST /voice/call/play`."""

    __tablename__ = "broadcasts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(36), unique=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    caller: Mapped[str] = mapped_column(String(64))
    retry: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)  # the retry policy
    cancelled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    playlist: Mapped[list[Any]] = mapped_column()
    # pending -> ready (sounds filled) or failed (media_error filled, every call failed)
    media_state: Mapped[str] = mapped_column(String(16), default="pending")
    sounds: Mapped[list[Any] | None] = mapped_column(nullable=True)
    media_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    speech: Mapped[list[Any] | None] = mapped_column(nullable=True)  # engines, shared items
    total_calls: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column()
    # {"url": ..., "events": [...] | None}: this request's own webhook (POST callback_url)
    callback: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # When its broadcast.completed event was recorded (once, by whichever node saw it first).
    completed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (Index("ix_broadcasts_media_state", "media_state"),)


class CallRow(Base):
    """One recipient of a broadcast: queued until a dialer claims it, then its record."""

    __tablename__ = "calls"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id"))
    position: Mapped[int] = mapped_column(Integer)  # the recipient's index in the request
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    not_before: Mapped[datetime | None] = mapped_column(nullable=True)  # a retry's due time
    target: Mapped[str] = mapped_column(String(256))
    variables: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    # Per-recipient sounds and speech notes, only when the playlist is personalised.
    sounds: Mapped[list[Any] | None] = mapped_column(nullable=True)
    speech: Mapped[list[Any] | None] = mapped_column(nullable=True)
    # queued -> dialing -> ringing -> answered -> ended
    state: Mapped[str] = mapped_column(String(16), default="queued")
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The media server (Asterisk) that placed it; None before it is placed (and in 0.1.0).
    media_server: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The trunk the request named for this recipient (None: routed by prefix); the trunk that
    # carried the attempt, and those it failed over from ("name: why"), once it ended.
    requested_trunk: Mapped[str | None] = mapped_column(String(40), nullable=True)
    trunk: Mapped[str | None] = mapped_column(String(40), nullable=True)
    failed_over_from: Mapped[list[Any] | None] = mapped_column(nullable=True)
    request_time: Mapped[datetime] = mapped_column()
    setup_time: Mapped[datetime | None] = mapped_column(nullable=True)
    ring_time: Mapped[datetime | None] = mapped_column(nullable=True)
    connect_time: Mapped[datetime | None] = mapped_column(nullable=True)
    disconnect_time: Mapped[datetime | None] = mapped_column(nullable=True)
    result: Mapped[str | None] = mapped_column(String(16), nullable=True)
    sip_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sip_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    sip_code_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    q850_cause: Mapped[int | None] = mapped_column(Integer, nullable=True)
    q850_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    hangup_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    playback: Mapped[list[Any] | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_calls_broadcast", "broadcast_id", "position"),
        Index("ix_calls_queue", "state", "request_time", "broadcast_id", "position"),
        Index("ix_calls_claimed", "claimed_by", "state"),
    )


class IdempotencyRow(Base):
    """An `Idempotency-Key` a tenant used, and the request it created."""

    __tablename__ = "idempotency_keys"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    body_hash: Mapped[str] = mapped_column(String(64))
    broadcast_id: Mapped[str] = mapped_column(ForeignKey("broadcasts.id"))


class UploadRow(Base):
    """A recording a tenant uploaded; only that tenant may play it."""

    __tablename__ = "uploads"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column()


class ApiKeyRow(Base):
    """An API key, stored as the SHA-256 of the key (keys are long random tokens)."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class EventRow(Base):
    """One event (a call's progress, a broadcast's completion): the outbox and the SSE log.

    Written in the transaction that makes it true; `seq` orders events and is the SSE id.
    `body` stays empty until a delivery worker renders it and fans it out to webhooks
    (`sealed_at`); the body, and with it the webhook signature's input, never changes after.
    """

    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)  # the webhook-id
    tenant: Mapped[str] = mapped_column(String(64))
    broadcast_id: Mapped[str] = mapped_column(String(36))
    call_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)  # what was true then
    created_at: Mapped[datetime] = mapped_column()
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    # When a delivery worker took it for sealing (a take whose node died runs out).
    taken_at: Mapped[datetime | None] = mapped_column(nullable=True)
    sealed_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_events_tenant", "tenant", "seq"),
        Index("ix_events_broadcast", "broadcast_id", "seq"),
        Index("ix_events_unsealed", "sealed_at", "seq"),
        {"sqlite_autoincrement": True},
    )


class WebhookSubscriptionRow(Base):
    """A tenant's standing webhook: every event (or the listed types) of its broadcasts."""

    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any] | None] = mapped_column(nullable=True)  # None: every type
    created_at: Mapped[datetime] = mapped_column()
    disabled_at: Mapped[datetime | None] = mapped_column(nullable=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text, nullable=True)


class WebhookSecretRow(Base):
    """A tenant's signing secret (`whsec_...`); during a rotation the previous one also signs."""

    __tablename__ = "webhook_secrets"

    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column()
    previous_secret: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_until: Mapped[datetime | None] = mapped_column(nullable=True)


class WebhookDeliveryRow(Base):
    """One event to one webhook URL: pending until delivered, failed for good, or gone (410)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq"))
    tenant: Mapped[str] = mapped_column(String(64))
    broadcast_id: Mapped[str] = mapped_column(String(36))
    subscription_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    url: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due time while pending; a claim moves it forward (a lease a crashed node gives up).
    next_attempt_at: Mapped[datetime] = mapped_column()
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column()
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_tenant", "tenant", "created_at"),
    )
