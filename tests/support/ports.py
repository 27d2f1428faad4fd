"""Free ports on 127.0.0.1: single TCP or UDP ports, and UDP ranges checked port by port."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from app.media_plane.sipp import udp_port_is_free

# Ranges other programs on this machine use by default: `make run`'s Asterisk RTP and the
# demo's. A test range never overlaps them, even while they are idle.
_RESERVED_RANGES = ((10000, 10999), (12000, 12199))
_LOWEST = 10000
# Spreads concurrent runs (other helpers, other branches) over the space; not a security use.
_rng = random.Random()  # noqa: S311


def free_tcp_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 right now, chosen by the kernel."""
    return _kernel_port(socket.SOCK_STREAM)


def free_udp_port() -> int:
    """A UDP port nothing is bound to at 127.0.0.1 right now, chosen by the kernel."""
    return _kernel_port(socket.SOCK_DGRAM)


def free_sip_port(attempts: int = 50) -> int:
    """A port free for UDP and TCP on 127.0.0.1 and ::1: Asterisk's SIP listens on all four."""
    for _ in range(attempts):
        port = free_udp_port()
        try:
            for family, kind, host in ((socket.AF_INET, socket.SOCK_STREAM, "127.0.0.1"),
                                       (socket.AF_INET6, socket.SOCK_DGRAM, "::1"),
                                       (socket.AF_INET6, socket.SOCK_STREAM, "::1")):
                with socket.socket(family, kind) as probe:
                    probe.bind((host, port))
        except OSError:
            continue
        return port
    raise OSError("no port free for SIP on UDP and TCP, IPv4 and IPv6")


def _kernel_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ephemeral_low() -> int:
    """The kernel hands out ports from here up; a range below it never meets them."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_udp_range(size: int, attempts: int = 200) -> tuple[int, int]:
    """An even-started block of `size` UDP ports, every one of them free: (first, last).

    For Asterisk's RTP range. Chosen below the kernel's ephemeral range, away from the ranges
    other local programs use by default, at a random place so concurrent runs rarely meet.
    """
    if size < 2:
        raise ValueError("an RTP range needs at least two ports")
    high = _ephemeral_low() - size
    for _ in range(attempts):
        first = _rng.randrange(_LOWEST, high, 2)
        last = first + size - 1
        if any(first <= end and low <= last for low, end in _RESERVED_RANGES):
            continue
        if all(udp_port_is_free(port) for port in range(first, last + 1)):
            return first, last
    raise OSError(f"no block of {size} free UDP ports below {high + size}")
