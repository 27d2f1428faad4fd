"""The README's walk-through, run verbatim with bash against `python -m app run` on real Asterisk.

Every fenced block marked `sh walkthrough` is taken in order. They run in a scratch folder laid
out like a checkout (`.venv` and `asterisk/` link to this one; `var/` is the service's runtime
folder, so `cat var/dev-api-key` reads the key the service made), with `set -euo pipefail`.
The only change made to the text: the ports 8080 (the API) and 5070 (the SIPp phone) become
free ones, so the test runs beside anything else on this machine. A trap stops the SIPp phone
even when a block fails before the README's own `kill`.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from tests.support.asterisk_root import asterisk_root
from tests.support.ports import free_tcp_port as free_port
from tests.support.ports import free_udp_port
from tests.support.processes import run_bounded

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
BLOCK = re.compile(r"^```sh walkthrough\n(.*?)^```", re.MULTILINE | re.DOTALL)
pytestmark = pytest.mark.e2e


def walkthrough() -> list[str]:
    return BLOCK.findall(README.read_text(encoding="utf-8"))


def test_the_walkthrough_is_there_and_complete():
    text = "\n".join(walkthrough())
    assert len(walkthrough()) >= 6
    for needed in ("var/dev-api-key", "/voice/call/play", "/voice/call/status/", "/report/",
                   "/media", "voxcast send", "--watch", "--csv", "keys create"):
        assert needed in text, needed
    for line in text.splitlines():
        if line.startswith("curl") and "8080/ready" not in line:
            assert 'Authorization: Bearer $KEY' in line, line


async def _wait_ready(base: str, process: asyncio.subprocess.Process) -> None:
    deadline = time.monotonic() + 40
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise AssertionError(f"python -m app run exited with {process.returncode}")
            try:
                async with http.get(f"{base}/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the service did not become ready")


async def test_the_readme_walkthrough_runs_verbatim(tmp_path: Path) -> None:
    scratch = tmp_path / "checkout"
    scratch.mkdir()
    for name in (".venv", "asterisk"):
        (scratch / name).symlink_to(REPO / name)
    api, sipp = free_port(), free_udp_port()
    rtp_start = 15000 + (os.getpid() % 20) * 100
    clean = {name: value for name, value in os.environ.items()
             if not name.startswith("VOXCAST_")}
    instance = f"readme-{uuid.uuid4().hex[:8]}"
    service_env = {**clean, "VOXCAST_ASTERISK_ROOT": str(asterisk_root()),
                   "VOXCAST_INSTANCE_NAME": instance, "VOXCAST_PORT": str(api),
                   "VOXCAST_ARI_URL": f"http://127.0.0.1:{free_port()}",
                   "VOXCAST_AMI_PORT": str(free_port()),
                   "VOXCAST_SIP_PORT": str(free_udp_port()),
                   "VOXCAST_RTP_START": str(rtp_start), "VOXCAST_RTP_END": str(rtp_start + 99)}
    script = "\n".join(walkthrough())
    script = re.sub(r"\b8080\b", str(api), script)
    script = re.sub(r"\b5070\b", str(sipp), script)
    (scratch / "walkthrough.sh").write_text(
        "set -euo pipefail\ntrap 'if [ -n \"${SIPP:-}\" ]; then kill \"$SIPP\" 2>/dev/null "
        "|| true; fi' EXIT\n" + script)

    log = (tmp_path / "service.log").open("wb")
    service = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "app", "run", cwd=scratch, env=service_env,
        stdout=log, stderr=log)
    try:
        await _wait_ready(f"http://127.0.0.1:{api}", service)
        code, shown, errors = await run_bounded(["bash", "walkthrough.sh"], 240, clean,
                                                cwd=scratch)
    finally:
        if service.returncode is None:
            service.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(service.wait(), 30)
            except TimeoutError:
                service.kill()
                await service.wait()
        log.close()
        shutil.rmtree(asterisk_root() / "srv/voxcast" / instance, ignore_errors=True)
    assert code == 0, f"{shown[-3000:]}\n{errors[-3000:]}"
    assert '"data": "ready"' not in shown  # sanity: the envelope says accepted, not ready
    assert '"ready": true' in shown
    assert '"status": "ready"' in shown
    assert '"disconnect_cause_code": "200"' in shown and '"answered": true' in shown
    assert '"media": "media:' in shown
    assert "1 calls: 1 answered" in shown
    assert shown.count("disconnect_cause_code") >= 3  # report, one call, the CSV header
    assert "key id" in shown and "for tenant acme" in shown and "revoked" in shown
    assert service.returncode == 0, (tmp_path / "service.log").read_text()[-3000:]
