"""Run a SIPp far end (a UAS scenario from asterisk/sipp) for tests, demos and benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import socket
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from app.media_plane.layout import path_inside_root
from app.media_plane.spawn import spawn_in_own_session

log = logging.getLogger(__name__)

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "asterisk" / "sipp"
SIPP_BINARY = "/usr/bin/sipp"  # inside the root; Debian's path
_SCENARIO_NAME = re.compile(r"[a-z0-9_]+")
_READY_TIMEOUT = 5.0
_TAIL_BYTES = 3000


class SippStartError(RuntimeError):
    """SIPp exited or did not bind its SIP port; the message carries the end of its output."""


def udp_port_is_free(port: int) -> bool:
    """Nothing is bound to UDP 127.0.0.1:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_media_port() -> int:
    """An even UDP port on 127.0.0.1 that is free, with port + 2 free too (SIPp's video)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1]) & ~1
        if port >= 1024 and udp_port_is_free(port) and udp_port_is_free(port + 2):
            return port
    raise OSError("no free UDP port pair for SIPp media")


_TRANSPORT_FLAGS = {"udp": "u1", "tcp": "t1", "tls": "l1"}


def _bound_by(pid: int, port: int, table_name: str) -> bool:
    """True once process `pid` holds a socket bound to `port` in /proc/net/`table_name`.

    Read from /proc (no probing that could race SIPp's own bind); matching the socket inode
    to the process keeps a leftover SIPp on the same port from passing for this one.
    """
    wanted = f":{port:04X}"
    try:
        with open(f"/proc/net/{table_name}", encoding="ascii") as table:
            inodes = {
                fields[9]
                for fields in (line.split() for line in list(table)[1:])
                if fields[1].endswith(wanted)
            }
        if not inodes:
            return False
        links = {os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()}
    except OSError:
        return False
    return any(f"socket:[{inode}]" in links for inode in inodes)


class SippFarEnd:
    """One SIPp UAS on 127.0.0.1:`port` running `scenario` (e.g. "answer" or "answer.xml").

    `work_dir` is a host folder inside `root`: the scenario is copied there so a chrooted
    SIPp can read it, and SIPp writes its logs there. `extra_args` go to SIPp as given
    (e.g. ["-d", "2000"] for answer_then_bye). With `rtp_echo`, SIPp binds the media port
    and echoes RTP; otherwise SIPp does not bind it (checked with SIPp 3.8), so a test may
    bind it to capture the audio Asterisk sends.

    Besides its invites log (one line per call), SIPp writes every SIP message it sends or
    receives, with a timestamp, to `message_trace`: what the far end really saw.
    """

    def __init__(
        self,
        root: Path,
        scenario: str | Path,
        port: int,
        work_dir: Path,
        extra_args: Sequence[str] = (),
        *,
        media_port: int | None = None,
        rtp_echo: bool = False,
        transport: str = "udp",
        address: str = "127.0.0.1",
        tls_files: tuple[Path, Path] | None = None,
    ) -> None:
        # A name in asterisk/sipp, or a scenario file of the caller's (tests' own providers).
        source = scenario if isinstance(scenario, Path) else \
            SCENARIO_DIR / f"{scenario.removesuffix('.xml')}.xml"
        stem = source.stem
        if not _SCENARIO_NAME.fullmatch(stem) or not source.is_file():
            raise ValueError(f"unknown SIPp scenario {scenario!r}")
        self.scenario_source = source
        if not 1 <= port <= 65535:
            raise ValueError("port must be between 1 and 65535")
        path_inside_root(root, work_dir)  # raises if work_dir is outside root
        if transport not in _TRANSPORT_FLAGS or (transport == "tls") != (tls_files is not None):
            raise ValueError("transport is udp, tcp or tls; tls (only) needs tls_files")
        if address not in ("127.0.0.1", "::1"):
            raise ValueError("far ends listen on loopback only")
        self.transport = transport
        self.address = address
        self.tls_files = tls_files
        self.root = root
        self.scenario = stem
        self.port = port
        self.work_dir = work_dir
        self.extra_args = tuple(extra_args)
        self.media_port = media_port
        self.rtp_echo = rtp_echo
        base = f"{stem}-{port}"
        self.scenario_file = work_dir / f"{base}.xml"
        self.invite_log = work_dir / f"{base}.invites.log"
        self.error_log = work_dir / f"{base}.errors.log"
        self.console_log = work_dir / f"{base}.console.log"
        self.message_trace = work_dir / f"{base}.messages.log"
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def command(self) -> list[str]:
        """The SIPp command line (chrooted unless root is "/")."""
        if self.media_port is None:
            raise RuntimeError("media port not chosen yet")

        def inside(path: Path) -> str:
            return path_inside_root(self.root, path)

        if self.root == Path("/"):
            prefix = [shutil.which("sipp") or SIPP_BINARY]
        else:
            prefix = [shutil.which("chroot") or "/usr/sbin/chroot", str(self.root), SIPP_BINARY]
        args = [
            "-sf", inside(self.scenario_file),
            # -bind_local: listen on loopback only, not on every interface.
            "-i", self.address, "-bind_local",
            "-p", str(self.port),
            "-mi", self.address,
            "-mp", str(self.media_port),
            # One socket for every call: right for a UAS (-max_socket only applies to the
            # one-socket-per-call modes un/tn/ln).
            "-t", _TRANSPORT_FLAGS[self.transport],
            "-nostdin",
            # The remote control socket would otherwise listen on every interface.
            "-ci", "127.0.0.1",
            # Answer stray INFO/NOTIFY/OPTIONS/UPDATE instead of failing the call.
            "-aa",
            # One flushed line per new call (the <log> on each INVITE): the INVITE count.
            "-trace_logs", "-log_file", inside(self.invite_log),
            "-trace_err", "-error_file", inside(self.error_log),
            # Every message, each flushed with an RFC 3339 timestamp (local time zone).
            "-trace_msg", "-message_file", inside(self.message_trace),
        ]  # fmt: skip
        if self.rtp_echo:
            args.append("-rtp_echo")
        if self.tls_files is not None:
            args += ["-tls_cert", inside(self.tls_files[0]), "-tls_key", inside(self.tls_files[1])]
        return [*prefix, *args, *self.extra_args]

    def _prepare(self) -> IO[bytes]:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.scenario_source, self.scenario_file)
        self.invite_log.unlink(missing_ok=True)
        self.message_trace.unlink(missing_ok=True)
        if self.media_port is None:
            self.media_port = pick_media_port()
        return self.console_log.open("wb")

    async def start(self) -> None:
        """Spawn SIPp and return once it listens on its SIP port."""
        if self._proc is not None and self._proc.returncode is None:
            raise RuntimeError("SIPp is already running")
        console = await asyncio.to_thread(self._prepare)
        command = self.command()
        self._proc = await spawn_in_own_session(command, console)
        log.info("sipp %s started: pid %s on port %s", self.scenario, self._proc.pid, self.port)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_TIMEOUT
        table = ("udp" if self.transport == "udp" else "tcp") + \
            ("6" if ":" in self.address else "")
        while not await asyncio.to_thread(_bound_by, self._proc.pid, self.port, table):
            if self._proc.returncode is not None or loop.time() >= deadline:
                await self.stop()
                raise SippStartError(
                    f"SIPp {self.scenario} did not listen on {self.address} port {self.port} "
                    f"(exit code {self._proc.returncode}): {self._tail()}"
                )
            await asyncio.sleep(0.02)

    def _tail(self) -> str:
        try:
            return self.console_log.read_bytes()[-_TAIL_BYTES:].decode("utf-8", "replace")
        except OSError as exc:
            return f"(no console log: {exc})"

    async def stop(self) -> None:
        """Kill SIPp (SIGKILL: it has no state worth a graceful exit) and reap it."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        await proc.wait()

    def invites_by_user(self) -> Counter[str]:
        """Calls received per Request-URI user (`INVITE sip:USER@...`): who got how many."""
        counts: Counter[str] = Counter()
        for line in self._invite_lines():
            parts = line.split(" ")
            counts[parts[2] if len(parts) > 2 else ""] += 1
        return counts

    def _invite_lines(self) -> set[str]:
        try:
            text = self.invite_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return set()
        # Only complete lines (SIPp may be writing the last one), each call once: a
        # retransmitted INVITE repeats the same Call-ID and URI, so it folds into one line.
        return {line for line in text.split("\n")[:-1] if line.startswith("INVITE ")}

    def received_invites(self) -> int:
        """How many calls (distinct INVITE Call-IDs, not retransmissions) SIPp received."""
        return len(self._invite_lines())
