"""``/v1/annotations``: deploys, config changes and business events to line metrics up with."""

from __future__ import annotations

from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api import deploys
from api.problems import Problem
from api.services import Services, get_services
from query.engine import QueryError, parse_time
from schemas.events import Annotation, finish
from store.base import annotation_record

read_router = APIRouter(tags=["annotations"])
write_router = APIRouter(tags=["annotations"])


class AnnotationOut(BaseModel):
    time: float
    end_time: float | None
    kind: str
    title: str
    text: str
    pool: str
    tags: dict[str, str]
    verdict: str | None = None  # a deploy's, once judged (api.deploys)


@read_router.get("/v1/annotations", response_model=list[AnnotationOut],
                 summary="Annotations overlapping a time range")
def list_annotations(services: Annotated[Services, Depends(get_services)],
                     start: Annotated[str, Query(alias="from")],
                     end: Annotated[str, Query(alias="to")]) -> list[AnnotationOut]:
    try:
        t0, t1 = parse_time(start, "from"), parse_time(end, "to")
    except QueryError as exc:
        raise Problem(400, "Invalid range", str(exc), param=exc.param) from exc
    marks = services.store.annotations(t0, t1)
    judged = deploys.judged(services) if any(a.kind == "deploy" for a in marks) else {}
    return [AnnotationOut(time=a.time, end_time=a.end_time, kind=a.kind, title=a.title,
                          text=a.text, pool=a.pool, tags=a.tags,
                          verdict=judged.get(f"deploy-{a.id}-after"))
            for a in marks]


@write_router.post("/v1/annotations", status_code=201, response_model=AnnotationOut,
                   summary="Record an annotation (the body is an annotation event)")
async def add_annotation(request: Request, services: Annotated[Services, Depends(get_services)]
                         ) -> AnnotationOut:
    body = await request.body()
    try:
        event = msgspec.json.decode(body, type=Annotation)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise Problem(400, "Invalid annotation", f"annotation: {exc}", param="body") from exc
    reason = finish(event)
    if reason:
        raise Problem(400, "Invalid annotation", reason, param="body")
    record = annotation_record(event)
    services.store.add_annotations([record])
    return AnnotationOut(time=record.time, end_time=record.end_time, kind=record.kind,
                         title=record.title, text=record.text, pool=record.pool, tags=record.tags)
