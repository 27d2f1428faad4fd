"""Capture the RTP Asterisk sends to a far end's media port, and decode it per stream.

SIPp (3.8, checked) does not bind the media port it advertises in its SDP unless it runs with
`-rtp_echo`, so a test binds that port itself: `RtpCapture` reads it on a thread (a busy event
loop must not make the kernel drop packets) and keeps what arrives while a `recording` is open.

Each call's audio arrives from its own Asterisk RTP port, the one Asterisk offered in the
INVITE's SDP, so the far end's message trace ties a stream to a recipient (`stream_of`).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from tests.support.audio import G711_RATE, alaw_decode, ulaw_decode
from tests.support.sip_trace import Dialog

PCMU, PCMA = 0, 8
_RECEIVE_BUFFER = 8 * 1024 * 1024
_SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Linux; Python does not name it
_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True)
class RtpPacket:
    at: float  # arrival, seconds since the epoch (comparable with SIPp's trace)
    source_port: int
    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_packet(data: bytes, at: float, source_port: int) -> RtpPacket | None:
    """An RTP packet (RFC 3550: version 2, CSRCs and extension skipped), or None."""
    if len(data) < _HEADER.size:
        return None
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    offset = _HEADER.size + 4 * (first & 0x0F)
    if first & 0x10 and len(data) >= offset + 4:
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    payload = data[offset:]
    if first & 0x20 and payload:
        payload = payload[: -payload[-1]]
    return RtpPacket(at, source_port, second & 0x7F, sequence, timestamp, ssrc, payload)


@dataclass
class RtpStream:
    """The packets of one SSRC from one source port, in sequence order."""

    source_port: int
    ssrc: int
    packets: list[RtpPacket] = field(default_factory=list)

    @property
    def payload_type(self) -> int:
        return self.packets[0].payload_type

    @property
    def first_at(self) -> float:
        return min(packet.at for packet in self.packets)

    @property
    def lost(self) -> int:
        """Packets missing from the sequence (16-bit sequence numbers wrap)."""
        span = (self.packets[-1].sequence - self.packets[0].sequence) % 65536 + 1
        return span - len(self.packets)

    def samples(self) -> np.ndarray:
        """The audio as 16-bit linear samples at 8 kHz (PCMU or PCMA)."""
        payload = b"".join(packet.payload for packet in self.packets)
        if self.payload_type == PCMU:
            return ulaw_decode(payload)
        if self.payload_type == PCMA:
            return alaw_decode(payload)
        raise ValueError(f"payload type {self.payload_type} is not G.711")

    @property
    def seconds(self) -> float:
        """Audio received, from the payload size (one byte per sample in G.711)."""
        return sum(len(packet.payload) for packet in self.packets) / G711_RATE


def streams(packets: Sequence[RtpPacket]) -> list[RtpStream]:
    grouped: dict[tuple[int, int], RtpStream] = {}
    for packet in packets:
        key = (packet.source_port, packet.ssrc)
        grouped.setdefault(key, RtpStream(*key)).packets.append(packet)
    for stream in grouped.values():
        first = stream.packets[0].sequence
        stream.packets.sort(key=lambda packet: (packet.sequence - first) % 65536)
    return sorted(grouped.values(), key=lambda stream: stream.first_at)


def stream_of(dialog: Dialog, candidates: Sequence[RtpStream]) -> RtpStream | None:
    """The stream Asterisk sent on this dialog: from the port its INVITE offered, during it."""
    port = dialog.caller_media_port
    ended = dialog.ended_at or float("inf")
    matching = [stream for stream in candidates if stream.source_port == port
                and dialog.invited_at <= stream.first_at <= ended]
    return matching[0] if matching else None


class Recording:
    def __init__(self) -> None:
        self.packets: list[RtpPacket] = []

    def streams(self) -> list[RtpStream]:
        return streams(list(self.packets))


class RtpCapture:
    """A UDP socket on 127.0.0.1 (an even port, for a far end to advertise) and its reader."""

    def __init__(self) -> None:
        self._socket = _even_port_socket()
        self.port = int(self._socket.getsockname()[1])
        self._recordings: list[Recording] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"rtp-{self.port}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data, (_host, source_port) = self._socket.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            packet = parse_packet(data, time.time(), source_port)
            if packet is None:
                continue
            with self._lock:
                for recording in self._recordings:
                    recording.packets.append(packet)

    @contextmanager
    def recording(self) -> Iterator[Recording]:
        """Keep every packet that arrives until the block ends."""
        recording = Recording()
        with self._lock:
            self._recordings.append(recording)
        try:
            yield recording
        finally:
            with self._lock:
                self._recordings.remove(recording)

    def close(self) -> None:
        self._closed.set()
        self._reader.join(2)  # it wakes from recvfrom at least every 0.2 s
        self._socket.close()


def _even_port_socket() -> socket.socket:
    for _ in range(50):
        candidate = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            try:  # as root, past net.core.rmem_max
                candidate.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, _RECEIVE_BUFFER)
            except OSError:
                candidate.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
            candidate.bind(("127.0.0.1", 0))
        except OSError:
            candidate.close()
            raise
        if candidate.getsockname()[1] % 2 == 0:
            candidate.settimeout(0.2)
            return candidate
        candidate.close()
    raise OSError("no even UDP port for RTP capture")
