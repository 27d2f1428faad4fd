"""Intake and report benchmark: Voxcast against a bare parse-and-insert and a bare SELECT.

Each side runs in a fresh process, so neither's memory pollutes the other's; memory is the
growth of the process's peak resident set (VmHWM, reset through /proc/self/clear_refs once
the process is warm) over its resident set just before the work. Measured on SQLite, the
default database:

- intake: one JSON request of N recipients. Bare: `json.loads` of the same bytes and one
  `executemany` INSERT of the rows with the standard `sqlite3` module, in one transaction.
  Voxcast: the running service answering `POST /voice/call/play` (validation, ids, storage).
- report: a finished broadcast of N records. Bare: one SELECT with `sqlite3`, each row shaped
  into the report's record (times formatted, duration computed) and the whole envelope
  `json.dumps`'d in memory. Voxcast: `GET /report/{id}` read to its last byte by a client in
  another process.
- bulk: `POST /voice/call/play/bulk` of M recipients as NDJSON streamed by the client.

    python -m bench.intake_report [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

TIME_LIMIT_SECONDS = 600  # each worker process, bounded
FULL_RECIPIENTS = 100_000
FULL_BULK = 1_000_000
QUICK_BULK = 100_000
MB = 1024 * 1024
T0 = datetime(2026, 11, 26, 14, 10, 37, 123_456, tzinfo=UTC)


# --- memory of this process ------------------------------------------------------------------

def _status_kb(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> int:
    """Forget the peak resident set so far; the resident set now, in kB."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    return _status_kb("VmRSS")


def peak_growth_mb(before_kb: int) -> float:
    return (_status_kb("VmHWM") - before_kb) / 1024


# --- workers: each runs in its own process and prints one JSON line ---------------------------

def _records(count: int) -> Iterator[dict[str, Any]]:
    """A finished broadcast's calls: answered, busy and failed, as a real one reads."""
    for position in range(count):
        kind = position % 4
        connect = T0 + timedelta(seconds=2) if kind < 2 else None
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()), "position": position, "attempt": 1,
            "target": f"sip:u{position}@192.0.2.10:5060", "state": "ended",
            "request_time": T0, "setup_time": T0, "ring_time": T0 + timedelta(seconds=1),
            "connect_time": connect,
            "disconnect_time": (connect + timedelta(seconds=3.4)) if connect else T0,
            "result": "completed" if kind < 3 else "failed",
            "sip_code": 200 if kind < 2 else (486 if kind == 2 else None),
            "sip_text": "OK" if kind < 2 else ("User Busy" if kind == 2 else "refused"),
            "sip_code_source": "answered" if kind < 2 else "tech_cause",
            "q850_cause": 16 if kind < 2 else 17, "q850_text": "Normal Clearing",
            "hangup_by": "service" if kind < 2 else None,
            "playback": ["done"] if kind < 2 else [], "media_server": "default",
            "claimed_by": "node-1"}
        yield row


async def _seed(database: str, count: int) -> dict[str, Any]:
    from sqlalchemy import insert

    from app.adapters.db.store import Store
    from app.adapters.db.tables import BroadcastRow, CallRow

    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    broadcast_id, report_id = str(uuid.uuid4()), str(uuid.uuid4())
    try:
        async with store.engines.writer.begin() as connection:
            await connection.execute(insert(BroadcastRow).values(
                id=broadcast_id, report_id=report_id, tenant="default", caller="bench",
                playlist=[{"pause": 1}], media_state="ready", sounds=[], total_calls=count,
                created_at=T0))
            batch: list[dict[str, Any]] = []
            for row in _records(count):
                batch.append({**row, "broadcast_id": broadcast_id})
                if len(batch) == 10_000:
                    await connection.execute(insert(CallRow), batch)
                    batch = []
            if batch:
                await connection.execute(insert(CallRow), batch)
    finally:
        await store.close()
    return {"broadcast_id": broadcast_id, "report_id": report_id}


async def _schema(database: str) -> dict[str, Any]:
    from app.adapters.db.store import Store

    store = await Store.open(f"sqlite+aiosqlite:///{database}")
    await store.close()
    return {}


def _bare_time(text: str | None) -> str | None:
    return None if text is None else text[:19]  # stored as UTC 'YYYY-MM-DD HH:MM:SS.ffffff'


def _bare_duration(connect: str | None, disconnect: str | None) -> int:
    if connect is None or disconnect is None:
        return 0
    seconds = (datetime.fromisoformat(disconnect) - datetime.fromisoformat(connect))
    return max(0, round(seconds.total_seconds()))


def bare_report(database: str, broadcast_id: str, report_id: str) -> dict[str, Any]:
    """SELECT plus serialisation: the least any service must do to answer the report."""
    connection = sqlite3.connect(database)
    before = reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    rows = connection.execute(
        "SELECT c.id, c.result, c.request_time, c.target, b.caller, c.setup_time, c.ring_time, "
        "c.connect_time, c.disconnect_time, c.sip_code, c.sip_text, c.sip_code_source, "
        "c.q850_cause, c.q850_text, c.hangup_by, c.playback, c.speech, c.state, c.attempt, "
        "c.media_server FROM calls c JOIN broadcasts b ON b.id = c.broadcast_id "
        "WHERE c.broadcast_id = ? ORDER BY c.position, c.attempt", (broadcast_id,))
    records = []
    for (call_id, result, request_time, target, caller, setup, ring, connect, disconnect,
         sip_code, sip_text, source, q850, q850_text, hangup_by, playback, speech, state,
         attempt, media_server) in rows:
        record: dict[str, Any] = {
            "type": "voice", "id": call_id, "result": result or "pending",
            "request_time": _bare_time(request_time), "to": target, "from": caller,
            "setup_time": _bare_time(setup)}
        if ring is not None:
            record["ring_time"] = _bare_time(ring)
        if connect is not None:
            record["connect_time"] = _bare_time(connect)
        record.update({
            "disconnect_time": _bare_time(disconnect),
            "disconnect_cause_code": None if sip_code is None else str(sip_code),
            "disconnect_cause_text": sip_text,
            "duration": _bare_duration(connect, disconnect), "answered": connect is not None,
            "sip_code_source": source, "q850_cause": q850, "q850_text": q850_text,
            "hangup_by": hangup_by, "playback": json.loads(playback) if playback else [],
            "speech": json.loads(speech) if speech else [], "state": state,
            "attempt": attempt, "media_server": media_server})
        records.append(record)
    body = json.dumps({"code": 0, "status": 200, "data": "accepted", "request_id": report_id,
                       "report_status": "ready", "progress": {}, "records": records}).encode()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": time.process_time() - cpu,
            "growth_mb": peak_growth_mb(before), "bytes": len(body)}


def bare_intake(database: str, body_path: str) -> dict[str, Any]:
    """Parse and insert: the least any service must do to store the request."""
    raw = Path(body_path).read_bytes()
    connection = sqlite3.connect(database)
    before = reset_peak()
    started, cpu = time.perf_counter(), time.process_time()
    body = json.loads(raw)
    broadcast_id = str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    with connection:
        connection.execute(
            "INSERT INTO broadcasts (id, report_id, tenant, caller, playlist, media_state, "
            "total_calls, created_at) VALUES (?, ?, 'default', ?, ?, 'pending', ?, ?)",
            (broadcast_id, str(uuid.uuid4()), body["from"], json.dumps(body["playlist"]),
             len(body["recipients"]), now))
        connection.executemany(
            "INSERT INTO calls (id, broadcast_id, position, attempt, target, variables, state, "
            "request_time) VALUES (?, ?, ?, 1, ?, ?, 'queued', ?)",
            ((str(uuid.uuid4()), broadcast_id, position, recipient["to"],
              json.dumps(recipient["variables"]) if recipient.get("variables") else None, now)
             for position, recipient in enumerate(body["recipients"])))
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": time.process_time() - cpu,
            "growth_mb": peak_growth_mb(before)}


def serve(database: str, runtime: str) -> None:
    """The service on a free loopback port, ARI at a closed port (nothing is dialled); prints
    its port, then answers until SIGTERM. `/bench/peak` resets and reads its memory."""
    from aiohttp import web

    from app.main import create_app
    from tests.support.ports import free_tcp_port
    from tests.support.settings import without_asterisk

    async def main() -> None:
        logging.basicConfig(level=logging.WARNING)
        settings = without_asterisk(Path(runtime), tts_engines="flite",
                                    database_url=f"sqlite+aiosqlite:///{database}")
        app = create_app(settings)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_tcp_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print(json.dumps({"port": port}), flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(main())


# --- the service, driven from this process ---------------------------------------------------

class RunningService:
    def __init__(self, database: Path, runtime: Path) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "bench.intake_report", "serve", str(database), str(runtime)],
            stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the service did not start")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"
        self.pid = self._process.pid

    def _status_kb(self, field: str) -> int:
        with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise RuntimeError(f"no {field} for the service")

    def reset_peak(self) -> int:
        with open(f"/proc/{self.pid}/clear_refs", "w", encoding="ascii") as clear:
            clear.write("5")
        return self._status_kb("VmRSS")

    def peak_growth_mb(self, before_kb: int) -> float:
        return (self._status_kb("VmHWM") - before_kb) / 1024

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


def _worker(*arguments: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.intake_report", *arguments],
                          capture_output=True, text=True, timeout=TIME_LIMIT_SECONDS,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {arguments[0]} failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _play_body(count: int) -> bytes:
    return json.dumps({"recipients": [{"to": f"sip:u{n}@192.0.2.10:5060"} for n in range(count)],
                       "from": "bench", "playlist": [{"pause": 1}]}).encode()


async def _voxcast_report(service: RunningService, report_id: str) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=TIME_LIMIT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(f"{service.url}/report/{report_id}?limit=1") as warm:
            await warm.read()
        before = service.reset_peak()
        started, cpu = time.perf_counter(), service.cpu_seconds()
        size = 0
        async with session.get(f"{service.url}/report/{report_id}") as response:
            assert response.status == 200, response.status
            async for chunk in response.content.iter_chunked(256 * 1024):
                size += len(chunk)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "cpu": service.cpu_seconds() - cpu,
            "growth_mb": service.peak_growth_mb(before), "bytes": size}


async def _voxcast_intake(service: RunningService, body: bytes) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=TIME_LIMIT_SECONDS)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(f"{service.url}/voice/call/play", data=_play_body(1),
                                headers=headers) as warm:
            assert warm.status == 200, await warm.text()
        before = service.reset_peak()
        started, cpu = time.perf_counter(), service.cpu_seconds()
        async with session.post(f"{service.url}/voice/call/play", data=body,
                                headers=headers) as response:
            answer = await response.text()
        seconds = time.perf_counter() - started
        assert response.status == 200, answer[:500]
    return {"seconds": seconds, "cpu": service.cpu_seconds() - cpu,
            "growth_mb": service.peak_growth_mb(before)}


async def _ndjson_lines(count: int) -> AsyncIterator[bytes]:
    """The upload, made as it is sent: the settings line, then one recipient a line."""
    yield b'{"from": "bench", "playlist": [{"pause": 1}]}\n'
    chunk: list[bytes] = []
    for n in range(count):
        chunk.append(b'{"to": "sip:u%d@192.0.2.10:5060"}\n' % n)
        if len(chunk) == 5000:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


async def _voxcast_bulk(service: RunningService, count: int) -> dict[str, Any]:
    timeout = aiohttp.ClientTimeout(total=TIME_LIMIT_SECONDS)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        before = service.reset_peak()
        started, cpu = time.perf_counter(), service.cpu_seconds()
        async with session.post(f"{service.url}/voice/call/play/bulk",
                                data=_ndjson_lines(count),
                                headers={"Content-Type": "application/x-ndjson"}) as response:
            answer = await response.text()
        seconds = time.perf_counter() - started
        assert response.status == 200, answer[:500]
    return {"seconds": seconds, "cpu": service.cpu_seconds() - cpu,
            "growth_mb": service.peak_growth_mb(before)}


def _row(metric: str, bare: float | None, voxcast: float, unit: str, goal: str,
         ok: bool) -> dict[str, Any]:
    ratio = None if bare is None or bare == 0 else round(voxcast / bare, 2)
    return {"metric": metric, "bare": None if bare is None else round(bare, 3),
            "voxcast": round(voxcast, 3), "unit": unit, "ratio": ratio, "goal": goal, "ok": ok}


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Times and CPU: the best run (the least disturbed by other work on the machine);
    memory: the worst."""
    return {"seconds": min(run["seconds"] for run in runs),
            "cpu": min(run["cpu"] for run in runs),
            "growth_mb": max(run["growth_mb"] for run in runs)}


def _pair(what: str, bare: dict[str, Any], voxcast: dict[str, Any],
          memory_goal_mb: float) -> list[dict[str, Any]]:
    return [
        _row(f"{what}: time", bare["seconds"], voxcast["seconds"], "s", "<= 2x bare",
             voxcast["seconds"] <= 2 * bare["seconds"]),
        _row(f"{what}: CPU time", bare["cpu"], voxcast["cpu"], "s", "reported", True),
        _row(f"{what}: memory growth", bare["growth_mb"], voxcast["growth_mb"], "MB",
             f"<= +{memory_goal_mb:g} MB", voxcast["growth_mb"] <= memory_goal_mb),
    ]


def measure(quick: bool) -> list[dict[str, Any]]:
    """Side by side, in one run: 100k intake and report (time and memory), bulk memory.

    Each side runs `repeats` times (1 quick, 3 full), alternating, each bare run in a fresh
    process; the service runs in its own process, and its client in this one."""
    recipients = FULL_RECIPIENTS
    bulk = QUICK_BULK if quick else FULL_BULK
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="voxcast-bench-") as folder:
        work = Path(folder)
        # The report: one finished broadcast, read by both sides from the same file.
        reports_db = work / "reports.db"
        seeded = _worker("seed", str(reports_db), str(recipients))
        service = RunningService(reports_db, work / "runtime-report")
        bare_runs, voxcast_runs = [], []
        try:
            for _ in range(repeats):
                bare_runs.append(_worker("bare-report", str(reports_db),
                                         seeded["broadcast_id"], seeded["report_id"]))
                voxcast_runs.append(asyncio.run(_voxcast_report(service, seeded["report_id"])))
        finally:
            service.stop()
        assert voxcast_runs[0]["bytes"] > bare_runs[0]["bytes"] * 0.99  # the same records
        rows = _pair(f"report of {recipients:,} records, full body", _best(bare_runs),
                     _best(voxcast_runs), 50)
        # Intake: the same request bytes, each side into a fresh database.
        body_path = work / "play.json"
        body_path.write_bytes(_play_body(recipients))
        service = RunningService(work / "intake.db", work / "runtime-intake")
        bare_runs, voxcast_runs = [], []
        try:
            for attempt in range(repeats):
                bare_db = work / f"bare-intake-{attempt}.db"
                _worker("schema", str(bare_db))
                bare_runs.append(_worker("bare-intake", str(bare_db), str(body_path)))
                voxcast_runs.append(asyncio.run(_voxcast_intake(service,
                                                                body_path.read_bytes())))
            rows += _pair(f"intake of {recipients:,} in one JSON request", _best(bare_runs),
                          _best(voxcast_runs), 150)
        finally:
            service.stop()
        # Bulk: a service of its own, so memory freed by earlier work cannot hide growth.
        service = RunningService(work / "bulk.db", work / "runtime-bulk")
        try:
            loaded = asyncio.run(_voxcast_bulk(service, bulk))
        finally:
            service.stop()
        rows += [
            _row(f"bulk intake of {bulk:,} (NDJSON stream): memory growth", None,
                 loaded["growth_mb"], "MB", "<= +150 MB", loaded["growth_mb"] <= 150),
            _row(f"bulk intake of {bulk:,} (NDJSON stream): time", None, loaded["seconds"],
                 "s", "reported", True),
        ]
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Intake and report: Voxcast against bare")
    for column in ("metric", "bare", "voxcast", "unit", "ratio", "goal", "ok"):
        table.add_column(column, justify="left" if column in ("metric", "goal") else "right")
    for row in rows:
        table.add_row(*("" if row[name] is None else str(row[name])
                        for name in ("metric", "bare", "voxcast", "unit", "ratio", "goal")),
                      "yes" if row["ok"] else "NO")
    Console().print(table)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in WORKERS:
        name, *arguments = sys.argv[1:]
        result = WORKERS[name](*arguments)
        if result is not None:
            print(json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"bulk of {QUICK_BULK:,} instead of {FULL_BULK:,}")
    _print_table(measure(parser.parse_args().quick))


WORKERS: dict[str, Any] = {
    "seed": lambda database, count: asyncio.run(_seed(database, int(count))),
    "schema": lambda database: asyncio.run(_schema(database)),
    "bare-report": bare_report,
    "bare-intake": bare_intake,
    "serve": serve,
}

if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
