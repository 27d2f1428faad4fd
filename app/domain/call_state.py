"""The life of one call as a pure state machine: `(state, event) -> Transition`.

No I/O here. The call session feeds it what happened (originate result, ARI events, deadlines,
shutdown) and carries out the actions it returns. An event that makes no sense in the current
phase is returned as `ignored`, so the caller can count and log it instead of guessing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from app.domain.causes import (
    CallOutcome,
    HangupOrigin,
    SipCodeSource,
    outcome_from_channel_log,
    outcome_of_destroyed_channel,
)


class Phase(StrEnum):
    DIALING = "dialing"  # originate sent, nothing heard yet
    RINGING = "ringing"  # the far end sent 180
    ANSWERED = "answered"  # up, playing the playlist
    HANGING_UP = "hanging_up"  # we asked Asterisk to hang up, waiting for ChannelDestroyed
    ENDED = "ended"


class Result(StrEnum):
    COMPLETED = "completed"  # the attempt reached a final outcome, whatever it was
    FAILED = "failed"  # the service or Asterisk could not place the call


class HangupBy(StrEnum):
    SERVICE = "service"
    FAR_END = "far_end"
    MEDIA_SERVER = "media_server"


# --- events fed to the machine -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OriginateFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Ringing:
    at: datetime


@dataclass(frozen=True, slots=True)
class Answered:
    at: datetime


@dataclass(frozen=True, slots=True)
class PlaybackFinished:
    item: int
    succeeded: bool
    observed: bool = True  # False: it ended while no events reached us; how is unknown


@dataclass(frozen=True, slots=True)
class Destroyed:
    at: datetime
    cause: int | None
    cause_text: str | None
    tech_cause: int | None
    origin: HangupOrigin | None = None  # None: this Asterisk does not report it


@dataclass(frozen=True, slots=True)
class HangupWanted:
    """Shutdown, cancel or a watchdog deadline: end the call from our side."""

    reason: str


@dataclass(frozen=True, slots=True)
class ChannelLost:
    """The channel vanished without a ChannelDestroyed we saw (events were missed)."""

    at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class EndedUnobserved:
    """Asterisk's channel event log tells how the call ended while nobody listened."""

    at: datetime
    answered_at: datetime | None
    cause: int | None


@dataclass(frozen=True, slots=True)
class HangupFoundNoChannel:
    """Our hang-up found the channel already gone: the far end (or Asterisk) ended it first."""


CallEvent = (OriginateFailed | Ringing | Answered | PlaybackFinished | Destroyed | HangupWanted
             | ChannelLost | EndedUnobserved | HangupFoundNoChannel)


# --- actions for the session to carry out --------------------------------------------------

@dataclass(frozen=True, slots=True)
class Play:
    item: int


@dataclass(frozen=True, slots=True)
class Hangup:
    reason: str


@dataclass(frozen=True, slots=True)
class SaveProgress:
    """Ring or connect time changed: persist it so a crash keeps it."""


@dataclass(frozen=True, slots=True)
class SaveFinal:
    """The call ended: write its final record."""


Action = Play | Hangup | SaveProgress | SaveFinal


@dataclass(frozen=True, slots=True)
class CallState:
    playlist_length: int
    phase: Phase = Phase.DIALING
    ring_time: datetime | None = None
    connect_time: datetime | None = None
    disconnect_time: datetime | None = None
    playback: tuple[str, ...] = ()  # "done" or "failed" per item, in order
    hangup_by: HangupBy | None = None
    hangup_reason: str | None = None
    result: Result | None = None
    outcome: CallOutcome | None = None
    failure: str | None = None

    @property
    def answered(self) -> bool:
        return self.connect_time is not None


@dataclass(frozen=True, slots=True)
class Transition:
    state: CallState
    actions: tuple[Action, ...] = field(default=())
    ignored: bool = False


def _who_hung_up(state: CallState, origin: HangupOrigin | None) -> HangupBy | None:
    """Of an answered call we did not hang up: the far end, or Asterisk itself (its safety
    timeouts: TIMEOUT(absolute), rtp_timeout)."""
    if not state.answered:
        return None
    if origin is not None and origin.ended_by_asterisk:
        return HangupBy.MEDIA_SERVER
    return HangupBy.FAR_END


def _ignored(state: CallState) -> Transition:
    return Transition(state, (), ignored=True)


def _next_after_answer(state: CallState) -> Transition:
    if state.playlist_length == 0:
        hung = replace(state, phase=Phase.HANGING_UP, hangup_by=HangupBy.SERVICE,
                       hangup_reason="playlist finished")
        return Transition(hung, (SaveProgress(), Hangup("playlist finished")))
    return Transition(state, (SaveProgress(), Play(0)))


def advance(state: CallState, event: CallEvent) -> Transition:
    """The one place that decides what a call does next."""
    if state.phase is Phase.ENDED:
        return _ignored(state)

    match event:
        case OriginateFailed(reason=reason) if state.phase is Phase.DIALING:
            ended = replace(state, phase=Phase.ENDED, result=Result.FAILED, failure=reason,
                            outcome=CallOutcome(None, reason, SipCodeSource.NONE, None, None))
            return Transition(ended, (SaveFinal(),))

        case Ringing(at=at) if state.phase is Phase.DIALING:
            return Transition(replace(state, phase=Phase.RINGING, ring_time=at), (SaveProgress(),))

        case Answered(at=at) if state.phase in (Phase.DIALING, Phase.RINGING):
            return _next_after_answer(replace(state, phase=Phase.ANSWERED, connect_time=at))

        case PlaybackFinished(item=item, succeeded=ok, observed=observed) if (
            state.phase is Phase.ANSWERED and item == len(state.playback)
        ):
            heard = ("done" if ok else "failed") if observed else "unknown"
            played = replace(state, playback=(*state.playback, heard))
            if item + 1 < state.playlist_length:
                return Transition(played, (Play(item + 1),))
            hung = replace(played, phase=Phase.HANGING_UP, hangup_by=HangupBy.SERVICE,
                           hangup_reason="playlist finished")
            return Transition(hung, (Hangup("playlist finished"),))

        case HangupWanted(reason=reason) if state.phase is not Phase.HANGING_UP:
            hung = replace(state, phase=Phase.HANGING_UP, hangup_by=HangupBy.SERVICE,
                           hangup_reason=reason)
            return Transition(hung, (Hangup(reason),))

        case Destroyed(at=at, cause=cause, cause_text=text, tech_cause=tech, origin=origin):
            outcome = outcome_of_destroyed_channel(
                answered=state.answered, cause=cause, cause_text=text, tech_cause=tech,
                cancelled=state.hangup_by is HangupBy.SERVICE and not state.answered,
                origin=origin)
            hangup_by = state.hangup_by or _who_hung_up(state, origin)
            ended = replace(state, phase=Phase.ENDED, disconnect_time=at,
                            result=Result.FAILED if outcome.failed else Result.COMPLETED,
                            failure=outcome.sip_text if outcome.failed else None,
                            outcome=outcome, hangup_by=hangup_by)
            return Transition(ended, (SaveFinal(),))

        case HangupFoundNoChannel() if state.phase is Phase.HANGING_UP:
            return Transition(replace(state, hangup_by=None))

        case EndedUnobserved(at=at, answered_at=answered_at, cause=cause):
            connect_time = state.connect_time or answered_at
            ended = replace(state, phase=Phase.ENDED, connect_time=connect_time,
                            disconnect_time=at, result=Result.COMPLETED,
                            outcome=outcome_from_channel_log(answered=connect_time is not None,
                                                             cause=cause))
            return Transition(ended, (SaveFinal(),))

        case ChannelLost(at=at, reason=reason):
            # No SIP code: nobody saw how it ended, and a made-up one would read as the far
            # end's. The connect time stays, so an answered call still reads answered.
            ended = replace(state, phase=Phase.ENDED, disconnect_time=at, result=Result.FAILED,
                            failure=reason,
                            outcome=CallOutcome(None, reason, SipCodeSource.NONE, None, None))
            return Transition(ended, (SaveFinal(),))

    return _ignored(state)
