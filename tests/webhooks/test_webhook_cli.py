"""`voxcast webhooks ...`: the secret (shown, rotated), subscriptions and deliveries."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from standardwebhooks.webhooks import Webhook

from app.settings import Secret
from tests.support.fake_ari import FakeAri
from tests.support.processes import run_bounded
from tests.support.service import running_service
from tests.support.settings import against_fake_ari

VOXCAST = str(Path(sys.executable).with_name("voxcast"))
API_KEY = "webhook-cli-key-0123456789"


async def _voxcast(*arguments: str, url: str) -> tuple[int, str, str]:
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("VOXCAST_")}
    env.update({"VOXCAST_URL": url, "VOXCAST_API_KEY": API_KEY, "COLUMNS": "140",
                "XDG_CONFIG_HOME": "/nonexistent"})
    return await run_bounded([VOXCAST, *arguments], 30, env)


async def test_secret_rotation_and_subscriptions_from_the_command_line(
        fake_ari: FakeAri, tmp_path: Path) -> None:
    settings = against_fake_ari(fake_ari, tmp_path / "root", tmp_path / "runtime",
                                api_keys=Secret(f"cli:{API_KEY}"))
    async with running_service(settings) as service:
        service.headers = {"Authorization": f"Bearer {API_KEY}"}
        code, shown, _ = await _voxcast("webhooks", "secret", url=service.base)
        assert code == 0
        first = shown.strip()
        assert first.startswith("whsec_")
        Webhook(first)  # a secret the verifier accepts
        code, again, _ = await _voxcast("webhooks", "secret", url=service.base)
        assert again.strip() == first  # made once, then the same
        code, rotated, said = await _voxcast("webhooks", "secret", "--rotate", url=service.base)
        assert code == 0 and rotated.strip().startswith("whsec_")
        assert rotated.strip() != first and "previous secret also signs until" in said
        _, answer = await service.get("/webhooks/secret")
        assert answer["secret"] == rotated.strip()

        code, added, _ = await _voxcast("webhooks", "add", "http://192.0.2.7:9/h", "--event",
                                        "call.ended", url=service.base)
        assert code == 0, added
        webhook_id = added.strip()
        code, listed, _ = await _voxcast("webhooks", "list", url=service.base)
        assert webhook_id in listed and "call.ended" in listed and "active" in listed
        code, _, said = await _voxcast("webhooks", "add", "http://127.0.0.1:9/loop",
                                       url=service.base)
        assert code == 1 and "loopback" in said  # not allowed here
        code, _, _ = await _voxcast("webhooks", "deliveries", "--state", "failed",
                                    url=service.base)
        assert code == 0
        code, _, _ = await _voxcast("webhooks", "remove", webhook_id, url=service.base)
        assert code == 0
        _, answer = await service.get("/webhooks")
        assert answer["webhooks"] == []
