"""The operator console, `/console`: a static page, its stylesheet and script, served here.

The page signs an operator in through `/api/v1/auth/token`, keeps the token in
`sessionStorage` only, and uses the operator endpoints like any client. The chart is SVG
drawn by the server (`GET /api/v1/admin/stats/chart.svg`): no chart script in the browser.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.pages import HEADERS

FILES = Path(__file__).parent / "static" / "console"


def install(app: FastAPI) -> None:
    page = (FILES / "index.html").read_text()

    @app.get("/console", include_in_schema=False)
    async def console() -> HTMLResponse:
        return HTMLResponse(page, headers=HEADERS)

    app.mount("/static/console", StaticFiles(directory=FILES), name="console-static")
