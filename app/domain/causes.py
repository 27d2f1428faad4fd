"""How a call ended: the one table from Asterisk's hang-up data to a SIP outcome.

Asterisk's `ChannelDestroyed` carries a Q.850 `cause` and, since Asterisk 20.17/22.x, the SIP
final response as `tech_cause`. We prefer `tech_cause`; an answered call that ended without one
ended normally (200 OK); otherwise the SIP code is derived from Q.850 as RFC 3398 section 8.2
maps it, and marked derived because that mapping is lossy.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SipCodeSource(StrEnum):
    """Where a record's SIP code came from."""

    TECH_CAUSE = "tech_cause"  # the far end's final response, reported by Asterisk
    ANSWERED = "answered"  # the call was answered (200) and then ended
    DERIVED = "derived"  # derived from the Q.850 cause (RFC 3398); may be inexact
    TIMEOUT = "timeout"  # the ring timeout ended the call: 480 if it rang, 408 if nothing
    # at all came back (Asterisk's own tech_cause says 480 either way)
    CHANNEL_LOG = "channel_log"  # derived from the Q.850 cause Asterisk logged while the
    # service was not listening (its channel event log has no SIP code)
    NONE = "none"  # no call was placed


# RFC 3398 section 8.2.1: Q.850 cause -> SIP response. Anything missing maps to 500.
_Q850_TO_SIP: dict[int, int] = {
    1: 404, 2: 404, 3: 404, 17: 486, 18: 408, 19: 480, 20: 480, 21: 403, 22: 410, 23: 410,
    26: 404, 27: 502, 28: 484, 29: 501, 31: 480, 34: 503, 38: 503, 41: 503, 42: 503, 47: 503,
    55: 403, 57: 403, 58: 503, 65: 488, 69: 501, 70: 488, 79: 501, 87: 403, 88: 503, 102: 504,
    111: 500, 127: 500,
}

# Reason phrases (RFC 3261 and friends). 486 keeps the founding document's "User Busy".
_SIP_REASON: dict[int, str] = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "User Busy", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 493: "Undecipherable", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}

NORMAL_CLEARING = 16


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The SIP-level outcome of one ended call."""

    sip_code: int | None  # None: no SIP final response is known (never a made-up one)
    sip_text: str
    source: SipCodeSource
    q850_cause: int | None
    q850_text: str | None
    failed: bool = False  # made locally: the call could not be sent at all


@dataclass(frozen=True, slots=True)
class HangupOrigin:
    """What ari.conf's channelvars add to ChannelDestroyed: whether any SIP response came
    back (HANGUPCAUSE_KEYS() is not empty), and whether Asterisk itself ended the call
    (CHANNEL(hangupsource) is empty: the originate timeout, our hang-up), not chan_pjsip."""

    response_received: bool
    ended_by_asterisk: bool


LOCAL_FAILURE_TEXT = ("Asterisk could not send the call: no transport for the target, the "
                      "connection was refused or the host name did not resolve")


def sip_reason(code: int) -> str:
    """The reason phrase for a SIP code, or its class when the code is unusual."""
    if code in _SIP_REASON:
        return _SIP_REASON[code]
    return {1: "Provisional", 2: "Success", 3: "Redirection", 4: "Client Failure",
            5: "Server Failure", 6: "Global Failure"}.get(code // 100, "Unknown")


def sip_code_from_q850(cause: int) -> int:
    """RFC 3398's SIP response for a Q.850 cause (500 when it names none)."""
    return _Q850_TO_SIP.get(cause, 500)


def outcome_of_destroyed_channel(
    *, answered: bool, cause: int | None, cause_text: str | None, tech_cause: int | None,
    cancelled: bool = False, origin: HangupOrigin | None = None,
) -> CallOutcome:
    """Classify a `ChannelDestroyed`: prefer tech_cause, then answered, then Q.850.

    `cancelled` says we hung up before an answer: the INVITE was CANCELled (487). With the
    `origin`, an unanswered call's tech_cause is trusted only when a response really came
    back: Asterisk makes up 503 for a call it could not send and 480 for a ring timeout.
    """
    if origin is not None and not answered and not cancelled:
        made_up = _made_up_by_asterisk(origin, cause, cause_text)
        if made_up is not None:
            return made_up
    if tech_cause is not None and 100 <= tech_cause <= 699:
        return CallOutcome(tech_cause, sip_reason(tech_cause), SipCodeSource.TECH_CAUSE,
                           cause, cause_text)
    if answered:
        return CallOutcome(200, "OK", SipCodeSource.ANSWERED, cause, cause_text)
    if cancelled:
        return CallOutcome(487, sip_reason(487), SipCodeSource.DERIVED, cause, cause_text)
    if cause is None or cause == 0:
        # Unanswered with no cause at all: nothing says what the far end did.
        return CallOutcome(500, sip_reason(500), SipCodeSource.DERIVED, cause, cause_text)
    code = sip_code_from_q850(cause)
    return CallOutcome(code, sip_reason(code), SipCodeSource.DERIVED, cause, cause_text)


def _made_up_by_asterisk(origin: HangupOrigin, cause: int | None,
                         cause_text: str | None) -> CallOutcome | None:
    if origin.response_received and not origin.ended_by_asterisk:
        return None  # a final response from the far end: its tech_cause is real
    if origin.ended_by_asterisk:
        if origin.response_received:  # it rang (or sent progress) until the ring timeout
            return CallOutcome(480, "No answer before the ring timeout", SipCodeSource.TIMEOUT,
                               cause, cause_text)
        return CallOutcome(408, "No response before the ring timeout",
                           SipCodeSource.TIMEOUT, cause, cause_text)
    return CallOutcome(None, LOCAL_FAILURE_TEXT, SipCodeSource.NONE, cause, cause_text,
                       failed=True)


def outcome_from_channel_log(*, answered: bool, cause: int | None) -> CallOutcome:
    """A call that ended while the service was away, as Asterisk's channel event log tells it."""
    if answered:
        return CallOutcome(200, "OK", SipCodeSource.ANSWERED, cause, None)
    if cause is None or cause == 0:
        return CallOutcome(None, "ended while the service was away; Asterisk logged no cause",
                           SipCodeSource.NONE, cause, None)
    code = sip_code_from_q850(cause)
    return CallOutcome(code, sip_reason(code), SipCodeSource.CHANNEL_LOG, cause, None)
