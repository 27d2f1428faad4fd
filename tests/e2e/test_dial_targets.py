"""Every accepted target form is dialled over its own transport, and what Asterisk makes up
locally (no transport, refused connection, unresolved name, no response) is told from what a
far end answered."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from app.media_plane.sipp import SippFarEnd
from app.media_plane.tls import place_tls_files
from app.runtime import layout_of
from tests.e2e.conftest import MediaPlane, Service
from tests.support.ports import free_tcp_port as free_port

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

# (far end name, scenario, transport, address)
FAR_ENDS = (("tcp4", "answer", "tcp", "127.0.0.1"), ("tls4", "answer", "tls", "127.0.0.1"),
            ("sips4", "answer_sips", "tls", "127.0.0.1"), ("udp6", "answer", "udp", "::1"),
            ("tcp6", "answer", "tcp", "::1"), ("tls6", "answer", "tls", "::1"))


def _port(family: int, kind: int, host: str) -> int:
    with socket.socket(family, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class RtpCounter(asyncio.DatagramProtocol):
    """Binds a far end's advertised media port (SIPp does not, unless it echoes): counts the
    RTP packets Asterisk sends there, so a call that answers but stays silent is caught."""

    def __init__(self) -> None:
        self.packets = 0

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) > 12 and data[0] >> 6 == 2:  # RTP version 2
            self.packets += 1


@dataclass
class FarEnd:
    sipp: SippFarEnd
    rtp: RtpCounter

    def uri(self, user: str, scheme: str = "sip", transport: str | None = None) -> str:
        host = f"[{self.sipp.address}]" if ":" in self.sipp.address else self.sipp.address
        suffix = f";transport={transport}" if transport else ""
        return f"{scheme}:{user}@{host}:{self.sipp.port}{suffix}"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def far_ends(media_plane: MediaPlane) -> AsyncIterator[dict[str, FarEnd]]:
    layout = layout_of(media_plane.settings)
    work = layout.sipp_dir / "targets"
    tls = place_tls_files(work / "tls", cert=None, key=None, far_end_ca=None,
                          addresses=["127.0.0.1", "::1"])
    loop = asyncio.get_running_loop()
    started: dict[str, FarEnd] = {}
    transports = []
    try:
        for name, scenario, transport, address in FAR_ENDS:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
            media_port = _port(family, socket.SOCK_DGRAM, address) & ~1
            rtp_transport, rtp = await loop.create_datagram_endpoint(
                RtpCounter, local_addr=(address, media_port))
            transports.append(rtp_transport)
            sipp = SippFarEnd(media_plane.settings.asterisk_root, f"{scenario}.xml",
                              _port(family, kind, address), work / name,
                              media_port=media_port, transport=transport, address=address,
                              tls_files=(tls.cert, tls.key) if transport == "tls" else None)
            await sipp.start()
            started[name] = FarEnd(sipp, rtp)
        yield started
    finally:
        for far_end in started.values():
            await far_end.sipp.stop()
        for rtp_transport in transports:
            rtp_transport.close()


async def test_every_target_form_is_dialled_over_its_transport(
        media_plane: MediaPlane, service: Service, far_ends: dict[str, FarEnd]) -> None:
    udp4 = media_plane.far_ends["answer"]
    udp_port, tcp4 = udp4.port, far_ends["tcp4"]
    targets = {  # target -> the far end that must receive its one INVITE
        f"sip:form1@127.0.0.1:{udp_port}": "udp4",
        f"sip:form2@127.0.0.1:{udp_port};transport=udp": "udp4",
        tcp4.uri("form3", transport="tcp"): "tcp4",
        far_ends["tls4"].uri("form4", transport="tls"): "tls4",
        far_ends["sips4"].uri("form5", scheme="sips"): "sips4",
        f"sip:form6@localhost:{udp_port}": "udp4",  # names resolve inside Asterisk's root
        f"sip:form7@localhost:{tcp4.sipp.port};transport=tcp": "tcp4",
        far_ends["udp6"].uri("form8"): "udp6",
        far_ends["tcp6"].uri("form9", transport="tcp"): "tcp6",
        far_ends["tls6"].uri("form10", transport="tls"): "tls6",
    }
    status, accepted = await service.post("/voice/call/play", {
        "recipients": [{"to": target} for target in targets], "from": "forms",
        "playlist": [{"pause": 1}]})
    assert status == 200, accepted
    report = await service.wait_for_report(accepted["request_id"], limit=60)
    records = {record["to"]: record for record in report["records"]}
    for target, far_end in targets.items():
        record = records[target]
        assert (record["result"], record["answered"], record["disconnect_cause_code"]) == \
            ("completed", True, "200"), (target, record)
        user = target.split(":")[1].split("@")[0]
        sipp = udp4 if far_end == "udp4" else far_ends[far_end].sipp
        assert sipp.invites_by_user()[user] == 1, (target, far_end)
    for name, far_end in far_ends.items():  # audio flowed on each transport and family
        assert far_end.rtp.packets > 0, f"{name}: answered but no RTP reached the far end"


async def test_locally_made_failures_are_not_far_end_answers(media_plane: MediaPlane,
                                                            service: Service) -> None:
    refused_tcp = free_port()  # nothing listens here
    silent_v6 = _port(socket.AF_INET6, socket.SOCK_DGRAM, "::1")
    targets = {
        f"sip:local1@127.0.0.1:{refused_tcp};transport=tcp": ("failed", None, "none"),
        "sip:local2@no-such-host.invalid:5060": ("failed", None, "none"),
        f"sip:local3@[::1]:{silent_v6}": ("completed", "408", "timeout"),
        media_plane.uri("reject_503", user="local4"): ("completed", "503", "tech_cause"),
    }
    status, accepted = await service.post("/voice/call/play", {
        "recipients": [{"to": target} for target in targets], "from": "forms",
        "playlist": [{"pause": 1}]})
    assert status == 200, accepted
    report = await service.wait_for_report(accepted["request_id"], limit=30)
    for record in report["records"]:
        result, code, source = targets[record["to"]]
        assert (record["result"], record["disconnect_cause_code"], record["sip_code_source"]) \
            == (result, code, source), record
        if result == "failed":
            assert "could not send the call" in record["disconnect_cause_text"]
            assert record["q850_cause"] == 34
