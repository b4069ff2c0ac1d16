"""/docs (Swagger UI) and /redoc, served with their scripts and styles from kodex itself: they work offline.

FastAPI's own pages load Swagger UI and Redoc from a CDN, so on a library's network without one they stay blank,
and every visit tells the CDN who reads kodex's documentation. The assets come from the fastapi-offline package
(Swagger UI and Redoc's standalone bundle, installed with kodex), mounted at /docs-assets. The pages hold no inline
script (Swagger UI is started by /docs/swagger-init.js), so api.headers.DOCS_POLICY can allow scripts from kodex
alone. Links are relative: the pages work under a path prefix too.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_DIRECTORY", "install_docs"]

ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"

_SWAGGER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – API</title>
<link rel="stylesheet" href="docs-assets/swagger-ui.css"><link rel="icon" href="docs-assets/favicon.png"></head>
<body><div id="swagger-ui"></div>
<script src="docs-assets/swagger-ui-bundle.js"></script><script src="docs/swagger-init.js"></script></body></html>
"""
_SWAGGER_INIT = """window.ui = SwaggerUIBundle({
  url: new URL("../openapi.json", document.currentScript.src).href,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
});
"""
_REDOC = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} – API</title>
<link rel="icon" href="docs-assets/favicon.png"></head>
<body><redoc spec-url="openapi.json"></redoc><script src="docs-assets/redoc.standalone.js"></script></body></html>
"""


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets to an app created with docs_url=None and redoc_url=None."""
    app.mount("/docs-assets", StaticFiles(directory=ASSETS_DIRECTORY), name="docs-assets")
    swagger, redoc = _SWAGGER.format(title=app.title), _REDOC.format(title=app.title)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger)

    @app.get("/docs/swagger-init.js", include_in_schema=False)
    async def swagger_init() -> Response:
        return Response(_SWAGGER_INIT, media_type="text/javascript")

    @app.get("/redoc", include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc)
