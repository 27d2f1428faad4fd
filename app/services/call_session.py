"""One call from originate to its final record: carries out what the state machine decides.

The session translates ARI events into domain events, feeds them to `advance`, and performs the
returned actions (play, hang up, persist). Watchdog deadlines make sure a call that never sends
`ChannelDestroyed` still ends with a record instead of holding a slot forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from app.adapters.ari.client import AriClient
from app.adapters.ari.errors import AriError, AriNotFound, AriUnavailable, AriUnreachable
from app.adapters.ari.events import (
    ChannelAnswered,
    ChannelEvent,
    ChannelGone,
    ChannelRinging,
    PlaybackEnded,
)
from app.adapters.ari.routing import ChannelEventRouter
from app.adapters.db.store import CallFinal, ClaimedCall, ReportStore
from app.domain.call_state import (
    Answered,
    CallEvent,
    CallState,
    ChannelLost,
    Destroyed,
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

log = logging.getLogger(__name__)

HANGUP_GRACE_SECONDS = 10.0  # how long to wait for ChannelDestroyed after our DELETE
RING_GRACE_SECONDS = 15.0  # beyond Asterisk's own originate timeout


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
        case ChannelGone(at=at, cause=cause, cause_text=text, tech_cause=tech):
            return Destroyed(at, cause, text, tech)
        case PlaybackEnded(playback_id=playback_id, succeeded=ok):
            item = item_of_playback(playback_id)
            return None if item is None else PlaybackFinished(item, ok)
    return None


class CallSession:
    def __init__(self, call: ClaimedCall, *, ari: AriClient, store: ReportStore,
                 router: ChannelEventRouter, sip_endpoint: str, ari_app: str,
                 ring_timeout: int, max_call_seconds: int,
                 trunk_host: str | None = None) -> None:
        self.call = call
        self.channel_id = channel_id_for(call.call_id)
        self._ari = ari
        self._store = store
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
        self.ignored_events = 0

    @property
    def state(self) -> CallState:
        return self._state

    def deliver(self, event: ChannelEvent) -> None:
        """Called by the router for every event on this call's channel."""
        translated = _translate(event)
        if translated is not None:
            self._events.put_nowait(translated)

    def request_hangup(self, reason: str) -> None:
        self._hangup_requested = reason
        self._events.put_nowait(HangupWanted(reason))

    def report_lost(self, reason: str) -> None:
        self._events.put_nowait(ChannelLost(_now(), reason))

    async def check_playback(self) -> None:
        """After the event stream was down: end the current item if Asterisk finished it.

        Asterisk never replays events, so a PlaybackFinished sent during the gap is lost and
        the call would wait for max_call_seconds. A playback Asterisk no longer knows has
        ended; how it ended was not seen, so it counts as done and the playlist goes on.
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
            self._events.put_nowait(PlaybackFinished(item, succeeded=True))

    async def run(self) -> None:
        """Originate, follow the call to its end, and store its final record."""
        self._router.register(self.channel_id, self.deliver)
        try:
            if self._hangup_requested is not None:
                # Cancelled or shutting down before the originate: never dial it.
                await self._store.cancel_calls([self.call.call_id], _now())
                return
            await self._store.mark_setup(self.call.call_id, _now())
            if await self._originate():
                await self._follow()
        except AriUnreachable:
            # Asterisk was not there (restarting): nothing was dialled, so queue it again.
            log.info("call %s: Asterisk unreachable, back to the queue", self.call.call_id)
            await self._store.requeue(self.call.call_id)
        finally:
            self._router.unregister(self.channel_id)

    async def adopt(self, state: CallState, reason: str) -> None:
        """Take over a call that was live before a restart, and hang it up."""
        self._state = state
        self._router.register(self.channel_id, self.deliver)
        try:
            await self._apply(HangupWanted(reason))
            await self._follow()
        finally:
            self._router.unregister(self.channel_id)

    async def _originate(self) -> bool:
        try:
            await self._ari.originate(
                channel_id=self.channel_id,
                endpoint=ari_endpoint(self._sip_endpoint,
                                      dial_uri(self.call.target, self._trunk_host)),
                app=self._ari_app, caller_id=self.call.caller,
                timeout_seconds=self._ring_timeout, app_args=self.call.call_id,
                variables={"VOXCAST_CALL_ID": self.call.call_id})
        except AriUnreachable:
            raise
        except InvalidDialTarget as error:  # a number, but the trunk setting was removed
            await self._apply(OriginateFailed(str(error)))
            return False
        except AriError as error:
            if isinstance(error, AriUnavailable):
                # The request may have reached Asterisk before the connection broke:
                # make sure no orphan channel rings on without us.
                await self._hangup_quietly()
            await self._apply(OriginateFailed(f"Asterisk did not place the call: {error}"))
            return False
        return True

    async def _follow(self) -> None:
        self._set_deadline()
        while self._state.phase is not Phase.ENDED:
            remaining = self._phase_deadline - time.monotonic()
            try:
                event = await asyncio.wait_for(self._events.get(), timeout=max(remaining, 0))
            except TimeoutError:
                event = self._deadline_event()
            await self._apply(event)

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
                await self._store.save_progress(
                    self.call.call_id, state=self._state.phase.value,
                    ring_time=self._state.ring_time, connect_time=self._state.connect_time)
            case SaveFinal():
                final = final_record(self._state)
                retry_at = None if self._retry is None else self._retry.next_attempt_at(
                    attempt=self.call.attempt, answered=self._state.answered,
                    result=final.result, sip_code=final.sip_code,
                    ended_at=final.disconnect_time or _now())
                await self._store.save_final(self.call.call_id, final, retry_at)

    async def _hangup_quietly(self) -> bool:
        """Hang up; False when the channel was already gone."""
        try:
            await self._ari.hangup(self.channel_id)
        except AriNotFound:
            return False
        except AriError as error:
            log.warning("call %s: hang-up failed: %s", self.call.call_id, error)
        return True


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
