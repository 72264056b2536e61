"""Serving the app: uvicorn with a deadline for every request's head.

uvicorn times out idle keep-alive connections but not a client that sends its request line and
headers a byte at a time (slowloris): 200 such connections held a server for as long as they
liked. Here each request's head must be complete within ``HEAD_TIMEOUT_S`` of the connection
opening (or of the previous response); past it the connection is closed. Bodies are timed by
:class:`api.guard.BodyGuard`.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

HEAD_TIMEOUT_S = 10.0


class HeadDeadlineProtocol(H11Protocol):
    head_timeout_s = HEAD_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        """Start the clock for the next request's head (the current cycle is the last one)."""
        self._cancel()
        self._waiting_after = self.cycle
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _cancel(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.cycle is not self._waiting_after:
            self._cancel()  # a new request's head arrived

    def on_response_complete(self) -> None:
        self._arm()  # before: a pipelined request handled inside it cancels the clock
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        super().connection_lost(exc)

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request head took over %.0f s",
                             self.head_timeout_s)
            self.transport.close()


def serve(app: Any, host: str, port: int, head_timeout_s: float = HEAD_TIMEOUT_S) -> None:
    protocol = type("HeadDeadlineProtocol", (HeadDeadlineProtocol,),
                    {"head_timeout_s": head_timeout_s})
    uvicorn.run(app, host=host, port=port, log_level="info", http=protocol)
