"""SIPp's message trace read back as dialogs; the pacing measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pacing import allowed_in_window, max_in_window, max_overlap
from tests.support.sip_trace import read_dialogs


def _entry(at: str, direction: str, text: str) -> str:
    message = text.replace("\n", "\r\n")
    return (f"----------------------------------------------- {at}\n"
            f"UDP message {direction} [{len(message.encode())}] bytes:\n\n{message}\n\n")


INVITE = """INVITE sip:alice@127.0.0.1:5071 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1
Call-ID: call-1
CSeq: 100 INVITE
Content-Type: application/sdp
Content-Length: 47

v=0
c=IN IP4 127.0.0.1
m=audio 14866 RTP/AVP 0 8
"""


def _response(code: str, cseq: str) -> str:
    return f"SIP/2.0 {code}\nVia: SIP/2.0/UDP x\nCall-ID: call-1\nCSeq: {cseq}\n" \
           "Content-Length: 0\n\n"


def _request(method: str, cseq: str) -> str:
    return f"{method} sip:127.0.0.1:5071 SIP/2.0\ni: call-1\nCSeq: {cseq}\nContent-Length: 0\n\n"


def test_a_trace_becomes_a_dialog_timeline(tmp_path: Path) -> None:
    trace = tmp_path / "messages.log"
    trace.write_text(
        _entry("2026-12-03T09:06:39.100000Z", "received", INVITE)
        + _entry("2026-12-03T09:06:39.101000Z", "sent", _response("100 Trying", "100 INVITE"))
        + _entry("2026-12-03T09:06:39.102000Z", "sent", _response("200 OK", "100 INVITE"))
        + _entry("2026-12-03T09:06:39.602000Z", "sent", _response("200 OK", "100 INVITE"))
        + _entry("2026-12-03T09:06:39.700000Z", "received", _request("ACK", "100 ACK"))
        + _entry("2026-12-03T18:06:42.000000+09:00", "received", _request("BYE", "101 BYE"))
        + _entry("2026-12-03T09:06:42.001000Z", "sent", _response("200 OK", "101 BYE"))
        # SIPp is still writing the next one: it is left out.
        + "----------------------------------------------- 2026-12-03T09:06:43.000000Z\n"
          "UDP message received [500] bytes:\n\nINVITE sip:bob@")
    (dialog,) = read_dialogs(trace)
    assert dialog.user == "alice" and dialog.call_id == "call-1"
    assert dialog.timeline() == ">INVITE <100 <200 >ACK >BYE <200"
    assert dialog.final_status == 200 and dialog.answered
    assert dialog.caller_media_port == 14866
    assert dialog.ended_at is not None
    assert dialog.ended_at - dialog.invited_at == pytest.approx(2.9)  # +09:00 is one clock
    assert [m.status for m in dialog.sent_responses("BYE")] == [200]
    assert read_dialogs(trace, ["bob"]) == []
    assert read_dialogs(tmp_path / "absent.log") == []


def test_windows_overlaps_and_the_pacing_allowance() -> None:
    assert max_in_window([0.0, 0.1, 0.99, 1.0, 1.1]) == 3  # [t, t + 1): 1.1 is outside
    assert max_overlap([(0, 2), (1, 3), (2, 4), (2.5, 3)]) == 3  # one ends as one starts
    assert allowed_in_window(10, 0.0) == 10  # 0.0 .. 0.9: the 11th slot is at 1.0
    assert allowed_in_window(10, 0.3) == 13
    assert allowed_in_window(100, 0.5) == 150
