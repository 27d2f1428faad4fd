"""`GET /ui`: the dashboard's page and its files, from this package's `static` folder.

Public like `/docs`: the page holds no data; everything it shows comes from the API with the key
the person signs in with. The Content-Security-Policy allows this origin only and nothing inline,
so a value shown on the page can never run as script.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

UI_PATH = "/ui"
ASSET_PREFIX = "/ui/assets/"
STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css",
          "favicon.svg": "image/svg+xml"}
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                           "form-action 'none'; frame-ancestors 'none'")


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    return response


async def page(_request: web.Request) -> web.StreamResponse:
    return _secured(web.FileResponse(STATIC / "index.html",
                                     headers={"Content-Type": "text/html; charset=utf-8"}))


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return _secured(web.FileResponse(STATIC / name, headers={"Content-Type": ASSETS[name]}))


def is_dashboard_path(path: str) -> bool:
    """The page and its files: public, like `/docs` (the data needs a key)."""
    return path == UI_PATH or path.startswith(ASSET_PREFIX)


def add_dashboard_routes(app: web.Application) -> None:
    app.router.add_get(UI_PATH, page)
    app.router.add_get(ASSET_PREFIX + "{name}", asset)
