"""The folder Asterisk and SIPp run in, as `make` hands it over (or asterisk/provision.sh)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def asterisk_root() -> Path:
    given = os.environ.get("VOXCAST_ASTERISK_ROOT")
    if given:
        return Path(given)
    printed = subprocess.run([str(REPO / "asterisk/provision.sh")], check=True,
                             capture_output=True, text=True).stdout.strip()
    return Path(printed)
