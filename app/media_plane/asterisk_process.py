"""Run one Asterisk instance as a child process: start it, wait until ARI answers, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from datetime import datetime
from pathlib import Path
from typing import IO

import aiohttp

from app.adapters.ari.client import AriCredentials
from app.media_plane.layout import AsteriskLayout
from app.media_plane.spawn import spawn_in_own_session

log = logging.getLogger(__name__)

ASTERISK_BINARY = "/usr/sbin/asterisk"  # inside the root; Debian's path
CONSOLE_LOG_NAME = "asterisk-console.log"
_TAIL_BYTES = 4000
_POLL_INTERVAL = 0.05
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


class AsteriskProcess:
    """One Asterisk child process for `layout`, whose config has already been rendered."""

    def __init__(self, layout: AsteriskLayout) -> None:
        self.layout = layout
        self.console_log = layout.log_dir / CONSOLE_LOG_NAME
        self._proc: asyncio.subprocess.Process | None = None
        self._spawned_at = 0.0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def _prepare(self) -> IO[bytes]:
        for folder in self.layout.asterisk_dirs:
            folder.mkdir(parents=True, exist_ok=True)
        if not self.layout.config_file.is_file():
            raise AsteriskStartError(f"no rendered config at {self.layout.config_file}")
        return self.console_log.open("ab")

    async def start(self) -> None:
        """Spawn Asterisk; its console output goes to `console_log`."""
        if self._proc is not None and self._proc.returncode is None:
            raise RuntimeError("Asterisk is already running")
        console = await asyncio.to_thread(self._prepare)
        command = asterisk_command(self.layout)
        self._spawned_at = time.time()
        self._proc = await spawn_in_own_session(command, console)
        log.info("asterisk started: pid %s, %s", self._proc.pid, " ".join(command))

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
        if self._proc is None:
            raise RuntimeError("Asterisk was not started")
        url = ari_base_url.rstrip("/") + "/ari/asterisk/info"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        request_timeout = aiohttp.ClientTimeout(total=2)
        stale = False
        headers = AriCredentials(user, password).authorization_header()
        async with aiohttp.ClientSession(headers=headers, timeout=request_timeout) as session:
            while True:
                if self._proc.returncode is not None:
                    raise await self._fail(f"Asterisk exited with code {self._proc.returncode}")
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

    async def _wait_exit(self, proc: asyncio.subprocess.Process, limit: float) -> bool:
        try:
            await asyncio.wait_for(proc.wait(), max(limit, 0.0))
        except TimeoutError:
            return False
        return True

    async def stop(self, timeout: float = 10) -> None:  # noqa: ASYNC109 - split over 3 phases
        """Stop Asterisk: 'core stop now', then SIGTERM, then SIGKILL. Always reaps it."""
        proc = self._proc
        if proc is None:
            return
        loop = asyncio.get_running_loop()
        graceful_until = loop.time() + timeout * 0.6
        try:
            if proc.returncode is None:
                # 'core stop now' hangs up live calls (BYE) and exits in about 1.3 s.
                with contextlib.suppress(OSError, TimeoutError):
                    await self._run_cli("core stop now", graceful_until - loop.time())
                if not await self._wait_exit(proc, graceful_until - loop.time()):
                    log.warning("asterisk pid %s ignored 'core stop now'; SIGTERM", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                    if not await self._wait_exit(proc, timeout * 0.4):
                        log.warning("asterisk pid %s ignored SIGTERM; SIGKILL", proc.pid)
        finally:
            # Also reached on cancellation: never leave a running or unreaped child behind.
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            await proc.wait()
        log.info("asterisk pid %s stopped with code %s", proc.pid, proc.returncode)
