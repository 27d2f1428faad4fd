"""One call from originate to its final record: carries out what the state machine decides.

The session translates ARI events into domain events, feeds them to `advance`, and performs the
returned actions (play, hang up, persist). Watchdog deadlines make sure a call that never sends
`ChannelDestroyed` still ends with a record instead of holding a slot forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime

from app.adapters.ari.client import AriClient
from app.adapters.ari.errors import (
    AriConflict,
    AriError,
    AriNotFound,
    AriUnavailable,
    AriUnreachable,
)
from app.adapters.ari.events import (
    ChannelAnswered,
    ChannelEvent,
    ChannelGone,
    ChannelRinging,
    PlaybackEnded,
)
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.db.call_queue import CallQueue
from app.adapters.db.call_writes import CallWrites
from app.domain.broadcasts import CallFinal, ClaimedCall
from app.domain.call_state import (
    Answered,
    CallEvent,
    CallState,
    ChannelLost,
    Destroyed,
    EndedUnobserved,
    Hangup,
    HangupFoundNoChannel,
    HangupWanted,
    OriginateFailed,
    Phase,
    Play,
    PlaybackFinished,
    Ringing,
    SaveFinal,
    SaveProgress,
    advance,
)
from app.domain.dial_target import InvalidDialTarget, ari_endpoint, dial_uri
from app.domain.retry import RetryPolicy
from app.services.trunks import TrunkRoute, TrunkService

log = logging.getLogger(__name__)

HANGUP_GRACE_SECONDS = 10.0  # how long to wait for ChannelDestroyed after our DELETE
RING_GRACE_SECONDS = 15.0  # beyond Asterisk's own originate timeout
ABSOLUTE_TIMEOUT_MARGIN_SECONDS = 30  # past our own maximum: only for calls nobody follows
FAILOVER_WAIT_SECONDS = 30.0  # for a free call on the next trunk, within the same attempt
SAME_ID_RETRIES = 20  # the failed channel's id is free again within milliseconds


def channel_id_for(call_id: str) -> str:
    return f"voxcast-{call_id}"


def playback_id_for(channel_id: str, item: int) -> str:
    return f"{channel_id}-item-{item}"


def item_of_playback(playback_id: str) -> int | None:
    _, _, suffix = playback_id.rpartition("-item-")
    return int(suffix) if suffix.isdigit() else None


def _now() -> datetime:
    return datetime.now(UTC)


def _translate(event: ChannelEvent) -> CallEvent | None:
    match event:
        case ChannelRinging(at=at):
            return Ringing(at)
        case ChannelAnswered(at=at):
            return Answered(at)
        case ChannelGone(at=at, cause=cause, cause_text=text, tech_cause=tech, origin=origin):
            return Destroyed(at, cause, text, tech, origin)
        case PlaybackEnded(playback_id=playback_id, succeeded=ok):
            item = item_of_playback(playback_id)
            return None if item is None else PlaybackFinished(item, ok)
    return None


class CallSession:
    def __init__(self, call: ClaimedCall, *, ari: AriClient, media_server: str, queue: CallQueue,
                 writes: CallWrites, router: ChannelEventRouter, sip_endpoint: str, ari_app: str,
                 ring_timeout: int, max_call_seconds: int,
                 trunk_host: str | None = None, setup_must_be_durable: bool = True,
                 trunks: TrunkService | None = None, route: TrunkRoute | None = None,
                 no_route: str | None = None) -> None:
        self.call = call
        # Through a trunk: `route` holds one of its calls (taken by the dialer) until the
        # channel is gone; `no_route` says why no trunk could take the call.
        self._trunks = trunks
        self._route = route
        self._holding_trunk = route is not None
        self._no_route = no_route
        self._setup_must_be_durable = setup_must_be_durable
        self.channel_id = channel_id_for(call.call_id)
        self._ari = ari
        self._media_server = media_server
        self._queue = queue
        self._writes = writes
        self._router = router
        self._sip_endpoint = sip_endpoint
        self._ari_app = ari_app
        self._ring_timeout = ring_timeout
        self._max_call_seconds = max_call_seconds
        self._trunk_host = trunk_host
        self._events: asyncio.Queue[CallEvent] = asyncio.Queue()
        self._state = CallState(playlist_length=len(call.sounds))
        self._phase_deadline = 0.0
        self._hangup_requested: str | None = None
        self._playing: int | None = None  # the item whose play Asterisk accepted last
        self._retry = RetryPolicy.from_stored(call.retry)
        self._originate_uncertain = False
        self._originate_accepted = False
        self._heard_from_asterisk = False
        self.unresolved = False  # ended without knowing whether Asterisk placed the call
        self.ignored_events = 0

    @property
    def state(self) -> CallState:
        return self._state

    def deliver(self, event: ChannelEvent) -> None:
        """Called by the router for every event on this call's channel."""
        self._heard_from_asterisk = True
        translated = _translate(event)
        if translated is not None:
            self._events.put_nowait(translated)

    def request_hangup(self, reason: str) -> None:
        self._hangup_requested = reason
        self._events.put_nowait(HangupWanted(reason))

    @property
    def placed(self) -> bool:
        """Asterisk took the originate (or the call was re-attached): its channel existed."""
        return self._heard_from_asterisk or self._originate_accepted

    def ended_unobserved(self, at: datetime, answered_at: datetime | None,
                         cause: int | None) -> None:
        """Asterisk's channel log says how the call ended while no events reached us."""
        self._events.put_nowait(EndedUnobserved(at, answered_at, cause))

    def report_lost(self, reason: str, at: datetime | None = None) -> None:
        """The channel is gone without a ChannelDestroyed we saw; `at` is when it was lost."""
        self._events.put_nowait(ChannelLost(at or _now(), reason))

    async def check_playback(self) -> None:
        """After the event stream was down: end the current item if Asterisk finished it.

        Asterisk never replays events, so a PlaybackFinished sent during the gap is lost and
        the call would wait for max_call_seconds. A playback Asterisk no longer knows has
        ended; how it ended was not seen, so it reads "unknown" and the playlist goes on.
        """
        item = self._playing
        if self._state.phase is not Phase.ANSWERED or item != len(self._state.playback):
            return
        try:
            exists = await self._ari.playback_exists(playback_id_for(self.channel_id, item))
        except AriError as error:
            log.warning("call %s: could not look up its playback: %s", self.call.call_id, error)
            return
        if not exists:
            log.info("call %s: item %d ended while the event stream was down",
                     self.call.call_id, item)
            self._events.put_nowait(PlaybackFinished(item, succeeded=True, observed=False))

    async def run(self) -> None:
        """Originate, follow the call to its end, and store its final record."""
        self._router.register(self.channel_id, self.deliver)
        try:
            if self._hangup_requested is not None:
                # Cancelled or shutting down before the originate: never dial it.
                await self._queue.cancel_calls([self.call.call_id], _now())
                return
            setup = self._writes.mark_setup(
                self.call.call_id, _now(), self._media_server,
                self._route.trunk.name if self._route is not None else None)
            if self._setup_must_be_durable:
                # No channel log to settle a crashed call from: recovery must know from the
                # database that this call may have been placed before it is placed.
                await setup
            if await self._originate():
                await self._follow()
        except AriUnreachable:
            # Asterisk was not there (restarting): nothing was dialled, so queue it again
            # (after the setup write, so it cannot land on the requeued row).
            log.info("call %s: Asterisk unreachable, back to the queue", self.call.call_id)
            await setup
            await self._queue.requeue(self.call.call_id)
        finally:
            self._router.unregister(self.channel_id)
            self._release_trunk()

    def _release_trunk(self) -> None:
        if self._route is None or self._trunks is None or not self._holding_trunk:
            return
        self._holding_trunk = False
        outcome = self._state.outcome
        code = outcome.sip_code if outcome is not None else None
        self._trunks.release(self._route.trunk, str(code) if code else
                             (self._state.result.value if self._state.result else "none"))

    async def reattach(self, ring_time: datetime | None, connect_time: datetime | None,
                       first_item_seconds: float | None = None) -> None:
        """Follow a call that was live before a restart to its true end.

        Registered first, so no event of its end is missed while its state is read. Its
        playlist goes on from the item Asterisk is playing. When none is playing, either the
        crash came between the answer and the first play (the call has been up for less
        than the first item lasts: the playlist starts now), or the item under way at the
        crash has ended and the call is hung up.
        """
        self._router.register(self.channel_id, self.deliver)
        try:
            try:
                channel_state = await self._ari.channel_state(self.channel_id)
            except AriNotFound:
                self.unresolved = True  # ended meanwhile: settled from Asterisk's log
                return
            self._heard_from_asterisk = True
            length = len(self.call.sounds)
            if channel_state != "Up":
                phase = Phase.RINGING if channel_state in ("Ring", "Ringing") else Phase.DIALING
                self._state = CallState(length, phase, ring_time=ring_time)
            else:
                playing = await self._item_playing()
                self._playing = playing
                answered_at = connect_time or _now()
                if playing is None and _never_played(answered_at, first_item_seconds):
                    log.info("call %s: answered just before the crash, its playlist starts "
                             "now", self.call.call_id)
                    self._state = CallState(length, Phase.ANSWERED, ring_time=ring_time,
                                            connect_time=answered_at)
                    await self._perform(Play(0))
                else:
                    self._state = CallState(
                        length, Phase.ANSWERED, ring_time=ring_time, connect_time=answered_at,
                        playback=("unknown",) * (length if playing is None else playing))
                    if playing is None:
                        await self._apply(HangupWanted("the playlist ended while the service "
                                                       "was away"))
            await self._follow()
        finally:
            self._router.unregister(self.channel_id)
            self._release_trunk()

    async def _item_playing(self) -> int | None:
        for item in range(len(self.call.sounds)):
            if await self._ari.playback_exists(playback_id_for(self.channel_id, item)):
                return item
        return None

    def _endpoint_and_caller(self) -> tuple[str, str]:
        """Through the route's trunk (its endpoint, number format and caller-id form), or
        straight to the target's URI."""
        if self._no_route is not None:
            raise InvalidDialTarget(self._no_route)
        if self._route is not None and self._trunks is not None:
            trunk = self._route.trunk
            uri = trunk.dial_uri(self.call.target, self._trunks.host_for(trunk))
            return f"PJSIP/{trunk.name}/{uri}", trunk.caller_for(self.call.caller)
        return (ari_endpoint(self._sip_endpoint, dial_uri(self.call.target, self._trunk_host)),
                self.call.caller)

    async def _originate(self, *, conflict_raises: bool = False) -> bool:
        try:
            endpoint, caller_id = self._endpoint_and_caller()
            await self._ari.originate(
                channel_id=self.channel_id, endpoint=endpoint,
                app=self._ari_app, caller_id=caller_id,
                timeout_seconds=self._ring_timeout, app_args=self.call.call_id,
                # Asterisk hangs the call up itself when nobody controls it any more (the
                # service died and did not come back).
                variables={"TIMEOUT(absolute)": str(self._ring_timeout + self._max_call_seconds
                                                    + ABSOLUTE_TIMEOUT_MARGIN_SECONDS)})
        except AriUnreachable:
            raise
        except AriConflict as error:
            if conflict_raises:
                raise
            await self._apply(OriginateFailed(f"Asterisk did not place the call: {error}"))
            return False
        except InvalidDialTarget as error:  # a number, but no trunk (any more) to take it
            await self._apply(OriginateFailed(str(error)))
            return False
        except AriUnavailable as error:
            # Sent, or maybe sent, before the connection broke: if Asterisk placed the call,
            # its events arrive as usual; if nothing is heard, the call is settled from
            # Asterisk's own log (placed or not) instead of guessed.
            log.warning("call %s: originate outcome unknown (%s)", self.call.call_id, error)
            self._originate_uncertain = True
        except AriError as error:
            await self._apply(OriginateFailed(f"Asterisk did not place the call: {error}"))
            return False
        else:
            self._originate_accepted = True
        return True

    async def _follow(self) -> None:
        self._set_deadline()
        while self._state.phase is not Phase.ENDED:
            remaining = self._phase_deadline - time.monotonic()
            try:
                event = await asyncio.wait_for(self._events.get(), timeout=max(remaining, 0))
            except TimeoutError:
                event = self._deadline_event()
            if (isinstance(event, ChannelLost) and self._originate_uncertain
                    and not self._heard_from_asterisk):
                self.unresolved = True  # the row stays in flight for the dialer to settle
                return
            if isinstance(event, Destroyed) and await self._failed_over(event):
                continue
            await self._apply(event)

    async def _failed_over(self, event: Destroyed) -> bool:
        """The trunk refused the call with a failover code before answer: place it again,
        under the same channel id, through the next trunk that can take it now."""
        route, trunks = self._route, self._trunks
        if (route is None or trunks is None or self._state.answered
                or self._hangup_requested is not None or not route.later
                or event.tech_cause not in route.trunk.spec.failover_codes):
            return False
        trunks.release(route.trunk, str(event.tech_cause))
        self._holding_trunk = False
        following = await trunks.take_for_failover(route.later, FAILOVER_WAIT_SECONDS)
        if following is None:
            return False
        following.failed_over_from[:0] = [*route.failed_over_from,
                                          f"{route.trunk.name}: {event.tech_cause}"]
        self._route, self._holding_trunk = following, True
        log.info("call %s: %s answered %s, failing over to %s", self.call.call_id,
                 route.trunk.name, event.tech_cause, following.trunk.name)
        self._state = CallState(playlist_length=len(self.call.sounds))
        self._originate_accepted = False
        for _ in range(SAME_ID_RETRIES):
            try:
                placed = await self._originate(conflict_raises=True)
            except AriConflict:  # the refused channel is not quite gone yet
                await asyncio.sleep(0.05)
                continue
            if not placed:
                return True  # OriginateFailed was applied: the call has its record
            self._set_deadline()
            return True
        await self._apply(OriginateFailed("Asterisk kept the refused channel's id busy"))
        return True


    def _deadline_event(self) -> CallEvent:
        if self._state.phase is Phase.HANGING_UP:
            return ChannelLost(_now(), "Asterisk never reported the end of the call")
        if self._state.phase is Phase.ANSWERED:
            return HangupWanted("maximum call duration reached")
        return HangupWanted("no answer and no outcome from Asterisk in time")

    def _set_deadline(self) -> None:
        phase = self._state.phase
        if phase is Phase.HANGING_UP:
            seconds = HANGUP_GRACE_SECONDS
        elif phase is Phase.ANSWERED:
            seconds = float(self._max_call_seconds)
        else:
            seconds = self._ring_timeout + RING_GRACE_SECONDS
        self._phase_deadline = time.monotonic() + seconds

    async def _apply(self, event: CallEvent) -> None:
        before = self._state.phase
        transition = advance(self._state, event)
        if transition.ignored:
            self.ignored_events += 1
            log.debug("call %s ignored %s in %s", self.call.call_id, event, before)
            return
        self._state = transition.state
        if self._state.phase is not before:
            self._set_deadline()
        for action in transition.actions:
            await self._perform(action)

    async def _perform(self, action: Play | Hangup | SaveProgress | SaveFinal) -> None:
        match action:
            case Play(item=item):
                try:
                    await self._ari.play(
                        channel_id=self.channel_id,
                        playback_id=playback_id_for(self.channel_id, item),
                        media=self.call.sounds[item])
                    self._playing = item
                except AriNotFound:
                    pass  # the channel is gone; ChannelDestroyed follows
                except AriError as error:
                    log.warning("call %s: play item %d failed: %s", self.call.call_id, item, error)
                    self._events.put_nowait(PlaybackFinished(item, succeeded=False))
            case Hangup():
                if not await self._hangup_quietly():
                    self._events.put_nowait(HangupFoundNoChannel())
            case SaveProgress():
                # Not awaited: audio must not wait for a commit. A crash before it is stored
                # leaves the call in flight all the same, and its final record has the times.
                self._writes.save_progress(
                    self.call.call_id, state=self._state.phase.value,
                    ring_time=self._state.ring_time, connect_time=self._state.connect_time)
            case SaveFinal():
                final = final_record(self._state)
                if self._route is not None:
                    final = dataclasses.replace(
                        final, trunk=self._route.trunk.name,
                        failed_over_from=self._route.failed_over_from or None)
                retry_at = None if self._retry is None else self._retry.next_attempt_at(
                    attempt=self.call.attempt, answered=self._state.answered,
                    result=final.result, sip_code=final.sip_code,
                    ended_at=final.disconnect_time or _now())
                # Awaited, so the dialer's slot and a cancel's "report ready" follow the record;
                # until it is committed the row stays in flight, where recovery finds it.
                await self._writes.save_final(self.call.call_id, final, retry_at)
                answered_for = (final.disconnect_time - final.connect_time
                                if final.connect_time and final.disconnect_time else None)
                seconds = round(answered_for.total_seconds()) if answered_for else 0
                # Ids and outcome only: the target and the variables are the tenant's data.
                log.info("call %s of request %s ended: %s, SIP %s %s, %d s", self.call.call_id,
                         self.call.broadcast_id, final.result, final.sip_code or "-",
                         final.sip_text or "", seconds)

    async def _hangup_quietly(self) -> bool:
        """Hang up; False when the channel was already gone."""
        try:
            await self._ari.hangup(self.channel_id)
        except AriNotFound:
            return False
        except AriError as error:
            log.warning("call %s: hang-up failed: %s", self.call.call_id, error)
        return True


def _never_played(answered_at: datetime, first_item_seconds: float | None) -> bool:
    """Up for less time than the first item lasts, with nothing playing: it never started
    (a playback cannot end before its length). Unknown length: assume it played."""
    return first_item_seconds is not None and \
        (_now() - answered_at).total_seconds() < first_item_seconds


def final_record(state: CallState) -> CallFinal:
    outcome = state.outcome
    assert outcome is not None and state.result is not None  # noqa: S101 - set by ENDED
    return CallFinal(
        result=state.result.value, disconnect_time=state.disconnect_time or _now(),
        ring_time=state.ring_time, connect_time=state.connect_time,
        sip_code=outcome.sip_code, sip_text=outcome.sip_text,
        sip_code_source=outcome.source.value, q850_cause=outcome.q850_cause,
        q850_text=outcome.q850_text,
        hangup_by=state.hangup_by.value if state.hangup_by else None,
        playback=list(state.playback))
