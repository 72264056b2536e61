"""What the routes need, wired once by the composition root and handed to the app."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from fastapi import Request

from models.runner import AlertRunner, StoredAlerts
from runners.embedded import EmbeddedRunner
from schemas.decode import TimeBounds
from schemas.events import Event
from store.archive import ArchiveReader
from store.base import RejectRecord, RollupStore
from streams.engine import Engine
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
    engine: Engine | None = None  # in-process engine, for live views (embedded mode only)
    archive: ArchiveReader | None = None  # Parquet archive, for ranges past the retention
    alerts: AlertRunner | None = None  # alert evaluation, where the engine runs
    alert_view: StoredAlerts | None = None  # the workers' alert state, read-only (distributed)
    counters: Counter[str] = field(default_factory=Counter)
    runner: EmbeddedRunner | None = None  # the embedded runner: health, WAL and queue figures
    spans: SpanJoiner | None = None  # OTLP span pairing; create_app makes one over ``sink``
    time_bounds: TimeBounds = field(default_factory=TimeBounds)  # event times believed

    def __post_init__(self) -> None:
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
