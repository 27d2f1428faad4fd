"""Two tenants with their API keys, for tests that check one cannot see the other's work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.settings import Secret, Settings
from tests.support.settings import without_asterisk

ACME = "acme-key-0123456789abcdef"
GLOBEX = "globex-key-0123456789abcdef"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def two_tenants(folder: Path, **overrides: Any) -> Settings:
    """No Asterisk (calls stay queued); tenants `acme` and `globex` with the keys above."""
    return without_asterisk(folder, api_keys=Secret(f"acme:{ACME},globex:{GLOBEX}"),
                            tts_engines="flite", **overrides)
