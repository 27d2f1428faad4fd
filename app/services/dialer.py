"""The dialer: claims queued calls and runs one CallSession per call, within the limits.

It never exceeds `max_concurrent` live calls nor `calls_per_second` originates, and never dials
while the ARI event stream is down (an originate to an app with no websocket is answered and
dropped at once). It owns every session task: at shutdown it drains, then hangs up what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.adapters.ari.client import AriClient
from app.adapters.ari.errors import AriError, AriUnreachable
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.cel.channel_log import ChannelEventLog, ChannelHistory
from app.adapters.db.call_queue import CallQueue
from app.adapters.db.call_writes import CallWrites
from app.domain.broadcasts import ClaimedCall, InFlightCall
from app.domain.call_state import CallState, ChannelLost, EndedUnobserved, Phase, advance
from app.services.call_session import CallSession, channel_id_for, final_record

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0  # how often an idle dialer looks for work it was not told about
HANGUP_WAIT_SECONDS = 12.0  # at shutdown, for ChannelDestroyed after our hang-ups
UNRESOLVED_SETTLE_DELAY = 1.0  # Asterisk logs a channel's events within milliseconds
MEDIA_SERVER_LOST = "media server lost: Asterisk stopped while the call was live"


@dataclass(frozen=True, slots=True)
class DialerLimits:
    calls_per_second: float
    max_concurrent: int
    ring_timeout: int
    max_call_seconds: int
    trunk_host: str | None = None


class Dialer:
    def __init__(self, *, queue: CallQueue, writes: CallWrites, ari: AriClient,
                 router: ChannelEventRouter,
                 connected: asyncio.Event, limits: DialerLimits, node_id: str,
                 sip_endpoint: str, ari_app: str, history: ChannelEventLog) -> None:
        self._queue = queue
        self._writes = writes
        self._ari = ari
        self._router = router
        self._connected = connected
        self._limits = limits
        self._node_id = node_id
        self._sip_endpoint = sip_endpoint
        self._ari_app = ari_app
        self._sessions: dict[str, tuple[CallSession, asyncio.Task[None]]] = {}
        self._work_available = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._next_slot = 0.0
        self._pending: deque[ClaimedCall] = deque()  # claimed, waiting for a pacing slot
        self._checks: set[asyncio.Task[None]] = set()  # background checks under way, owned
        # Claims and recovery never interleave: a claimed row is in `_pending` before
        # recovery can see it, so recovery never gives back a call about to be dialled.
        self._queue_lock = asyncio.Lock()
        self._history = history
        self._asterisk_started: str | None = None  # Asterisk's startup time when last seen
        self._events_lost_at: datetime | None = None
        self.peak_concurrent = 0
        self.originates: list[float] = []  # monotonic send times, kept for measurement
        self.keep_originate_times = False

    @property
    def live_calls(self) -> int:
        return len(self._sessions)

    def wake(self) -> None:
        """New work may be claimable (a request was accepted or its media got ready)."""
        self._work_available.set()

    async def run(self) -> None:
        """Recover what a previous run left, then claim and dial until cancelled."""
        await self._connected.wait()
        with contextlib.suppress(AriError):
            self._asterisk_started = await self._ari.startup_time()
        await self.recover()
        while True:
            await self._connected.wait()
            free = self._limits.max_concurrent - len(self._sessions)
            if free <= 0:
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            # Claim about one second of work: enough to keep pace, little to give back.
            batch = min(free, max(1, int(self._limits.calls_per_second)))
            self._work_available.clear()
            async with self._queue_lock:
                calls = await self._queue.claim_calls(self._node_id, batch)
                self._pending.extend(calls)
            if not calls:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work_available.wait(), IDLE_POLL_SECONDS)
                continue
            await self._dial_paced()

    async def _dial_paced(self) -> None:
        try:
            while self._pending:
                await self._wait_for_slot()
                if not self._connected.is_set():
                    break
                if self._pending:  # cancel_broadcast may have emptied it meanwhile
                    self._start(self._pending.popleft())
        finally:
            # Cancelled, or the stream went down: unstarted calls go back to the queue.
            unstarted = [call.call_id for call in self._pending]
            self._pending.clear()
            await asyncio.shield(self._queue.release_calls(unstarted))

    async def _wait_for_slot(self) -> None:
        interval = 1.0 / self._limits.calls_per_second
        now = time.monotonic()
        if now < self._next_slot:
            await asyncio.sleep(self._next_slot - now)
            now = time.monotonic()
        self._next_slot = max(self._next_slot, now) + interval

    def _start(self, call: ClaimedCall,
               reattach: tuple[datetime | None, datetime | None] | None = None) -> None:
        session = CallSession(
            call, ari=self._ari, queue=self._queue, writes=self._writes, router=self._router,
            sip_endpoint=self._sip_endpoint, ari_app=self._ari_app,
            ring_timeout=self._limits.ring_timeout,
            max_call_seconds=self._limits.max_call_seconds,
            trunk_host=self._limits.trunk_host,
            # With Asterisk's channel log, recovery learns from it whether a crashed call was
            # placed, so the originate need not wait for the setup write.
            setup_must_be_durable=not self._history.available)
        if reattach is None:
            if self.keep_originate_times:
                self.originates.append(time.monotonic())
            task = asyncio.create_task(session.run(), name=f"call-{call.call_id}")
        else:
            task = asyncio.create_task(session.reattach(*reattach),
                                       name=f"reattach-{call.call_id}")
        self._sessions[call.call_id] = (session, task)
        self.peak_concurrent = max(self.peak_concurrent, len(self._sessions))
        task.add_done_callback(functools.partial(self._ended, call.call_id))

    def _ended(self, call_id: str, task: asyncio.Task[None]) -> None:
        session, _task = self._sessions.pop(call_id, (None, None))
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s session crashed", call_id, exc_info=task.exception())
        elif session is not None and session.unresolved:
            self._in_background(self._settle_unresolved(), "settle-unresolved")

    async def _settle_unresolved(self) -> None:
        # Asterisk writes its channel log a moment after the event; once it is back, look.
        await asyncio.sleep(UNRESOLVED_SETTLE_DELAY)
        await self._connected.wait()
        await self.recover()

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._checks.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._checks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    def claims_held(self) -> asyncio.Lock:
        """Held, no claim runs: what the dialer has claimed is all in `_pending` or live."""
        return self._queue_lock

    def cancel_broadcast(self, broadcast_id: str) -> list[str]:
        """Drop this broadcast's claimed, undialled calls; return their ids to be cancelled."""
        dropped = [call for call in self._pending if call.broadcast_id == broadcast_id]
        for call in dropped:
            self._pending.remove(call)
        return [call.call_id for call in dropped]

    async def watch_cancellations(self, every_seconds: float = 1.0) -> None:
        """Honour cancels made through other nodes: drop claimed calls, hang up live ones."""
        while True:
            await asyncio.sleep(every_seconds)
            mine = {call.broadcast_id for call in self._pending}
            mine.update(session.call.broadcast_id for session, _ in self._sessions.values())
            if not mine:
                continue
            for broadcast_id in await self._queue.cancelled_among(mine):
                claimed = self.cancel_broadcast(broadcast_id)
                await self._queue.cancel_calls(claimed, datetime.now(UTC))
                for session, _task in list(self._sessions.values()):
                    if session.call.broadcast_id == broadcast_id:
                        session.request_hangup("cancelled")

    async def hang_up_broadcast(self, broadcast_id: str, wait_seconds: float) -> int:
        """Hang up this broadcast's live calls and wait (bounded) for their records."""
        live = [(session, task) for session, task in self._sessions.values()
                if session.call.broadcast_id == broadcast_id]
        for session, _task in live:
            session.request_hangup("cancelled")
        if live:
            await asyncio.wait([task for _session, task in live], timeout=wait_seconds)
        return len(live)

    async def recover(self) -> None:
        """Settle the calls this node left in flight: after a crash, a lost event stream or an
        originate whose fate was unknown. Live channels are followed again; calls that ended
        unobserved are recorded from Asterisk's channel event log; calls Asterisk never saw
        go back to the queue."""
        async with self._queue_lock:
            # Calls this process follows, or has claimed and is about to dial, are not orphans.
            followed = set(self._sessions) | {call.call_id for call in self._pending}
            calls = [item for item in await self._queue.in_flight_calls(self._node_id)
                     if item.call.call_id not in followed]
            if not calls:
                return
            # With the channel log, any claimed call may have been placed (its setup write is
            # not awaited): the log says which were. Without it, the durable setup time does.
            never_dialled = [] if self._history.available else \
                [item.call.call_id for item in calls if item.setup_time is None]
            await self._queue.release_calls(never_dialled)
            dialled = [item for item in calls if item.call.call_id not in never_dialled]
            try:
                live = await self._ari.channel_ids()
            except AriError as error:
                log.warning("could not list Asterisk channels to recover %d calls (%s): "
                            "trying again when the event stream is back", len(dialled), error)
                return
            histories = await self._history.histories(
                {channel_id_for(item.call.call_id) for item in dialled})
            counts: Counter[str] = Counter(requeued=len(never_dialled))
            for item in dialled:
                channel_id = channel_id_for(item.call.call_id)
                counts[await self._settle(item, channel_id in live, histories.get(channel_id))] += 1
            log.info("recovery: %s", ", ".join(f"{count} {what}" for what, count in counts.items()))

    async def _settle(self, item: InFlightCall, live: bool,
                      history: ChannelHistory | None) -> str:
        call_id = item.call.call_id
        answered_at = item.connect_time or (history.answered_at if history else None)
        if live:
            self._start(item.call, reattach=(item.ring_time, answered_at))
            return "followed again"
        if history is None or history.created_at is None:
            if self._history.available:
                await self._queue.requeue(call_id)  # Asterisk never saw it: nobody was called
                return "requeued"
            return await self._save_lost(item, answered_at, "its outcome is unknown: it ended "
                                         "while the service was away and Asterisk keeps no "
                                         "channel log here")
        if history.hung_up_at is None:
            return await self._save_lost(item, answered_at, MEDIA_SERVER_LOST)
        state = CallState(len(item.call.sounds), ring_time=item.ring_time,
                          connect_time=item.connect_time)
        ended = advance(state, EndedUnobserved(history.hung_up_at, answered_at,
                                               history.hangup_cause)).state
        await self._writes.save_final(call_id, final_record(ended))
        return "recorded from Asterisk's log"

    async def _save_lost(self, item: InFlightCall, answered_at: datetime | None,
                         reason: str) -> str:
        state = CallState(len(item.call.sounds), ring_time=item.ring_time,
                          connect_time=answered_at)
        lost_at = self._events_lost_at or datetime.now(UTC)
        ended = advance(state, ChannelLost(lost_at, reason)).state
        await self._writes.save_final(item.call.call_id, final_record(ended))
        return "lost"

    def stream_lost(self, at: datetime) -> None:
        """The ARI event stream dropped: find out at once whether Asterisk itself is gone."""
        self._events_lost_at = at
        self._in_background(self._check_media_server(at), "media-server-check")

    async def _check_media_server(self, at: datetime) -> None:
        try:
            await self._ari.startup_time()
        except AriUnreachable:
            self._media_server_lost(at)
        except AriError as error:
            log.warning("event stream lost and Asterisk answers oddly (%s): waiting for the "
                        "stream to come back", error)

    def _media_server_lost(self, at: datetime) -> None:
        """Asterisk is gone, and every call it carried with it: record them as they stood."""
        if self._sessions:
            log.error("Asterisk is gone: %d live calls are lost", len(self._sessions))
        for session, _task in list(self._sessions.values()):
            session.report_lost(MEDIA_SERVER_LOST, at)

    async def reconcile(self) -> None:
        """After the event stream reconnects, catch up, in the background (events keep
        flowing meanwhile), on what happened while it was down: calls whose channel ended are
        settled, answered calls whose playback ended move on to their next item or hang up."""
        self._in_background(self._reconcile(), "reconcile")

    async def _reconcile(self) -> None:
        try:
            started = await self._ari.startup_time()
            live = await self._ari.channel_ids()
        except AriError as error:
            log.warning("could not list Asterisk channels after reconnecting: %s", error)
            return
        restarted = self._asterisk_started is not None and started != self._asterisk_started
        self._asterisk_started = started
        lost_at = self._events_lost_at or datetime.now(UTC)
        gone = [session for session, _task in self._sessions.values()
                if session.placed and session.channel_id not in live]
        histories = {} if restarted else await self._history.histories(
            {session.channel_id for session in gone})
        for session in gone:
            history = histories.get(session.channel_id)
            if restarted:
                session.report_lost(MEDIA_SERVER_LOST, lost_at)
            elif history is not None and history.hung_up_at is not None:
                session.ended_unobserved(history.hung_up_at, history.answered_at,
                                         history.hangup_cause)
            else:
                session.report_lost("the channel ended while the event stream was down and "
                                    "Asterisk's log does not say how", lost_at)
        await asyncio.gather(*(session.check_playback() for session, _task
                               in list(self._sessions.values())
                               if session.channel_id in live
                               and session.state.phase is Phase.ANSWERED))
        await self.recover()

    async def shutdown(self, drain_timeout: float) -> None:
        """Let live calls finish for `drain_timeout` s, then hang up and record the rest."""
        if self._sessions:
            log.info("draining %d live calls for up to %.0f s", len(self._sessions),
                     drain_timeout)
            await asyncio.wait([task for _s, task in self._sessions.values()],
                               timeout=drain_timeout)
        for session, _task in list(self._sessions.values()):
            session.request_hangup("service shutting down")
        if self._sessions:
            await asyncio.wait([task for _s, task in self._sessions.values()],
                               timeout=HANGUP_WAIT_SECONDS)
        for _session, task in list(self._sessions.values()):
            task.cancel()  # left in flight: the next start recovers them
        if self._sessions:
            await asyncio.wait([task for _s, task in self._sessions.values()])
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)


