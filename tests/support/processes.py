"""Every process a test run starts is known, stopped in `finally`, and checked at the end.

`register` records a child (Asterisk, SIPp, a `python -m app` service); `add_marker` records
a string only this run's processes carry in their command line or environment (an Asterisk
instance name, the run's temporary folder). At session end, `leftovers` finds registered
processes still alive and any process carrying a marker, which catches grandchildren too:
the Asterisk that `python -m app run` starts in a session of its own outlives a killed
service. tests/conftest.py fails the run if anything is left, after stopping it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE_SECONDS = 10.0  # SIGTERM, then SIGKILL


@dataclass(frozen=True)
class Started:
    pid: int
    what: str
    start_ticks: int  # /proc/<pid>/stat field 22: tells a reused pid from ours


@dataclass(frozen=True)
class Leftover:
    pid: int
    what: str


_started: dict[int, Started] = {}
_markers: set[str] = set()


def _start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after its ")" are plain.
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _alive_as_registered(started: Started) -> bool:
    if _start_ticks(started.pid) != started.start_ticks:
        return False  # gone, or the pid now belongs to someone else
    try:
        state = Path(f"/proc/{started.pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1]
    except OSError:
        return False
    return state.split()[0] != "Z"  # a zombie is dead, only not reaped yet


def register(pid: int | None, what: str) -> None:
    """Remember a process this run started; `what` names it in the end-of-run report."""
    if pid is None:
        return
    ticks = _start_ticks(pid)
    if ticks is not None:
        _started[pid] = Started(pid, what, ticks)


def add_marker(marker: str) -> None:
    """A string (at least 8 characters) that only this run's processes carry."""
    if len(marker) < 8:
        raise ValueError("a marker must be specific: at least 8 characters")
    _markers.add(marker)


def _carries_marker(pid: int) -> str | None:
    for name in ("cmdline", "environ"):
        try:
            text = Path(f"/proc/{pid}/{name}").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        for marker in _markers:
            if marker.encode() in text:
                return marker
    return None


def leftovers() -> list[Leftover]:
    """Processes of this run still alive (zombies and this process excluded)."""
    found = {started.pid: Leftover(started.pid, started.what)
             for started in _started.values() if _alive_as_registered(started)}
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in found or int(entry.name) == me:
            continue
        pid = int(entry.name)
        marker = _carries_marker(pid)
        if marker is None:
            continue
        with contextlib.suppress(OSError):
            state = (entry / "stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
            if state == "Z":
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(
                errors="replace").strip()
            found[pid] = Leftover(pid, f"{command[:160]} (carries {marker})")
    return sorted(found.values(), key=lambda leftover: leftover.pid)


def kill_leftover(pid: int, grace: float = 2.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; for processes we cannot `wait` for."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if _start_ticks(pid) is None:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


async def stop_process(process: asyncio.subprocess.Process,
                       grace: float = STOP_GRACE_SECONDS) -> int:
    """SIGTERM, wait up to `grace` s, then SIGKILL; always reaped. Returns the exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
    return await process.wait()


async def kill_process(process: asyncio.subprocess.Process) -> int:
    """SIGKILL (a crash, on purpose) and reap."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    return await process.wait()


async def run_bounded(command: list[str], limit: float, env: Mapping[str, str],
                      cwd: Path | None = None) -> tuple[int, str, str]:
    """Run a command to its end within `limit` seconds (killed otherwise): its exit code,
    standard output and standard error."""
    process = await asyncio.create_subprocess_exec(
        *command, cwd=cwd, env=dict(env), stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    register(process.pid, " ".join(command[:3]))
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    finally:
        await kill_process(process)
    return (await process.wait(), stdout.decode("utf-8", "replace"),
            stderr.decode("utf-8", "replace"))


def descendant_running(ancestor: int, marker: bytes) -> int | None:
    """The pid of a process under `ancestor` whose command line holds `marker`."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    waiting = list(children.get(ancestor, []))
    while waiting:
        pid = waiting.pop()
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
        waiting.extend(children.get(pid, []))
    return None
