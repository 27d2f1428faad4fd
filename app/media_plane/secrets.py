"""Generate the ARI, AMI and Asterisk-metrics passwords once, keep them in a private file, reuse
them afterwards."""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from app.atomic_file import write_atomically

_PASSWORD = re.compile(r"[A-Za-z0-9_-]{16,128}")


@dataclass(frozen=True, repr=False)
class MediaPlaneSecrets:
    """The media plane's credentials. Its repr never shows them."""

    ari_password: str
    ami_password: str
    # Basic auth of Asterisk's own /metrics (res_prometheus): it needs a username AND a
    # password, or the route breaks.
    metrics_password: str

    def __repr__(self) -> str:
        return "MediaPlaneSecrets(ari_password=<hidden>, ami_password=<hidden>, " \
            "metrics_password=<hidden>)"


def _generate() -> MediaPlaneSecrets:
    # token_urlsafe(24) gives 32 characters of [A-Za-z0-9_-]: safe in a config line.
    return MediaPlaneSecrets(
        ari_password=secrets.token_urlsafe(24), ami_password=secrets.token_urlsafe(24),
        metrics_password=secrets.token_urlsafe(24),
    )


def _read(path: Path) -> MediaPlaneSecrets:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    values = {}
    for key in ("ari_password", "ami_password", "metrics_password"):
        if key == "metrics_password" and key not in data:
            # A file from before Asterisk's metrics were enabled: add theirs, keep the rest.
            data[key] = secrets.token_urlsafe(24)
            write_atomically(path, json.dumps(data).encode("utf-8"), mode=0o600)
        value = data.get(key)
        if not isinstance(value, str) or not _PASSWORD.fullmatch(value):
            raise ValueError(f"{path}: {key} is missing or malformed")
        values[key] = value
    # Tighten a file that was made readable by others since it was written.
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        path.chmod(0o600)
    return MediaPlaneSecrets(**values)


def _create(path: Path, created: MediaPlaneSecrets) -> None:
    data = json.dumps(
        {"ari_password": created.ari_password, "ami_password": created.ami_password,
         "metrics_password": created.metrics_password}
    ).encode("utf-8")
    # Exclusive (link, not rename): two first runs racing cannot overwrite each other; the
    # loser reads the winner's file.
    with contextlib.suppress(FileExistsError):
        write_atomically(path, data, mode=0o600, exclusive=True)


def load_or_create_secrets(path: Path) -> MediaPlaneSecrets:
    """Return the secrets stored at `path`, generating and storing them (0600) on first use."""
    if not path.exists():
        parent_existed = path.parent.exists()
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not parent_existed:
            path.parent.chmod(0o700)  # mkdir's mode is reduced by the umask
        _create(path, _generate())
    return _read(path)
