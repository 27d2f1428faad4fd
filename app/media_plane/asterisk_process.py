"""Run one Asterisk instance: start it as a child or adopt one left running, wait until ARI
answers, notice when it exits, stop it.

Asterisk runs in its own session, so it outlives a service killed with SIGKILL and keeps that
service's calls; the next start adopts it (found through its pid file) instead of failing with
"Asterisk already running".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import IO

import aiohttp

from app.adapters.ari.client import AriCredentials
from app.atomic_file import write_atomically
from app.media_plane.layout import AsteriskLayout
from app.media_plane.spawn import spawn_in_own_session

log = logging.getLogger(__name__)

ASTERISK_BINARY = "/usr/sbin/asterisk"  # inside the root; Debian's path
CONSOLE_LOG_NAME = "asterisk-console.log"
PID_FILE_NAME = "asterisk.pid"  # Asterisk writes it into astrundir
# The hash of the configuration the running Asterisk was started with; an adopted Asterisk
# must run the configuration rendered now.
CONFIG_STAMP_NAME = "voxcast-config.sha256"
_TAIL_BYTES = 4000
_POLL_INTERVAL = 0.05
_EXIT_POLL_INTERVAL = 0.2  # an adopted Asterisk's exit is noticed this fast
# Asterisk takes its startup_time (millisecond resolution) after we spawn it; the slack only
# absorbs rounding.
_CLOCK_SLACK = 0.25


class AsteriskStartError(RuntimeError):
    """Asterisk exited or did not become ready; the message carries the end of its log."""


def _asterisk_prefix(layout: AsteriskLayout) -> list[str]:
    if layout.root == Path("/"):
        return [shutil.which("asterisk") or ASTERISK_BINARY]
    chroot = shutil.which("chroot") or "/usr/sbin/chroot"
    return [chroot, str(layout.root), ASTERISK_BINARY]


def asterisk_command(layout: AsteriskLayout) -> list[str]:
    """The command that runs the instance in the foreground (native when root is "/").

    No `-U`: with `-U root` Asterisk drops capabilities and cannot open its astdb.
    """
    return [*_asterisk_prefix(layout), "-f", "-n", "-C", layout.inside(layout.config_file)]


def asterisk_console_command(layout: AsteriskLayout) -> list[str]:
    """The command that opens an interactive CLI (`asterisk -r`) on the running instance."""
    return [*_asterisk_prefix(layout), "-C", layout.inside(layout.config_file), "-r"]


def asterisk_cli_command(layout: AsteriskLayout, cli: str) -> list[str]:
    """The command that runs one CLI command (`asterisk -rx`) against the running instance."""
    return [*_asterisk_prefix(layout), "-C", layout.inside(layout.config_file), "-rx", cli]


def config_digest(layout: AsteriskLayout) -> str:
    """A hash of every rendered config file: tells whether a running Asterisk runs them."""
    digest = hashlib.sha256()
    for path in sorted(layout.config_dir.glob("*.conf")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not alive.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
            return False
    return True


class AsteriskProcess:
    """One Asterisk instance for `layout`, whose config has already been rendered.

    Either our child (`start`) or an instance a previous run left behind (`adopt`).
    """

    def __init__(self, layout: AsteriskLayout) -> None:
        self.layout = layout
        self.console_log = layout.log_dir / CONSOLE_LOG_NAME
        self.pid_file = layout.instance_dir / "run" / PID_FILE_NAME
        self.config_stamp = layout.instance_dir / "run" / CONFIG_STAMP_NAME
        self._proc: asyncio.subprocess.Process | None = None
        self._adopted_pid: int | None = None
        self._spawned_at = 0.0

    @property
    def pid(self) -> int | None:
        if self._proc is not None:
            return self._proc.pid
        return self._adopted_pid

    @property
    def adopted(self) -> bool:
        return self._adopted_pid is not None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def is_running(self) -> bool:
        if self._proc is not None:
            return self._proc.returncode is None
        return self._adopted_pid is not None and _process_alive(self._adopted_pid)

    def _prepare(self) -> IO[bytes]:
        for folder in self.layout.asterisk_dirs:
            folder.mkdir(parents=True, exist_ok=True)
        if not self.layout.config_file.is_file():
            raise AsteriskStartError(f"no rendered config at {self.layout.config_file}")
        write_atomically(self.config_stamp, config_digest(self.layout).encode(), mode=0o600)
        return self.console_log.open("ab")

    async def start(self) -> None:
        """Spawn Asterisk; its console output goes to `console_log`."""
        if self.is_running():
            raise RuntimeError("Asterisk is already running")
        console = await asyncio.to_thread(self._prepare)
        command = asterisk_command(self.layout)
        self._adopted_pid = None
        self._spawned_at = time.time()
        self._proc = await spawn_in_own_session(command, console)
        log.info("asterisk started: pid %s, %s", self._proc.pid, " ".join(command))

    def running_instance(self) -> int | None:
        """The pid of this instance's Asterisk left running by an earlier run, if any.

        Its pid file names it, and its command line must name this instance's config, so a
        recycled pid or another instance is never taken for it.
        """
        try:
            pid = int(self.pid_file.read_text().strip())
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        wanted = self.layout.inside(self.layout.config_file).encode()
        if wanted not in command or not _process_alive(pid):
            return None
        return pid

    def runs_current_config(self) -> bool:
        """True when the running instance was started with the configuration rendered now."""
        try:
            started_with = self.config_stamp.read_text().strip()
        except OSError:
            return False
        return started_with == config_digest(self.layout)

    def adopt(self, pid: int) -> None:
        """Take over an Asterisk of this instance that an earlier run left running."""
        self._proc = None
        self._adopted_pid = pid
        self._spawned_at = 0.0  # its startup time is before ours: that is expected
        log.info("adopted the running asterisk of this instance: pid %s", pid)

    def _log_tail(self) -> str:
        try:
            with self.console_log.open("rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - _TAIL_BYTES))
                return handle.read().decode("utf-8", "replace")
        except OSError as exc:
            return f"(no console log: {exc})"

    async def _fail(self, reason: str) -> AsteriskStartError:
        tail = await asyncio.to_thread(self._log_tail)
        return AsteriskStartError(f"{reason}; end of {self.console_log}:\n{tail}")

    async def wait_ready(
        self,
        ari_base_url: str,
        user: str,
        password: str,
        timeout: float = 20,  # noqa: ASYNC109 - a deadline spanning many requests and a process
    ) -> None:
        """Poll GET {ari_base_url}/ari/asterisk/info until our Asterisk answers 200.

        An open HTTP port is not enough: it answers 404 before ARI is registered. A 200 from
        an Asterisk that started before ours (a leftover on the same port) does not count.
        """
        if self.pid is None:
            raise RuntimeError("Asterisk was not started")
        url = ari_base_url.rstrip("/") + "/ari/asterisk/info"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        request_timeout = aiohttp.ClientTimeout(total=2)
        stale = False
        headers = AriCredentials(user, password).authorization_header()
        async with aiohttp.ClientSession(headers=headers, timeout=request_timeout) as session:
            while True:
                if not self.is_running():
                    raise await self._fail(f"Asterisk exited (code {self.returncode})")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
                    async with session.get(url) as response:
                        if response.status == 401:
                            raise await self._fail("ARI refused the credentials (401)")
                        if response.status == 200:
                            if self._started_by_us(await response.json()):
                                return
                            stale = True
                if loop.time() >= deadline:
                    reason = f"ARI not ready after {timeout:g} s"
                    if stale:
                        reason += " (an older Asterisk answers on that port)"
                    raise await self._fail(reason)
                await asyncio.sleep(_POLL_INTERVAL)

    def _started_by_us(self, info: object) -> bool:
        """False when the ARI port belongs to an Asterisk started before ours (a leftover)."""
        status = info.get("status") if isinstance(info, dict) else None
        started = status.get("startup_time") if isinstance(status, dict) else None
        try:
            when = datetime.strptime(str(started), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except ValueError:
            return True  # an unexpected format must not block readiness
        return when >= self._spawned_at - _CLOCK_SLACK

    async def wait_exit(self) -> int | None:
        """Return once Asterisk has exited: its exit code, or None for an adopted one."""
        if self._proc is not None:
            return await self._proc.wait()
        pid = self._adopted_pid
        if pid is None:
            return None
        await _wait_for_pid(pid)
        return None

    async def _run_cli(self, cli: str, limit: float) -> None:
        proc = await asyncio.create_subprocess_exec(
            *asterisk_cli_command(self.layout, cli),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        try:
            await asyncio.wait_for(proc.wait(), max(limit, 0.1))
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()

    async def _wait_exit_within(self, limit: float) -> bool:
        try:
            await asyncio.wait_for(self.wait_exit(), max(limit, 0.0))
        except TimeoutError:
            return False
        return True

    def _signal(self, signum: int) -> None:
        pid = self.pid
        if pid is not None and self.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    async def stop(self, timeout: float = 10) -> None:  # noqa: ASYNC109 - split over 3 phases
        """Stop Asterisk: 'core stop now', then SIGTERM, then SIGKILL. Always reaps a child."""
        pid = self.pid
        if pid is None:
            return
        loop = asyncio.get_running_loop()
        graceful_until = loop.time() + timeout * 0.6
        try:
            if self.is_running():
                # 'core stop now' hangs up live calls (BYE) and exits in about 1.3 s.
                with contextlib.suppress(OSError, TimeoutError):
                    await self._run_cli("core stop now", graceful_until - loop.time())
                if not await self._wait_exit_within(graceful_until - loop.time()):
                    log.warning("asterisk pid %s ignored 'core stop now'; SIGTERM", pid)
                    self._signal(signal.SIGTERM)
                    if not await self._wait_exit_within(timeout * 0.4):
                        log.warning("asterisk pid %s ignored SIGTERM; SIGKILL", pid)
        finally:
            # Also reached on cancellation: never leave a running or unreaped child behind.
            self._signal(signal.SIGKILL)
            if self._proc is not None:
                await self._proc.wait()
            elif self._adopted_pid is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_wait_for_pid(self._adopted_pid), 5)
        log.info("asterisk pid %s stopped (code %s)", pid, self.returncode)


async def _wait_for_pid(pid: int) -> None:
    """Wait until a process that is not our child exits (only a parent can wait() for it)."""
    while _process_alive(pid):  # noqa: ASYNC110 - no event exists for another's process
        await asyncio.sleep(_EXIT_POLL_INTERVAL)
