"""Before any route reads a body: the API key is checked, and the body is capped while it
streams in. FastAPI reads and parses a body before its dependencies run, so without this an
unauthenticated client could make the service buffer any amount of data before its 401.

A pure ASGI middleware: a request with a body (POST, PUT, PATCH, DELETE) and no valid key gets
its 401 without a byte of the body read; a body past its route's limit gets a 413, from
``Content-Length`` when declared, else as soon as the streamed bytes pass it. Ingest routes
(``/v1/events``, ``/v1/traces``) take up to the ingest limit, every other route 1 MiB. A body
that stops arriving (no bytes for ``BODY_IDLE_S``, a slowloris sending its body) gets a 408 and
the connection is closed; slow headers are cut off by the server protocol
(:mod:`api.server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from api.auth import Authenticator

INGEST_PATHS = ("/v1/events", "/v1/traces")
OTHER_BODY_BYTES = 1024 * 1024
BODY_IDLE_S = 20.0  # the longest wait for the next chunk of a body
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class BodyGuard:
    def __init__(self, app: Any, auth: Authenticator, ingest_limit: Callable[[], int],
                 body_idle_s: float = BODY_IDLE_S) -> None:
        self.app, self.auth, self.ingest_limit = app, auth, ingest_limit
        self.body_idle_s = body_idle_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if self.auth.enabled and not self._authenticated(headers):
            await _problem(send, 401, "Unauthorized", "send a valid API key as "
                           "'Authorization: Bearer <key>' (checked before the body is read)",
                           path, {"www-authenticate": "Bearer"})
            return
        limit = self.ingest_limit() if path in INGEST_PATHS else OTHER_BODY_BYTES
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _problem(send, 413, "Body too large", f"the body exceeds {limit} bytes",
                           path)
            return
        state = {"received": 0, "answered": False}

        async def limited_receive() -> dict:
            try:
                message = await asyncio.wait_for(receive(), self.body_idle_s)
            except TimeoutError:
                if not state["answered"]:
                    state["answered"] = True
                    await _problem(send, 408, "Request timeout",
                                   f"no part of the body arrived for {self.body_idle_s:.0f} s; "
                                   f"send the body without pauses", path)
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit and not state["answered"]:
                    state["answered"] = True
                    await _problem(send, 413, "Body too large",
                                   f"the body exceeds {limit} bytes", path)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not state["answered"]:
                await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["answered"]:
                raise

    def _authenticated(self, headers: dict[str, str]) -> bool:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and bool(token) and self.auth.find(token) is not None


async def _problem(send: Send, status: int, title: str, detail: str, instance: str,
                   extra_headers: dict[str, str] | None = None) -> None:
    body = orjson.dumps({"type": "about:blank", "title": title, "status": status,
                         "detail": detail, "instance": instance})
    headers = [(b"content-type", b"application/problem+json"),
               (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    headers += [(k.encode(), v.encode()) for k, v in (extra_headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
