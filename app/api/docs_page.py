"""`GET /docs`: Swagger UI over `/openapi.json`, every file of it served by the service itself.

Swagger UI's own files come from the swagger-ui-py package (only its static folder is used); the
page and its start-up script are ours. Nothing is loaded from elsewhere, and the
Content-Security-Policy says so: scripts, styles, images and requests from this origin only
(and the icons Swagger UI's stylesheet embeds as data: URIs).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aiohttp import web

DOCS_PATH = "/docs"
ASSET_PREFIX = "/docs/assets/"
# The files the page uses, and nothing else from the package's folder.
ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "favicon-32x32.png": "image/png"}
# data: images only because Swagger UI's own stylesheet embeds its icons that way; they load
# nothing from anywhere.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Voxcast API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/start.js"></script>
</body>
</html>
"""

# A file, not an inline script, so the policy needs no 'unsafe-inline'.
START_SCRIPT = """window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    defaultModelsExpandDepth: 0,
    persistAuthorization: false
  });
});
"""


def swagger_ui_folder() -> Path:
    """Swagger UI's files inside the installed swagger-ui-py, found without importing it."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _secured(response: web.StreamResponse) -> web.StreamResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


async def docs(_request: web.Request) -> web.StreamResponse:
    return _secured(web.Response(text=PAGE, content_type="text/html"))


async def start_script(_request: web.Request) -> web.StreamResponse:
    return _secured(web.Response(text=START_SCRIPT, content_type="text/javascript"))


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    response = web.FileResponse(swagger_ui_folder() / name,
                                headers={"Content-Type": ASSETS[name],
                                         "Cache-Control": "public, max-age=86400"})
    return _secured(response)


def is_docs_path(path: str) -> bool:
    """The page and its files: public, like the document they show."""
    return path == DOCS_PATH or path.startswith(ASSET_PREFIX)


def add_docs_routes(app: web.Application) -> None:
    app.router.add_get(DOCS_PATH, docs)
    app.router.add_get(ASSET_PREFIX + "start.js", start_script)
    app.router.add_get(ASSET_PREFIX + "{name}", asset)
