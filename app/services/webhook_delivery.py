"""The webhook worker: seals new events (rendering and fanning them out), then sends what is
due, a bounded number at a time, and records each outcome for retry, success or 410.

Every node runs one; the database hands each a different share (see event_log and
webhook_store), so a node that dies mid-send leaves a lease that runs out and the delivery is
sent again with the same webhook-id: at least once, never lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from yarl import URL

from app.adapters.db.event_log import SEAL_BATCH, EventLog, EventRenderer
from app.adapters.db.webhook_store import WebhookStore
from app.adapters.media.fetcher import redact_url
from app.adapters.webhooks.sender import Answer, WebhookSender
from app.domain.events import EventFacts
from app.domain.webhooks import DueDelivery, next_attempt_delay, parse_retry_after

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryLimits:
    concurrency: int = 20  # attempts in flight on this node
    poll_seconds: float = 1.0  # how often to look for new events and due deliveries
    backoff_scale: float = 1.0  # <1 shrinks the retry schedule (tests)
    timeout: float = 10.0  # per attempt

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is this node's: past it, another may send it (or this
        one after a crash). Well past an attempt's timeout, so no live attempt is doubled."""
        return timedelta(seconds=2 * self.timeout + 5)


class EventsSealed:
    """Tells local live-event readers that new events may be readable (others poll)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def pulse(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, seconds: float) -> None:
        """Until the next pulse, or `seconds`."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), seconds)


class WebhookDelivery:
    def __init__(self, events: EventLog, store: WebhookStore, sender: WebhookSender,
                 render: EventRenderer, limits: DeliveryLimits,
                 sealed: EventsSealed | None = None,
                 on_sealed: Callable[[list[EventFacts]], None] | None = None) -> None:
        self._events = events
        self._store = store
        self._sender = sender
        self._render = render
        self._limits = limits
        self.sealed = sealed or EventsSealed()
        self._on_sealed = on_sealed
        self._in_flight: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                sealed = await self._events.seal(self._render, SEAL_BATCH)
                if sealed:
                    self.sealed.pulse()
                    if self._on_sealed is not None:
                        self._on_sealed(sealed)  # committed: each event is seen once
                free = self._limits.concurrency - len(self._in_flight)
                due = await self._store.claim_due(free, self._limits.lease) if free > 0 else []
                for delivery in due:
                    task = asyncio.create_task(self._attempt(delivery),
                                               name=f"webhook-{delivery.id}")
                    self._in_flight.add(task)
                    task.add_done_callback(self._finished)
                # Between polls events and deliveries gather into batches: a pass costs a few
                # statements however many it carries. Only a full batch goes on at once.
                if len(sealed) < SEAL_BATCH and not (due and len(due) == free):
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._limits.poll_seconds)
                    except TimeoutError:
                        pass
        finally:
            # Attempts cut short here are sent again when their lease runs out.
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        was_full = len(self._in_flight) >= self._limits.concurrency
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a webhook attempt crashed (it is retried when its lease ends)",
                      exc_info=task.exception())
        if was_full:
            self._wake.set()  # a slot is free and deliveries may be waiting for it

    async def _attempt(self, delivery: DueDelivery) -> None:
        secrets = await self._store.signing_secrets(delivery.tenant)
        answer = await self._sender.send(delivery.url, delivery.webhook_id, delivery.body,
                                         secrets)
        where = redact_url(URL(delivery.url))
        if answer.status is not None and 200 <= answer.status < 300:
            await self._store.delivered(delivery.id, answer.status)
            return
        if answer.status == 410:
            log.warning("webhook %s answered 410 Gone: %s", where,
                        "subscription disabled" if delivery.subscription_id
                        else "no more events of this request sent there")
            await self._store.gone(delivery, answer.status)
            return
        attempts = delivery.attempts + 1
        now = datetime.now(UTC)
        delay = next_attempt_delay(attempts, parse_retry_after(answer.retry_after, now),
                                   self._limits.backoff_scale)
        error = _describe(answer)
        if delay is None:
            log.warning("webhook %s to %s failed for good after %d attempts (%s)",
                        delivery.webhook_id, where, attempts, error)
        await self._store.failed_attempt(delivery.id, answer.status, error,
                                         None if delay is None else now + delay)


def _describe(answer: Answer) -> str:
    if answer.status is not None:
        return f"the receiver answered {answer.status}"
    return answer.error or "no answer"
