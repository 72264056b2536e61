"""``POST /v1/events`` (ingest) and ``GET /v1/rejects`` (what was refused, and why)."""

from __future__ import annotations

import asyncio
import base64
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.problems import Problem
from api.services import Services, get_services
from runners.embedded import Overloaded, Unavailable
from schemas.decode import decode_json, decode_ndjson
from store.base import RejectRecord

ingest_router = APIRouter(tags=["ingest"])
rejects_router = APIRouter(tags=["ingest"])

JSON_TYPES = {"application/json", "text/json"}
NDJSON_TYPES = {"application/x-ndjson", "application/ndjson", "application/jsonl",
                "application/x-jsonlines"}


class RejectedItem(BaseModel):
    index: int
    reason: str


class IngestResult(BaseModel):
    accepted: int
    rejected: list[RejectedItem]


class StoredReject(BaseModel):
    id: int
    time: float
    source: str
    reason: str
    raw: str
    raw_base64: str


@ingest_router.post("/v1/events", status_code=202, response_model=IngestResult,
             summary="Ingest one event, a JSON array, or NDJSON (gzip accepted)")
async def ingest(request: Request, services: Annotated[Services, Depends(get_services)]
                 ) -> IngestResult:
    if _in_flight[0] >= MAX_IN_FLIGHT:  # refuse before reading: bodies waiting cost memory
        services.counters["ingest_overloaded_total"] += 1
        raise Problem(429, "Too many ingest requests", f"{_in_flight[0]} ingest requests are "
                      f"in progress (limit {MAX_IN_FLIGHT}); retry shortly", param="body",
                      headers={"Retry-After": "1"})
    _in_flight[0] += 1
    try:
        return await _ingest(request, services)
    finally:
        _in_flight[0] -= 1


async def _ingest(request: Request, services: Services) -> IngestResult:
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media not in JSON_TYPES | NDJSON_TYPES:
        raise Problem(415, "Unsupported media type",
                      f"Content-Type {media!r} is not accepted; send application/json "
                      f"(an event or an array) or application/x-ndjson", param="Content-Type")
    body = await _read_body(request, services.max_body_bytes)
    decode = decode_ndjson if media in NDJSON_TYPES else decode_json
    window = services.time_bounds.window(time.time())
    decoded = await asyncio.get_running_loop().run_in_executor(_INGEST, decode, body, window)
    source = f"http:{request.client.host if request.client else 'unknown'}"
    if decoded.events:
        await submit(services, decoded.events)
        services.counters["events_accepted_total"] += len(decoded.events)
    if decoded.rejects:
        now = time.time()
        await run_in_threadpool(services.store.add_rejects, [
            RejectRecord(now, source, r.reason, r.raw) for r in decoded.rejects])
        services.counters["events_rejected_total"] += len(decoded.rejects)
    if len(decoded.rejects) == 1 and decoded.rejects[0].index == -1:
        raise Problem(400, "Invalid body", decoded.rejects[0].reason, param="body",
                      accepted=0, rejected=[{"index": -1, "reason": decoded.rejects[0].reason}])
    return IngestResult(accepted=len(decoded.events),
                        rejected=[RejectedItem(index=r.index, reason=r.reason)
                                  for r in decoded.rejects])


# Ingest (decoding and aggregating) runs on two threads of its own, off the event loop and
# off the threads queries run on (FastAPI's pool), and at most MAX_IN_FLIGHT requests are
# taken at once: past that a 429 comes before the body is read, so a flood of batches leaves
# the process time to answer queries.
_INGEST = ThreadPoolExecutor(2, thread_name_prefix="ingest")
MAX_IN_FLIGHT = 16
_in_flight = [0]  # only touched on the event loop


async def submit(services: Services, events: list) -> None:
    """Hand accepted events to the sink; a full queue is a 429, a batch that cannot be made
    durable a 503, both with ``Retry-After`` (nothing of the batch was kept)."""
    reserve = getattr(services.sink, "reserve", None)
    try:
        if reserve is not None:  # refuse at once, before the batch waits for a thread
            reserve(len(events))
            # shielded: a client that leaves does not cancel the job, which releases the count
            await asyncio.shield(asyncio.get_running_loop().run_in_executor(
                _INGEST, partial(services.sink.submit, events, reserved=True)))
        else:
            await asyncio.get_running_loop().run_in_executor(_INGEST, services.sink.submit,
                                                             events)
    except Overloaded as exc:
        services.counters["ingest_overloaded_total"] += 1
        raise Problem(429, "Too many events queued", str(exc), param="body",
                      headers={"Retry-After": str(exc.retry_after)}) from exc
    except Unavailable as exc:
        services.counters["ingest_unavailable_total"] += 1
        raise Problem(503, "Cannot store events now", str(exc), param="body",
                      headers={"Retry-After": str(exc.retry_after)}) from exc


@rejects_router.get("/v1/rejects", response_model=list[StoredReject],
            summary="The most recent rejected events, newest first, with reasons and raw bytes")
def rejects(services: Annotated[Services, Depends(get_services)],
            limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[StoredReject]:
    return [StoredReject(id=r.id or 0, time=r.time, source=r.source, reason=r.reason,
                         raw=r.raw.decode("utf-8", errors="replace"),
                         raw_base64=base64.b64encode(r.raw).decode())
            for r in services.store.rejects(limit)]


async def _read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes (after gzip), answering 413 past it rather than buffering."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip"):
        raise Problem(415, "Unsupported encoding",
                      f"Content-Encoding {encoding!r} is not accepted; use gzip or none",
                      param="Content-Encoding")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    if encoding == "gzip":
        body = _gunzip(body, limit)
    return body


def _gunzip(data: bytes, limit: int) -> bytes:
    """Every gzip member (RFC 1952 allows several, and `cat a.gz b.gz` makes them), at most
    ``limit`` bytes in all; a stream cut short is an error, not a partial body."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            chunk = inflater.decompress(data, limit + 1 - size)
        except zlib.error as exc:
            raise Problem(400, "Invalid gzip body", f"the body is not valid gzip: {exc}",
                          param="body") from exc
        size += len(chunk)
        if size > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
        if not inflater.eof:
            raise Problem(400, "Invalid gzip body", "the gzip stream is truncated: its last "
                          "member has no end; nothing of the body was accepted", param="body")
        out.append(chunk)
        data = inflater.unused_data
    return b"".join(out)


def _too_large(limit: int) -> Problem:
    return Problem(413, "Body too large",
                   f"the body exceeds {limit} bytes (after decompression); split it into "
                   f"smaller batches", param="body", limit_bytes=limit)
