"""The dialer: claims queued calls and runs one CallSession per call, within the limits.

It never exceeds `max_concurrent` live calls nor `calls_per_second` originates, nor any
trunk's own limits (a call to a number waits for a healthy trunk with a free call and pacing
slot), spreads calls over its media servers by their free capacity, and never dials through a
server whose ARI event stream is down (an originate to an app with no websocket is answered
and dropped at once). It owns every session task: at shutdown it drains, then hangs up what is
left. After a crash or a lost event stream it settles what each server was carrying (see
`recover`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections import Counter, deque
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.adapters.ari.errors import AriError, AriUnreachable
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.cel.channel_log import ChannelHistory
from app.adapters.db.call_queue import CallQueue
from app.adapters.db.call_writes import CallWrites
from app.domain.broadcasts import ClaimedCall, InFlightCall
from app.domain.call_state import CallState, ChannelLost, EndedUnobserved, Phase, advance
from app.domain.dial_target import is_phone_number
from app.services.call_session import CallSession, channel_id_for, final_record
from app.services.media_server import MediaServer
from app.services.trunks import TrunkRoute, TrunkService

log = logging.getLogger(__name__)

IDLE_POLL_SECONDS = 1.0  # how often an idle dialer looks for work it was not told about
HANGUP_WAIT_SECONDS = 12.0  # at shutdown, for ChannelDestroyed after our hang-ups
UNRESOLVED_SETTLE_DELAY = 1.0  # Asterisk logs a channel's events within milliseconds
ELSEWHERE_COUNT_SECONDS = 0.25  # how often other nodes' calls on shared servers are counted
MEDIA_SERVER_LOST = "media server lost: Asterisk stopped while the call was live"
TRUNK_WAIT_SECONDS = 30.0  # a number whose trunks are all unhealthy waits this long, then fails
TRUNK_POLL_SECONDS = 0.05  # how often waiting calls look again for a trunk's pacing slot


@dataclass(frozen=True, slots=True)
class DialerLimits:
    calls_per_second: float
    max_concurrent: int
    ring_timeout: int
    max_call_seconds: int
    trunk_host: str | None = None


@dataclass(slots=True)
class _Live:
    session: CallSession
    task: asyncio.Task[None]
    server: MediaServer


class Dialer:
    def __init__(self, *, queue: CallQueue, writes: CallWrites, servers: list[MediaServer],
                 router: ChannelEventRouter, limits: DialerLimits, node_id: str,
                 sip_endpoint: str, ari_app: str, capacity_shared: bool = False,
                 trunks: TrunkService | None = None) -> None:
        if not servers:
            raise ValueError("a dialer needs at least one media server")
        self._queue = queue
        self._writes = writes
        self.servers = servers
        self._router = router
        self._limits = limits
        self._node_id = node_id
        self._sip_endpoint = sip_endpoint
        self._ari_app = ari_app
        self._sessions: dict[str, _Live] = {}
        self._live_on: Counter[str] = Counter()  # live calls by media server name
        # Other nodes' live calls on each server, refreshed at every claim, when a server's
        # capacity is shared by every node dialling through it (listed servers); a node's own
        # Asterisk is bounded by its own max_concurrent.
        self._capacity_shared = capacity_shared
        self._elsewhere: dict[str, int] = {}
        self._work_available = asyncio.Event()
        self._capacity_changed = asyncio.Event()  # a call ended, a server (dis)connected
        self._next_slot = 0.0
        self._pending: deque[ClaimedCall] = deque()  # claimed, waiting for a pacing slot
        self._checks: set[asyncio.Task[None]] = set()  # background checks under way, owned
        # Claims and recovery never interleave: a claimed row is in `_pending` before
        # recovery can see it, so recovery never gives back a call about to be dialled.
        self._queue_lock = asyncio.Lock()
        for server in servers:
            server.events.set_handlers(on_lost=functools.partial(self.stream_lost, server),
                                       on_connected=functools.partial(self.connected, server))
        self._trunks = trunks
        self._unroutable_since: dict[str, float] = {}  # call id -> when it found no ready trunk
        if trunks is not None:
            trunks.on_change(self._capacity_changed.set)
        self.peak_concurrent = 0
        self.originates: list[float] = []  # monotonic send times, kept for measurement
        self.keep_originate_times = False

    @property
    def live_calls(self) -> int:
        return len(self._sessions)

    def wake(self) -> None:
        """New work may be claimable (a request was accepted or its media got ready)."""
        self._work_available.set()

    def free_capacity(self) -> int:
        """Calls this node may start now: within its own limit and its servers' capacity."""
        own = self._limits.max_concurrent - len(self._sessions)
        servers = sum(self._free_on(server) for server in self.servers if server.connected)
        return min(own, servers)

    def _free_on(self, server: MediaServer) -> int:
        return max(0, server.capacity - self._live_on[server.name]
                   - self._elsewhere.get(server.name, 0))

    async def run(self) -> None:
        """Claim and dial until cancelled (each server's connect handler settles its past)."""
        counting = asyncio.create_task(self._count_elsewhere(), name="count-elsewhere") \
            if self._capacity_shared else None
        try:
            await self._claim_and_dial()
        finally:
            if counting is not None:
                counting.cancel()
                await asyncio.gather(counting, return_exceptions=True)

    async def _count_elsewhere(self) -> None:
        """Other nodes' live calls on each server, a few times a second: a node can then
        overrun a shared capacity only by what the others started since the last count."""
        while True:
            with contextlib.suppress(Exception):  # a database hiccup: count again soon
                self._elsewhere = await self._queue.live_elsewhere(self._node_id)
            await asyncio.sleep(ELSEWHERE_COUNT_SECONDS)

    async def _claim_and_dial(self) -> None:
        while True:
            self._capacity_changed.clear()
            free = self.free_capacity()
            if free <= 0:  # every slot taken, or no server connected
                await self._capacity_changed.wait()
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
                server = self._least_loaded()
                if server is None:
                    break  # every server went down or is full: give the rest back
                picked = self._next_startable()
                if picked is None:  # every waiting call's trunks are busy or not ready
                    self._next_slot = time.monotonic()  # the slot was not used: give it back
                    self._capacity_changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._capacity_changed.wait(),
                                               TRUNK_POLL_SECONDS)
                    continue
                call, route, no_route = picked
                sounds = await server.playable(call.sounds)
                self._start(dataclasses.replace(call, sounds=sounds), server, route=route,
                            no_route=no_route)
        finally:
            # Cancelled, or no server can take calls: unstarted calls go back to the queue.
            unstarted = [call.call_id for call in self._pending]
            self._pending.clear()
            self._unroutable_since.clear()
            await asyncio.shield(self._queue.release_calls(unstarted))

    def _next_startable(self) -> tuple[ClaimedCall, TrunkRoute | None, str | None] | None:
        """The first waiting call that can start now, taken out of `_pending`, with the
        trunk it holds (numbers) or why no trunk will take it. None: none can start now.

        A number whose trunks are all unhealthy waits up to TRUNK_WAIT_SECONDS (a trunk may
        be registering), then fails; one whose trunks are only busy waits its turn."""
        now = time.monotonic()
        for call in self._pending:
            if self._trunks is None or not self._trunks.table or not is_phone_number(call.target):
                picked: tuple[ClaimedCall, TrunkRoute | None, str | None] = (call, None, None)
            else:
                candidates = self._trunks.candidates(call)
                route = self._trunks.take(candidates) if candidates else None
                if route is not None:
                    picked = (call, route, None)
                elif not candidates:
                    picked = (call, None, "no configured trunk serves this number with this "
                                          "caller id (the trunks file changed)")
                elif self._trunks.any_ready(candidates):
                    continue  # busy: its turn comes when a call ends or a slot opens
                elif now - self._unroutable_since.setdefault(call.call_id, now) \
                        < TRUNK_WAIT_SECONDS:
                    continue
                else:
                    states = ", ".join(f"{trunk.name} {self._trunks.state(trunk)}"
                                       for trunk in candidates)
                    picked = (call, None, f"no trunk could take the call ({states})")
            self._pending.remove(call)
            self._unroutable_since.pop(call.call_id, None)
            return picked
        return None

    def _least_loaded(self) -> MediaServer | None:
        """The connected server with the most free capacity, if any has some."""
        best, best_free = None, 0
        for server in self.servers:
            free = self._free_on(server)
            if server.connected and free > best_free:
                best, best_free = server, free
        return best

    async def _wait_for_slot(self) -> None:
        interval = 1.0 / self._limits.calls_per_second
        now = time.monotonic()
        if now < self._next_slot:
            await asyncio.sleep(self._next_slot - now)
            now = time.monotonic()
        self._next_slot = max(self._next_slot, now) + interval

    def _start(self, call: ClaimedCall, server: MediaServer,
               reattach: tuple[datetime | None, datetime | None, float | None] | None = None,
               *, route: TrunkRoute | None = None, no_route: str | None = None) -> None:
        session = CallSession(
            call, ari=server.ari, media_server=server.name, queue=self._queue,
            writes=self._writes, router=self._router,
            sip_endpoint=self._sip_endpoint, ari_app=self._ari_app,
            ring_timeout=self._limits.ring_timeout,
            max_call_seconds=self._limits.max_call_seconds,
            trunk_host=self._limits.trunk_host,
            # With Asterisk's channel log, recovery learns from it whether a crashed call was
            # placed, so the originate need not wait for the setup write.
            setup_must_be_durable=not server.history.available,
            trunks=self._trunks, route=route, no_route=no_route)
        if reattach is None:
            if self.keep_originate_times:
                self.originates.append(time.monotonic())
            task = asyncio.create_task(session.run(), name=f"call-{call.call_id}")
        else:
            task = asyncio.create_task(session.reattach(*reattach),
                                       name=f"reattach-{call.call_id}")
        self._sessions[call.call_id] = _Live(session, task, server)
        self._live_on[server.name] += 1
        self.peak_concurrent = max(self.peak_concurrent, len(self._sessions))
        task.add_done_callback(functools.partial(self._ended, call.call_id))

    def _ended(self, call_id: str, task: asyncio.Task[None]) -> None:
        live = self._sessions.pop(call_id, None)
        self._capacity_changed.set()
        if live is not None:
            self._live_on[live.server.name] -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("call %s session crashed", call_id, exc_info=task.exception())
        elif live is not None and live.session.unresolved:
            self._in_background(self._settle_unresolved(live.server), "settle-unresolved")

    async def _settle_unresolved(self, server: MediaServer) -> None:
        # Asterisk writes its channel log a moment after the event; once it is back, look.
        await asyncio.sleep(UNRESOLVED_SETTLE_DELAY)
        await server.events.connected.wait()
        await self.recover(server)

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
            self._unroutable_since.pop(call.call_id, None)
        return [call.call_id for call in dropped]

    async def watch_cancellations(self, every_seconds: float = 1.0) -> None:
        """Honour cancels made through other nodes: drop claimed calls, hang up live ones."""
        while True:
            await asyncio.sleep(every_seconds)
            mine = {call.broadcast_id for call in self._pending}
            mine.update(live.session.call.broadcast_id for live in self._sessions.values())
            if not mine:
                continue
            for broadcast_id in await self._queue.cancelled_among(mine):
                claimed = self.cancel_broadcast(broadcast_id)
                await self._queue.cancel_calls(claimed, datetime.now(UTC))
                for live in list(self._sessions.values()):
                    if live.session.call.broadcast_id == broadcast_id:
                        live.session.request_hangup("cancelled")

    async def hang_up_broadcast(self, broadcast_id: str, wait_seconds: float) -> int:
        """Hang up this broadcast's live calls and wait (bounded) for their records."""
        lives = [live for live in self._sessions.values()
                 if live.session.call.broadcast_id == broadcast_id]
        for live in lives:
            live.session.request_hangup("cancelled")
        if lives:
            await asyncio.wait([live.task for live in lives], timeout=wait_seconds)
        return len(lives)

    def _on(self, server: MediaServer) -> list[_Live]:
        return [live for live in self._sessions.values() if live.server is server]

    async def recover(self, server: MediaServer) -> None:
        """Settle the calls this node left in flight on `server`: after a crash, a lost event
        stream or an originate whose fate was unknown. Live channels are followed again;
        calls that ended unobserved are recorded from Asterisk's channel event log; calls
        Asterisk never saw go back to the queue."""
        async with self._queue_lock:
            # Calls this process follows, or has claimed and is about to dial, are not orphans.
            followed = set(self._sessions) | {call.call_id for call in self._pending}
            calls = [item for item in await self._queue.in_flight_calls(self._node_id)
                     if item.call.call_id not in followed and self._placed_by(item, server)]
            if not calls:
                return
            # With the channel log, any claimed call may have been placed (its setup write is
            # not awaited): the log says which were. Without it, the durable setup time does.
            never_dialled = [] if server.history.available else \
                [item.call.call_id for item in calls if item.setup_time is None]
            await self._queue.release_calls(never_dialled)
            dialled = [item for item in calls if item.call.call_id not in never_dialled]
            try:
                live = await server.ari.channel_ids()
            except AriError as error:
                log.warning("could not list the channels of %s to recover %d calls (%s): "
                            "trying again when its event stream is back", server.name,
                            len(dialled), error)
                return
            histories = await server.history.histories(
                {channel_id_for(item.call.call_id) for item in dialled})
            counts: Counter[str] = Counter(requeued=len(never_dialled))
            for item in dialled:
                channel_id = channel_id_for(item.call.call_id)
                counts[await self._settle(server, item, channel_id in live,
                                          histories.get(channel_id))] += 1
            log.info("recovery on %s: %s", server.name,
                     ", ".join(f"{count} {what}" for what, count in counts.items()))

    def _placed_by(self, item: InFlightCall, server: MediaServer) -> bool:
        """Calls placed through `server`; those with no server yet (claimed, maybe about to
        be placed, or from before servers were recorded) belong to the first one."""
        if item.media_server is None:
            return server is self.servers[0]
        return item.media_server == server.name or (
            server is self.servers[0]
            and all(other.name != item.media_server for other in self.servers))

    async def _settle(self, server: MediaServer, item: InFlightCall, live: bool,
                      history: ChannelHistory | None) -> str:
        call_id = item.call.call_id
        answered_at = item.connect_time or (history.answered_at if history else None)
        if live:
            first_item_seconds = await server.sound_seconds(item.call.sounds[0]) \
                if item.call.sounds else None
            call = dataclasses.replace(item.call, sounds=await server.playable(item.call.sounds))
            route = self._trunks.adopt(item.trunk) if self._trunks and item.trunk else None
            self._start(call, server, reattach=(item.ring_time, answered_at, first_item_seconds),
                        route=route)
            return "followed again"
        if history is None or history.created_at is None:
            if server.history.available:
                await self._queue.requeue(call_id)  # Asterisk never saw it: nobody was called
                return "requeued"
            return await self._save_lost(server, item, answered_at, "its outcome is unknown: it "
                                         "ended while the service was away and Asterisk keeps "
                                         "no channel log here")
        if history.hung_up_at is None:
            return await self._save_lost(server, item, answered_at, MEDIA_SERVER_LOST)
        state = CallState(len(item.call.sounds), ring_time=item.ring_time,
                          connect_time=item.connect_time)
        ended = advance(state, EndedUnobserved(history.hung_up_at, answered_at,
                                               history.hangup_cause)).state
        await self._writes.save_final(call_id, final_record(ended))
        return "recorded from Asterisk's log"

    async def _save_lost(self, server: MediaServer, item: InFlightCall,
                         answered_at: datetime | None, reason: str) -> str:
        state = CallState(len(item.call.sounds), ring_time=item.ring_time,
                          connect_time=answered_at)
        ended = advance(state, ChannelLost(server.lost_at or datetime.now(UTC), reason)).state
        await self._writes.save_final(item.call.call_id, final_record(ended))
        return "lost"

    def stream_lost(self, server: MediaServer, at: datetime) -> None:
        """A server's event stream dropped: find out at once whether Asterisk itself is gone."""
        server.lost_at = at
        self._capacity_changed.set()
        self._in_background(self._check_media_server(server, at), "media-server-check")

    async def _check_media_server(self, server: MediaServer, at: datetime) -> None:
        try:
            await server.ari.startup_time()
        except AriUnreachable:
            self._media_server_lost(server, at)
        except AriError as error:
            log.warning("event stream of %s lost and it answers oddly (%s): waiting for the "
                        "stream to come back", server.name, error)

    def _media_server_lost(self, server: MediaServer, at: datetime) -> None:
        """Asterisk is gone, and every call it carried with it: record them as they stood."""
        lives = self._on(server)
        if lives:
            log.error("media server %s is gone: %d live calls are lost", server.name, len(lives))
        for live in lives:
            live.session.report_lost(MEDIA_SERVER_LOST, at)

    async def connected(self, server: MediaServer, first: bool) -> None:
        """A server's event stream (re)connected: catch up, in the background (events keep
        flowing meanwhile), on what happened while no events came: calls whose channel ended
        are settled, answered calls whose playback ended move on, leftovers are recovered."""
        self._capacity_changed.set()
        self._in_background(self._reconcile(server), f"reconcile-{server.name}")

    async def _reconcile(self, server: MediaServer) -> None:
        try:
            started = await server.ari.startup_time()
            live = await server.ari.channel_ids()
        except AriError as error:
            log.warning("could not list the channels of %s after connecting: %s", server.name,
                        error)
            return
        restarted = server.started is not None and started != server.started
        server.started = started
        lost_at = server.lost_at or datetime.now(UTC)
        gone = [live_call.session for live_call in self._on(server)
                if live_call.session.placed and live_call.session.channel_id not in live]
        histories = {} if restarted else await server.history.histories(
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
        await asyncio.gather(*(live_call.session.check_playback()
                               for live_call in self._on(server)
                               if live_call.session.channel_id in live
                               and live_call.session.state.phase is Phase.ANSWERED))
        await self.recover(server)

    async def shutdown(self, drain_timeout: float) -> None:
        """Let live calls finish for `drain_timeout` s, then hang up and record the rest."""
        if self._sessions:
            log.info("draining %d live calls for up to %.0f s", len(self._sessions),
                     drain_timeout)
            await asyncio.wait([live.task for live in self._sessions.values()],
                               timeout=drain_timeout)
        for live in list(self._sessions.values()):
            live.session.request_hangup("service shutting down")
        if self._sessions:
            await asyncio.wait([live.task for live in self._sessions.values()],
                               timeout=HANGUP_WAIT_SECONDS)
        for live in list(self._sessions.values()):
            live.task.cancel()  # left in flight: the next start recovers them
        if self._sessions:
            await asyncio.wait([live.task for live in self._sessions.values()])
        for task in list(self._checks):
            task.cancel()
        await asyncio.gather(*self._checks, return_exceptions=True)

    def status(self) -> list[dict[str, Any]]:
        """Each media server as /ready and /monitor show it."""
        return [{"name": server.name, "connected": server.connected,
                 "live_calls": self._live_on[server.name], "capacity": server.capacity}
                for server in self.servers]
