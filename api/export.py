"""``GET /v1/export``: a query's answer as rows in JSON, CSV or Parquet (R11.1), optionally with
the annotations that overlap each point (R11.4), for spreadsheets, DuckDB, pandas or Spark."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response, StreamingResponse

from api.problems import Problem
from api.routes_query import run_query
from api.services import Services, get_services
from query.engine import Answer, parse_time

router = APIRouter(tags=["export"])

MEDIA = {"json": "application/json", "csv": "text/csv; charset=utf-8",
         "parquet": "application/vnd.apache.parquet"}


def rows_of(result: Answer, annotations: list | None) -> list[dict[str, Any]]:
    step = result.step
    out = []
    for series in result.series:
        for t, value in series.points:
            row = {"time": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
                   "epoch_s": t, "metric": result.metric, "stat": result.stat,
                   "unit": result.unit, **series.labels, "value": value}
            if annotations is not None:
                end = t + (step or 0)
                row["annotations"] = "; ".join(
                    f"{a.kind}: {a.title}" for a in annotations
                    if a.time < max(end, t + 1) and (a.end_time or a.time) >= t)
            out.append(row)
    return out


@router.get("/v1/export", summary="A query's points as JSON, CSV or Parquet rows",
            responses={200: {"content": {m: {} for m in MEDIA.values()}}})
def export(
    services: Annotated[Services, Depends(get_services)],
    metric: Annotated[str, Query()],
    start: Annotated[str, Query(alias="from")],
    end: Annotated[str, Query(alias="to")],
    stat: Annotated[str, Query()] = "count",
    step: Annotated[str | None, Query()] = None,
    group_by: Annotated[str | None, Query()] = None,
    where: Annotated[list[str] | None, Query()] = None,
    window: Annotated[str | None, Query()] = None,
    format: Annotated[str, Query(pattern="^(json|csv|parquet)$")] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000_000)] = 1_000_000,
    annotations: Annotated[bool, Query(description="add overlapping annotations")] = False,
) -> Response:
    result = run_query(services, metric, stat, start, end, step, group_by, where or [], window)
    notes = None
    if annotations:
        notes = services.store.annotations(parse_time(start, "from"), parse_time(end, "to"))
    rows = rows_of(result, notes)
    if len(rows) > limit:
        raise Problem(413, "Export too large",
                      f"the export has {len(rows)} rows, more than limit={limit}; narrow the "
                      f"range, raise the step, or raise the limit", param="limit", rows=len(rows))
    name = f"{result.metric}-{result.stat}"
    headers = {"Content-Disposition": f'attachment; filename="{name}.{format}"'}
    if format == "parquet":
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows) if rows else pa.table({}), buf)
        return Response(buf.getvalue(), media_type=MEDIA["parquet"], headers=headers)
    body = _json_rows(rows) if format == "json" else _csv_rows(rows)
    return StreamingResponse(body, media_type=MEDIA[format], headers=headers)


def _json_rows(rows: list[dict[str, Any]]) -> Iterator[bytes]:
    yield b"["
    for i, row in enumerate(rows):
        yield (b"," if i else b"") + orjson.dumps(row)
    yield b"]"


def _csv_rows(rows: list[dict[str, Any]]) -> Iterator[str]:
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
        if buf.tell() > 65536:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()
