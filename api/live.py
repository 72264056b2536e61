"""``GET /v1/live``: Server-Sent Events with per-second request stats from the engine's live
state, pushed at ``interval`` (≤ 1 s) whenever something changed (R10.1; embedded mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from api.problems import Problem
from api.services import Services, get_services

router = APIRouter(tags=["live"])
ws_router = APIRouter(tags=["live"])  # checks its own key: HTTP dependencies do not apply


@router.get("/v1/live", summary="Server-Sent Events: per-second requests, errors and latency "
                                "percentiles per pool, as they arrive")
async def live(request: Request, services: Annotated[Services, Depends(get_services)],
               interval: Annotated[float, Query(gt=0.05, le=1.0)] = 0.25,
               history: Annotated[int, Query(ge=0, le=300)] = 60,
               max_events: Annotated[int | None, Query(ge=1)] = None) -> StreamingResponse:
    if services.engine is None or services.engine.live is None:
        raise Problem(404, "No live state", "live views are served by the process that runs the "
                                            "engine (snakepit-perf run)")
    state = services.engine.live

    async def stream() -> AsyncIterator[bytes]:
        seen = 0
        sent = 0
        first = True
        while not await request.is_disconnected():
            if first or state.version > seen:
                version = state.version
                rows = state.rows(since=0 if first else seen,
                                  seconds=history if first else None)
                seen, first = version, False
                yield b"event: seconds\ndata: " + orjson.dumps(rows) + b"\n\n"
                sent += 1
                if max_events is not None and sent >= max_events:
                    return
            else:
                yield b": keep-alive\n\n"
            await asyncio.sleep(interval)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


PROTOCOL = "snakepit-perf.v1"


@ws_router.websocket("/v1/live/ws")
async def live_ws(websocket: WebSocket, interval: float = 0.25, history: int = 60) -> None:
    """The WebSocket twin of ``/v1/live``: the same JSON arrays, one message per change.

    With API keys configured, a browser passes its key as the subprotocol ``bearer.<key>``
    next to ``snakepit-perf.v1`` (browsers cannot set headers on a WebSocket, and a key in the
    URL would land in access logs); other clients may send the Authorization header."""
    app = websocket.app
    auth = app.state.auth
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")
               if p.strip()]
    if auth.enabled:
        key = next((p[len("bearer."):] for p in offered if p.startswith("bearer.")), "") or \
            websocket.headers.get("authorization", "").partition(" ")[2]
        if not key or auth.find(key) is None:
            await websocket.close(code=4401, reason="an API key is required")
            return
    services: Services = app.state.services
    if services.engine is None or services.engine.live is None:
        await websocket.close(code=4404, reason="no live state in this process")
        return
    state = services.engine.live
    interval = min(max(interval, 0.05), 1.0)
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    seen, first = 0, True
    try:
        while True:
            if first or state.version > seen:
                version = state.version
                rows = state.rows(since=0 if first else seen, seconds=history if first else None)
                seen, first = version, False
                await websocket.send_bytes(orjson.dumps(rows))
            await asyncio.sleep(interval)
    except WebSocketDisconnect:
        return
