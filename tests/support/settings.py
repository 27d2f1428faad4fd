"""Settings for services under test that run without a real Asterisk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.settings import Secret, Settings
from tests.support.fake_ari import FakeAri
from tests.support.ports import free_tcp_port


def without_asterisk(folder: Path, **overrides: Any) -> Settings:
    """ARI at a closed loopback port: the API works, nothing is ever dialled, calls stay queued.

    The runtime folder and the Asterisk root (where media is cached) are both `folder`.
    """
    return Settings(runtime_dir=folder, asterisk_root=folder,
                    ari_url=f"http://127.0.0.1:{free_tcp_port()}",
                    ari_password=Secret("x" * 20)).with_overrides(**overrides)


def against_fake_ari(ari: FakeAri, root: Path, folder: Path, **overrides: Any) -> Settings:
    """A service dialling through `ari`, which plays files from under `root`; no AMI."""
    return Settings(runtime_dir=folder, asterisk_root=root, instance_name="fake-ari",
                    ari_url=ari.url, ari_user=ari.user, ari_password=Secret(ari.password),
                    tts_engines="flite").with_overrides(**overrides)
