"""Start-up that explains itself: a taken port or a failed Asterisk is one line naming the fix.

`python -m app run` (what `make run` runs) is started as a child process with each port taken
in turn; the real Asterisk is started with its ports taken to check that its own log lines are
recognised.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.__main__ import asterisk_failure
from app.media_plane.asterisk_process import AsteriskProcess, AsteriskStartError
from app.runtime import layout_of, render_media_plane, with_generated_secrets
from app.settings import Settings
from app.startup_checks import bind_failures, media_plane_ports, read_log_from
from tests.support.asterisk_root import asterisk_root
from tests.support.ports import free_tcp_port as free_port
from tests.support.ports import free_udp_port
from tests.support.processes import run_bounded

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def _held(kind: int, port: int) -> socket.socket:
    holder = socket.socket(socket.AF_INET, kind)
    holder.bind(("127.0.0.1", port))
    if kind == socket.SOCK_STREAM:
        holder.listen()
    return holder


@pytest.fixture
def ports() -> dict[str, int]:
    return {"VOXCAST_PORT": free_port(), "VOXCAST_AMI_PORT": free_port(),
            "ARI": free_port(), "VOXCAST_SIP_PORT": free_udp_port()}


def _environment(tmp_path: Path, ports: dict[str, int], **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("VOXCAST_")}
    env.update({
        "VOXCAST_ASTERISK_ROOT": str(asterisk_root()), "VOXCAST_RUNTIME_DIR": str(tmp_path),
        "VOXCAST_INSTANCE_NAME": f"startup-{uuid.uuid4().hex[:8]}",
        "VOXCAST_PORT": str(ports["VOXCAST_PORT"]),
        "VOXCAST_AMI_PORT": str(ports["VOXCAST_AMI_PORT"]),
        "VOXCAST_SIP_PORT": str(ports["VOXCAST_SIP_PORT"]),
        "VOXCAST_ARI_URL": f"http://127.0.0.1:{ports['ARI']}", **extra})
    return env


@pytest.mark.parametrize(("taken", "kind", "setting"), [
    ("VOXCAST_PORT", socket.SOCK_STREAM, "VOXCAST_PORT"),
    ("ARI", socket.SOCK_STREAM, "VOXCAST_ARI_URL"),
    ("VOXCAST_AMI_PORT", socket.SOCK_STREAM, "VOXCAST_AMI_PORT"),
    ("VOXCAST_SIP_PORT", socket.SOCK_DGRAM, "VOXCAST_SIP_PORT"),
])
async def test_a_taken_port_is_one_line_naming_its_setting_before_asterisk_starts(
        tmp_path: Path, ports: dict[str, int], taken: str, kind: int, setting: str) -> None:
    env = _environment(tmp_path, ports)
    started = time.monotonic()
    with _held(kind, ports[taken]):
        code, stdout, stderr = await run_bounded([sys.executable, "-m", "app", "run"], 30, env,
                                                 cwd=REPO)
    lines = [line for line in stderr.splitlines() if "refusing to start" in line]
    assert code == 2, stderr
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    assert f"127.0.0.1:{ports[taken]}) is already in use" in lines[0]
    assert f"set {setting} to a free port" in lines[0]
    assert time.monotonic() - started < 15  # no 20 s wait for an Asterisk that cannot bind
    instance = asterisk_root() / "srv/voxcast" / env["VOXCAST_INSTANCE_NAME"]
    assert not (instance / "log").exists(), "Asterisk was started anyway"
    shutil.rmtree(instance, ignore_errors=True)


@pytest.fixture
def asterisk_settings(tmp_path: Path, ports: dict[str, int]) -> Iterator[Settings]:
    settings = with_generated_secrets(Settings(
        runtime_dir=tmp_path, asterisk_root=asterisk_root(),
        instance_name=f"startup-{uuid.uuid4().hex[:8]}",
        ari_url=f"http://127.0.0.1:{ports['ARI']}", ami_port=ports["VOXCAST_AMI_PORT"],
        sip_port=ports["VOXCAST_SIP_PORT"], rtp_start=14600, rtp_end=14699))
    yield settings
    shutil.rmtree(layout_of(settings).instance_dir, ignore_errors=True)


async def test_ports_asterisk_could_not_bind_are_read_from_its_log(
        asterisk_settings: Settings, ports: dict[str, int]) -> None:
    """With its AMI and SIP ports taken Asterisk starts anyway and only logs it."""
    asterisk = AsteriskProcess(render_media_plane(asterisk_settings))
    with _held(socket.SOCK_STREAM, ports["VOXCAST_AMI_PORT"]), \
            _held(socket.SOCK_DGRAM, ports["VOXCAST_SIP_PORT"]):
        await asterisk.start()
        try:
            await asterisk.wait_ready(asterisk_settings.ari_url, asterisk_settings.ari_user,
                                      asterisk_settings.ari_password.value)
        finally:
            await asterisk.stop()
    problems = bind_failures(read_log_from(asterisk.console_log, 0),
                             media_plane_ports(asterisk_settings))
    named = sorted(str(problem).rsplit("set ", 1)[1] for problem in problems)
    assert named == ["VOXCAST_AMI_PORT to a free port", "VOXCAST_SIP_PORT to a free port"]


async def test_asterisk_that_cannot_bind_its_http_port_is_explained_in_one_line(
        asterisk_settings: Settings, ports: dict[str, int]) -> None:
    layout = render_media_plane(asterisk_settings)
    asterisk = AsteriskProcess(layout)
    with _held(socket.SOCK_STREAM, ports["ARI"]):
        await asterisk.start()
        try:
            with pytest.raises(AsteriskStartError) as failed:
                await asterisk.wait_ready(asterisk_settings.ari_url, asterisk_settings.ari_user,
                                          asterisk_settings.ari_password.value, timeout=4)
        finally:
            await asterisk.stop()
    line = asterisk_failure(asterisk_settings, failed.value)
    assert "\n" not in line
    assert line.startswith("Asterisk did not start (ARI not ready after 4 s)")
    assert "set VOXCAST_ARI_URL to a free port" in line
    assert line.endswith(f"its console log: {layout.log_dir / 'asterisk-console.log'}")


async def test_unknown_voxcast_names_are_warned_about_with_a_suggestion(
        tmp_path: Path, ports: dict[str, int]) -> None:
    env = _environment(tmp_path, ports, VOXCAST_CALLS_PER_SEC="5", VOXCAST_URL="x",
                       VOXCAST_CACHE_DIR="/tmp", VOXCAST_USE_HOST_ASTERISK="0")
    code, _, stderr = await run_bounded([sys.executable, "-m", "app", "render-asterisk"], 30,
                                        env, cwd=REPO)
    shutil.rmtree(asterisk_root() / "srv/voxcast" / env["VOXCAST_INSTANCE_NAME"],
                  ignore_errors=True)
    assert code == 0, stderr
    warnings = [line for line in stderr.splitlines() if "not a Voxcast setting" in line]
    assert len(warnings) == 1, stderr
    assert "VOXCAST_CALLS_PER_SEC is not a Voxcast setting and is ignored; did you mean " \
           "VOXCAST_CALLS_PER_SECOND?" in warnings[0]
