"""What the routes need, wired once by the composition root and handed to the app."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import InitVar, dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request

from api.problems import Problem
from models.runner import AlertRunner, StoredAlerts
from runners.embedded import EmbeddedRunner
from schemas.decode import TimeBounds
from schemas.events import Event
from store.archive import ArchiveReader
from store.base import RejectRecord, RollupStore
from streams.engine import Engine, EngineFigures
from streams.live import LiveState
from streams.spans import SpanJoiner


class EventSink(Protocol):
    """Where accepted events go: the in-process engine, or a Kafka topic."""

    def submit(self, events: Sequence[Event]) -> None: ...


@dataclass
class Services:
    store: RollupStore
    sink: EventSink
    mode: str = "embedded"
    max_body_bytes: int = 16 * 1024 * 1024
    body_idle_s: float = 20.0  # a body that pauses longer gets a 408 (api.guard)
    max_query_rows: int = 500_000  # past it a coarser resolution, or a 400 (query.engine)
    # the in-process engine (embedded mode only): routes never see it, only the views below
    engine: InitVar[Engine | None] = None
    archive: ArchiveReader | None = None  # Parquet archive, for ranges past the retention
    alerts: AlertRunner | None = None  # alert evaluation, where the engine runs
    alert_view: StoredAlerts | None = None  # the workers' alert state, read-only (distributed)
    counters: Counter[str] = field(default_factory=Counter)
    runner: EmbeddedRunner | None = None  # the embedded runner: health, WAL and queue figures
    spans: SpanJoiner | None = None  # OTLP span pairing; create_app makes one over ``sink``
    time_bounds: TimeBounds = field(default_factory=TimeBounds)  # event times believed

    # narrow views of the engine, for the routes: its figures now, and its live state
    figures: Callable[[], EngineFigures] | None = field(init=False, default=None)
    live: LiveState | None = field(init=False, default=None)

    def __post_init__(self, engine: Engine | None) -> None:
        if engine is not None:
            self.figures, self.live = engine.figures, engine.live
        if self.runner is not None:  # the runner may rebuild its engine (the live state stays)
            runner = self.runner
            self.figures = lambda: runner.engine.figures()
        if self.spans is None:
            self.spans = SpanJoiner(self.sink.submit, bounds=self.time_bounds,
                                    reject=self._reject_spans)

    def _reject_spans(self, rejected: list[tuple[str, bytes]]) -> None:
        """Calls built from spans that fail validation are kept with the other rejects."""
        now = time.time()
        self.store.add_rejects([RejectRecord(now, "otlp", reason, raw)
                                for reason, raw in rejected])
        self.counters["events_rejected_total"] += len(rejected)


def get_services(request: Request) -> Services:
    return request.app.state.services


def live_state(services: Annotated[Services, Depends(get_services)]) -> LiveState:
    """The engine's live state, or a 404 where no engine runs in this process."""
    if services.live is None:
        raise Problem(404, "No live state", "live views are served by the process that runs "
                                            "the engine (snakepit-perf run)")
    return services.live
