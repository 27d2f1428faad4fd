"""Media plane secrets: generated once, private on disk, reused, never shown in a repr."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from app.media_plane.secrets import MediaPlaneSecrets, load_or_create_secrets


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_creates_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.json"
    created = load_or_create_secrets(path)

    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert len(created.ari_password) >= 32 and len(created.ami_password) >= 32
    assert created.ari_password != created.ami_password
    assert len(created.metrics_password) >= 32
    assert json.loads(path.read_text()) == {
        "ari_password": created.ari_password,
        "ami_password": created.ami_password,
        "metrics_password": created.metrics_password,
    }
    assert [p.name for p in path.parent.iterdir()] == ["secrets.json"]  # no temp file left


def test_later_runs_reuse_the_stored_secrets(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    assert load_or_create_secrets(path) == load_or_create_secrets(path)


def test_a_file_from_before_metrics_gains_a_metrics_password(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"ari_password": "A" * 32, "ami_password": "B" * 32}))
    path.chmod(0o600)
    upgraded = load_or_create_secrets(path)
    assert (upgraded.ari_password, upgraded.ami_password) == ("A" * 32, "B" * 32)
    assert len(upgraded.metrics_password) >= 32
    assert load_or_create_secrets(path) == upgraded  # stored, not made again
    assert mode(path) == 0o600


def test_a_loosened_file_is_made_private_again(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = load_or_create_secrets(path)
    path.chmod(0o644)
    assert load_or_create_secrets(path) == first
    assert mode(path) == 0o600


@pytest.mark.parametrize(
    "content",
    ["not json", "[]", '{"ari_password": "x"}', '{"ari_password": "a;b", "ami_password": 1}'],
)
def test_a_malformed_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        load_or_create_secrets(path)


def test_repr_hides_the_passwords() -> None:
    secrets = MediaPlaneSecrets(ari_password="A" * 32, ami_password="B" * 32,
                                metrics_password="C" * 32)
    assert "A" * 32 not in repr(secrets) and "B" * 32 not in repr(secrets)
    assert "C" * 32 not in repr(secrets)
    assert "A" * 32 not in str(secrets)
