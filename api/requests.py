"""``GET /v1/requests``: the individual requests behind a chart point (drill-down, R10.3).

The engine keeps exemplars per worker series and bucket (the slowest requests and a uniform
sample, see :mod:`streams.aggregate`); this lists them for a range, optionally for a pool or
worker, from the finest resolution still retained for the range's start.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from api.problems import Problem
from api.services import Services, get_services
from query.engine import RESOLUTIONS, QueryError, matches, parse_filters, parse_time
from streams.series import FAMILIES

router = APIRouter(tags=["query"])


class RequestExemplar(BaseModel):
    time: float
    pool: str
    worker_id: str
    command: str
    status: str
    duration_us: int
    queue_wait_us: int | None = None
    python_us: int | None = None
    adapter: str = ""
    trace_id: str = ""
    session_id: str = ""
    error: str = ""


class RequestList(BaseModel):
    start: int
    end: int
    resolution: int
    requests: list[RequestExemplar]


@router.get("/v1/requests", response_model=RequestList,
            summary="Individual requests (the slowest and a sample) of a pool or worker in a range")
def list_requests(
    services: Annotated[Services, Depends(get_services)],
    start: Annotated[str, Query(alias="from", description="RFC 3339 or epoch seconds")],
    end: Annotated[str, Query(alias="to", description="RFC 3339 or epoch seconds")],
    where: Annotated[list[str] | None, Query(description="pool:NAME, worker_id:ID (OR-ed per "
                                                         "dimension, != and prefix* allowed)")]
    = None,
    status: Annotated[Literal["ok", "error", "timeout"] | None, Query()] = None,
    order: Annotated[Literal["slowest", "time"], Query()] = "slowest",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    try:
        t0, t1 = parse_time(start, "from"), parse_time(end, "to")
        if t1 <= t0:
            raise QueryError("to", "to: must be later than from")
        filters = parse_filters(where or [], FAMILIES["worker"])
    except QueryError as exc:
        raise Problem(400, "Invalid query", str(exc), param=exc.param) from exc
    retention = services.store.retention
    now = time.time()
    resolution = next((r for r in RESOLUTIONS if t0 >= now - retention[r]), RESOLUTIONS[-1])
    dims = FAMILIES["worker"]
    refs = [r for r in services.store.series("worker") if matches(r, dims, filters)]
    rows = services.store.read(refs, resolution, t0 - t0 % resolution, t1, dists=())
    found = [{**x, "pool": row.series.labels[0], "worker_id": row.series.labels[1]}
             for row in rows for x in row.agg.exemplars
             if t0 <= x["time"] < t1 and (status is None or x["status"] == status)]
    if order == "slowest":
        found.sort(key=lambda x: (-x["duration_us"], x["time"]))
    else:
        found.sort(key=lambda x: x["time"])
    return {"start": t0, "end": t1, "resolution": resolution, "requests": found[:limit]}
