"""The FastAPI application factory; routes are added here as the parts they serve are built."""

from __future__ import annotations

import time

from fastapi import FastAPI
from pydantic import BaseModel

from snakepit_perf import __version__


class Health(BaseModel):
    status: str
    version: str
    mode: str
    uptime_seconds: float


def create_app(mode: str = "embedded") -> FastAPI:
    """Build the app; ``mode`` says whether the engine runs in-process or behind Kafka."""
    app = FastAPI(title="snakepit-perf", version=__version__)
    started = time.monotonic()

    @app.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", version=__version__, mode=mode,
                      uptime_seconds=round(time.monotonic() - started, 3))

    return app
