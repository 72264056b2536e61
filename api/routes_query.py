"""``GET /v1/query``, ``/v1/metrics`` and ``/v1/dimensions/{dim}``: the read side of the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from api.problems import Problem
from api.services import Services, get_services
from query import engine
from query.catalog import METRICS
from streams.series import ALL, FAMILIES

router = APIRouter(tags=["query"])


class Series(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    labels: dict[str, str]
    points: list[tuple[int, float]]


class QueryResult(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # read from query.engine.Answer
    metric: str
    stat: str
    unit: str
    step: int | None
    resolution: int
    # The range the points cover: from the first point's bucket to the end of the last bucket
    # that overlaps the asked range (edges are whole buckets, never cut)
    covered_from: int
    covered_to: int
    series: list[Series]


class MetricInfo(BaseModel):
    name: str
    unit: str
    kind: str
    stats: list[str]
    dimensions: list[str]
    help: str


def run_query(services: Services, metric: str, stat: str, start: str, end: str,
              step: str | None, group_by: str | None, where: list[str],
              window: str | None = None) -> engine.Answer:
    try:
        q = engine.build(metric, stat, start, end, step, group_by, where, window)
        return engine.run(services.store, q, services.archive, services.store.retention,
                          max_rows=services.max_query_rows)
    except engine.QueryError as exc:
        raise Problem(400, "Invalid query", str(exc), param=exc.param) from exc


@router.get("/v1/query", response_model=QueryResult,
            summary="A metric's statistic over time, filtered and grouped by dimensions")
def query(
    services: Annotated[Services, Depends(get_services)],
    metric: Annotated[str, Query(description="e.g. request_duration_seconds")],
    start: Annotated[str, Query(alias="from", description="RFC 3339 or epoch seconds")],
    end: Annotated[str, Query(alias="to", description="RFC 3339 or epoch seconds")],
    stat: Annotated[str, Query(description="count, sum, mean, min, max, p99, p99.9, rate, ...")]
    = "count",
    step: Annotated[str | None, Query(description="10s, 1m, 1h ... (omit: one point)")] = None,
    group_by: Annotated[str | None, Query(description="comma-separated dimensions")] = None,
    where: Annotated[list[str] | None, Query(description="dim:value, dim!=value, dim:pre*")]
    = None,
    window: Annotated[str | None, Query(description="sliding window for rate: 1m, 5m, 15m")]
    = None,
) -> engine.Answer:
    return run_query(services, metric, stat, start, end, step, group_by, where or [], window)


@router.get("/v1/metrics", response_model=list[MetricInfo], summary="Every queryable metric")
def metrics() -> list[MetricInfo]:
    return [MetricInfo(name=m.name, unit=m.unit, kind=m.kind, stats=list(m.stats),
                       dimensions=list(m.dimensions), help=m.help) for m in METRICS.values()]


@router.get("/v1/dimensions/{dim}", response_model=list[str],
            summary="Values of a dimension seen in stored series")
def dimension_values(services: Annotated[Services, Depends(get_services)], dim: str,
                     family: Annotated[str | None, Query()] = None) -> list[str]:
    families = [family] if family else [f for f, dims in FAMILIES.items() if dim in dims]
    if not families or any(f not in FAMILIES or dim not in FAMILIES[f] for f in families):
        raise Problem(404, "Unknown dimension", f"no metric family has a dimension {dim!r}",
                      param="dim")
    values = set()
    for f in families:
        i = FAMILIES[f].index(dim)
        values.update(ref.labels[i] for ref in services.store.series(f))
    values.discard(ALL)  # the marker of rolled-up series, not a value anyone sent
    return sorted(values)
