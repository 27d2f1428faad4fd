"""The service under test: start it, submit, poll, report; in this process or as a child.

One poll loop (`poll`) serves every wait; a deadline always raises with the last status seen.
`running_service` builds the app with `create_app` in this process (fast, and the test can
reach the app's parts). `ServiceProcess` runs `python -m app serve` (against an Asterisk the
test manages) or `python -m app run` (the `make run` path: it starts its own Asterisk) with the
test's own VOXCAST_* environment, and can be killed with SIGKILL and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
from aiohttp import web

from app.main import create_app
from app.settings import Secret, Settings
from tests.support import processes
from tests.support.ports import free_tcp_port

REPO = Path(__file__).resolve().parents[2]
READY_SECONDS = 20.0  # a service start: database, speech warm-up, ARI websocket
T = TypeVar("T")


async def poll(probe: Callable[[], Awaitable[tuple[bool, T]]], *, limit: float, what: str,
               interval: float = 0.2) -> T:
    """Call `probe` until it answers (True, value); past `limit` s raise with its last value."""
    deadline = time.monotonic() + limit
    while True:
        done, value = await probe()
        if done:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {limit:g} s; last seen: {value!r}")
        await asyncio.sleep(interval)


@dataclass
class Api:
    """The HTTP API at `base`, with the JSON envelope unpacked."""

    base: str
    http: aiohttp.ClientSession
    headers: Mapping[str, str] = field(default_factory=dict)

    async def request(self, method: str, path: str, body: object = None,
                      headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        async with self.http.request(method, self.base + path, json=body,
                                     headers={**self.headers, **(headers or {})}) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: object,
                   headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        return await self.request("POST", path, body, headers)

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        return await self.request("GET", path)

    async def delete(self, path: str) -> tuple[int, dict[str, Any]]:
        return await self.request("DELETE", path)

    async def text(self, path: str,
                   headers: Mapping[str, str] | None = None) -> tuple[int, str, str]:
        """GET a body as text: (status, Content-Type, body), for the CSV and NDJSON exports."""
        async with self.http.get(self.base + path,
                                 headers={**self.headers, **(headers or {})}) as response:
            return response.status, response.headers.get("Content-Type", ""), \
                await response.text()

    async def submit(self, body: object, headers: Mapping[str, str] | None = None) -> str:
        """POST /voice/call/play, which must be accepted; returns the request id."""
        status, answer = await self.post("/voice/call/play", body, headers)
        assert status == 200, answer
        return str(answer["request_id"])

    async def wait_ready(self, limit: float = READY_SECONDS) -> None:
        async def ready() -> tuple[bool, object]:
            try:
                status, answer = await self.get("/ready")
            except aiohttp.ClientConnectionError as error:
                return False, repr(error)
            return status == 200, answer

        await poll(ready, limit=limit, what="service ready", interval=0.05)

    async def wait_for_report(self, request_id: str, limit: float = 60.0,
                              every: float = 0.25) -> dict[str, Any]:
        """The report of `request_id` once every call has ended, asking every `every` s."""
        async def ready() -> tuple[bool, dict[str, Any]]:
            _, status = await self.get(f"/voice/call/status/{request_id}")
            return status.get("report", {}).get("status") == "ready", status

        status = await poll(ready, limit=limit, what=f"report of {request_id}", interval=every)
        _, report = await self.get(f"/report/{status['report']['id']}")
        return report


@dataclass
class Service(Api):
    """A service built in this process; `app` reaches its parts (dialer, store, speech)."""

    app: web.Application = field(default_factory=web.Application)


@asynccontextmanager
async def running_service(settings: Settings) -> AsyncIterator[Service]:
    """`create_app(settings)` on a free port, ready; cleaned up (drained) on leaving."""
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        port = free_tcp_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        async with aiohttp.ClientSession() as http:
            service = Service(f"http://127.0.0.1:{port}", http, app=app)
            await service.wait_ready()
            yield service
    finally:
        await runner.cleanup()


def environment(settings: Settings, **overrides: str) -> dict[str, str]:
    """The process environment that gives a `python -m app` child exactly `settings`.

    Every setting that differs from its default becomes a VOXCAST_* variable; other VOXCAST_*
    variables of this process are dropped, so nothing leaks in from the caller's shell.
    `overrides` (e.g. calls_per_second="5") are applied last.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("VOXCAST_")}
    defaults = Settings()
    for setting in dataclasses.fields(Settings):
        value = getattr(settings, setting.name)
        if value != getattr(defaults, setting.name):
            env[f"VOXCAST_{setting.name.upper()}"] = _as_text(value)
    env.update({f"VOXCAST_{name.upper()}": value for name, value in overrides.items()})
    return env


def _as_text(value: object) -> str:
    if isinstance(value, Secret):
        return value.value
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


async def run_command(*arguments: str, env: Mapping[str, str],
                      limit: float = 60.0) -> CommandResult:
    """`python -m app ARGUMENTS` to its end (SIGKILL and an AssertionError past `limit` s)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", *arguments, cwd=REPO, env=dict(env),
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    processes.register(process.pid, f"python -m app {' '.join(arguments)}")
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), limit)
    except TimeoutError:
        raise AssertionError(f"python -m app {' '.join(arguments)} still running after "
                             f"{limit:g} s") from None
    finally:
        await processes.kill_process(process)
    return CommandResult(await process.wait(), stdout.decode(errors="replace"),
                         stderr.decode(errors="replace"))


class ServiceProcess:
    """`python -m app serve|run`, or `make run` itself, as a child with its own environment.

    With "make-run" the child is make, exactly as a user starts it; the service is the
    `python -m app run` make starts, and `kill` crashes that process (make then ends).

    Its log goes to service.log in its runtime folder. `start` returns once /ready answers
    200 and raises with the log's end if it exits or stays unready; `kill` is a crash (SIGKILL);
    `stop` is SIGTERM with a SIGKILL fallback. Use it with `async with`: leaving always stops
    the service, and for `run` also any Asterisk of its instance a crash left behind.
    """

    def __init__(self, command: Literal["serve", "run", "make-run"],
                 env: Mapping[str, str]) -> None:
        self.command = command
        self.env = dict(env)
        self.port = int(self.env.get("VOXCAST_PORT", "8080"))
        self.runtime_dir = Path(self.env["VOXCAST_RUNTIME_DIR"])
        self.log_path = self.runtime_dir / "service.log"
        self.instance = self.env.get("VOXCAST_INSTANCE_NAME", "default")
        self.process: asyncio.subprocess.Process | None = None
        self.started_at = 0.0  # wall-clock time of the last spawn, comparable with SIPp's
        self._api: Api | None = None
        processes.add_marker(f"/srv/voxcast/{self.instance}/")
        processes.add_marker(str(self.runtime_dir) + "/")

    @property
    def api(self) -> Api:
        assert self._api is not None, "use ServiceProcess in `async with`"
        return self._api

    async def __aenter__(self) -> ServiceProcess:
        self._api = Api(f"http://127.0.0.1:{self.port}", aiohttp.ClientSession())
        return self

    async def __aexit__(self, *_exc: object) -> None:
        try:
            if self.process is not None:
                await processes.stop_process(self.process)
        finally:
            if self.command in ("run", "make-run"):
                await asyncio.to_thread(self._stop_orphaned_asterisk)
            if self._api is not None:
                await self._api.http.close()

    def _stop_orphaned_asterisk(self) -> None:
        """After a SIGKILL the instance's Asterisk (its own session) is still running."""
        marker = f"/srv/voxcast/{self.instance}/etc/"
        for leftover in processes.leftovers():
            cmdline = Path(f"/proc/{leftover.pid}/cmdline")
            try:
                if marker.encode() in cmdline.read_bytes():
                    processes.kill_leftover(leftover.pid)
            except OSError:
                continue

    async def start(self, ready_limit: float = READY_SECONDS) -> None:
        if self.process is not None and self.process.returncode is None:
            raise RuntimeError("the service is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        argv = (["make", "--no-print-directory", "-s", "run"] if self.command == "make-run"
                else [sys.executable, "-m", "app", self.command])
        with self.log_path.open("ab") as log_file:  # the child keeps its own descriptor
            self.process = await asyncio.create_subprocess_exec(
                *argv, cwd=REPO, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file)
        processes.register(self.process.pid, " ".join(argv[:4]))
        process = self.process

        async def ready() -> tuple[bool, object]:
            if process.returncode is not None:
                raise AssertionError(f"python -m app {self.command} exited with "
                                     f"{process.returncode}:\n{self.log_tail()}")
            try:
                status, answer = await self.api.get("/ready")
            except aiohttp.ClientConnectionError as error:
                return False, repr(error)
            return status == 200, answer

        try:
            await poll(ready, limit=ready_limit, what=f"python -m app {self.command} ready",
                       interval=0.1)
        except BaseException:
            await processes.stop_process(process)
            raise

    def service_pid(self) -> int:
        """The service's own process: the child itself, or the one `make run` started."""
        assert self.process is not None
        if self.command != "make-run":
            return self.process.pid
        found = processes.descendant_running(self.process.pid, b"-m\0app\0run\0")
        assert found is not None, f"no python -m app run under make:\n{self.log_tail()}"
        return found

    async def kill(self) -> None:
        """SIGKILL of the service, as a crash would; the child is reaped."""
        assert self.process is not None
        if self.command == "make-run":
            os.kill(self.service_pid(), signal.SIGKILL)
            await asyncio.wait_for(self.process.wait(), processes.STOP_GRACE_SECONDS)
        await processes.kill_process(self.process)

    async def stop(self, grace: float = processes.STOP_GRACE_SECONDS) -> int:
        """SIGTERM (the service drains), SIGKILL after `grace` s; returns the exit code."""
        assert self.process is not None
        if self.command == "make-run":  # as Ctrl-C would: the service drains, make follows
            with contextlib.suppress(ProcessLookupError, AssertionError):
                os.kill(self.service_pid(), signal.SIGTERM)
        return await processes.stop_process(self.process, grace)

    def log_tail(self, size: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-size:].decode("utf-8", "replace")
        except OSError as error:
            return f"(no log: {error})"
