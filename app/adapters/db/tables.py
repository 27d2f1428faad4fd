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
