"""The FastAPI application factory: routes for ingest, queries and health over injected services."""

from __future__ import annotations

import time
from importlib.metadata import version

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from api import (
    alerts,
    analysis,
    annotations,
    benchmarks,
    dashboards,
    deploys,
    export,
    ingest,
    live,
    problems,
    prometheus,
    recommendations,
    requests,
    routes_query,
    traces,
    ui,
)
from api.auth import ApiKey, Authenticator, require
from api.guard import BodyGuard
from api.services import Services

VERSION = version("snakepit-perf")  # the installed package's (the API knows no CLI)


class Health(BaseModel):
    status: str
    version: str
    mode: str
    uptime_seconds: float
    # What degrades answers without failing the service (series folded by the series limit).
    warnings: list[str] = []


def create_app(services: Services, keys: list[ApiKey] | None = None) -> FastAPI:
    app = FastAPI(title="snakepit-perf", version=VERSION,
                  description="Performance monitoring for Snakepit deployments.")
    app.state.services = services
    app.state.auth = Authenticator(keys or [])
    app.add_middleware(BodyGuard, auth=app.state.auth,
                       ingest_limit=lambda: services.max_body_bytes,
                       body_idle_s=services.body_idle_s)
    problems.install(app)
    viewer, operator = [Depends(require("viewer"))], [Depends(require("operator"))]
    app.include_router(ingest.ingest_router, dependencies=operator)
    app.include_router(traces.router, dependencies=operator)
    app.include_router(ingest.rejects_router, dependencies=viewer)
    app.include_router(routes_query.router, dependencies=viewer)
    app.include_router(requests.router, dependencies=viewer)
    app.include_router(prometheus.router, dependencies=viewer)
    app.include_router(export.router, dependencies=viewer)
    app.include_router(analysis.router, dependencies=viewer)
    app.include_router(alerts.router, dependencies=viewer)
    app.include_router(alerts.actions)  # checks the operator key itself: it needs the name
    app.include_router(live.router, dependencies=viewer)
    app.include_router(live.ws_router)
    app.include_router(annotations.read_router, dependencies=viewer)
    app.include_router(dashboards.router)  # checks the key itself: it needs the caller's name
    app.include_router(annotations.write_router, dependencies=operator)
    app.include_router(benchmarks.read_router, dependencies=viewer)
    app.include_router(deploys.router, dependencies=viewer)
    app.include_router(recommendations.router, dependencies=viewer)
    app.include_router(recommendations.actions, dependencies=operator)
    app.include_router(benchmarks.write_router, dependencies=operator)
    ui.install(app)
    started = time.monotonic()

    @app.get("/health", response_model=Health, tags=["health"],
             responses={503: {"description": "the store cannot be written (reason in detail)"}})
    def health() -> Health:
        runner = services.runner
        if runner is not None and runner.failing_since is not None:
            raise problems.Problem(
                503, "Unhealthy", f"the store cannot be written since "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(runner.failing_since))}: "
                f"{runner.last_error}; acknowledged events are kept in the write-ahead log",
                headers={"Retry-After": "5"})
        return Health(status="ok", version=VERSION, mode=services.mode,
                      uptime_seconds=round(time.monotonic() - started, 3),
                      warnings=services.figures().warnings
                      if services.figures is not None else [])

    return app
