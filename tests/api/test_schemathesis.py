"""Schemathesis against the real app on 127.0.0.1: no 5xx, and answers match /openapi.json.

The app runs on this test's event loop (AppRunner/TCPSite); Schemathesis's Python API is
synchronous (requests), so it runs in a worker thread while the loop serves it. ARI points at a
closed port: nothing is ever dialled. Generated `play` URLs are pointed at 127.0.0.1 (which the
address policy refuses), so no request leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from app.api.models import PlayItem
from app.domain.dial_target import normalise_sip_uri, validate_caller_id
from app.main import create_app
from app.settings import Secret, Settings
from tests.support.ports import free_tcp_port
from tests.support.settings import without_asterisk

API_KEY = "fuzz-" + "k" * 32
TIME_BUDGET = 150.0  # seconds of generation; the whole test stays under ~3 minutes
MIN_REQUESTS = 1000
EXAMPLES = {  # per operation and generation mode; operations without inputs yield one case
    "POST /voice/call/play": 250,
    "POST /media": 150,
    "GET /voice/call/status/{id}": 150,
    "GET /report/{report_id}": 150,
    "DELETE /voice/call/{request_id}": 150,
}
# Cancel some accepted requests before asking for their status and report: they end (calls
# `cancelled`), so reports come back ready, with records.
_ORDER = ["POST /voice/call/play", "DELETE /voice/call/{request_id}",
          "GET /voice/call/status/{id}", "GET /report/{report_id}"]
CHECKS = [not_a_server_error, response_schema_conformance]
# /ready answers a documented 503 here: ARI is down on purpose. Its body must still conform.
CHECKS_FOR = {"GET /ready": [response_schema_conformance]}


@dataclass
class Fuzz:
    base_url: str
    deadline: float
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[tuple[str, int, str], str] = field(default_factory=dict)
    request_ids: list[str] = field(default_factory=list)
    report_ids: list[str] = field(default_factory=list)
    call_ids: list[str] = field(default_factory=list)
    turn: int = 0


def _settings(tmp_path: Path) -> Settings:
    return without_asterisk(
        tmp_path, api_keys=Secret(f"fuzz:{API_KEY}"), media_allow_loopback=False,
        media_check_seconds=0.5, tts_engines="flite", max_recipients=20, max_playlist_items=5)


async def test_schemathesis_finds_no_server_errors_or_schema_mismatches(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runner = web.AppRunner(create_app(_settings(tmp_path)))
    await runner.setup()
    port = free_tcp_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    started = time.monotonic()
    fuzz = Fuzz(base_url=f"http://127.0.0.1:{port}", deadline=started + TIME_BUDGET)
    try:
        await asyncio.wait_for(asyncio.to_thread(_run, fuzz), TIME_BUDGET + 30)
    finally:
        await runner.cleanup()
    total = sum(fuzz.sent.values())
    print(f"\nschemathesis: {total} generated requests in {time.monotonic() - started:.1f}s; "
          f"per operation {dict(fuzz.sent)}; statuses {dict(sorted(fuzz.statuses.items()))}; "
          f"learned {len(fuzz.request_ids)} request, {len(fuzz.report_ids)} report and "
          f"{len(fuzz.call_ids)} call ids")
    assert not fuzz.failures, "\n\n".join(fuzz.failures.values())
    crashed = [record.getMessage() for record in caplog.records
               if record.levelno >= logging.CRITICAL]
    assert not crashed, f"background tasks crashed during the run: {crashed}"
    assert total >= MIN_REQUESTS


def _run(fuzz: Fuzz) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz.base_url}/openapi.json", timeout=10)
    with requests.Session() as session:
        operations = sorted((result.ok() for result in schema.get_all_operations()),
                            key=lambda operation: _ORDER.index(_label(operation))
                            if _label(operation) in _ORDER else len(_ORDER))
        for operation in operations:
            label = _label(operation)
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                if mode is GenerationMode.NEGATIVE and label not in EXAMPLES:
                    continue  # nothing to negate
                _fuzz_operation(fuzz, session, operation, label, mode)


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def _fuzz_operation(fuzz: Fuzz, session: requests.Session, operation: Any, label: str,
                    mode: GenerationMode) -> None:
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis.settings(max_examples=EXAMPLES.get(label, 1), deadline=None, database=None,
                         derandomize=True, phases=[Phase.generate],
                         suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        if time.monotonic() > fuzz.deadline:
            return
        fuzz.turn += 1
        _steer(fuzz, case, label)
        headers = {"Authorization": f"Bearer {API_KEY}"}
        try:
            response = case.call(base_url=fuzz.base_url, session=session, headers=headers,
                                 timeout=30)
        except requests.RequestException as error:
            fuzz.failures[(label, 0, type(error).__name__)] = f"{label}: {error!r}"
            return
        fuzz.sent[label] += 1
        fuzz.statuses[(label, response.status_code)] += 1
        _learn(fuzz, label, response)
        try:
            case.validate_response(response, checks=CHECKS_FOR.get(label, CHECKS),
                                   headers=headers)
        except (AssertionError, BaseExceptionGroup) as failure:
            key = (label, response.status_code, type(failure).__name__)
            fuzz.failures.setdefault(key, _describe(case, response, failure))

    run()


def _steer(fuzz: Fuzz, case: Any, label: str) -> None:
    """Keep every fetch on loopback, and send every other case a known id or valid targets."""
    body = case.body
    if label == "POST /voice/call/play" and isinstance(body, dict):
        for item in _list(body.get("playlist")):
            if isinstance(item, dict) and isinstance(item.get("play"), str):
                item["play"] = _loopback(item["play"])
        if fuzz.turn % 2 == 0:
            _plausible(body)
    parameters = case.path_parameters or {}
    if fuzz.turn % 2 == 0:
        for name, pool in (("id", fuzz.request_ids + fuzz.call_ids),
                           ("request_id", fuzz.request_ids), ("report_id", fuzz.report_ids)):
            if name in parameters and pool:
                parameters[name] = pool[fuzz.turn % len(pool)]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _loopback(url: str) -> str:
    if url.startswith("media:"):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return parts._replace(netloc="127.0.0.1:9").geturl()
    return url


def _plausible(body: dict[str, Any]) -> None:
    """Valid targets, caller and URLs, so more cases get past validation into the service."""
    def fixed(value: Any, check: Any, good: str) -> Any:
        try:
            check(value)
        except (TypeError, ValueError):
            return good
        return value

    if not _list(body.get("recipients")) or "to" in body:
        body.pop("recipients", None)
    if "recipients" not in body:
        body["to"] = fixed(body.get("to"), normalise_sip_uri, "sip:alice@127.0.0.1:5070")
    body["from"] = fixed(body.get("from"), validate_caller_id, "fuzz")
    for recipient in _list(body.get("recipients")):
        if isinstance(recipient, dict):
            recipient["to"] = fixed(recipient.get("to"), normalise_sip_uri, "sip:bob@127.0.0.1")
    playlist = _list(body.get("playlist"))
    for index, item in enumerate(playlist):
        if isinstance(item, dict) and "play" in item:
            item["play"] = fixed(item["play"], _play_source, "http://127.0.0.1:9/fuzz.wav")
            if item["play"].startswith("http"):  # refused on loopback (422): let these through
                playlist[index] = {"pause": 0.5}
    # JSON Schema counts 3.0 as an integer; the strict models do not (see the report).
    for holder in [*playlist, body.get("retry")]:
        if isinstance(holder, dict):
            for key in ("loop", "attempts", "delay"):
                value = holder.get(key)
                if isinstance(value, float) and value.is_integer():
                    holder[key] = int(value)


def _play_source(value: Any) -> None:
    PlayItem.model_validate({"play": value})


def _learn(fuzz: Fuzz, label: str, response: requests.Response) -> None:
    if response.status_code != 200:
        return
    try:
        answer = response.json()
    except ValueError:
        return
    if not isinstance(answer, dict):
        return
    if label == "POST /voice/call/play" and len(fuzz.request_ids) < 50:
        fuzz.request_ids.append(str(answer.get("request_id")))
    report = answer.get("report")
    if isinstance(report, dict) and report.get("id") not in fuzz.report_ids:
        fuzz.report_ids.append(str(report.get("id")))
    for record in _list(answer.get("records")):
        if isinstance(record, dict) and record.get("id") not in fuzz.call_ids:
            fuzz.call_ids.append(str(record.get("id")))


def _describe(case: Any, response: requests.Response, failure: BaseException) -> str:
    sent = response.request
    body = sent.body if isinstance(sent.body, bytes | str | None) else repr(sent.body)
    if isinstance(body, bytes):
        body = body[:600].decode("utf-8", "backslashreplace")
    headers = {name: value for name, value in sent.headers.items() if name != "Authorization"}
    return (f"{sent.method} {sent.url}\nheaders: {json.dumps(headers)}\nbody: {body!s:.600}\n"
            f"-> {response.status_code} {response.text[:800]}\nfailure: {failure!s:.1500}")
