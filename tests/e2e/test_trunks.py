"""SIP trunks against SIPp playing four providers on 127.0.0.1, judged by their own traces.

- `digest` (UDP) takes calls only after an authenticated REGISTER, and challenges each INVITE
  with 401 (tests/sipp/provider_digest_register.xml); national number format; caller ids
  +4930* only.
- `byip` (TCP) knows us by our address; E.164 without `+`.
- `forbidden` answers REGISTER with 403: rejected, it must get no call; its numbers (+33) go
  to `byip` instead.
- `busy503` answers every INVITE with 503: its numbers (+1) fail over to `byip` in the same
  attempt.
- `overtls` knows us by our address, over TLS (a self-signed certificate: not verified).
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from app.domain.trunks import TrunkFileError
from app.media_plane.sipp import SippFarEnd
from app.media_plane.tls import place_tls_files
from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.services.trunks import TrunkService
from app.settings import Secret, Settings
from tests.e2e.test_cli import VOXCAST
from tests.support import processes
from tests.support.asterisk_root import asterisk_root
from tests.support.pacing import allowed_in_window, max_in_window, max_overlap
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_port, free_udp_range
from tests.support.processes import run_bounded
from tests.support.service import (
    ServiceProcess,
    environment,
    poll,
    run_command,
    running_service,
)
from tests.support.sip_trace import Dialog, parse_messages, read_dialogs

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"
USER, PASSWORD = "voxcast-user", "Digest-Pass_42"  # what provider_digest_register.xml checks
JITTER = 0.3  # slot to INVITE on the wire (see tests/e2e/test_pacing.py)
OPERATOR_KEY = "ops-" + "k" * 40
LIMITS = {"digest": (2, 2.0), "byip": (3, 3.0)}  # max concurrent, calls per second


@dataclass
class Providers:
    settings: Settings
    sipp: dict[str, SippFarEnd]
    trunks_file: Path

    def dialogs(self, name: str) -> list[Dialog]:
        return read_dialogs(self.sipp[name].message_trace)

    def registers(self, name: str) -> list[tuple[str, int | None]]:
        """(Authorization header or "", status) of each REGISTER exchange the provider saw."""
        messages = parse_messages(self.sipp[name].message_trace.read_bytes())
        seen = []
        for message in messages:
            if message.received and message.method == "REGISTER":
                answer = next((m.status for m in messages if not m.received
                               and m.cseq_method == "REGISTER"
                               and m.headers.get("cseq") == message.headers.get("cseq")), None)
                seen.append((message.headers.get("authorization", ""), answer))
        return seen


def trunks_toml(ports: dict[str, int]) -> str:
    return f"""
[trunks.digest]
hosts = [{{ host = "127.0.0.1", port = {ports["digest"]} }}]
prefixes = ["+49"]
auth = {{ username = "{USER}", password = "{PASSWORD}" }}
registration = {{ expiry = 300 }}
numbers = {{ format = "national", country_code = "49" }}
caller_id = {{ allowed = ["+4930*"] }}
max_concurrent = {LIMITS["digest"][0]}
calls_per_second = {LIMITS["digest"][1]}
qualify_seconds = 5

[trunks.byip]
hosts = [{{ host = "127.0.0.1", port = {ports["byip"]}, transport = "tcp" }}]
prefixes = ["+44", "+1", "+33"]
priority = 20
numbers = {{ format = "e164" }}
from = {{ domain = "voxcast.example" }}
max_concurrent = {LIMITS["byip"][0]}
calls_per_second = {LIMITS["byip"][1]}
qualify_seconds = 5

[trunks.forbidden]
hosts = [{{ host = "127.0.0.1", port = {ports["forbidden"]} }}]
prefixes = ["+33"]
priority = 10
auth = {{ username = "someone", password = "not-this-one" }}
registration = {{ expiry = 300 }}

[trunks.overtls]
hosts = [{{ host = "127.0.0.1", port = {ports["overtls"]}, transport = "tls" }}]
prefixes = ["+39"]
qualify_seconds = 5

[trunks.busy503]
hosts = [{{ host = "127.0.0.1", port = {ports["busy503"]} }}]
prefixes = ["+1"]
priority = 10
"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def providers(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Providers]:
    root = asterisk_root()
    runtime = tmp_path_factory.mktemp("trunks")
    instance = f"trunks-{uuid.uuid4().hex[:8]}"
    processes.add_marker(f"/srv/voxcast/{instance}/")
    scenarios = {"digest": ("provider_digest_register", "udp"),
                 "byip": ("provider_by_ip", "tcp"),
                 "forbidden": ("provider_forbids_register", "udp"),
                 "busy503": ("provider_rejects_503", "udp"),
                 "overtls": ("provider_by_ip", "tls")}
    ports = {name: free_udp_port() if transport == "udp" else free_tcp_port()
             for name, (_, transport) in scenarios.items()}
    trunks_file = runtime / "trunks.toml"
    trunks_file.write_text(trunks_toml(ports))
    rtp_start, rtp_end = free_udp_range(100)
    settings = with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root, instance_name=instance,
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", sip_port=free_sip_port(),
        sip_tls_port=free_tcp_port(), ami_port=free_tcp_port(), rtp_start=rtp_start,
        rtp_end=rtp_end, ring_timeout=5, drain_timeout=5.0, calls_per_second=20,
        max_concurrent_calls=50, trunks_file=trunks_file, operator_tenants="ops",
        # NAT settings in force; the providers are on a local net, so they see no change.
        external_address="198.51.100.20", local_nets="127.0.0.0/8"))
    layout = layout_of(settings)
    tls = place_tls_files(layout.sipp_dir / "tls", cert=None, key=None, far_end_ca=None,
                          addresses=["127.0.0.1"])
    sipp: dict[str, SippFarEnd] = {}
    try:
        for name, (scenario, transport) in scenarios.items():
            # -deadcall_wait 0: a REGISTER refresh reusing its Call-ID is a new exchange.
            sipp[name] = SippFarEnd(root, SCENARIOS / f"{scenario}.xml", ports[name],
                                    layout.sipp_dir / name, ["-deadcall_wait", "0"],
                                    transport=transport,
                                    tls_files=(tls.cert, tls.key) if transport == "tls" else None)
            await sipp[name].start()
            processes.register(sipp[name].pid, f"sipp provider {name}")
        async with running_asterisk(settings) as asterisk:
            processes.register(asterisk.pid, "asterisk (trunks)")
            yield Providers(settings, sipp, trunks_file)
    finally:
        for far_end in sipp.values():
            await far_end.stop()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)


def _user(uri_line: str) -> str:
    return uri_line.split(" ")[1].split(":", 1)[1].split("@", 1)[0]


def _answered(dialog: Dialog) -> bool:
    return 200 in {m.status for m in dialog.sent_responses()}


def _life(dialog: Dialog) -> tuple[float, float]:
    """From the first INVITE to the BYE (a challenged INVITE's 401 does not end the call)."""
    byes = dialog.received("BYE") + dialog.sent_requests("BYE")
    return dialog.invite.at, min(m.at for m in byes) if byes else dialog.messages[-1].at


def _uri_user(header: str) -> str:
    match = re.search(r"<sips?:([^@>]*)@", header)
    return match.group(1) if match else ""


async def _trunks_ready(service_trunks: TrunkService) -> None:
    async def ready() -> tuple[bool, object]:
        shown = {trunk["name"]: trunk for trunk in service_trunks.snapshot()}
        # Reachability with a round-trip time is known at once: read over AMI at login, not
        # only from the ContactStatus events Asterisk sends when it changes.
        measured = all(contact["rtt_ms"] for name in ("digest", "byip")
                       for contact in shown[name]["contacts"]) \
            and all(shown[name]["contacts"] for name in ("digest", "byip"))
        return (shown["digest"]["state"] == "ready" and shown["byip"]["state"] == "ready"
                and shown["forbidden"]["state"] == "rejected" and measured), shown

    await poll(ready, limit=15, what="trunk health over AMI")


async def test_one_broadcast_routed_by_prefix_within_each_trunks_limits(
        providers: Providers, tmp_path: Path) -> None:
    from app.api.routes import TRUNKS

    settings = providers.settings.with_overrides(runtime_dir=tmp_path)
    german = [f"+4930555{i:04d}" for i in range(6)]
    british = [f"+4420755{i:04d}" for i in range(6)]
    american = [f"+1212555{i:04d}" for i in range(2)]
    french = [f"+3314555{i:04d}" for i in range(2)]
    italian = [f"+3906555{i:04d}" for i in range(2)]
    named = "+4930777000"  # a German number sent through byip by name
    async with running_service(settings) as service:
        await _trunks_ready(service.app[TRUNKS])
        # A caller id digest does not allow, for a number only digest serves: 400 on `from`.
        status, answer = await service.post("/voice/call/play", {
            "recipients": [{"to": german[0]}], "from": "+4989000000",
            "playlist": [{"pause": 0.5}]})
        assert status == 400 and answer["details"][0]["field"] == "from", answer
        status, answer = await service.post("/voice/call/play", {
            "recipients": [{"to": german[0], "trunk": "nosuch"}], "from": "+4930123456",
            "playlist": [{"pause": 0.5}]})
        assert status == 400 and answer["details"][0]["field"] == "recipients[0].trunk"

        request_id = await service.submit({
            "recipients": [{"to": n} for n in german + british + american + french + italian]
            + [{"to": named, "trunk": "byip"}],
            "from": "+4930123456", "playlist": [{"pause": 2}]})
        report = await service.wait_for_report(request_id, limit=90)
        _, shown = await service.get("/trunks")
    records = {record["to"]: record for record in report["records"]}
    assert {n: r["disconnect_cause_code"] for n, r in records.items()} == \
        dict.fromkeys(records, "200"), [(n, r["disconnect_cause_text"]) for n, r in records.items()]
    assert {n: records[n]["trunk"] for n in german} == dict.fromkeys(german, "digest")
    assert {n: records[n]["trunk"] for n in british + american + french + [named]} == \
        dict.fromkeys(british + american + french + [named], "byip")
    assert [records[n]["failed_over_from"] for n in american] == [["busy503: 503"]] * 2
    assert [records[n]["failed_over_from"] for n in french] == [["forbidden: rejected"]] * 2

    # What the providers saw.
    digest = providers.dialogs("digest")
    assert sorted(_user(d.invite.first_line) for d in digest) == \
        sorted("0" + n.removeprefix("+49") for n in german)  # national format
    for dialog in digest:
        invites = dialog.received("INVITE")
        assert "authorization" not in invites[0].headers
        assert f'username="{USER}"' in invites[-1].headers["authorization"]
        assert _answered(dialog), dialog.timeline()
        # The caller id in the trunk's format, as From user and P-Asserted-Identity.
        assert _uri_user(invites[-1].headers["from"]) == "030123456"
        assert _uri_user(invites[-1].headers["p-asserted-identity"]) == "030123456"
    registers = providers.registers("digest")
    assert registers[0][1] == 401 and f'username="{USER}"' in registers[1][0] \
        and registers[1][1] == 200, registers

    byip = providers.dialogs("byip")
    expected = {n.removeprefix("+") for n in british + american + french + [named]}
    assert sorted(_user(d.invite.first_line) for d in byip) == sorted(expected)
    for dialog in byip:
        assert dialog.invite.headers["via"].startswith("SIP/2.0/TCP ")
        assert "authorization" not in dialog.invite.headers
        assert _uri_user(dialog.invite.headers["p-asserted-identity"]) == "4930123456"
        assert "<sip:4930123456@voxcast.example>" in dialog.invite.headers["from"]
        assert _answered(dialog), dialog.timeline()

    overtls = providers.dialogs("overtls")
    assert sorted(_user(d.invite.first_line) for d in overtls) == sorted(italian)
    assert all(d.invite.headers["via"].startswith("SIP/2.0/TLS ") and _answered(d)
               for d in overtls), [d.timeline() for d in overtls]
    assert {n: records[n]["trunk"] for n in italian} == dict.fromkeys(italian, "overtls")

    assert providers.dialogs("forbidden") == []  # rejected: no call at all
    assert {status for _, status in providers.registers("forbidden")} == {403}
    busy = providers.dialogs("busy503")
    assert sorted(_user(d.invite.first_line) for d in busy) == \
        sorted(american)  # the default format: E.164 with +
    assert {d.final_status for d in busy} == {503}

    # Each trunk's limits, measured at its provider.
    for name, dialogs in (("digest", digest), ("byip", byip)):
        cap, rate = LIMITS[name]
        lives = [_life(d) for d in dialogs]
        invites = [d.invite.at for d in dialogs]
        print(f"{name}: {len(dialogs)} calls, at most {max_overlap(lives)} at once (limit "
              f"{cap}), at most {max_in_window(invites)} INVITEs in 1 s (limit {rate:g}/s, "
              f"allowance {allowed_in_window(rate, JITTER)})")
        assert max_overlap(lives) <= cap, (name, max_overlap(lives))
        assert max_in_window(invites) <= allowed_in_window(rate, JITTER), \
            (name, max_in_window(invites))
    # The cap was reached, so it was what held the calls back.
    assert max_overlap([_life(d) for d in digest]) == 2

    # GET /trunks agrees with the providers.
    trunks = {trunk["name"]: trunk for trunk in shown["trunks"]}
    assert trunks["forbidden"]["state"] == "rejected" and trunks["forbidden"]["calls"] == 0
    assert trunks["digest"]["registration"] == "Registered"
    assert trunks["digest"]["outcomes"] == {"200": len(digest)}
    assert trunks["byip"]["outcomes"] == {"200": len(byip)}
    assert trunks["busy503"]["outcomes"] == {"503": len(busy)}
    assert trunks["digest"]["peak_live_calls"] == 2 and trunks["byip"]["peak_live_calls"] <= 3


async def test_a_bad_trunks_file_is_refused_and_the_running_trunks_stay(
        providers: Providers, tmp_path: Path) -> None:
    from app.api.routes import TRUNKS

    good = providers.trunks_file.read_text()
    settings = providers.settings.with_overrides(runtime_dir=tmp_path)
    async with running_service(settings) as service:
        trunks = service.app[TRUNKS]
        before = trunks.table
        try:
            providers.trunks_file.write_text(
                good.replace('password = "not-this-one"', 'password = "bad;comment"'))
            with pytest.raises(TrunkFileError, match=r"trunk 'forbidden', key 'auth.password'"):
                await trunks.reload()
            assert trunks.table is before
            # A good change is taken without a restart: byip gets a fourth prefix.
            providers.trunks_file.write_text(good.replace('"+33"]\npriority = 20',
                                                          '"+33", "+31"]\npriority = 20'))
            table = await trunks.reload()
            byip = table.get("byip")
            assert byip is not None and "+31" in byip.spec.prefixes
        finally:
            providers.trunks_file.write_text(good)
            await trunks.reload()


async def test_python_m_app_trunks_reload_and_voxcast_trunks(providers: Providers,
                                                              tmp_path: Path) -> None:
    good = providers.trunks_file.read_text()
    settings = providers.settings.with_overrides(runtime_dir=tmp_path, port=free_tcp_port(),
                                                 api_keys=Secret(f"ops:{OPERATOR_KEY}"))
    env = environment(settings)
    async with ServiceProcess("serve", env) as service:
        await service.start()
        service.api.headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        try:
            providers.trunks_file.write_text(good.replace('"not-this-one"', '"bad;comment"'))
            refused = await run_command("trunks", "reload", env=env)
            assert refused.exit_code == 2
            assert "trunk 'forbidden', key 'auth.password'" in refused.stderr
            assert "bad;comment" not in refused.stderr + service.log_tail(20000)

            providers.trunks_file.write_text(good.replace('"+33"]\npriority = 20',
                                                          '"+33", "+31"]\npriority = 20'))
            done = await run_command("trunks", "reload", env=env)
            assert done.exit_code == 0, done.stderr
            assert f"pid {service.service_pid()}" in done.stdout

            async def reloaded() -> tuple[bool, object]:
                _, answer = await service.api.get("/trunks")
                byip = next(t for t in answer["trunks"] if t["name"] == "byip")
                return "+31" in byip["prefixes"], byip["prefixes"]

            await poll(reloaded, limit=10, what="the reloaded trunks")
            code, shown, _ = await run_bounded(
                [VOXCAST, "trunks"], 30,
                {**{k: v for k, v in os.environ.items() if not k.startswith("VOXCAST_")},
                 "VOXCAST_URL": f"http://127.0.0.1:{settings.port}",
                 "VOXCAST_API_KEY": OPERATOR_KEY, "COLUMNS": "160",
                 "XDG_CONFIG_HOME": "/nonexistent"})
            assert code == 0
            rows = {line.split()[1]: line for line in shown.splitlines()
                    if line.startswith("│")}
            assert "rejected" in rows["forbidden"] and "Registered" in rows["digest"], shown
        finally:
            providers.trunks_file.write_text(good)
            await run_command("trunks", "reload", env=env)
