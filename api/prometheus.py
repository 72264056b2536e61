"""``GET /metrics``: the service's own counters in the Prometheus text exposition format."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import PlainTextResponse

from api.services import Services, get_services

router = APIRouter(tags=["metrics"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_SELF = {
    "events_accepted_total": "events accepted by HTTP ingest",
    "events_rejected_total": "events rejected by HTTP ingest (listed by GET /v1/rejects)",
}
_ENGINE = {
    "events": ("engine_events_total", "events aggregated by the in-process engine"),
    "late_events": ("engine_late_events_total",
                    "events that arrived after their pane closed (merged, not dropped)"),
}


def exposition(services: Services) -> str:
    lines: list[str] = []

    def counter(name: str, help_text: str, value: float) -> None:
        full = f"snakepit_perf_{name}"
        lines.extend([f"# HELP {full} {help_text}", f"# TYPE {full} counter",
                      f"{full} {value}"])

    for name, help_text in _SELF.items():
        counter(name, help_text, services.counters.get(name, 0))
    if services.engine is not None:
        for key, (name, help_text) in _ENGINE.items():
            counter(name, help_text, services.engine.stats.get(key, 0))
        counter("engine_label_overflow_total",
                "label values folded into __other__ by the cardinality limit",
                services.engine.limiter.overflowed)
    return "\n".join(lines) + "\n"


@router.get("/metrics", response_class=PlainTextResponse,
            summary="Prometheus exposition of snakepit-perf's own counters")
def metrics(services: Annotated[Services, Depends(get_services)]) -> PlainTextResponse:
    return PlainTextResponse(exposition(services), media_type=CONTENT_TYPE)
