"""docker/ checked by reading it: no Docker engine runs here, so the invariants are tested.

The compose file is parsed; the Dockerfile and .dockerignore are read line by line.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import yaml

from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker/compose.yaml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (REPO / "docker/Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines()
            if line.startswith(name + " ")]


def test_one_image_is_built_once_and_used_by_every_service():
    built = [name for name, service in SERVICES.items() if "build" in service]
    assert built == ["render"]
    assert SERVICES["render"]["build"]["dockerfile"] == "docker/Dockerfile"
    images = {service["image"] for service in SERVICES.values()}
    assert len(images) == 1 and None not in images
    assert sorted(path.name for path in (REPO / "docker").glob("*Dockerfile*")) == ["Dockerfile"]


def test_the_base_image_is_pinned_to_a_dated_tag_with_how_to_pin_its_digest():
    (base,) = _instructions("FROM")
    assert re.fullmatch(r"debian:sid-\d{8}-slim(@sha256:[0-9a-f]{64})?", base), base
    assert "imagetools inspect" in DOCKERFILE and "@sha256:" in DOCKERFILE


def test_the_service_runs_as_its_own_user_and_only_asterisk_as_root():
    assert _instructions("USER") == ["voxcast"]
    assert "useradd" in DOCKERFILE and "--uid 10001" in DOCKERFILE
    assert SERVICES["asterisk"].get("user") == "root"
    assert "user" not in SERVICES["voxcast"] and "user" not in SERVICES["render"]


def test_healthchecks_and_start_order():
    assert SERVICES["asterisk"]["depends_on"] == {
        "render": {"condition": "service_completed_successfully"}}
    assert SERVICES["voxcast"]["depends_on"] == {"asterisk": {"condition": "service_healthy"}}
    assert SERVICES["asterisk"]["healthcheck"]["test"] == [
        "CMD", "python", "-m", "app", "healthcheck", "asterisk"]
    assert SERVICES["voxcast"]["healthcheck"]["test"] == [
        "CMD", "python", "-m", "app", "healthcheck", "service"]


def test_sip_rtp_and_the_api_are_published_and_nothing_else():
    defaults = Settings()
    ports = SERVICES["asterisk"]["ports"]
    sip = defaults.sip_port
    assert f"{sip}:{sip}/udp" in ports and f"{sip}:{sip}/tcp" in ports
    assert f"{sip + 1}:{sip + 1}/tcp" in ports  # TLS
    rtp = f"{defaults.rtp_start}-{defaults.rtp_end}"
    assert f"{rtp}:{rtp}/udp" in ports
    assert f"127.0.0.1:{defaults.port}:{defaults.port}" in ports  # the API, loopback only
    assert len(ports) == 5  # ARI (8088) and AMI (5038) are never published
    assert SERVICES["voxcast"]["network_mode"] == "service:asterisk"
    assert "ports" not in SERVICES["voxcast"]


def test_the_service_needs_api_keys_to_listen_beyond_loopback():
    environment = SERVICES["voxcast"]["environment"]
    assert environment["VOXCAST_HOST"] == "0.0.0.0"  # noqa: S104 - inside its container
    assert environment["VOXCAST_API_KEYS"].startswith("${VOXCAST_API_KEYS:?")


def test_nothing_local_large_or_secret_enters_the_build_context():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for needed in (".git", ".venv", "var", "**/__pycache__", ".pytest_cache", ".mypy_cache",
                   ".ruff_cache", "**/secrets.json", "**/dev-api-key", "**/*.db"):
        assert needed in ignored, needed
    copied = {line.split()[1] for line in _instructions("COPY") if line}
    for source in copied - {"pyproject.toml"}:
        assert (REPO / source).exists(), source
        assert source not in ignored


def test_the_rendered_paths_are_the_images_paths():
    command = SERVICES["asterisk"]["command"]
    assert command[-1] == "/srv/voxcast/default/etc/asterisk.conf"
    assert "VOXCAST_ASTERISK_ROOT=/" in DOCKERFILE and "VOXCAST_INSTANCE_NAME=default" in DOCKERFILE
    assert "VOXCAST_RUNTIME_DIR=/var/lib/voxcast" in DOCKERFILE
    volumes = {service: entry["volumes"] for service, entry in SERVICES.items()}
    assert all("srv:/srv/voxcast" in mounts for mounts in volumes.values())


def test_nat_and_trunks_reach_the_renderer_and_the_service_alike():
    render = SERVICES["render"]["environment"]
    service = SERVICES["voxcast"]["environment"]
    for name in ("VOXCAST_SIP_ADDRESS", "VOXCAST_EXTERNAL_ADDRESS", "VOXCAST_LOCAL_NETS",
                 "VOXCAST_TRUNKS_FILE"):
        assert render[name] == service[name], name  # the same config whoever renders it
        assert name.removeprefix("VOXCAST_").lower() in {f.name for f in fields(Settings)}
    trunks = "./trunks:/etc/voxcast/trunks:ro"
    assert trunks in SERVICES["render"]["volumes"] and trunks in SERVICES["voxcast"]["volumes"]
    assert (REPO / "docker/trunks").is_dir()
