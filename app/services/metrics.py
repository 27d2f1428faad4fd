"""Prometheus metrics: call outcomes and timings, the queue, live calls, dialling, the
connections to Asterisk, and the webhook outbox.

Call outcomes are counted as their call.ended events are sealed, after the commit: every
call is counted once across all nodes (sum the nodes for totals), a crash neither loses nor
doubles one, and nothing is added to a call's own path. Labels stay few: result, SIP code
class and media server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.adapters.ami.monitor import AmiMonitor
from app.domain.broadcasts import CallRecord
from app.domain.events import CALL_ENDED, EventFacts
from app.services.dialer import Dialer

DURATION_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)
POST_DIAL_DELAY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60)


def sip_class(code: int | None) -> str:
    return "none" if code is None else f"{code // 100}xx"


@dataclass
class Backlog:
    """Database counts read just before a scrape (a collector cannot await)."""

    queued: int = 0
    unsealed_events: int = 0
    pending_deliveries: int = 0


class _LiveState(Collector):
    """What is true right now on this node, read at scrape time."""

    def __init__(self, dialer: Dialer, ami: AmiMonitor | None, dial_rate: float,
                 backlog: Backlog) -> None:
        self._dialer = dialer
        self._ami = ami
        self._dial_rate = dial_rate
        self._backlog = backlog

    def collect(self) -> Iterable[Metric]:
        dialled = CounterMetricFamily("voxcast_calls_dialled",
                                      "Calls this node started dialling (rate() is the dial "
                                      "rate)")
        dialled.add_metric([], self._dialer.dialled)
        yield dialled
        yield GaugeMetricFamily("voxcast_dial_rate_limit",
                                "Configured originates per second (VOXCAST_CALLS_PER_SECOND)",
                                value=self._dial_rate)
        live = GaugeMetricFamily("voxcast_live_calls", "Calls live on this node",
                                 labels=["media_server"])
        connected = GaugeMetricFamily("voxcast_ari_connected",
                                      "1 while the media server's ARI event stream is up",
                                      labels=["media_server"])
        for server in self._dialer.status():
            live.add_metric([server["name"]], server["live_calls"])
            connected.add_metric([server["name"]], 1 if server["connected"] else 0)
        yield live
        yield connected
        yield GaugeMetricFamily("voxcast_ami_connected",
                                "1 while the AMI connection is up (0 also when not configured)",
                                value=1 if self._ami is not None and self._ami.connected else 0)
        yield GaugeMetricFamily("voxcast_queue_depth",
                                "Calls queued, not yet dialled (all nodes)",
                                value=self._backlog.queued)
        outbox = GaugeMetricFamily("voxcast_webhook_outbox_depth",
                                   "Events not yet fanned out, and deliveries not yet made "
                                   "(all nodes)", labels=["stage"])
        outbox.add_metric(["unsealed_events"], self._backlog.unsealed_events)
        outbox.add_metric(["pending_deliveries"], self._backlog.pending_deliveries)
        yield outbox


class ServiceMetrics:
    def __init__(self, dialer: Dialer, ami: AmiMonitor | None, dial_rate: float,
                 read_backlog: Callable[[], Awaitable[Backlog]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.backlog = Backlog()
        self._read_backlog = read_backlog
        self._calls = Counter("voxcast_calls", "Calls ended, by result and SIP code class",
                              ["result", "sip_class", "media_server"], registry=self.registry)
        self._answered = Counter("voxcast_calls_answered", "Calls ended that were answered",
                                 ["media_server"], registry=self.registry)
        self._duration = Histogram("voxcast_call_duration_seconds",
                                   "Answered calls: from the answer to the hang-up",
                                   buckets=DURATION_BUCKETS, registry=self.registry)
        self._post_dial_delay = Histogram(
            "voxcast_post_dial_delay_seconds",
            "From the originate to the first ring (or the answer, without a ring)",
            buckets=POST_DIAL_DELAY_BUCKETS, registry=self.registry)
        self._ended = 0
        self._answered_count = 0
        self.registry.register(_LiveState(dialer, ami, dial_rate, self.backlog))
        self.registry.register(_AnswerRatio(self))

    @property
    def answer_ratio(self) -> float:
        return self._answered_count / self._ended if self._ended else 0.0

    def sealed(self, events: list[EventFacts]) -> None:
        for event in events:
            if event.type == CALL_ENDED and event.call is not None:
                self._call_ended(event.call)

    def _call_ended(self, call: CallRecord) -> None:
        server = call.media_server or "none"
        self._calls.labels(call.result or "pending", sip_class(call.sip_code), server).inc()
        self._ended += 1
        first_sign = call.ring_time or call.connect_time
        if call.setup_time is not None and first_sign is not None:
            self._post_dial_delay.observe(
                max(0.0, (first_sign - call.setup_time).total_seconds()))
        if call.connect_time is not None:
            self._answered.labels(server).inc()
            self._answered_count += 1
            if call.disconnect_time is not None:
                self._duration.observe(
                    max(0.0, (call.disconnect_time - call.connect_time).total_seconds()))

    async def text(self) -> bytes:
        """The exposition text, with the database counts read now."""
        backlog = await self._read_backlog()
        self.backlog.queued = backlog.queued
        self.backlog.unsealed_events = backlog.unsealed_events
        self.backlog.pending_deliveries = backlog.pending_deliveries
        return generate_latest(self.registry)


class _AnswerRatio(Collector):
    def __init__(self, metrics: ServiceMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("voxcast_answer_ratio",
                                "Answered / ended calls counted by this node since it started",
                                value=self._metrics.answer_ratio)
