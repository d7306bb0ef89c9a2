"""Swagger UI and ReDoc from the service's own files, with no inline script.

fastapi-offline bundles the JavaScript and CSS (no CDN); these pages add what it leaves
inline: Swagger UI's start-up script is a file of its own, so the pages work under a
Content-Security-Policy of `script-src 'self'`, which they are sent with.
"""

from __future__ import annotations

import json
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC = "/static-offline-docs"  # where the files bundled by fastapi-offline are served
# ReDoc styles itself at run time and starts a web worker from a blob.
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {"Content-Security-Policy": POLICY}

_SWAGGER = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - Swagger UI</title>
<link rel="stylesheet" href="{root}{static}/swagger-ui.css">
<link rel="icon" href="{root}{static}/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}{static}/swagger-ui-bundle.js"></script>
<script src="{root}/docs/swagger-ui-init.js"></script>
</body>
</html>
"""

_REDOC = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - ReDoc</title>
<link rel="icon" href="{root}{static}/favicon.png">
</head>
<body>
<redoc spec-url="{root}{openapi}"></redoc>
<script src="{root}{static}/redoc.standalone.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve /docs, its start-up script, its OAuth2 redirect page, /redoc, and the bundled
    files they load."""
    openapi_url = app.openapi_url or "/openapi.json"
    bundled = Path(fastapi_offline.__file__).parent / "static"
    app.mount(STATIC, StaticFiles(directory=bundled), name="static-offline-docs")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = _SWAGGER.format(title=app.title, root=root, static=STATIC)
        return HTMLResponse(page, headers=_HEADERS)

    @app.get("/docs/swagger-ui-init.js", include_in_schema=False)
    async def swagger_ui_init(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        options = {
            "url": f"{root}{openapi_url}",
            "dom_id": "#swagger-ui",
            "layout": "BaseLayout",
            "deepLinking": True,
            "persistAuthorization": True,
            **(app.swagger_ui_parameters or {}),
        }
        script = (
            f"const options = {json.dumps(options)};\n"
            f"options.oauth2RedirectUrl = window.location.origin + {json.dumps(root)}"
            " + '/docs/oauth2-redirect';\n"
            "options.presets = [SwaggerUIBundle.presets.apis, "
            "SwaggerUIBundle.SwaggerUIStandalonePreset];\n"
            "window.ui = SwaggerUIBundle(options);\n"
        )
        return Response(script, media_type="text/javascript")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = _REDOC.format(title=app.title, root=root, static=STATIC, openapi=openapi_url)
        return HTMLResponse(page, headers=_HEADERS)
