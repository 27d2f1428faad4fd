"""The end-to-end tier: a real Asterisk (from asterisk/provision.sh) and SIPp far ends.

One Asterisk and one set of far ends serve the whole session; every test gets its own service
(its own database) built by `create_app`, exactly as production wires it. Far ends write their
full SIP message trace, and the answering one's media port is bound by an RTP capture, so
tests judge outcomes by what reached the far end.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from app.media_plane.asterisk_process import AsteriskProcess
from app.media_plane.sipp import SippFarEnd
from app.runtime import layout_of, running_asterisk, with_generated_secrets
from app.settings import Settings
from tests.support import processes
from tests.support.asterisk_root import asterisk_root
from tests.support.audio import tone_mp3, tone_wav
from tests.support.media_server import serving_files
from tests.support.ports import free_sip_port, free_tcp_port, free_udp_port, free_udp_range
from tests.support.rtp import RtpCapture
from tests.support.service import Service, running_service
from tests.support.sip_trace import Dialog, read_dialogs

WAV_SECONDS = 3.0
WAV_HZ = 440.0
MP3_SECONDS = 2.0
BEHAVIOURS = ("answer", "reject_486", "reject_404", "reject_503", "reject_603", "reject_480",
              "ring")
RTP_PORTS = 400  # 200 calls at once (RTP + RTCP each): a crash test can briefly hold 160


@dataclass
class MediaPlane:
    settings: Settings
    asterisk: AsteriskProcess
    far_ends: dict[str, SippFarEnd]  # behaviour -> SIPp on 127.0.0.1
    silent_port: int  # nothing listens here
    media_url: str  # a 3 s 44.1 kHz stereo WAV of a 440 Hz tone, served on 127.0.0.1
    media_base: str
    rtp: RtpCapture  # bound to the answering far end's media port

    def uri(self, behaviour: str, user: str = "bob") -> str:
        port = self.silent_port if behaviour == "silent" else self.far_ends[behaviour].port
        return f"sip:{user}@127.0.0.1:{port}"

    def dialogs(self, behaviour: str, users: Iterable[str] | None = None) -> list[Dialog]:
        """What this far end saw of these users' calls, from its own message trace."""
        return read_dialogs(self.far_ends[behaviour].message_trace, users)

    def sipp_errors(self, dialogs: Iterable[Dialog]) -> list[str]:
        """Lines of the far ends' own error logs (unexpected messages) about these calls."""
        call_ids = {dialog.call_id for dialog in dialogs}
        lines = []
        for far_end in self.far_ends.values():
            try:
                text = far_end.error_log.read_text(errors="replace")
            except FileNotFoundError:
                continue
            lines.extend(line for line in text.splitlines()
                         if any(call_id in line for call_id in call_ids))
        return lines

    def register_restarted_asterisk(self) -> None:
        processes.register(self.asterisk.pid, "asterisk (the session's, restarted)")


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def media_plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MediaPlane]:
    root = asterisk_root()
    runtime = tmp_path_factory.mktemp("runtime")
    instance = f"test-{uuid.uuid4().hex[:8]}"
    processes.add_marker(f"/srv/voxcast/{instance}/")
    rtp_start, rtp_end = free_udp_range(RTP_PORTS)
    settings = with_generated_secrets(Settings(
        runtime_dir=runtime, asterisk_root=root, instance_name=instance,
        ari_url=f"http://127.0.0.1:{free_tcp_port()}", sip_port=free_sip_port(),
        sip_tls_port=free_tcp_port(), dns_nameservers="127.0.0.1",  # names resolve on loopback
        ami_port=free_tcp_port(), rtp_start=rtp_start, rtp_end=rtp_end, ring_timeout=3,
        drain_timeout=5.0, calls_per_second=20, max_concurrent_calls=50,
        media_allow_loopback=True, media_check_seconds=1.0))
    layout = layout_of(settings)
    files = {"/voices/hello.wav": tone_wav(WAV_SECONDS, hz=WAV_HZ),
             "/voices/tone.mp3": tone_mp3(MP3_SECONDS)}
    rtp = RtpCapture()
    far_ends: dict[str, SippFarEnd] = {}
    try:
        async with serving_files(files, slow={"/voices/slow-missing.wav": 1.5}) as media_base, \
                running_asterisk(settings) as asterisk:
            processes.register(asterisk.pid, "asterisk (the session's)")
            for behaviour in BEHAVIOURS:
                far_end = SippFarEnd(
                    root=root, scenario=f"{behaviour}.xml", port=free_udp_port(),
                    work_dir=layout.sipp_dir / behaviour,
                    media_port=rtp.port if behaviour == "answer" else None)
                far_ends[behaviour] = far_end
                await far_end.start()
                processes.register(far_end.pid, f"sipp {behaviour}")
            yield MediaPlane(
                settings=settings, asterisk=asterisk, far_ends=far_ends,
                silent_port=free_udp_port(), media_url=f"{media_base}/voices/hello.wav",
                media_base=media_base, rtp=rtp)
    finally:
        for far_end in far_ends.values():
            await far_end.stop()
        rtp.close()
        shutil.rmtree(layout.instance_dir, ignore_errors=True)


@pytest_asyncio.fixture(loop_scope="session")
async def service(media_plane: MediaPlane, tmp_path: Path) -> AsyncIterator[Service]:
    settings = media_plane.settings.with_overrides(runtime_dir=tmp_path)
    async with running_service(settings) as running:
        yield running
