"""What start-up checks before it starts anything, and how a failure reads: one line, the fix.

A port already taken is found before Asterisk starts (Asterisk itself would only log it: with
its HTTP port taken it never becomes ready, with its AMI or SIP port taken it runs without
them). What slips through (a port taken in the moment between) is read back from Asterisk's
console log after it started, and named the same way.
"""

from __future__ import annotations

import errno
import re
import socket
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings


class StartupProblem(RuntimeError):
    """Start-up cannot go on; the message says what is wrong and which setting changes it."""


@dataclass(frozen=True)
class Port:
    setting: str  # the VOXCAST_* name that moves it
    what: str
    kind: int  # socket.SOCK_STREAM or socket.SOCK_DGRAM
    host: str
    number: int

    def describe(self) -> str:
        protocol = "TCP" if self.kind == socket.SOCK_STREAM else "UDP"
        return f"{self.what} ({protocol} {self.host}:{self.number})"


def api_port(settings: Settings) -> Port:
    return Port("VOXCAST_PORT", "the API port", socket.SOCK_STREAM, settings.host, settings.port)


def media_plane_ports(settings: Settings) -> list[Port]:
    """The ports this service's Asterisk binds (as rendered into its configuration)."""
    return [
        Port("VOXCAST_ARI_URL", "Asterisk's HTTP/ARI port", socket.SOCK_STREAM, "127.0.0.1",
             settings.ari_http_port),
        Port("VOXCAST_AMI_PORT", "Asterisk's AMI port", socket.SOCK_STREAM, "127.0.0.1",
             settings.ami_port),
        *(Port(setting, what, kind, host, number)
          for host in filter(None, (settings.sip_address, settings.sip_address6))
          for setting, what, kind, number in (
              ("VOXCAST_SIP_PORT", "Asterisk's SIP port", socket.SOCK_DGRAM, settings.sip_port),
              ("VOXCAST_SIP_PORT", "Asterisk's SIP port", socket.SOCK_STREAM, settings.sip_port),
              ("VOXCAST_SIP_TLS_PORT", "Asterisk's SIP TLS port", socket.SOCK_STREAM,
               settings.sip_tls_port))),
    ]


def port_in_use(port: Port) -> StartupProblem:
    return StartupProblem(
        f"{port.describe()} is already in use: stop what listens there (`ss -lntup | grep "
        f":{port.number}`), or set {port.setting} to a free port")


def check_ports_free(ports: list[Port]) -> None:
    """Bind each port for a moment, as its real owner will; the first taken one is named."""
    for port in ports:
        family = socket.AF_INET6 if ":" in port.host else socket.AF_INET
        with socket.socket(family, port.kind) as probe:
            if port.kind == socket.SOCK_STREAM:
                # As servers bind: a port only in TIME_WAIT is free, a listening one is not.
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((port.host, port.number))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise port_in_use(port) from error
                raise StartupProblem(f"cannot bind {port.describe()}: {error.strerror}; check "
                                     f"{port.setting}") from error


# Asterisk's console lines when a bind fails (Asterisk 22): the server or transport named.
_BIND_FAILURES = {
    re.compile(r"Unable to bind http server"): "VOXCAST_ARI_URL",
    re.compile(r"Unable to bind AMI server"): "VOXCAST_AMI_PORT",
    re.compile(r"Transport 'voxcast-(udp|tcp)6?' could not be started: Address already in use"):
        "VOXCAST_SIP_PORT",
    re.compile(r"Transport 'voxcast-tls6?' could not be started: Address already in use"):
        "VOXCAST_SIP_TLS_PORT",
}


def bind_failures(console_log: str, ports: list[Port]) -> list[StartupProblem]:
    """The ports Asterisk's console log says it could not bind, as problems naming them."""
    by_setting = {port.setting: port for port in ports}
    return [port_in_use(by_setting[setting]) for pattern, setting in _BIND_FAILURES.items()
            if setting in by_setting and pattern.search(console_log)]


def log_size(path: Path) -> int:
    """Where this run's lines will start in Asterisk's console log (it is appended to)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_log_from(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
