"""Keep this instance's Asterisk running for `python -m app run`: adopt, watch, restart, stop.

After a crash of the service, its Asterisk is still running with the calls the service had
placed: a healthy one running the configuration rendered now is adopted, so those calls can be
followed to their end. One that does not answer ARI, or runs an older configuration, is stopped
and started afresh. When Asterisk dies, it is started again with backoff; the service records
the calls it took down (the dialer notices the lost event stream).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from app.media_plane.asterisk_process import AsteriskProcess, AsteriskStartError
from app.media_plane.layout import AsteriskLayout

log = logging.getLogger(__name__)

RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
ADOPT_READY_SECONDS = 5.0  # a healthy running Asterisk answers ARI at once


@dataclass(frozen=True, slots=True)
class AriAccess:
    url: str
    user: str
    password: str

    def __repr__(self) -> str:
        return f"AriAccess(url={self.url!r}, user={self.user!r}, password=***)"


class AsteriskSupervisor:
    def __init__(self, layout: AsteriskLayout, ari: AriAccess) -> None:
        self.process = AsteriskProcess(layout)
        self._ari = ari
        self.state = "stopped"  # starting, running, restarting, stopped
        self.restarts = 0
        self.last_exit: str | None = None
        self._stopping = False

    async def start(self, before_new_start: Callable[[], None] = lambda: None) -> None:
        """Adopt this instance's running Asterisk when it is healthy, else start a new one
        (`before_new_start` runs first: it may refuse, e.g. when a port is taken)."""
        self.state = "starting"
        pid = self.process.running_instance()
        if pid is not None:
            self.process.adopt(pid)
            if self.process.runs_current_config() and await self._answers_ari():
                log.info("adopted this instance's running Asterisk (pid %s): its calls go on",
                         pid)
                self.state = "running"
                return
            log.warning("the running asterisk (pid %s) of this instance is not healthy or runs "
                        "another configuration: stopping it (its live calls end)", pid)
            await self.process.stop()
        before_new_start()
        await self._start_new(timeout=20)
        self.state = "running"

    async def _answers_ari(self) -> bool:
        try:
            await self.process.wait_ready(self._ari.url, self._ari.user, self._ari.password,
                                          timeout=ADOPT_READY_SECONDS)
        except AsteriskStartError as error:
            log.warning("adopted asterisk does not answer ARI: %s", str(error).split(";")[0])
            return False
        return True

    async def _start_new(self, timeout: float) -> None:  # noqa: ASYNC109 - start + readiness
        await self.process.start()
        await self.process.wait_ready(self._ari.url, self._ari.user, self._ari.password,
                                      timeout=timeout)
        log.info("Asterisk is ready (pid %s, ARI on %s)", self.process.pid, self._ari.url)

    async def watch(self) -> None:
        """Run as an owned task: whenever Asterisk dies, start it again with backoff."""
        while True:
            code = await self.process.wait_exit()
            if self._stopping:
                return
            self.last_exit = _describe_exit(code)
            self.state = "restarting"
            log.error("Asterisk (pid %s) died (%s): restarting it", self.process.pid,
                      self.last_exit)
            attempt = 0
            while not self._stopping:
                delay = RESTART_BACKOFF_SECONDS[min(attempt, len(RESTART_BACKOFF_SECONDS) - 1)]
                await asyncio.sleep(delay)
                attempt += 1
                try:
                    await self._start_new(timeout=20)
                except AsteriskStartError as error:
                    log.error("Asterisk restart %d failed: %s", attempt, error)
                    await self.process.stop()
                    continue
                self.restarts += 1
                self.state = "running"
                break

    async def stop(self) -> None:
        self._stopping = True
        await self.process.stop()
        self.state = "stopped"

    def status(self) -> dict[str, Any]:
        """What /ready and /monitor show about the media server this service runs."""
        return {"managed_by_service": True, "state": self.state, "pid": self.process.pid,
                "adopted": self.process.adopted, "restarts": self.restarts,
                "last_exit": self.last_exit}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exited"  # an adopted Asterisk is not our child: its code is not ours to read
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
