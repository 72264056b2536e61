"""Normalise Snakepit's native telemetry envelopes into canonical events.

A forwarder in the host application attaches to Snakepit's ``:telemetry`` events and produces
each one as ``{"event": [...], "measurements": {...}, "metadata": {...}, "time": ...,
"node": ..., "native_time_unit": ...}``. ``TABLE`` below says, for every event Snakepit v0.13
emits (read from its source, ``lib/snakepit/**`` and ``priv/python/**``), what it becomes, how
its pool is found and whether it counts as a request. Three facts of that source shape it:

- **The pool is often the Pool GenServer's name** (``"Elixir.Snakepit.Pool"``), not the logical
  pool: in the ``grpc_worker`` spans, worker lifecycle, recycling, health and relayed
  ``python.*`` events. Snakepit names workers ``<pool>_worker_<i>_<n>``
  (``pool/initializer.ex``), so for those events the logical pool is read from the worker id.
- **One unary call emits two events** when it was not queued: the ``grpc_worker.execute`` span
  and ``request.executed``; a queued call only the span; a streaming call only
  ``request.executed`` (with ``streaming: true``). So the span's stop/exception is the request,
  and ``request.executed`` is a request only when streaming or aborted (client gone before the
  worker ran); otherwise it is kept as a ``native`` event and not counted again.
- **Some events have no pool at all** (pool init, thread capacity, retries, circuit breakers
  without a name): they count under the pool ``_deployment``. Events we do not map to a
  canonical type (shutdown, cleanup, deprecations, shape/device/OOM errors, GPU samples) and
  names we do not know yet become ``native`` events, counted per name, so a Snakepit upgrade
  never silently loses data. Only a malformed envelope is rejected.

Durations in native units use ``native_time_unit`` and are never assumed: an event that carries
one is rejected without it. Python-side values arrive stringified, so numbers in strings are
read as numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

DEPLOYMENT = "_deployment"  # the pool of events that belong to no pool

# How many native units make one second, by the names Erlang uses.
_UNITS_PER_SECOND = {
    "second": 1, "seconds": 1, "millisecond": 1_000, "milli_seconds": 1_000,
    "microsecond": 1_000_000, "micro_seconds": 1_000_000,
    "nanosecond": 1_000_000_000, "nano_seconds": 1_000_000_000,
}
_WORKER_ID = re.compile(r"^(?P<pool>.+)_worker_\d+_\d+$")
_MODULE = re.compile(r"^(Elixir\.)?[A-Z]\w*(\.[A-Z]\w*)+$")  # Elixir.Snakepit.Pool, Snakepit.Pool
_MAX_TEXT = 4096


class NativeError(ValueError):
    """The envelope cannot be normalised; the message is the reject reason."""


class _Ctx:
    """One envelope being normalised, with unit-aware accessors."""

    __slots__ = ("m", "md", "per_second", "name")

    def __init__(self, name: str, measurements: dict, metadata: dict, per_second: int | None
                 ) -> None:
        self.name, self.m, self.md, self.per_second = name, measurements, metadata, per_second

    def native_us(self, key: str) -> int | None:
        """A measurement in native time units, as integer microseconds."""
        value = self.num(key)
        if value is None:
            return None
        if self.per_second is None:
            raise NativeError(f"{self.name}: 'native_time_unit' is missing, and '{key}' is in "
                              f"native time units; the forwarder must send the unit "
                              f"(e.g. \"nanosecond\")")
        return max(0, round(value * 1_000_000 / self.per_second))

    def ms_us(self, key: str) -> int | None:
        value = self.num(key)
        return None if value is None else max(0, round(value * 1000))

    def ns_us(self, key: str) -> int | None:
        """Python's durations: wall-clock nanoseconds, whatever the BEAM's unit is."""
        value = self.num(key)
        return None if value is None else max(0, round(value / 1000))

    def int(self, key: str) -> int | None:
        value = self.num(key)
        return None if value is None else round(value)

    def num(self, key: str) -> float | None:
        return _number(self.name, key, self.m.get(key))

    def text(self, key: str) -> str | None:
        """A metadata value as a string: atoms lose their colon, other terms stay as rendered."""
        return _text(self.md.get(key))

    def flag(self, key: str) -> bool | None:
        value = self.md.get(key)
        if isinstance(value, bool) or value is None:
            return value
        return str(value).lstrip(":").lower() == "true"

    def meta_num(self, key: str) -> float | None:
        value = self.md.get(key)
        if isinstance(value, bool) or value is None:
            return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    def meta_int(self, key: str) -> int | None:
        value = self.meta_num(key)
        return None if value is None else round(value)

    def given_pool(self) -> str | None:
        return given_pool(self.text("pool") or self.text("pool_name"))

    def worker_pool(self) -> str | None:
        return worker_pool(self.text("worker_id"))

    def pool_given_first(self) -> str:
        """Pool-level events (dispatch, saturation, readiness) carry the logical pool."""
        return self.given_pool() or self.worker_pool() or DEPLOYMENT

    def pool_from_worker(self) -> str:
        """Events about a worker's work: the worker id says which logical pool it serves."""
        return self.worker_pool() or self.given_pool() or DEPLOYMENT


def given_pool(pool: str | None) -> str | None:
    """The pool an event names, unless it is the Pool GenServer's name or a pid."""
    if not pool or _MODULE.match(pool) or pool.startswith("#PID<"):
        return None
    return pool


def worker_pool(worker_id: str | None) -> str | None:
    """The logical pool in a Snakepit worker id (``<pool>_worker_<i>_<n>``)."""
    match = _WORKER_ID.match(worker_id or "")
    return match["pool"] if match else None


def _number(name: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    kind = type(value)
    if kind is int or kind is float:
        return value
    if kind is bool:
        return int(value)
    if kind is str:  # Python's non-int/float measurements (numpy numbers) arrive as strings
        try:
            return float(value)
        except ValueError:
            pass
    raise NativeError(f"{name}: measurement '{key}' should be a number, got {value!r}"[:300])


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value[1:] if value.startswith(":") and len(value) > 1 else value
    elif isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, dict | list):
        text = orjson.dumps(value, default=str).decode()
    else:
        text = str(value)
    return text if text != "nil" else None


Build = Callable[[_Ctx], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Row:
    """One Snakepit event: what it becomes and how it is counted (the README shows this)."""

    becomes: str  # canonical type (and kind)
    pool: str  # how the pool is found
    build: Build
    counts: str = ""  # the counting rule, where one is needed


_GIVEN, _WORKER, _NONE = "given", "worker id", "none: _deployment"


# -- builders --------------------------------------------------------------------------------


def _timeout(error: str | None, kind: str | None) -> bool:
    return (kind or "").lstrip(":") == "timeout" or (error or "").lstrip(":{").startswith("timeout")


def _request_executed(c: _Ctx) -> dict[str, Any]:
    streaming, aborted = c.flag("streaming"), c.flag("aborted")
    if not streaming and not aborted:
        return _native(c, True, "counted from grpc_worker.execute.stop: a unary call emits both")
    error = c.text("reason") if aborted else None
    if aborted and c.text("client_down_reason"):
        error = f"{error or 'client_down'}: {c.text('client_down_reason')}"
    ok = c.flag("success") and not aborted
    return {"type": "request", "pool": c.pool_from_worker(), "worker_id": c.text("worker_id"),
            "command": c.text("command") or "unknown", "duration_us": c.int("duration_us"),
            "status": "ok" if ok else "error", "streaming": streaming or None,
            "error": None if ok else (error or "error"), "source": c.name}


def _execute_stop(c: _Ctx) -> dict[str, Any]:
    duration = c.native_us("duration")
    if duration is None:
        duration = c.ms_us("duration_ms")
    exception = c.name.endswith("exception")
    if exception:  # :telemetry.span/3 adds kind, reason and stacktrace
        kind, error = c.text("kind"), c.text("reason")
        error = f"{kind}: {error}" if kind and error else (error or kind or "exception")
        timed_out = _timeout(c.text("reason"), None)
    else:
        error, kind = c.text("error"), c.text("error_kind")
        if error and kind:
            error = f"{kind}: {error}"
        timed_out = _timeout(c.text("error"), kind)
    errored = exception or c.text("status") == "error" or (c.int("errors") or 0) > 0
    status = "timeout" if errored and timed_out else "error" if errored else "ok"
    return {
        "type": "request", "pool": c.pool_from_worker(), "worker_id": c.text("worker_id"),
        "command": c.text("command") or "unknown", "duration_us": duration,
        "status": status, "adapter": c.text("adapter"),
        "session_id": c.text("session_id"), "trace_id": c.text("correlation_id"),
        "error": error if errored else None, "source": c.name,
    }


def _execute_start(c: _Ctx) -> dict[str, Any]:
    return {"type": "request_start", "pool": c.pool_from_worker(),
            "worker_id": c.text("worker_id"), "command": c.text("command"),
            "adapter": c.text("adapter"), "session_id": c.text("session_id"),
            "trace_id": c.text("correlation_id")}


def _pool(kind: str, build: Build | None = None, worker_first: bool = False) -> Build:
    def handler(c: _Ctx) -> dict[str, Any]:
        pool = c.pool_from_worker() if worker_first else c.pool_given_first()
        event = {"type": "pool", "kind": kind, "pool": pool}
        if build:
            event.update(build(c))
        return event
    return handler


def _worker(kind: str, build: Build | None = None, given_first: bool = False) -> Build:
    def handler(c: _Ctx) -> dict[str, Any]:
        pool = c.pool_given_first() if given_first else c.pool_from_worker()
        event = {"type": "worker", "kind": kind, "pool": pool,
                 "worker_id": c.text("worker_id"), "reason": c.text("reason")}
        if build:
            event.update(build(c))
        return event
    return handler


def _session(kind: str, build: Build) -> Build:
    def handler(c: _Ctx) -> dict[str, Any]:
        return {"type": "session", "kind": kind, "pool": DEPLOYMENT, "reason": c.text("reason"),
                "adapter": c.text("table_name"), **build(c)}
    return handler


def _python(kind: str, build: Build | None = None) -> Build:
    def handler(c: _Ctx) -> dict[str, Any]:
        event = {"type": "python", "kind": kind, "pool": c.pool_from_worker(),
                 "worker_id": c.text("worker_id"), "python_pid": c.meta_int("python_pid"),
                 "trace_id": c.text("correlation_id"),
                 "command": c.text("command") or c.text("tool"),
                 "library": c.text("library"), "python_env": c.text("python_env"),
                 "name": c.name}
        if build:
            event.update(build(c))
        return event
    return handler


def _python_error(c: _Ctx) -> str | None:
    kind, message = c.text("error_type"), c.text("error_message")
    if kind or message:
        return f"{kind}: {message}" if kind and message else kind or message
    return c.text("error")


def _python_span(c: _Ctx) -> dict[str, Any]:
    return {"python_us": c.ns_us("duration"), "error": _python_error(c)}


def _python_metrics(c: _Ctx) -> dict[str, Any]:
    known = {"memory_bytes": c.int("rss_bytes") or c.int("memory_bytes"),
             "cpu_percent": c.num("cpu_percent"), "gc_collected": c.int("collected"),
             "gc_generation": c.int("generation"),
             "bytes": c.int("message_size") or c.int("size_bytes") or c.int("bytes")}
    if c.name.endswith("gc.completed") and c.num("duration") is not None:
        known["gc_pause_us"] = c.ns_us("duration")
    metrics = {k: float(v) for k in c.m
               if k not in ("timestamp", "timestamp_ns", "system_time")
               for v in [c.num(k)] if v is not None}
    return {**known, "metrics": dict(sorted(metrics.items())[:64]) or None}


def _heartbeat(kind: str) -> Build:
    def build(c: _Ctx) -> dict[str, Any]:
        missed = c.int("missed") if c.m.get("missed") is not None else c.meta_int("missed_heartbeats")
        return {"heartbeat_latency_us": c.ms_us("latency_ms"), "missed": missed,
                "worker_pid": c.text("worker_pid"),
                "reason": c.text("failure_reason") or c.text("reason")}
    return _worker(kind, build)


def _zero_copy(kind: str) -> Build:
    return _python(kind, lambda c: {"duration_us": c.ms_us("duration_ms"), "bytes": c.int("bytes"),
                                    "name": c.name})


def _retry(kind: str) -> Build:
    return _pool(kind, lambda c: {"attempt": c.int("attempt") or c.int("attempts"),
                                  "reason": c.text("last_error")})


def _native(c: _Ctx, known: bool, reason: str | None = None) -> dict[str, Any]:
    """An event with no canonical type of its own: counted per name, its numbers kept."""
    measurements = {k: float(v) for k in c.m for v in [c.num(k)] if v is not None}
    attributes = {str(k)[:256]: (_text(v) or "")[:_MAX_TEXT] for k, v in c.md.items()
                  if k not in ("stacktrace",)}
    return {"type": "native", "name": c.name[:256], "known": known,
            "pool": c.pool_from_worker(), "worker_id": c.text("worker_id"),
            "measurements": dict(sorted(measurements.items())[:64]) or None,
            "attributes": dict(sorted(attributes.items())[:32]) or None, "reason": reason}


def _kept(c: _Ctx) -> dict[str, Any]:
    return _native(c, True)


_SPAN_NOTE = ("one request per call: `grpc_worker.execute` is a unary call's only span, "
              "queued or not")

TABLE: dict[str, Row] = {
    # Requests (lib/snakepit/grpc_worker/instrumentation.ex, pool/dispatcher.ex, pool/pool.ex)
    "snakepit.grpc_worker.execute.start": Row("request_start", _WORKER, _execute_start),
    "snakepit.grpc_worker.execute.stop": Row("request (status ok, error, or timeout)", _WORKER,
                                             _execute_stop, _SPAN_NOTE),
    "snakepit.grpc_worker.execute.exception": Row("request (status error or timeout)", _WORKER,
                                                  _execute_stop, _SPAN_NOTE),
    "snakepit.grpc_worker.execute_session.start": Row("request_start", _WORKER, _execute_start),
    "snakepit.grpc_worker.execute_session.stop": Row("request", _WORKER, _execute_stop,
                                                     _SPAN_NOTE),
    "snakepit.grpc_worker.execute_session.exception": Row("request", _WORKER, _execute_stop,
                                                          _SPAN_NOTE),
    "snakepit.request.executed": Row(
        "request if streaming or aborted, else native", _WORKER, _request_executed,
        "a request only when `streaming` (no span is emitted) or `aborted` (the client was "
        "gone, the worker never ran); otherwise the span of the same call counts it"),
    # Pool (pool/dispatcher.ex, pool/pool.ex, pool/event_handler.ex, pool/initializer.ex)
    "snakepit.pool.call.dispatched": Row("pool dispatched", _GIVEN, _pool("dispatched", lambda c: {
        "worker_id": c.text("worker_id"), "command": c.text("command"),
        "queued": c.flag("queued")})),
    "snakepit.pool.saturated": Row("pool saturated", _GIVEN, _pool("saturated", lambda c: {
        "queue_depth": c.int("queue_size"), "max_queue_size": c.int("max_queue_size"),
        "available_workers": c.meta_int("available_workers"),
        "busy_workers": c.meta_int("busy_workers")})),
    "snakepit.pool.init_started": Row("pool init_started", _NONE, _pool("init_started", lambda c: {
        "total_workers": c.int("total_workers")})),
    "snakepit.pool.init_complete": Row("pool init_complete", _NONE, _pool(
        "init_complete", lambda c: {"duration_us": c.ms_us("duration_ms"),
                                    "total_workers": c.int("total_workers")})),
    "snakepit.pool.capacity_reached": Row("pool capacity_reached", _NONE, _pool(
        "capacity_reached", lambda c: {
            "capacity": c.int("capacity"), "load": c.int("load"), "worker_profile": "thread",
            "rejected": bool(c.flag("rejected") or c.flag("rejected?"))})),
    "snakepit.pool.worker_ready": Row("worker ready", _GIVEN, _worker(
        "ready", lambda c: {"worker_count": c.int("worker_count")}, given_first=True)),
    # Worker lifecycle (grpc_worker/instrumentation.ex, worker/lifecycle_manager.ex,
    # crash_barrier.ex, health_monitor.ex)
    "snakepit.pool.worker.spawned": Row("worker spawned", _WORKER, _worker("spawned", lambda c: {
        "startup_us": c.native_us("duration"), "python_pid": c.meta_int("python_pid"),
        "worker_pid": c.text("worker_pid")})),
    "snakepit.pool.worker.terminated": Row("worker terminated", _WORKER, _worker(
        "terminated", lambda c: {"lifetime_us": c.native_us("lifetime"),
                                 "total_commands": c.int("total_commands"),
                                 "planned": c.flag("planned"), "worker_pid": c.text("worker_pid")})),
    "snakepit.worker.recycled": Row("worker recycled (memory_mb is the BEAM process's)", _WORKER,
                                    _worker("recycled", lambda c: {
        "uptime_s": c.meta_num("uptime_seconds"), "request_count": c.meta_int("request_count"),
        "beam_memory_mb": c.num("memory_mb") if c.m.get("memory_mb") is not None
        else c.meta_num("memory_mb"),
        "memory_threshold_mb": c.meta_num("memory_threshold_mb")})),
    "snakepit.worker.health_check_failed": Row("worker health_check_failed", _WORKER,
                                               _worker("health_check_failed")),
    "snakepit.worker.crash": Row("worker crashed", _WORKER, _worker("crashed", lambda c: {
        "exit_code": c.meta_int("exit_code"), "device": c.text("device")})),
    "snakepit.worker.tainted": Row("worker tainted", _WORKER, _worker("tainted", lambda c: {
        "taint_ms": c.int("duration_ms"), "exit_code": c.meta_int("exit_code"),
        "device": c.text("device")})),
    "snakepit.worker.restarted": Row("worker restarted", _WORKER, _worker("restarted", lambda c: {
        "exit_code": c.meta_int("exit_code"), "device": c.text("device")})),
    # Heartbeat (heartbeat_monitor.ex): no pool key, the worker id has it
    **{f"snakepit.heartbeat.{n}": Row(f"worker {k}", _WORKER, _heartbeat(k)) for n, k in [
        ("ping_sent", "heartbeat_ping"), ("pong_received", "heartbeat_pong"),
        ("heartbeat_timeout", "heartbeat_timeout"),
        ("monitor_failure", "heartbeat_monitor_failure"),
        ("monitor_started", "heartbeat_monitor_started"),
        ("monitor_stopped", "heartbeat_monitor_stopped")]},
    # Sessions (bridge/session_store.ex)
    "snakepit.bridge.session.pruned": Row("session pruned", _NONE, _session("pruned", lambda c: {
        "count": c.int("count"), "remaining_sessions": c.int("remaining_sessions"),
        "max_sessions": c.meta_int("max_sessions")})),
    "snakepit.bridge.session.accumulation_warning": Row("session accumulation_warning", _NONE,
                                                        _session("accumulation_warning", lambda c: {
        "current_sessions": c.int("current_sessions"), "max_sessions": c.int("max_sessions"),
        "utilization": c.num("utilization")})),
    # Python, relayed by telemetry/grpc_stream.ex (catalog: telemetry/naming.ex)
    "snakepit.python.call.start": Row("python call", _WORKER, _python("call")),
    "snakepit.python.call.stop": Row("python call (python_us)", _WORKER,
                                     _python("call", _python_span)),
    "snakepit.python.call.exception": Row("python error", _WORKER, _python("error", _python_span)),
    "snakepit.python.memory.sampled": Row("python memory", _WORKER, _python("memory",
                                                                            _python_metrics)),
    "snakepit.python.cpu.sampled": Row("python cpu", _WORKER, _python("cpu", _python_metrics)),
    "snakepit.python.gc.completed": Row("python gc", _WORKER, _python("gc", _python_metrics)),
    "snakepit.python.error.occurred": Row("python error", _WORKER, _python(
        "error", lambda c: {"error": _python_error(c)})),
    "snakepit.python.tool.execution.start": Row("python tool_start", _WORKER, _python("tool_start")),
    "snakepit.python.tool.execution.stop": Row("python tool_stop (python_us)", _WORKER,
                                               _python("tool_stop", _python_span)),
    "snakepit.python.tool.execution.exception": Row("python tool_exception", _WORKER,
                                                    _python("tool_exception", _python_span)),
    "snakepit.python.tool.result_size": Row("python tool_result_size (bytes)", _WORKER,
                                            _python("tool_result_size", _python_metrics)),
    # Errors translated from Python (error/python_translation.ex)
    "snakepit.python.exception.mapped": Row("python exception_mapped", _WORKER, _python(
        "exception_mapped", lambda c: {"error": c.text("python_type")})),
    "snakepit.python.exception.unmapped": Row("python exception_unmapped", _WORKER, _python(
        "exception_unmapped", lambda c: {"error": c.text("python_type")})),
    # Zero-copy transfers (zero_copy.ex)
    **{f"snakepit.zero_copy.{k}": Row(f"python zero_copy_{k}", _NONE, _zero_copy(f"zero_copy_{k}"))
       for k in ("export", "import", "fallback")},
    # Circuit breaker (circuit_breaker.ex): pool is the breaker's name, or nil
    "snakepit.circuit_breaker.opened": Row("pool circuit_opened", _GIVEN, _pool(
        "circuit_opened", lambda c: {"failure_count": c.int("failure_count"),
                                     "reason": c.text("reason")})),
    "snakepit.circuit_breaker.closed": Row("pool circuit_closed", _GIVEN, _pool("circuit_closed")),
    "snakepit.circuit_breaker.half_open": Row("pool circuit_half_open", _GIVEN,
                                              _pool("circuit_half_open")),
    # Retries of the deprecated Executor (executor.ex): pool always nil
    **{f"snakepit.retry.{k}": Row(f"pool retry_{k}", _NONE, _retry(f"retry_{k}"))
       for k in ("attempt", "success", "exhausted")},
    # Kept as native events, counted per name (shutdown.ex, runtime_cleanup.ex,
    # pool/application_cleanup.ex, internal/deprecation.ex, error/shape.ex, error/device.ex,
    # telemetry/gpu_profiler.ex)
    **{f"snakepit.script.shutdown.{k}": Row("native", _NONE, _kept)
       for k in ("start", "stop", "cleanup", "exit")},
    **{f"snakepit.cleanup.{k}": Row("native", _NONE, _kept) for k in ("start", "success", "timeout")},
    **{f"snakepit.application_cleanup.{k}": Row("native", _NONE, _kept)
       for k in ("cleanup_success", "orphaned_processes_found", "emergency_cleanup")},
    "snakepit.deprecated.module_used": Row("native", _NONE, _kept),
    **{f"snakepit.error.{k}": Row("native", _NONE, _kept) for k in ("shape_mismatch", "device", "oom")},
    **{f"snakepit.gpu.{k}.sampled": Row("native", _NONE, _kept)
       for k in ("memory", "utilization", "temperature", "power")},
}

# `python.call.*` is a family: any call sub-event Python adds later still counts as a call.
_PREFIX_ROWS = (("snakepit.python.call.", Row("python call", _WORKER, _python("call", _python_span))),)


def is_native(obj: Any) -> bool:
    return type(obj) is dict and "event" in obj and "type" not in obj


def event_name(raw: Any) -> str:
    """``["snakepit", "pool", "saturated"]`` or ``":snakepit.pool.saturated"`` as a dotted name."""
    if isinstance(raw, list) and raw and all(isinstance(p, str) and p for p in raw):
        return ".".join(p.lstrip(":") for p in raw)
    if isinstance(raw, str) and raw.strip(":. "):
        return raw.lstrip(":").replace(".:", ".")
    raise NativeError(f"field 'event': expected a list of names such as "
                      f"[\"snakepit\", \"pool\", \"saturated\"], got {str(raw)[:80]!r}")


def normalise(envelope: dict[str, Any]) -> dict[str, Any]:
    """One native envelope to one canonical event (not yet validated). Raises NativeError."""
    name = event_name(envelope.get("event"))
    measurements = envelope.get("measurements", {})
    metadata = envelope.get("metadata", {})
    if measurements is None:
        measurements = {}
    if metadata is None:
        metadata = {}
    if not isinstance(measurements, dict):
        raise NativeError(f"{name}: 'measurements' should be an object")
    if not isinstance(metadata, dict):
        raise NativeError(f"{name}: 'metadata' should be an object")
    unit = envelope.get("native_time_unit")
    ctx = _Ctx(name, measurements, metadata, None if unit is None else _per_second(unit))
    for key, value in measurements.items():  # every measurement must be a number
        _number(name, key, value)
    row = TABLE.get(name) or next((r for prefix, r in _PREFIX_ROWS if name.startswith(prefix)),
                                  None)
    event = row.build(ctx) if row else _native(ctx, False, "an event this version does not map")
    event["time"] = _event_time(envelope, ctx)
    node = envelope.get("node") or metadata.get("node")
    if node is not None:
        event["node"] = str(node)[:256]
    return {k: v for k, v in event.items() if v is not None}


def _per_second(unit: Any) -> int:
    if isinstance(unit, str) and unit.lstrip(":") in _UNITS_PER_SECOND:
        return _UNITS_PER_SECOND[unit.lstrip(":")]
    if type(unit) is int and unit > 0:  # Erlang also allows "parts per second" as an integer
        return unit
    raise NativeError(f"field 'native_time_unit': expected second, millisecond, microsecond, "
                      f"nanosecond or a positive integer, got {unit!r}"[:200])


def _event_time(envelope: dict[str, Any], ctx: _Ctx) -> Any:
    """The envelope's time, else ``system_time`` (native units), else Python's ``timestamp_ns``."""
    if envelope.get("time") is not None:
        return envelope["time"]
    system_time = ctx.m.get("system_time")
    if type(system_time) is int and ctx.per_second is not None:
        return system_time / ctx.per_second
    timestamp_ns = ctx.meta_num("timestamp_ns")
    if timestamp_ns is not None:
        return timestamp_ns / 1e9
    raise NativeError(f"{ctx.name}: no event time (expected 'time', measurements.system_time "
                      f"with native_time_unit, or metadata.timestamp_ns)")
