"""Snakepit's own OpenTelemetry spans to canonical events: one request per call.

With ``SNAKEPIT_ENABLE_OTLP=true`` Snakepit's Elixir side exports a client span around each
``grpc_worker.execute`` (``snakepit.grpc.execute.<command>`` from its instrumentation, and
``snakepit.grpc.<command>`` from its telemetry bridge: up to two spans per call), and with
``SNAKEPIT_OTEL_ENDPOINT`` set its Python gRPC server exports ``BridgeService/ExecuteTool``
around the tool. Python starts a new trace (Snakepit does not propagate ``traceparent``), so
the spans of one call are joined on the ``snakepit.correlation_id`` attribute both sides set.

A call becomes one ``request``: duration, pool, worker and status from the Elixir span,
``python_us`` from the Python span. The two sides export in separate batches (each SDK's
batch processor waits up to 5 s), so a call's first span waits ``wait_s`` for its partner;
an Elixir span that waits out alone is a request without ``python_us``, a Python span alone
a ``python`` call. Calls already emitted are remembered (bounded), so a late sibling span
never counts a call again. A call that also arrives as telemetry is deduplicated by the
engine on the same correlation id (``streams.dedupe``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from schemas.decode import TimeBounds, accept
from schemas.events import Event
from schemas.native import DEPLOYMENT, given_pool, worker_pool
from schemas.otlp import STATUS_ERROR, Span

PYTHON_SPANS = ("BridgeService/ExecuteTool", "BridgeService/ExecuteStreamingTool")
SOURCE = "otlp"
log = logging.getLogger(__name__)


def is_elixir_call(span: Span) -> bool:
    return span.name.startswith("snakepit.grpc.") and "snakepit.worker.id" in span.attributes


@dataclass(slots=True)
class _Pending:
    first_seen: float
    elixir: Span | None = None
    python: Span | None = None


class SpanJoiner:
    """Pairs a call's Elixir and Python spans and hands the events to ``submit``.

    ``add`` takes the spans of one export; a thread (started with the first span) hands out
    calls whose partner did not come within ``wait_s``; ``close`` hands out everything still
    waiting, so nothing accepted is dropped at shutdown.
    """

    REMEMBER = 1 << 17  # calls already emitted, to drop their late siblings

    def __init__(self, submit: Callable[[Sequence[Event]], None], wait_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic,
                 bounds: TimeBounds | None = None,
                 reject: Callable[[list[tuple[str, bytes]]], None] | None = None) -> None:
        self.submit, self.wait_s, self.clock = submit, wait_s, clock
        self.bounds = bounds or TimeBounds()
        self.reject = reject  # gets (reason, call as JSON) of calls that fail validation
        self.pending: dict[str, _Pending] = {}
        self.done: OrderedDict[str, bool] = OrderedDict()  # correlation id -> had Python time
        self.lock = threading.Lock()
        self.ignored = 0  # spans that are not Snakepit calls
        self.invalid: list[str] = []  # reasons of calls whose event failed validation (recent)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._unsent: list[Event] = []

    def add(self, spans: Sequence[Span]) -> int:
        """Join the spans of one export; returns how many were Snakepit call spans."""
        out: list[dict] = []
        used = 0
        with self.lock:
            now = self.clock()
            for span in spans:
                python = span.name in PYTHON_SPANS
                if not python and not is_elixir_call(span):
                    self.ignored += 1
                    continue
                cid = str(span.attributes.get("snakepit.correlation_id") or "")
                used += 1
                if not cid:  # nothing to join on: the span stands alone
                    out.append(_python_event(span) if python else _request(span, None))
                    continue
                if cid in self.done:
                    if python and not self.done[cid]:  # its request went out without it
                        self.done[cid] = True
                        out.append(_python_event(span))
                    continue
                entry = self.pending.setdefault(cid, _Pending(now))
                if python:
                    entry.python = entry.python or span
                elif entry.elixir is None or span.duration_us > entry.elixir.duration_us:
                    entry.elixir = span  # the outer of the two Elixir spans
                if entry.elixir is not None and entry.python is not None:
                    out.append(self._finish(cid))
            out.extend(self._expired(now))
        self._emit(out)
        self._ensure_thread()
        return used

    def flush_expired(self) -> int:
        with self.lock:
            out = self._expired(self.clock())
        self._emit(out)
        return len(out)

    def close(self) -> None:
        """Hand out every call still waiting for its partner, and stop the thread."""
        self._stop.set()
        with self.lock:
            out = [self._finish(cid) for cid in list(self.pending)]
        self._emit(out)

    def _emit(self, out: list[dict]) -> None:
        """Submit the calls; if the sink refuses (overload, full disk) they are kept and sent
        first next time, and the refusal goes back to the caller."""
        events, self._unsent = self._unsent, []
        window = self.bounds.window(time.time())
        rejected: list[tuple[str, bytes]] = []
        for item in out:
            event, reason = accept(item, window)
            if event is not None:
                events.append(event)
            else:
                self.invalid = [*self.invalid[-99:], reason or ""]
                rejected.append((f"span call: {reason}", orjson.dumps(item)))
        if rejected and self.reject is not None:
            self.reject(rejected)
        if events:
            try:
                self.submit(events)
            except Exception:
                self._unsent = events + self._unsent
                raise

    def _expired(self, now: float) -> list[dict]:
        old = [cid for cid, p in self.pending.items() if now - p.first_seen >= self.wait_s]
        return [self._finish(cid) for cid in old]

    def _finish(self, cid: str) -> dict:
        entry = self.pending.pop(cid)
        self.done[cid] = entry.python is not None
        if len(self.done) > self.REMEMBER:
            self.done.popitem(last=False)
        if entry.elixir is None:
            return _python_event(entry.python)
        return _request(entry.elixir, entry.python)

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="span-joiner", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.wait_s / 4)):
            try:
                self.flush_expired()
            except Exception:
                log.exception("handing joined spans to the engine failed; will retry")


def _pool(attrs: dict) -> str:
    return (worker_pool(str(attrs.get("snakepit.worker.id") or ""))
            or given_pool(str(attrs.get("snakepit.pool") or "")) or DEPLOYMENT)


def _request(span: Span, python: Span | None) -> dict:
    a = span.attributes
    error = a.get("snakepit.grpc.error") or (span.status_message or None)
    kind = a.get("snakepit.grpc.error_kind")
    errored = a.get("snakepit.grpc.status") == "error" or span.status_code == STATUS_ERROR
    timed_out = str(kind or "").lstrip(":") == "timeout" or \
        str(error or "").lstrip(":{").startswith("timeout")
    python_us = None if python is None else min(python.duration_us, span.duration_us)
    return _clean({
        "type": "request", "time": span.end_ns / 1e9, "pool": _pool(a),
        "command": _label(a.get("snakepit.command")) or "unknown", "duration_us": span.duration_us,
        "status": "timeout" if errored and timed_out else "error" if errored else "ok",
        "worker_id": _label(a.get("snakepit.worker.id")),
        "session_id": _label(a.get("snakepit.session_id")),
        "trace_id": _label(a.get("snakepit.correlation_id")), "python_us": python_us,
        "error": str(error)[:4096] if errored and error else None, "source": SOURCE})


def _python_event(span: Span) -> dict:
    a = span.attributes
    return _clean({
        "type": "python", "time": span.end_ns / 1e9, "kind": "call",
        "command": _label(a.get("snakepit.tool")), "trace_id": _label(a.get("snakepit.correlation_id")),
        "python_us": span.duration_us, "name": span.name[:256],
        "error": (span.status_message or "error")[:4096] if span.status_code == STATUS_ERROR
        else None})


def _clean(event: dict) -> dict:
    return {k: v for k, v in event.items() if v is not None}


def _label(value: object) -> str | None:
    return None if value is None or value == "" else str(value)[:256]
