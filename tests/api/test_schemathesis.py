"""`schemathesis run` with every check against the real app on 127.0.0.1: it must find nothing.

The app runs on this test's event loop (AppRunner/TCPSite); the Schemathesis command line runs
as a child process with tests/api/schemathesis.toml (every check enabled) and
tests/api/schemathesis_hooks.py (every generated media URL pointed at 127.0.0.1:9). Its phases
are examples (the document's own), coverage (boundaries, every undeclared method), fuzzing and
stateful (following the document's links: play, then status, report and cancel). ARI points at
a closed port: nothing is ever dialled. Any name lookup the media fetcher attempts is recorded
here and refused, so a hook that stopped working fails the test instead of reaching a resolver.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from schemathesis.checks import CHECKS, load_all_checks

import app.adapters.media.fetcher as fetcher_module
from app.main import create_app
from app.settings import Secret, Settings
from tests.support.ports import free_tcp_port as free_port
from tests.support.processes import run_bounded
from tests.support.settings import without_asterisk

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
API_KEY = "fuzz-" + "k" * 32
MAX_EXAMPLES = 150  # per operation and phase; about 2,000 cases in about two minutes here
RUN_LIMIT_SECONDS = 420
MIN_CASES = 1500


class RecordingResolver(AbstractResolver):
    """Stands in for aiohttp's resolver: records every name asked for and resolves none."""

    asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        RecordingResolver.asked.append(host)
        if host in ("127.0.0.1", "::1"):
            return [{"hostname": host, "host": host, "port": port, "family": family,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]
        raise OSError(f"the test resolves no names ({host})")

    async def close(self) -> None:
        return None


def _settings(tmp_path: Path) -> Settings:
    return without_asterisk(
        tmp_path, api_keys=Secret(f"fuzz:{API_KEY}"), media_allow_loopback=False,
        media_check_seconds=0.5, tts_engines="flite", max_recipients=20, max_playlist_items=5)


async def test_schemathesis_with_every_check_finds_nothing(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    RecordingResolver.asked = []
    monkeypatch.setattr(fetcher_module, "DefaultResolver", RecordingResolver)
    runner = web.AppRunner(create_app(_settings(tmp_path / "service")))
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    reports = tmp_path / "reports"
    started = time.monotonic()
    try:
        exit_code, output = await _schemathesis(f"http://127.0.0.1:{port}/openapi.json", reports)
    finally:
        await runner.cleanup()
    events = _events(reports)
    cases, checks, statuses = _summary(events)
    print(f"\nschemathesis: {cases} cases in {time.monotonic() - started:.0f} s; checks run "
          f"{sorted(checks)}; statuses {dict(sorted(statuses.items()))}")
    outside = sorted({host for host in RecordingResolver.asked
                      if host not in ("127.0.0.1", "::1")})
    assert outside == [], f"the media fetcher was asked to resolve {outside[:10]}"
    assert exit_code == 0, output[-6000:]
    load_all_checks()
    assert checks == set(CHECKS.get_all_names()), "some check never ran"
    assert cases >= MIN_CASES
    crashed = [record.getMessage() for record in caplog.records
               if record.levelno >= logging.CRITICAL]
    assert not crashed, f"background tasks crashed during the run: {crashed}"


async def _schemathesis(schema_url: str, reports: Path) -> tuple[int, str]:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks",
           "PYTHONPATH": str(REPO), "NO_COLOR": "1"}
    command = [
        sys.executable, "-c", "from schemathesis.cli import schemathesis; schemathesis()",
        "--config-file", str(HERE / "schemathesis.toml"), "run", schema_url,
        "--header", f"Authorization: Bearer {API_KEY}", "--seed", "1", "--workers", "1",
        "--max-examples", str(MAX_EXAMPLES), "--request-timeout", "30",
        "--report", "ndjson", "--report-dir", str(reports),
    ]
    code, stdout, stderr = await run_bounded(command, RUN_LIMIT_SECONDS, env, cwd=REPO)
    return code, stdout + stderr


def _events(reports: Path) -> list[dict[str, Any]]:
    files = sorted(reports.glob("*.ndjson"))
    assert files, "schemathesis wrote no report"
    return [json.loads(line) for line in files[-1].read_text(encoding="utf-8").splitlines()
            if line.strip()]


def _summary(events: list[dict[str, Any]]) -> tuple[int, set[str], Counter[str]]:
    """Cases sent, names of the checks that ran, and answers by operation and status."""
    cases: set[str] = set()
    checks: set[str] = set()
    statuses: Counter[str] = Counter()
    for event in events:
        recorder = (event.get("ScenarioFinished") or {}).get("recorder") or {}
        cases.update(recorder.get("cases") or {})
        for checks_of_case in (recorder.get("checks") or {}).values():
            checks.update(check["name"] for check in checks_of_case)
        for interaction in (recorder.get("interactions") or {}).values():
            status = (interaction.get("response") or {}).get("status_code")
            statuses[f"{recorder.get('label')} {status}"] += 1
    return len(cases), checks, statuses
