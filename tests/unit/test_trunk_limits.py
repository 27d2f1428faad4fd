"""TrunkService without Asterisk: health gates, per-trunk limits, failover priority."""

from __future__ import annotations

import asyncio
import time
import tomllib

import pytest

from app.adapters.ami.monitor import AmiMonitor
from app.adapters.ami.trunk_health import ContactState, TrunkHealth
from app.domain.trunks import parse_trunks
from app.services.trunks import TrunkService

TRUNKS = parse_trunks(tomllib.loads("""
[trunks.a]
hosts = [{ host = "192.0.2.1" }]
auth = { username = "u", password = "p-p-p-p" }
registration = {}
max_concurrent = 2
calls_per_second = 1000

[trunks.b]
hosts = [{ host = "192.0.2.2" }, { host = "192.0.2.3" }]
priority = 200
max_concurrent = 1
calls_per_second = 2
"""))


def service() -> tuple[TrunkService, TrunkHealth]:
    health = TrunkHealth(AmiMonitor(host="127.0.0.1", port=1, user="u", password="p"))  # noqa: S106
    return TrunkService(TRUNKS, health), health


def test_a_registering_trunk_is_passed_over_and_named() -> None:
    trunks, health = service()
    route = trunks.take(TRUNKS.candidates("+49301"))
    assert route is not None and route.trunk.name == "b"
    assert route.failed_over_from == ["a: registering"]
    health.registrations["a"] = "Rejected"
    assert trunks.state(TRUNKS.trunks[0]) == "rejected"
    health.registrations["a"] = "Registered"
    assert trunks.state(TRUNKS.trunks[0]) == "ready"


def test_unreachable_only_when_every_host_failed_its_qualify() -> None:
    trunks, health = service()
    b = TRUNKS.trunks[1]
    health.contacts["b"] = {"sip:192.0.2.2:5060": ContactState("Unreachable", None),
                            "sip:192.0.2.3:5060": ContactState("Reachable", 12.5)}
    assert trunks.state(b) == "ready" and trunks.host_for(b).host == "192.0.2.3"
    health.contacts["b"]["sip:192.0.2.3:5060"] = ContactState("Unreachable", None)
    assert trunks.state(b) == "unreachable"


def test_concurrent_calls_and_pacing_per_trunk() -> None:
    trunks, health = service()
    health.registrations["a"] = "Registered"
    a, b = TRUNKS.trunks
    assert trunks.take([a]) is not None
    assert trunks.take([a]) is None  # a's next slot is 1 ms away (1000 calls/s)
    time.sleep(0.002)
    assert trunks.take([a]) is not None
    time.sleep(0.002)
    assert trunks.take([a]) is None  # max_concurrent 2
    trunks.release(a, "200")
    assert trunks.take([a]) is not None
    assert trunks.take([b]) is not None
    trunks.release(b, "486")
    assert trunks.take([b]) is None  # free, but its next slot is 0.5 s away (2 calls/s)
    shown = {t["name"]: t for t in trunks.snapshot()}
    assert shown["a"]["live_calls"] == 2 and shown["a"]["peak_live_calls"] == 2
    assert shown["b"]["outcomes"] == {"486": 1} and shown["b"]["calls"] == 1


@pytest.mark.asyncio
async def test_a_call_failing_over_goes_before_new_calls() -> None:
    trunks, health = service()
    health.registrations["a"] = "Registered"
    a = TRUNKS.trunks[0]
    assert trunks.take([a]) is not None
    await asyncio.sleep(0.002)
    assert trunks.take([a]) is not None
    waiting = asyncio.create_task(trunks.take_for_failover([a], wait_seconds=2))
    await asyncio.sleep(0.05)
    trunks.release(a, "200")
    await asyncio.sleep(0.002)
    assert trunks.take([a]) is None  # a new call: left to the waiting one
    route = await waiting
    assert route is not None and route.trunk is a


def test_a_call_live_from_before_a_restart_counts_in_its_trunks_limit() -> None:
    trunks, health = service()
    b = TRUNKS.trunks[1]
    route = trunks.adopt("b")
    assert route is not None and route.trunk is b
    assert trunks.take([b]) is None  # max_concurrent 1, held by the adopted call
    assert trunks.adopt("gone") is None  # removed from the file since
