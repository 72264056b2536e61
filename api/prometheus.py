"""``GET /metrics``: Prometheus text exposition, so existing Prometheus/Grafana setups can scrape.

- per pool (and ``pool=""`` for all): ``snakepit_requests_total``, ``snakepit_request_errors_total``
  and a ``snakepit_request_duration_seconds`` summary whose quantiles cover the last 60 s of
  event time (like client_python's summaries) and whose ``_sum``/``_count`` are cumulative;
  these come from the engine's live state, so they exist where the engine runs (``run``);
- the service's own counters (events accepted and rejected, late events, label overflow).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from api.services import Services, get_services

router = APIRouter(tags=["metrics"])

QUANTILES = (0.5, 0.95, 0.99, 0.999)

_SELF = {
    "events_accepted_total": "events accepted by HTTP ingest",
    "events_rejected_total": "events rejected by HTTP ingest (listed by GET /v1/rejects)",
}
_ENGINE = {
    "events": ("engine_events_total", "events aggregated by the in-process engine"),
    "late_events": ("engine_late_events_total",
                    "events that arrived after their pane closed (merged, not dropped)"),
}


class ServiceCollector:
    """prometheus_client's custom collector over the service: every figure is read from where
    it lives at scrape time, so nothing is counted twice."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        services = self.services
        for name, help_text in _SELF.items():
            yield CounterMetricFamily(f"snakepit_perf_{name}", help_text,
                                      value=services.counters.get(name, 0))
        if services.runner is not None:
            yield from self._runner()
        if services.figures is not None:
            yield from self._engine()
        if services.live is not None:
            yield from self._live()

    def _runner(self) -> Iterator[Metric]:
        services, runner = self.services, self.services.runner
        gauges = [
            ("queued_events", "events waiting to be aggregated (ingest answers 429 past the "
             "limit)", runner.queued_events),
            ("wal_bytes", "write-ahead log on disk, not yet covered by a checkpoint",
             runner.wal.size_bytes() if runner.wal is not None else 0),
            ("wal_replayed_events", "acknowledged events replayed from the write-ahead log at "
             "start", runner.replayed),
            ("checkpoint_duration_seconds", "how long the last flush (rollups and checkpoint) "
             "took", round(runner.last_flush_s, 3)),
            ("checkpoint_age_seconds", "seconds since the last stored checkpoint",
             round(time.time() - runner.checkpointed_at, 3)),
            ("store_bytes", "the embedded store's files",
             services.store.size_bytes() if hasattr(services.store, "size_bytes") else 0)]
        counters = [
            ("ingest_overloaded_total", "ingest requests refused with 429",
             services.counters.get("ingest_overloaded_total", 0)),
            ("ingest_unavailable_total", "ingest requests refused with 503 (the batch could not "
             "be made durable)", services.counters.get("ingest_unavailable_total", 0)),
            ("store_write_errors_total", "failed rollup and checkpoint writes (retried)",
             runner.write_errors)]
        for name, help_text, value in gauges:
            yield GaugeMetricFamily(f"snakepit_perf_{name}", help_text, value=value)
        for name, help_text, value in counters:
            yield CounterMetricFamily(f"snakepit_perf_{name}", help_text, value=value)

    def _engine(self) -> Iterator[Metric]:
        f = self.services.figures()
        for key, (name, help_text) in _ENGINE.items():
            yield CounterMetricFamily(f"snakepit_perf_{name}", help_text,
                                      value=f.stats.get(key, 0))
        yield CounterMetricFamily("snakepit_perf_engine_label_overflow_total",
                                  "label values folded into __other__ by the cardinality limit",
                                  value=f.label_overflow)
        active = GaugeMetricFamily(
            "snakepit_perf_series_active", "active series by family (the series limit is "
            f"{f.max_series_per_family} per family, {f.max_series} in all)", labels=["family"])
        overflow = CounterMetricFamily(
            "snakepit_perf_series_overflow_total", "new series folded into __other__ because a "
            "series limit was reached, by family", labels=["family"])
        for family, n in sorted(f.active_series.items()):
            active.add_metric([family], n)
            overflow.add_metric([family], f.series_overflowed.get(family, 0))
        yield active
        yield overflow
        native = CounterMetricFamily(
            "snakepit_perf_native_events_total", "Snakepit events kept as native events, by "
            "event name (unknown names included)", labels=["event"])
        for key, n in sorted(f.stats.items()):
            if key.startswith("native:"):
                native.add_metric([key[7:]], n)
        yield native
        yield CounterMetricFamily("snakepit_perf_duplicate_calls_total", "request copies "
                                  "dropped: one call reported as telemetry and as spans counts "
                                  "once", value=f.duplicates_dropped)

    def _live(self) -> Iterator[Metric]:
        live = self.services.live
        totals = dict(sorted(live.totals.items()))
        requests = CounterMetricFamily("snakepit_requests_total",
                                       "Snakepit requests completed, by pool", labels=["pool"])
        errors = CounterMetricFamily("snakepit_request_errors_total",
                                     "Snakepit requests that failed, by pool", labels=["pool"])
        duration = SummaryMetricFamily("snakepit_request_duration_seconds",
                                       "Snakepit request duration; quantiles over the last 60 s",
                                       labels=["pool"])
        recent = live.recent(60)
        for pool, (n, failed, seconds) in totals.items():
            requests.add_metric([pool], n)
            errors.add_metric([pool], failed)
            duration.add_metric([pool], count_value=n, sum_value=seconds)
            digest = recent.get(pool)
            for q in QUANTILES:
                value = digest.quantile(q) / 1e6 if digest is not None else float("nan")
                duration.add_sample(duration.name, {"pool": pool, "quantile": str(q)}, value)
        yield requests
        yield errors
        yield duration


@router.get("/metrics", response_class=Response,
            summary="Prometheus exposition: per-pool request counters and latency summaries, "
                    "and snakepit-perf's own counters")
def metrics(services: Annotated[Services, Depends(get_services)]) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ServiceCollector(services))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
