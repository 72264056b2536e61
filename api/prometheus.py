"""``GET /metrics``: Prometheus text exposition, so existing Prometheus/Grafana setups can scrape.

- per pool (and ``pool=""`` for all): ``snakepit_requests_total``, ``snakepit_request_errors_total``
  and a ``snakepit_request_duration_seconds`` summary whose quantiles cover the last 60 s of
  event time (like client_python's summaries) and whose ``_sum``/``_count`` are cumulative;
  these come from the engine's live state, so they exist where the engine runs (``run``);
- the service's own counters (events accepted and rejected, late events, label overflow).
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from api.services import Services, get_services

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
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


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exposition(services: Services) -> str:
    lines: list[str] = []

    def header(name: str, kind: str, help_text: str) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])

    for name, help_text in _SELF.items():
        header(f"snakepit_perf_{name}", "counter", help_text)
        lines.append(f"snakepit_perf_{name} {services.counters.get(name, 0)}")
    runner = services.runner
    if runner is not None:
        for name, kind, help_text, value in [
            ("queued_events", "gauge", "events waiting to be aggregated (ingest answers 429 "
             "past the limit)", runner.queued_events),
            ("ingest_overloaded_total", "counter", "ingest requests refused with 429",
             services.counters.get("ingest_overloaded_total", 0)),
            ("ingest_unavailable_total", "counter", "ingest requests refused with 503 (the batch "
             "could not be made durable)", services.counters.get("ingest_unavailable_total", 0)),
            ("store_write_errors_total", "counter", "failed rollup and checkpoint writes (retried)",
             runner.write_errors),
            ("wal_bytes", "gauge", "write-ahead log on disk, not yet covered by a checkpoint",
             runner.wal.size_bytes() if runner.wal is not None else 0),
            ("wal_replayed_events", "gauge", "acknowledged events replayed from the write-ahead "
             "log at start", runner.replayed),
            ("checkpoint_duration_seconds", "gauge", "how long the last flush (rollups and "
             "checkpoint) took", round(runner.last_flush_s, 3)),
            ("checkpoint_age_seconds", "gauge", "seconds since the last stored checkpoint",
             round(time.time() - runner.checkpointed_at, 3)),
            ("store_bytes", "gauge", "the embedded store's files",
             services.store.size_bytes() if hasattr(services.store, "size_bytes") else 0)]:
            header(f"snakepit_perf_{name}", kind, help_text)
            lines.append(f"snakepit_perf_{name} {value}")
    engine = services.engine
    if engine is None:
        return "\n".join(lines) + "\n"
    for key, (name, help_text) in _ENGINE.items():
        header(f"snakepit_perf_{name}", "counter", help_text)
        lines.append(f"snakepit_perf_{name} {engine.stats.get(key, 0)}")
    header("snakepit_perf_engine_label_overflow_total", "counter",
           "label values folded into __other__ by the cardinality limit")
    lines.append(f"snakepit_perf_engine_label_overflow_total {engine.limiter.overflowed}")
    limiter = engine.limiter
    header("snakepit_perf_series_active", "gauge", "active series by family (the series limit "
           f"is {limiter.limits.max_series_per_family} per family, {limiter.limits.max_series} "
           "in all)")
    for family, known in sorted(limiter.known.items()):
        lines.append(f'snakepit_perf_series_active{{family="{family}"}} {len(known)}')
    header("snakepit_perf_series_overflow_total", "counter",
           "new series folded into __other__ because a series limit was reached, by family")
    for family in sorted(limiter.known):
        n = limiter.series_overflowed.get(family, 0)
        lines.append(f'snakepit_perf_series_overflow_total{{family="{family}"}} {n}')
    header("snakepit_perf_native_events_total", "counter",
           "Snakepit events kept as native events, by event name (unknown names included)")
    for key, n in sorted(engine.stats.items()):
        if key.startswith("native:"):
            lines.append(f'snakepit_perf_native_events_total{{event="{_label(key[7:])}"}} {n}')
    header("snakepit_perf_duplicate_calls_total", "counter",
           "request copies dropped: one call reported as telemetry and as spans counts once")
    lines.append(f"snakepit_perf_duplicate_calls_total {engine.calls.dropped}")
    live = engine.live
    if live is None:
        return "\n".join(lines) + "\n"
    totals = dict(sorted(live.totals.items()))
    header("snakepit_requests_total", "counter", "Snakepit requests completed, by pool")
    for pool, (n, _, _) in totals.items():
        lines.append(f'snakepit_requests_total{{pool="{_label(pool)}"}} {n}')
    header("snakepit_request_errors_total", "counter", "Snakepit requests that failed, by pool")
    for pool, (_, errors, _) in totals.items():
        lines.append(f'snakepit_request_errors_total{{pool="{_label(pool)}"}} {errors}')
    header("snakepit_request_duration_seconds", "summary",
           "Snakepit request duration; quantiles over the last 60 s")
    recent = live.recent(60)
    for pool, (n, _, seconds) in totals.items():
        p = _label(pool)
        digest = recent.get(pool)
        for q in QUANTILES:
            value = digest.quantile(q) / 1e6 if digest is not None else float("nan")
            lines.append(f'snakepit_request_duration_seconds{{pool="{p}",quantile="{q}"}} {value}')
        lines.append(f'snakepit_request_duration_seconds_sum{{pool="{p}"}} {seconds}')
        lines.append(f'snakepit_request_duration_seconds_count{{pool="{p}"}} {n}')
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse,
            summary="Prometheus exposition: per-pool request counters and latency summaries, "
                    "and snakepit-perf's own counters")
def metrics(services: Annotated[Services, Depends(get_services)]) -> PlainTextResponse:
    return PlainTextResponse(exposition(services), media_type=CONTENT_TYPE)
