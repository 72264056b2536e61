"""The dashboard (R10): static files served at ``/`` by the same process as the API.

Its scripts come from this repository (``dashboard/static``) and from npm packages the
bootstrap installs into ``dashboard/node_modules`` (uPlot); nothing is fetched from a CDN. The
page holds no data: every number it shows comes from the API with the user's key.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

ROOT = Path(__file__).resolve().parents[1] / "dashboard"
STATIC = ROOT / "static"
VENDOR = {"uplot": ROOT / "node_modules" / "uplot" / "dist"}

# Everything the page loads is its own: scripts and styles from this origin only, no inline
# code, pictures also as data:/blob: URLs (PNG exports), requests and WebSockets to the API.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")

MISSING = """<!doctype html><title>snakepit-perf</title>
<p>The dashboard's front-end packages are not installed. Run <code>make run</code> (which runs
<code>npm ci --prefix dashboard</code>), or that npm command yourself. The API is up:
<a href="/docs">/docs</a>.</p>"""


def install(app: FastAPI) -> None:
    missing = [name for name, path in VENDOR.items() if not path.is_dir()]

    @app.get("/", include_in_schema=False, response_model=None)
    def index() -> FileResponse | HTMLResponse:
        if missing:
            return HTMLResponse(MISSING, status_code=503)
        return FileResponse(STATIC / "index.html", headers={
            "Cache-Control": "no-cache", "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"})

    app.mount("/ui", StaticFiles(directory=STATIC), name="ui")
    for name, path in VENDOR.items():
        if path.is_dir():
            app.mount(f"/vendor/{name}", StaticFiles(directory=path), name=f"vendor-{name}")
