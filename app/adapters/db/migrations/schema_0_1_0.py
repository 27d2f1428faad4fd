"""The schema Voxcast 0.1.0 made (with `create_all`), frozen here as the migrations' baseline.

It must never change: databases made by 0.1.0 are recognised by it and stamped as the baseline.
"""

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

SCHEMA_0_1_0 = MetaData()

Table(
    "broadcasts", SCHEMA_0_1_0,
    Column("id", String(36), primary_key=True),
    Column("report_id", String(36), nullable=False, unique=True),
    Column("tenant", String(64), nullable=False, index=True),
    Column("caller", String(64), nullable=False),
    Column("retry", JSON),
    Column("cancelled_at", DateTime(timezone=True)),
    Column("playlist", JSON, nullable=False),
    Column("media_state", String(16), nullable=False),
    Column("sounds", JSON),
    Column("media_error", Text),
    Column("speech", JSON),
    Column("total_calls", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_broadcasts_media_state", "media_state"),
)

Table(
    "calls", SCHEMA_0_1_0,
    Column("id", String(36), primary_key=True),
    Column("broadcast_id", String(36), ForeignKey("broadcasts.id"), nullable=False),
    Column("position", Integer, nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("not_before", DateTime(timezone=True)),
    Column("target", String(256), nullable=False),
    Column("variables", JSON),
    Column("sounds", JSON),
    Column("speech", JSON),
    Column("state", String(16), nullable=False),
    Column("claimed_by", String(64)),
    Column("request_time", DateTime(timezone=True), nullable=False),
    Column("setup_time", DateTime(timezone=True)),
    Column("ring_time", DateTime(timezone=True)),
    Column("connect_time", DateTime(timezone=True)),
    Column("disconnect_time", DateTime(timezone=True)),
    Column("result", String(16)),
    Column("sip_code", Integer),
    Column("sip_text", Text),
    Column("sip_code_source", String(16)),
    Column("q850_cause", Integer),
    Column("q850_text", Text),
    Column("hangup_by", String(16)),
    Column("playback", JSON),
    Index("ix_calls_broadcast", "broadcast_id", "position"),
    Index("ix_calls_queue", "state", "request_time", "broadcast_id", "position"),
    Index("ix_calls_claimed", "claimed_by", "state"),
)

Table(
    "idempotency_keys", SCHEMA_0_1_0,
    Column("tenant", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("body_hash", String(64), nullable=False),
    Column("broadcast_id", String(36), ForeignKey("broadcasts.id"), nullable=False),
)

Table(
    "uploads", SCHEMA_0_1_0,
    Column("tenant", String(64), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

Table(
    "api_keys", SCHEMA_0_1_0,
    Column("id", String(16), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("label", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
)
