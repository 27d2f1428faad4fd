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
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

from app.adapters.ari.client import AriClient
from app.adapters.ari.errors import AriError
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.db.store import ClaimedCall, ReportStore
from app.adapters.db.tables import CallRow
from app.domain.call_state import CallState, ChannelLost, Phase, advance
from app.services.call_session import CallSession, channel_id_for, final_record

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0  # how often an idle dialer looks for work it was not told about
HANGUP_WAIT_SECONDS = 12.0  # at shutdown, for ChannelDestroyed after our hang-ups


@dataclass(frozen=True, slots=True)
class DialerLimits:
    calls_per_second: float
    max_concurrent: int
    ring_timeout: int
    max_call_seconds: int
    trunk_host: str | None = None


class Dialer:
    def __init__(self, *, store: ReportStore, ari: AriClient, router: ChannelEventRouter,
                 connected: asyncio.Event, limits: DialerLimits, node_id: str,
                 sip_endpoint: str, ari_app: str) -> None:
        self._store = store
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
            calls = await self._store.claim_calls(self._node_id, batch)
            if not calls:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._work_available.wait(), IDLE_POLL_SECONDS)
                continue
            await self._dial_paced(calls)

    async def _dial_paced(self, calls: list[ClaimedCall]) -> None:
        self._pending.extend(calls)
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
            await asyncio.shield(self._store.release_calls(unstarted))

    async def _wait_for_slot(self) -> None:
        interval = 1.0 / self._limits.calls_per_second
        now = time.monotonic()
        if now < self._next_slot:
            await asyncio.sleep(self._next_slot - now)
            now = time.monotonic()
        self._next_slot = max(self._next_slot, now) + interval

    def _start(self, call: ClaimedCall, adopt: CallState | None = None) -> None:
        session = CallSession(
            call, ari=self._ari, store=self._store, router=self._router,
            sip_endpoint=self._sip_endpoint, ari_app=self._ari_app,
            ring_timeout=self._limits.ring_timeout,
            max_call_seconds=self._limits.max_call_seconds,
            trunk_host=self._limits.trunk_host)
        if adopt is None:
            if self.keep_originate_times:
                self.originates.append(time.monotonic())
            task = asyncio.create_task(session.run(), name=f"call-{call.call_id}")
        else:
            task = asyncio.create_task(session.adopt(adopt, "service restarted"),
                                       name=f"adopt-{call.call_id}")
        self._sessions[call.call_id] = (session, task)
        self.peak_concurrent = max(self.peak_concurrent, len(self._sessions))
        task.add_done_callback(functools.partial(self._ended, call.call_id))

    def _ended(self, call_id: str, task: asyncio.Task[None]) -> None:
        self._sessions.pop(call_id, None)
        self._slot_freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s session crashed", call_id, exc_info=task.exception())

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
            for broadcast_id in await self._store.cancelled_among(mine):
                claimed = self.cancel_broadcast(broadcast_id)
                await self._store.cancel_calls(claimed, datetime.now(UTC))
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
        """Account for calls a previous run of this node left live (after a crash)."""
        # Calls this process is following are not orphans (the dialer loop may be restarting).
        rows = [row for row in await self._store.in_flight_calls(self._node_id)
                if row.id not in self._sessions]
        if not rows:
            return
        never_dialled = [row.id for row in rows if row.setup_time is None]
        await self._store.release_calls(never_dialled)
        try:
            live = await self._ari.channel_ids()
        except AriError as error:
            log.warning("could not list Asterisk channels for recovery: %s", error)
            live = set()
        adopted = lost = 0
        for row in rows:
            if row.setup_time is None:
                continue
            state = _state_of(row)
            if channel_id_for(row.id) in live:
                self._start(ClaimedCall(row.id, row.broadcast_id, row.target, "", ()), state)
                adopted += 1
            else:
                ended = _lost(state)
                await self._store.save_final(row.id, final_record(ended))
                lost += 1
        log.info("recovery: %d calls requeued, %d live calls adopted and hung up, %d lost",
                 len(never_dialled), adopted, lost)

    async def reconcile(self) -> None:
        """After the event stream reconnects, catch up on what happened meanwhile.

        Calls whose channel vanished are lost; answered calls whose playback ended while no
        event could arrive move on to their next item or hang up.
        """
        try:
            live = await self._ari.channel_ids()
        except AriError as error:
            log.warning("could not list Asterisk channels after reconnecting: %s", error)
            return
        answered = []
        for session, _task in list(self._sessions.values()):
            if session.channel_id not in live:
                if session.state.phase is not Phase.DIALING:
                    session.report_lost("the channel ended while the event stream was down")
            elif session.state.phase is Phase.ANSWERED:
                answered.append(session.check_playback())
        await asyncio.gather(*answered)

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



def _state_of(row: CallRow) -> CallState:
    phase = Phase.ANSWERED if row.connect_time else (
        Phase.RINGING if row.ring_time else Phase.DIALING)
    return CallState(playlist_length=0, phase=phase, ring_time=_utc(row.ring_time),
                     connect_time=_utc(row.connect_time))


def _lost(state: CallState) -> CallState:
    return advance(state, ChannelLost(
        datetime.now(UTC), "the service restarted while the call was live; "
        "its outcome was not observed")).state


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)

