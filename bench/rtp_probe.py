"""Where each call's audio first reached the far end: a probe on the far end's media port.

Runs as its own process (`python -m bench.rtp_probe PORT OUT`) so that neither side of the
benchmark pays for it in CPU and a busy event loop cannot delay a timestamp. SIPp does not bind
the media port it advertises (tests/support/rtp.py says why), so the probe binds it. It keeps
only onsets: the arrival time of each stream's first packet (a stream is a source port and an
SSRC; Asterisk reuses its RTP ports from call to call, and a new call may start on a port within
milliseconds of the last one's end, so the SSRC tells them apart). On SIGTERM it writes
`[[source_port, arrival_epoch_seconds], ...]` as JSON to OUT and exits.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import time
from pathlib import Path

_RECEIVE_BUFFER = 8 * 1024 * 1024


def probe(port: int, out: Path) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RECEIVE_BUFFER)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.2)
    seen: set[tuple[int, bytes]] = set()
    onsets: list[tuple[int, float]] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    out.with_suffix(".ready").touch()
    while not stopping:
        try:
            data, (_, source_port) = sock.recvfrom(2048)
        except (TimeoutError, InterruptedError):
            continue
        stream = (source_port, data[8:12])  # RFC 3550: the SSRC is bytes 8 to 11
        if stream not in seen:
            seen.add(stream)
            onsets.append((source_port, time.time()))
    out.write_text(json.dumps(onsets))


if __name__ == "__main__":
    probe(int(sys.argv[1]), Path(sys.argv[2]))
