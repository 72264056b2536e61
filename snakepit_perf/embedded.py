"""Wire the embedded deployment: SQLite store + in-process engine + API, in one process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.app import create_app
from api.auth import ApiKey
from api.services import Services
from models.runner import AlertRunner
from runners.embedded import EmbeddedRunner
from simulator.background import BackgroundSimulation
from simulator.model import Incident
from snakepit_perf import config
from snakepit_perf.alerting import (
    alert_engine,
    alert_outputs,
    deploy_judge,
    kafka_publisher,
    recommender,
)
from snakepit_perf.config import Settings
from store.archive import ArchiveReader
from store.sqlite import SQLiteStore


def build_embedded(settings: Settings, keys: list[ApiKey] | None = None,
                   simulate: float | None = None, incidents: Sequence[Incident] = ()) -> FastAPI:
    """The embedded service; with ``simulate`` (requests/s) it also feeds itself a simulated
    deployment (see :mod:`simulator.background`)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    r = settings.retention
    store = SQLiteStore(settings.data_dir / "embedded.sqlite3", r.per_resolution(),
                        rejects_keep_s=r.rejects_days * 86400)
    archive = settings.data_dir / "archive"
    # Resumes learned baselines, firing alerts and silences from the store.
    kafka = kafka_publisher(settings) if settings.alerts.kafka else None
    outputs = [*([kafka] if kafka else []), *alert_outputs(settings)]
    alerts = AlertRunner(alert_engine(settings), outputs, store=store,
                         keep_overrides=bool(settings.alerts.rules_file),
                         repeat_s=settings.alerts.repeat_interval_minutes * 60)
    runner = EmbeddedRunner(store, archive_dir=archive, on_minutes=alerts.consume,
                            wal_dir=settings.data_dir / "wal" if settings.ingest.wal else None,
                            max_queued_events=settings.ingest.max_queued_events,
                            retention_every=r.check_every_s,
                            limits=config.limits(settings))
    app = create_app(Services(store=store, sink=runner, mode="embedded", engine=runner.engine,
                              archive=ArchiveReader(archive), alerts=alerts, runner=runner,
                              body_idle_s=settings.api.body_idle_s,
                              max_query_rows=settings.api.max_query_rows,
                              time_bounds=config.time_bounds(settings)), keys)

    judge = deploy_judge(app.state.services, settings, kafka)
    recs = app.state.recommender = recommender(app.state.services, settings, kafka)
    simulation = BackgroundSimulation(runner.submit, simulate, incidents=incidents) \
        if simulate else None

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner.start()
        judge.start()
        recs.start()
        if simulation is not None:
            simulation.start()
        try:
            yield
        finally:
            recs.stop()
            judge.stop()
            if simulation is not None:
                simulation.stop()
            app.state.services.spans.close()  # calls still waiting for a partner span
            runner.stop()
            store.close()

    app.router.lifespan_context = lifespan
    return app
