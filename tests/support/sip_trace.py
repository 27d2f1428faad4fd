"""SIPp's message trace (`-trace_msg`) read back as one timeline per dialog.

SIPp 3.8 writes every SIP message it sends or receives as

    ----------------------------------------------- 2026-12-03T09:06:39.215015Z
    UDP message received [514] bytes:

    <the 514 bytes of the message>

The timestamp is RFC 3339 in SIPp's local time zone (`Z` for UTC, else an offset), so it
compares with `time.time()` in this process. Directions here are the far end's: an INVITE
from Asterisk is `received`, SIPp's 200 OK is `sent`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

_ENTRY = re.compile(
    rb"^-{20,} (?P<at>\S+)\n(?P<transport>\w+) message (?P<direction>received|sent) "
    rb"\[(?P<size>\d+)\] bytes:\n\n", re.MULTILINE)
_COMPACT = {"i": "call-id", "v": "via", "f": "from", "t": "to", "m": "contact",
            "l": "content-length", "c": "content-type"}


@dataclass(frozen=True)
class SipMessage:
    at: float  # seconds since the epoch, like time.time()
    received: bool  # True: the far end received it (from Asterisk); False: the far end sent it
    first_line: str
    headers: dict[str, str]  # lower-case names, first value of each
    body: str

    @property
    def method(self) -> str | None:
        """The request method, or None for a response."""
        return None if self.first_line.startswith("SIP/2.0") else self.first_line.split(" ")[0]

    @property
    def status(self) -> int | None:
        """The response code, or None for a request."""
        if not self.first_line.startswith("SIP/2.0"):
            return None
        return int(self.first_line.split(" ")[1])

    @property
    def cseq_method(self) -> str:
        return self.headers.get("cseq", "").split(" ")[-1]

    @property
    def call_id(self) -> str:
        return self.headers.get("call-id", "")

    @property
    def label(self) -> str:
        """Short form for timelines: `>INVITE` received, `<200` sent."""
        name = self.method or str(self.status)
        return (">" if self.received else "<") + name


@dataclass
class Dialog:
    """Every message sharing one Call-ID, in the order SIPp logged them."""

    call_id: str
    messages: list[SipMessage] = field(default_factory=list)

    @property
    def invite(self) -> SipMessage:
        return next(m for m in self.messages if m.method == "INVITE" and m.received)

    @property
    def user(self) -> str:
        """The Request-URI user of the INVITE (`sip:USER@host`): which recipient this was."""
        uri = self.invite.first_line.split(" ")[1]
        address = uri.split(":", 1)[1] if ":" in uri else uri
        return address.split("@", 1)[0] if "@" in address else ""

    @property
    def invited_at(self) -> float:
        return self.invite.at

    @property
    def caller_media_port(self) -> int | None:
        """The port in the INVITE's SDP `m=audio` line: where Asterisk sends RTP from."""
        match = re.search(r"^m=audio (\d+) ", self.invite.body, re.MULTILINE)
        return int(match.group(1)) if match else None

    def received(self, method: str) -> list[SipMessage]:
        """Requests of `method` the far end received (ACK, BYE, CANCEL, ...)."""
        return [m for m in self.messages if m.received and m.method == method]

    def sent_requests(self, method: str) -> list[SipMessage]:
        return [m for m in self.messages if not m.received and m.method == method]

    def sent_responses(self, cseq_method: str = "INVITE") -> list[SipMessage]:
        """Responses the far end sent to requests of `cseq_method`, retransmissions included."""
        return [m for m in self.messages
                if not m.received and m.status is not None and m.cseq_method == cseq_method]

    @property
    def final_status(self) -> int | None:
        """The far end's final answer to the INVITE (200, 486, 487, ...), or None."""
        finals = [m.status for m in self.sent_responses() if m.status and m.status >= 200]
        return finals[0] if finals else None

    @property
    def answered(self) -> bool:
        return self.final_status == 200

    @property
    def ended_at(self) -> float | None:
        """When the dialog ended on the wire: a BYE either way, or a final error response."""
        byes = self.received("BYE") + self.sent_requests("BYE")
        if byes:
            return min(m.at for m in byes)
        failures = [m.at for m in self.sent_responses()
                    if m.status is not None and m.status >= 300]
        return min(failures) if failures else None

    def timeline(self) -> str:
        """`>INVITE <100 <200 >ACK >BYE <200`, retransmissions folded into one."""
        labels: list[str] = []
        for message in self.messages:
            if not labels or labels[-1] != message.label:
                labels.append(message.label)
        return " ".join(labels)


def _headers(head: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in head.split("\r\n")[1:]:
        name, separator, value = line.partition(":")
        if not separator:
            continue
        key = name.strip().lower()
        headers.setdefault(_COMPACT.get(key, key), value.strip())
    return headers


def parse_messages(data: bytes) -> list[SipMessage]:
    """Every complete message in a trace; a message SIPp is still writing is left out."""
    messages = []
    for entry in _ENTRY.finditer(data):
        start = entry.end()
        size = int(entry["size"])
        if start + size > len(data):
            break  # still being written
        text = data[start: start + size].decode("utf-8", "replace")
        head, _, body = text.partition("\r\n\r\n")
        if "\r\n" not in head and "\n" in head:  # a trace written with bare newlines
            head, _, body = text.partition("\n\n")
            head = head.replace("\n", "\r\n")
        first_line = head.split("\r\n", 1)[0]
        at = datetime.fromisoformat(entry["at"].decode("ascii")).timestamp()
        messages.append(SipMessage(at, entry["direction"] == b"received", first_line,
                                   _headers(head), body))
    return messages


def read_dialogs(trace: Path, users: Iterable[str] | None = None) -> list[Dialog]:
    """The dialogs in a SIPp message trace that began with an INVITE, by INVITE time.

    With `users`, only dialogs whose Request-URI user is one of them.
    """
    try:
        data = trace.read_bytes()
    except FileNotFoundError:
        return []
    dialogs: dict[str, Dialog] = {}
    for message in parse_messages(data):
        dialogs.setdefault(message.call_id, Dialog(message.call_id)).messages.append(message)
    wanted = None if users is None else set(users)
    found = [dialog for dialog in dialogs.values()
             if any(m.method == "INVITE" and m.received for m in dialog.messages)
             and (wanted is None or dialog.user in wanted)]
    return sorted(found, key=lambda dialog: dialog.invited_at)


def by_user(dialogs: Sequence[Dialog]) -> dict[str, list[Dialog]]:
    grouped: dict[str, list[Dialog]] = {}
    for dialog in dialogs:
        grouped.setdefault(dialog.user, []).append(dialog)
    return grouped
