"""Secrets never reach logs, answers, or files outside the runtime and Asterisk folders."""

from __future__ import annotations

import asyncio
import os
import secrets as secrets_module
import stat
from pathlib import Path

import pytest

from app.runtime import layout_of
from app.settings import Secret
from tests.e2e.conftest import MediaPlane
from tests.support.ports import free_tcp_port
from tests.support.service import REPO, ServiceProcess, environment

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]
API_KEY = "acme-" + secrets_module.token_urlsafe(24)  # made per run, so no file holds it


async def test_secrets_stay_secret(media_plane: MediaPlane, tmp_path: Path) -> None:
    settings = media_plane.settings
    secrets = [settings.ari_password.value, settings.ami_password.value, API_KEY]
    service_settings = settings.with_overrides(runtime_dir=tmp_path, port=free_tcp_port(),
                                               api_keys=Secret(f"acme:{API_KEY}"))
    bodies = []
    env = environment(service_settings, log_level="DEBUG")
    async with ServiceProcess("serve", env) as service:
        await service.start()
        auth = {"Authorization": f"Bearer {API_KEY}"}
        requests = [
            ("POST", "/voice/call/play", {"to": media_plane.uri("reject_486"), "from": "me",
                                          "playlist": [{"pause": 1}]}, auth),
            ("POST", "/voice/call/play", {"to": "bad"}, auth),
            ("POST", "/voice/call/play", {"to": "bad"},
             {"Authorization": f"Bearer {API_KEY}x"}),
            ("GET", "/ready", None, {}),
            ("GET", "/openapi.json", None, {}),
        ]
        for method, path, body, headers in requests:
            async with service.api.http.request(method, service.api.base + path, json=body,
                                                headers=headers) as response:
                bodies.append(await response.text())
        await asyncio.sleep(2)  # let the call end and be logged
        await service.stop()

    layout = layout_of(settings)
    logs = [tmp_path / "service.log", *layout.log_dir.rglob("*")]
    texts = {str(path): path.read_text(errors="replace") for path in logs if path.is_file()}
    texts.update({f"answer {i}": body for i, body in enumerate(bodies)})
    assert len(texts["answer 0"]) > 10 and any("DEBUG" in t for t in texts.values())
    for where, text in texts.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"

    # Rendered configs hold the passwords: only in the instance folder, readable by root only.
    for config in layout.config_dir.iterdir():
        assert stat.S_IMODE(config.stat().st_mode) == 0o600, config
    assert stat.S_IMODE((settings.runtime_dir / "secrets.json").stat().st_mode) == 0o600
    for folder, _dirs, files in os.walk(REPO):
        if any(part in folder for part in (".venv", ".git", "__pycache__", "cache")):
            continue
        for name in files:
            path = Path(folder) / name
            if path.stat().st_size < 1_000_000:
                content = path.read_bytes()
                for secret in secrets:
                    assert secret.encode() not in content, f"a secret is in {path}"
