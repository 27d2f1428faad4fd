"""`/ui`: public page and files, a strict Content-Security-Policy, nothing from elsewhere.

The dashboard's behaviour in a browser is tested in tests/e2e/test_dashboard.py (headless
Chromium against a real Asterisk); this checks what is served.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient
from yarl import URL

from app.dashboard.page import ASSETS, CONTENT_SECURITY_POLICY, STATIC
from app.main import create_app
from tests.support.tenants import two_tenants


@pytest.fixture
async def client(aiohttp_client, tmp_path: Path) -> TestClient:
    return await aiohttp_client(create_app(two_tenants(tmp_path)))


def _directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


async def test_the_page_and_its_files_are_public_with_a_strict_policy(client):
    page = await client.get("/ui")  # no Authorization header: the page holds no data
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    referenced = re.findall(r'(?:src|href)="(/ui/assets/[^"]+)"', html)
    assert sorted(referenced) == sorted(f"/ui/assets/{name}" for name in ASSETS)
    for response, path in [(page, "/ui")] + [(await client.get(p), p) for p in referenced]:
        assert response.status == 200, path
        assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    policy = _directives(CONTENT_SECURITY_POLICY)
    assert policy["default-src"] == "'none'"
    for directive in ("script-src", "style-src", "connect-src", "img-src"):
        assert policy[directive] == "'self'", directive  # no inline, no eval, no other origin
    assert policy["frame-ancestors"] == "'none'"
    escape = URL("/ui/assets/..%2Fpage.py", encoded=True)
    assert (await client.get(escape)).status == 404
    assert (await client.get("/ui/assets/index.html")).status == 404  # only the listed files
    assert (await client.get("/voice/calls")).status == 401  # the data still needs a key


def test_nothing_is_loaded_from_elsewhere_and_nothing_runs_inline():
    for path in STATIC.iterdir():
        text = path.read_text(encoding="utf-8")
        if path.suffix != ".svg":  # the SVG's only URL is its XML namespace name
            assert re.search(r"https?:|//[a-z0-9.-]+\.[a-z]{2,}", text, re.I) is None, path
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, "an inline script"
    assert re.search(r"\sstyle=|<style|\son[a-z]+=", html, re.I) is None, "inline style/handler"
    script = (STATIC / "dashboard.js").read_text(encoding="utf-8")
    assert "innerHTML" not in script and "eval(" not in script
    assert "localStorage" not in script  # the key lives for the tab only
