"""``GET /v1/live``: Server-Sent Events with per-second request stats from the engine's live
state, pushed at ``interval`` (≤ 1 s) whenever something changed (R10.1; embedded mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from api.services import live_state
from streams.live import LiveState

router = APIRouter(tags=["live"])
ws_router = APIRouter(tags=["live"])  # checks its own key: HTTP dependencies do not apply


async def updates(state: LiveState, interval: float, history: int
                  ) -> AsyncIterator[list[dict] | None]:
    """What SSE and the WebSocket send: first the last ``history`` seconds, then each change,
    polled every ``interval``; ``None`` when nothing changed (a keep-alive)."""
    seen, first = 0, True
    while True:
        if first or state.version > seen:
            version = state.version
            rows = state.rows(since=0 if first else seen, seconds=history if first else None)
            seen, first = version, False
            yield rows
        else:
            yield None
        await asyncio.sleep(interval)


@router.get("/v1/live", summary="Server-Sent Events: per-second requests, errors and latency "
                                "percentiles per pool, as they arrive")
async def live(request: Request, state: Annotated[LiveState, Depends(live_state)],
               interval: Annotated[float, Query(gt=0.05, le=1.0)] = 0.25,
               history: Annotated[int, Query(ge=0, le=300)] = 60,
               max_events: Annotated[int | None, Query(ge=1)] = None) -> StreamingResponse:

    async def stream() -> AsyncIterator[bytes]:
        sent = 0
        async for rows in updates(state, interval, history):
            if await request.is_disconnected():
                return
            if rows is None:
                yield b": keep-alive\n\n"
                continue
            yield b"event: seconds\ndata: " + orjson.dumps(rows) + b"\n\n"
            sent += 1
            if max_events is not None and sent >= max_events:
                return

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
    state = app.state.services.live
    if state is None:
        await websocket.close(code=4404, reason="no live state in this process")
        return
    await websocket.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
    try:
        async for rows in updates(state, min(max(interval, 0.05), 1.0), history):
            if rows is not None:
                await websocket.send_bytes(orjson.dumps(rows))
    except WebSocketDisconnect:
        return
