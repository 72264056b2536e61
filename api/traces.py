"""``POST /v1/traces``: an OTLP/HTTP trace receiver for Snakepit's own OpenTelemetry spans.

Protobuf (``application/x-protobuf``) and JSON (``application/json``) bodies, gzip or not, as the
OTLP specification says; the answer is an ``ExportTraceServiceResponse`` in the request's
encoding, with ``partial_success`` counting spans that were not Snakepit calls. Calls are
joined and turned into events by ``streams.spans.SpanJoiner``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from api.ingest import _read_body
from api.problems import Problem
from api.services import Services, get_services
from runners.embedded import Overloaded, Unavailable
from schemas.otlp import OtlpError, parse_json, parse_protobuf

router = APIRouter(tags=["ingest"])

PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@router.post("/v1/traces", summary="OTLP/HTTP traces (protobuf or JSON, gzip accepted): "
             "Snakepit's execute spans become requests, joined with its Python spans")
async def traces(request: Request, services: Annotated[Services, Depends(get_services)]
                 ) -> Response:
    media = request.headers.get("content-type", PROTOBUF).split(";")[0].strip().lower()
    if media not in (PROTOBUF, JSON):
        raise Problem(415, "Unsupported media type",
                      f"Content-Type {media!r} is not accepted; OTLP/HTTP sends {PROTOBUF} or "
                      f"{JSON}", param="Content-Type")
    body = await _read_body(request, services.max_body_bytes)
    try:
        spans = parse_protobuf(body) if media == PROTOBUF else parse_json(body)
    except OtlpError as exc:
        raise Problem(400, "Invalid OTLP body", str(exc), param="body") from exc
    try:
        used = await run_in_threadpool(services.spans.add, spans)
    except (Overloaded, Unavailable) as exc:
        raise Problem(429 if isinstance(exc, Overloaded) else 503, "Cannot take spans now",
                      str(exc), param="body", headers={"Retry-After": str(exc.retry_after)}) \
            from exc
    services.counters["spans_accepted_total"] += used
    answer = ExportTraceServiceResponse()
    if used < len(spans):
        answer.partial_success.rejected_spans = len(spans) - used
        answer.partial_success.error_message = (
            f"{len(spans) - used} span(s) are not Snakepit execute or ExecuteTool spans; "
            f"they were not stored")
    if media == JSON:
        return Response(MessageToJson(answer), media_type=JSON)
    return Response(answer.SerializeToString(), media_type=PROTOBUF)
