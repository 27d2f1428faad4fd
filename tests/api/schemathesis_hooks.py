"""Schemathesis hooks for tests/api/test_schemathesis.py: every media fetch stays on loopback.

Generated `play` URLs name arbitrary hosts; the service would resolve and fetch them. Each one is
pointed at 127.0.0.1:9 (nothing listens there, and the address policy refuses loopback anyway)
before the request leaves, keeping the rest of the URL as generated.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import schemathesis

LOOPBACK = "127.0.0.1:9"


@schemathesis.hook
def before_call(_context: Any, case: Any, _kwargs: Any) -> None:
    body = case.body
    if not isinstance(body, dict) or not isinstance(body.get("playlist"), list):
        return
    for item in body["playlist"]:
        if isinstance(item, dict) and isinstance(item.get("play"), str):
            item["play"] = _on_loopback(item["play"])


def _on_loopback(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.scheme.lower() in ("http", "https") and parts.netloc:
        return parts._replace(netloc=LOOPBACK).geturl()
    return url


# Bulk uploads are NDJSON (one JSON object a line); the schema can only call them bytes, so
# they are sent as generated, like any binary body.
schemathesis.serializer.alias("application/x-ndjson", "application/octet-stream")
