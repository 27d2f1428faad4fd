"""Webhook subscriptions, signing secrets and deliveries: claims, outcomes, listing, replay.

A claim is one `UPDATE ... WHERE id IN (due deliveries) RETURNING` that moves the due time
forward by a lease: the claiming node sends, then records the outcome; if it dies, the lease
runs out and another node (or its restart) sends again, with the same webhook-id. PostgreSQL's
`FOR UPDATE SKIP LOCKED` lets several nodes claim side by side.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from app.adapters.db.rows import utc
from app.adapters.db.tables import (
    EventRow,
    WebhookDeliveryRow,
    WebhookSecretRow,
    WebhookSubscriptionRow,
)
from app.domain.webhooks import Delivery, DueDelivery, SigningSecrets, Subscription

SECRET_BYTES = 32


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _subscription(row: Any) -> Subscription:
    created_at = utc(row.created_at)
    assert created_at is not None  # noqa: S101 - NOT NULL
    return Subscription(row.id, row.tenant, row.url,
                        None if row.events is None else tuple(row.events), created_at,
                        utc(row.disabled_at), row.disabled_reason)


_DELIVERY_COLUMNS = (WebhookDeliveryRow.id, EventRow.id.label("webhook_id"),
                     EventRow.type.label("event_type"), WebhookDeliveryRow.broadcast_id,
                     WebhookDeliveryRow.subscription_id, WebhookDeliveryRow.url,
                     WebhookDeliveryRow.state, WebhookDeliveryRow.attempts,
                     WebhookDeliveryRow.next_attempt_at, WebhookDeliveryRow.last_status,
                     WebhookDeliveryRow.last_error, WebhookDeliveryRow.created_at,
                     WebhookDeliveryRow.delivered_at)


def _delivery(row: Any) -> Delivery:
    created_at = utc(row.created_at)
    assert created_at is not None  # noqa: S101 - NOT NULL
    return Delivery(row.id, row.webhook_id, row.event_type, row.broadcast_id,
                    row.subscription_id, row.url, row.state, row.attempts,
                    utc(row.next_attempt_at) if row.state == "pending" else None,
                    row.last_status, row.last_error, created_at, utc(row.delivered_at))


class WebhookStore:
    def __init__(self, writer: AsyncEngine, reader: AsyncEngine) -> None:
        self._writer = writer
        self._reader = reader
        self._skip_locked = writer.dialect.name == "postgresql"

    # --- subscriptions -------------------------------------------------------------------

    async def add_subscription(self, tenant: str, url: str,
                               events: Sequence[str] | None) -> Subscription:
        subscription_id = str(uuid.uuid4())
        created_at = datetime.now(UTC).replace(microsecond=0)
        async with self._writer.begin() as connection:
            await connection.execute(insert(WebhookSubscriptionRow).values(
                id=subscription_id, tenant=tenant, url=url,
                events=None if events is None else list(events), created_at=created_at))
        return Subscription(subscription_id, tenant, url,
                            None if events is None else tuple(events), created_at, None, None)

    async def subscriptions(self, tenant: str) -> list[Subscription]:
        async with self._reader.connect() as connection:
            rows = await connection.execute(
                select(WebhookSubscriptionRow).where(WebhookSubscriptionRow.tenant == tenant)
                .order_by(WebhookSubscriptionRow.created_at, WebhookSubscriptionRow.id))
            return [_subscription(row) for row in rows]

    async def remove_subscription(self, tenant: str, subscription_id: str) -> bool:
        """Delete it; its deliveries not yet made are dropped with it."""
        async with self._writer.begin() as connection:
            removed = await connection.execute(
                delete(WebhookSubscriptionRow).where(WebhookSubscriptionRow.id == subscription_id,
                       WebhookSubscriptionRow.tenant == tenant))
            if not removed.rowcount:
                return False
            await connection.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.subscription_id == subscription_id,
                       WebhookDeliveryRow.state == "pending")
                .values(state="failed", last_error="the subscription was deleted"))
            return True

    # --- secrets -------------------------------------------------------------------------

    async def signing_secrets(self, tenant: str) -> SigningSecrets:
        """The tenant's secrets; the first use creates one (a callback_url needs no setup)."""
        async with self._reader.connect() as connection:
            row = await _secret_row(connection, tenant)
        if row is None:
            row = await self._create_secret(tenant)
        previous_until = utc(row.previous_until)
        if previous_until is not None and previous_until <= datetime.now(UTC):
            return SigningSecrets(row.secret, None, None)
        return SigningSecrets(row.secret, row.previous_secret, previous_until)

    async def _create_secret(self, tenant: str) -> Any:
        async with self._writer.begin() as connection:
            row = await _secret_row(connection, tenant)
            if row is None:
                insert_new = (postgresql.insert if self._skip_locked else sqlite.insert)(
                    WebhookSecretRow)
                await connection.execute(insert_new.values(
                    tenant=tenant, secret=new_secret(), created_at=datetime.now(UTC))
                    .on_conflict_do_nothing())
                row = await _secret_row(connection, tenant)
            assert row is not None  # noqa: S101 - just inserted, or inserted concurrently
            return row

    async def rotate_secret(self, tenant: str, overlap: timedelta) -> SigningSecrets:
        """A new secret; the one it replaces still signs for `overlap`."""
        current = await self.signing_secrets(tenant)
        now = datetime.now(UTC)
        fresh = new_secret()
        async with self._writer.begin() as connection:
            await connection.execute(
                update(WebhookSecretRow).where(WebhookSecretRow.tenant == tenant)
                .values(secret=fresh, created_at=now, previous_secret=current.current,
                        previous_until=now + overlap))
        return SigningSecrets(fresh, current.current, now + overlap)

    # --- deliveries ----------------------------------------------------------------------

    async def claim_due(self, limit: int, lease: timedelta) -> list[DueDelivery]:
        now = datetime.now(UTC)
        due = (select(WebhookDeliveryRow.id)
               .where(WebhookDeliveryRow.state == "pending",
                      WebhookDeliveryRow.next_attempt_at <= now)
               .order_by(WebhookDeliveryRow.next_attempt_at).limit(limit))
        async with self._reader.connect() as connection:  # keeps the writer free when idle
            if (await connection.scalar(due.with_only_columns(WebhookDeliveryRow.id)
                                        .limit(1))) is None:
                return []
        if self._skip_locked:
            due = due.with_for_update(skip_locked=True)
        chosen = due.cte("due_deliveries").prefix_with("MATERIALIZED", dialect="postgresql")
        claim = (update(WebhookDeliveryRow)
                 .where(WebhookDeliveryRow.id.in_(select(chosen.c.id)),
                        WebhookDeliveryRow.state == "pending")
                 .values(next_attempt_at=now + lease)
                 .returning(WebhookDeliveryRow.id, WebhookDeliveryRow.event_seq))
        async with self._writer.begin() as connection:
            claimed = (await connection.execute(claim)).all()
            if not claimed:
                return []
            rows = await connection.execute(
                select(WebhookDeliveryRow.id, WebhookDeliveryRow.tenant, WebhookDeliveryRow.url,
                       WebhookDeliveryRow.attempts, WebhookDeliveryRow.subscription_id,
                       WebhookDeliveryRow.broadcast_id, EventRow.id.label("webhook_id"),
                       EventRow.body)
                .join(EventRow, EventRow.seq == WebhookDeliveryRow.event_seq)
                .where(WebhookDeliveryRow.id.in_([row.id for row in claimed]))
                .order_by(WebhookDeliveryRow.event_seq))
            return [DueDelivery(row.id, row.tenant, row.url, row.webhook_id, row.body or "",
                                row.attempts, row.subscription_id, row.broadcast_id)
                    for row in rows]

    async def delivered(self, delivery_id: str, status: int) -> None:
        now = datetime.now(UTC)
        await self._set(delivery_id, state="delivered", attempts=WebhookDeliveryRow.attempts + 1,
                        last_status=status, last_error=None, delivered_at=now)

    async def failed_attempt(self, delivery_id: str, status: int | None, error: str,
                             next_attempt_at: datetime | None) -> None:
        """An attempt failed: try again at `next_attempt_at`, or never (None)."""
        values: dict[str, Any] = {"attempts": WebhookDeliveryRow.attempts + 1,
                                  "last_status": status, "last_error": error}
        if next_attempt_at is None:
            values["state"] = "failed"
        else:
            values["next_attempt_at"] = next_attempt_at
        await self._set(delivery_id, **values)

    async def gone(self, delivery: DueDelivery, status: int) -> None:
        """410 Gone: the URL wants nothing more. A subscription is disabled; a request's
        callback gets nothing more of that request."""
        now = datetime.now(UTC)
        reason = f"the receiver answered {status} Gone"
        async with self._writer.begin() as connection:
            if delivery.subscription_id is not None:
                await connection.execute(
                    update(WebhookSubscriptionRow)
                    .where(WebhookSubscriptionRow.id == delivery.subscription_id,
                           WebhookSubscriptionRow.disabled_at.is_(None))
                    .values(disabled_at=now, disabled_reason=reason))
                same = WebhookDeliveryRow.subscription_id == delivery.subscription_id
            else:
                same = ((WebhookDeliveryRow.broadcast_id == delivery.broadcast_id)
                        & WebhookDeliveryRow.subscription_id.is_(None)
                        & (WebhookDeliveryRow.url == delivery.url))
            await connection.execute(
                update(WebhookDeliveryRow)
                .where(same, WebhookDeliveryRow.state == "pending",
                       WebhookDeliveryRow.id != delivery.id)
                .values(state="gone", last_error=reason))
            await connection.execute(
                update(WebhookDeliveryRow).where(WebhookDeliveryRow.id == delivery.id)
                .values(state="gone", attempts=WebhookDeliveryRow.attempts + 1,
                        last_status=status, last_error=reason))

    async def _set(self, delivery_id: str, **values: Any) -> None:
        async with self._writer.begin() as connection:
            await connection.execute(update(WebhookDeliveryRow)
                                     .where(WebhookDeliveryRow.id == delivery_id)
                                     .values(**values))

    async def deliveries(self, tenant: str, *, state: str | None = None,
                         broadcast_id: str | None = None, limit: int = 100,
                         before: str | None = None) -> list[Delivery]:
        """Newest first; `before` (a delivery id) continues a listing after that one."""
        query = (select(*_DELIVERY_COLUMNS, WebhookDeliveryRow.event_seq)
                 .join(EventRow, EventRow.seq == WebhookDeliveryRow.event_seq)
                 .where(WebhookDeliveryRow.tenant == tenant)
                 .order_by(WebhookDeliveryRow.event_seq.desc(), WebhookDeliveryRow.id.desc())
                 .limit(limit))
        if state is not None:
            query = query.where(WebhookDeliveryRow.state == state)
        if broadcast_id is not None:
            query = query.where(WebhookDeliveryRow.broadcast_id == broadcast_id)
        async with self._reader.connect() as connection:
            if before is not None:
                mark = (await connection.execute(
                    select(WebhookDeliveryRow.event_seq, WebhookDeliveryRow.id)
                    .where(WebhookDeliveryRow.id == before,
                           WebhookDeliveryRow.tenant == tenant))).first()
                if mark is None:
                    return []
                query = query.where(
                    (WebhookDeliveryRow.event_seq < mark.event_seq)
                    | ((WebhookDeliveryRow.event_seq == mark.event_seq)
                       & (WebhookDeliveryRow.id < mark.id)))
            return [_delivery(row) for row in await connection.execute(query)]

    async def replay(self, tenant: str, delivery_id: str) -> Delivery | None:
        """Send it again now, whatever became of it (same webhook-id, fresh retries)."""
        async with self._writer.begin() as connection:
            changed = await connection.execute(
                update(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.id == delivery_id, WebhookDeliveryRow.tenant == tenant)
                .values(state="pending", attempts=0, next_attempt_at=datetime.now(UTC),
                        delivered_at=None))
            if not changed.rowcount:
                return None
            row = (await connection.execute(
                select(*_DELIVERY_COLUMNS)
                .join(EventRow, EventRow.seq == WebhookDeliveryRow.event_seq)
                .where(WebhookDeliveryRow.id == delivery_id))).one()
            return _delivery(row)

    async def pending_count(self) -> int:
        async with self._reader.connect() as connection:
            return int(await connection.scalar(
                select(func.count()).select_from(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.state == "pending")) or 0)


async def _secret_row(connection: AsyncConnection, tenant: str) -> Any:
    return (await connection.execute(
        select(WebhookSecretRow).where(WebhookSecretRow.tenant == tenant))).first()
