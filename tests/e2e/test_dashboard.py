"""The dashboard at /ui in headless Chromium (Debian's `chromium`, driven by Playwright) while a
real broadcast runs through Asterisk to SIPp far ends.

What a person would see: the page loads without console errors, a refused key is said so, the
right key signs in, the running broadcast's progress advances over several polls to its end,
and its calls and outcomes by SIP code agree with what the far ends' own traces recorded.
Screenshots go to $VOXCAST_SCREENSHOTS when set (else the test's temporary folder).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from app.main import create_app
from app.settings import Secret
from tests.e2e.conftest import MediaPlane
from tests.support.ports import free_tcp_port
from tests.support.service import running_service
from tests.support.tenants import ACME, GLOBEX, bearer, two_tenants

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

ANSWERED = 16
BUSY = 4
RATE = 2.0  # calls a second: 20 calls take about 10 s, many dashboard polls (1 s apart)
PROGRESS_LIMIT = 90.0


@pytest_asyncio.fixture(loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium is not None, "Debian's chromium is not installed (`make test` installs it)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screens(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("VOXCAST_SCREENSHOTS") or tmp_path / "screens")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Console:
    """Every console error and uncaught exception on the page, with the URL it names."""

    def __init__(self, page: Page) -> None:
        self.errors: list[tuple[str, str]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append((f"uncaught: {error}", "")))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append((message.text, message.location.get("url", "")))


async def test_the_dashboard_shows_a_running_broadcast_advance_to_its_end(
        media_plane: MediaPlane, browser: Browser, tmp_path: Path, screens: Path) -> None:
    settings = media_plane.settings.with_overrides(
        runtime_dir=tmp_path, calls_per_second=RATE, api_keys=Secret(f"acme:{ACME}"),
        operator_tenants="acme")
    async with running_service(settings) as service:
        service.headers = bearer(ACME)
        page = await browser.new_page(viewport={"width": 1280, "height": 1400})
        console = Console(page)
        urls: list[str] = []
        page.on("request", lambda request: urls.append(request.url))

        await page.goto(f"{service.base}/ui")
        await page.wait_for_selector("#sign-in:not([hidden])")
        await page.screenshot(path=screens / "01-sign-in.png")
        assert console.errors == []

        await page.fill("#api-key", "wrong-key-0123456789abcdef")
        await page.click("#sign-in-form button")
        await page.wait_for_selector("#sign-in-error:has-text('refused')")
        await page.fill("#api-key", ACME)
        await page.click("#sign-in-form button")
        await page.wait_for_selector("#board:not([hidden])")
        await page.wait_for_selector("#servers tbody td.ok:has-text('connected')")

        users = [f"dash{i}" for i in range(ANSWERED + BUSY)]
        request_id = await service.submit({
            "recipients": [{"to": media_plane.uri("answer" if i < ANSWERED else "reject_486",
                                                  user=user)} for i, user in enumerate(users)],
            "from": "dashboard", "playlist": [{"pause": 1}]})
        seen = await _progress_until_ready(page, request_id, screens)
        total = ANSWERED + BUSY
        print(f"\nprogress the page showed: {seen}")
        during = {completed for completed, _ in seen if 0 < completed < total}
        assert len(during) >= 2, f"progress did not visibly advance: {seen}"
        assert seen[-1] == (total, f"{total}/{total} ended, 0 live, 0 queued")
        assert [completed for completed, _ in seen] == sorted(c for c, _ in seen)

        await page.click(f'#broadcasts tbody tr[data-request-id="{request_id}"]')
        await expect(page.locator("#calls tbody tr")).to_have_count(total)
        outcomes = {code: int(count) for code, count in await page.eval_on_selector_all(
            "#detail-outcomes tbody tr",
            "rows => rows.map(r => [r.dataset.sipCode, r.cells[1].textContent])")}
        far_end = {"200": sum(d.answered for d in media_plane.dialogs("answer", users)),
                   "486": sum(d.final_status == 486  # noqa: PLR2004
                              for d in media_plane.dialogs("reject_486", users))}
        assert outcomes == far_end == {"200": ANSWERED, "486": BUSY}
        await page.fill("#sip-code-filter", "486")
        await expect(page.locator("#calls tbody tr")).to_have_count(BUSY)
        await page.screenshot(path=screens / "04-calls-filtered-486.png", full_page=True)
        await page.fill("#sip-code-filter", "")
        await page.select_option("#answered-filter", "true")
        await expect(page.locator("#calls tbody tr")).to_have_count(ANSWERED)
        await page.screenshot(path=screens / "03-broadcast-ready.png", full_page=True)

        # The key stays in this tab's session storage and travels only as a header.
        assert await page.evaluate("sessionStorage.getItem('voxcast.apiKey')") == ACME
        assert await page.evaluate("localStorage.length + document.cookie.length") == 0
        assert not [url for url in urls if ACME in url]
        assert (await page.text_content("#trunks") or "").startswith("No trunks configured")
        # Only the refused key's answer and the absent /trunks may be logged, as failed loads.
        unexpected = [(text, url) for text, url in console.errors
                      if not (text.startswith("Failed to load resource")
                              and (url.endswith("/trunks") or "/voice/calls?limit=1" in url))]
        assert unexpected == []
        print(f"failed loads the console logged (expected): {console.errors}")
        await page.close()


ROW_STATE = """id => {
  const row = document.querySelector(`#broadcasts tbody tr[data-request-id="${id}"]`);
  return row && [Number(row.dataset.completed),
                 row.querySelector(".progress-text").textContent.trim(),
                 row.querySelector(".status").textContent];
}"""


async def _progress_until_ready(page: Page, request_id: str,
                                screens: Path) -> list[tuple[int, str]]:
    """Each distinct (ended count, progress text) the row showed, until its status is ready.

    Read in one script run, so the three values come from the same poll's row."""
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + PROGRESS_LIMIT
    while time.monotonic() < deadline:
        state = await page.evaluate(ROW_STATE, request_id)
        if state:
            completed, text, status = state
            if not seen or seen[-1] != (completed, text):
                seen.append((completed, text))
                if len(seen) == 3:
                    await page.screenshot(path=screens / "02-broadcast-running.png",
                                          full_page=True)
            if status == "ready":
                return seen
        await asyncio.sleep(0.2)
    raise AssertionError(f"the dashboard never showed the broadcast ready; saw {seen}")


# A trunk as GET /trunks shows it (issue 9's shape): plain fields, lists, maps, and a list of
# objects the table leaves out.
TRUNKS = {"code": 0, "status": 200, "data": "accepted", "request_id": "", "trunks": [
    {"name": "carrier-a", "state": "up", "hosts": ["sip:192.0.2.1", "sip:192.0.2.2"],
     "live_calls": 3, "outcomes": {"200": 5, "486": 1},
     "contacts": [{"uri": "sip:192.0.2.1", "status": "Reachable"}]}]}


async def test_without_asterisk_the_page_says_not_ready_and_shows_only_the_tenants_own(
        browser: Browser, tmp_path: Path, screens: Path) -> None:
    """No media server: /ready's 503 is shown; trunks as /trunks would answer (routed in the
    browser: no trunk route here); filters; another tenant's broadcasts never appear."""
    runner = web.AppRunner(create_app(two_tenants(tmp_path)))
    await runner.setup()
    port = free_tcp_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    page = await browser.new_page()
    try:
        body = {"recipients": [{"to": "sip:a@127.0.0.1:5070"}], "from": "me",
                "playlist": [{"pause": 1}]}
        async with aiohttp.ClientSession() as http:
            ids = {}
            for key in (ACME, GLOBEX):
                async with http.post(f"{base}/voice/call/play", json=body,
                                     headers=bearer(key)) as response:
                    ids[key] = (await response.json())["request_id"]
        console = Console(page)
        await page.route("**/trunks", lambda route: route.fulfill(json=TRUNKS))
        await page.goto(f"{base}/ui")
        await page.fill("#api-key", GLOBEX)
        await page.click("#sign-in-form button")
        rows = page.locator("#broadcasts tbody tr")
        await expect(rows).to_have_count(1)
        assert await rows.first.get_attribute("data-request-id") == ids[GLOBEX]
        await expect(page.locator("#ready-state.down")).to_contain_text("Not ready:")
        await expect(page.locator("#monitor")).to_contain_text("not an operator")
        headers = await page.locator("#trunks th").all_text_contents()
        assert headers == ["name", "state", "hosts", "live calls", "outcomes"]
        assert await page.locator("#trunks td").all_text_contents() == [
            "carrier-a", "up", "sip:192.0.2.1, sip:192.0.2.2", "3", "200: 5, 486: 1"]
        await page.screenshot(path=screens / "05-not-ready-with-trunks.png", full_page=True)
        await page.select_option("#status-filter", "ready")
        await page.click("#broadcast-filters button")
        await expect(page.locator("#broadcasts-empty")).to_be_visible()
        await page.select_option("#status-filter", "queued")
        await page.click("#broadcast-filters button")
        await expect(rows).to_have_count(1)
        await page.click("#sign-out")
        await expect(page.locator("#sign-in")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0
        # Expected failed loads only: /ready's 503 and /monitor's 404 (not an operator).
        unexpected = [(text, url) for text, url in console.errors
                      if not (text.startswith("Failed to load resource")
                              and (url.endswith("/ready") or url.endswith("/monitor")))]
        assert unexpected == []
    finally:
        await page.close()
        await runner.cleanup()
