"""Normalise Snakepit's native telemetry envelopes into canonical events.

A forwarder in the host application attaches to Snakepit's ``:telemetry`` events and produces
each one as ``{"event": [...], "measurements": {...}, "metadata": {...}, "time": ...,
"node": ..., "native_time_unit": ...}`` (see ``shared/snakepit-telemetry.md``). This module
turns every event Snakepit v0.13 emits into one canonical event: durations become integer
microseconds using ``native_time_unit`` (never assumed), ``pool`` and ``pool_name`` become
``pool``, and Elixir terms rendered as strings (pids, atoms, error tuples) stay strings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# How many native units make one second, by the names Erlang uses.
_UNITS_PER_SECOND = {
    "second": 1, "seconds": 1, "millisecond": 1_000, "milli_seconds": 1_000,
    "microsecond": 1_000_000, "micro_seconds": 1_000_000,
    "nanosecond": 1_000_000_000, "nano_seconds": 1_000_000_000,
}

Handler = Callable[["_Ctx"], dict[str, Any]]


class NativeError(ValueError):
    """The envelope cannot be normalised; the message is the reject reason."""


class _Ctx:
    """One envelope being normalised, with unit-aware accessors."""

    __slots__ = ("m", "md", "per_second", "name")

    def __init__(self, name: str, measurements: dict, metadata: dict, per_second: int) -> None:
        self.name, self.m, self.md, self.per_second = name, measurements, metadata, per_second

    def native_us(self, key: str) -> int | None:
        """A measurement in native time units, as integer microseconds."""
        value = self._number(key)
        return None if value is None else round(value * 1_000_000 / self.per_second)

    def ms_us(self, key: str) -> int | None:
        value = self._number(key)
        return None if value is None else round(value * 1000)

    def int(self, key: str) -> int | None:
        value = self._number(key)
        return None if value is None else round(value)

    def num(self, key: str) -> float | None:
        return self._number(key)

    def _number(self, key: str) -> float | None:
        value = self.m.get(key)
        if value is None:
            return None
        if type(value) not in (int, float):
            raise NativeError(f"{self.name}: measurement '{key}' should be a number, got {value!r}"[:300])
        return value

    def text(self, key: str) -> str | None:
        """A metadata value as a string: atoms lose their colon, other terms stay as rendered."""
        value = self.md.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return value[1:] if value.startswith(":") and len(value) > 1 else value
        return str(value).lower() if isinstance(value, bool) else str(value)

    def flag(self, key: str) -> bool | None:
        value = self.md.get(key)
        if isinstance(value, bool) or value is None:
            return value
        return str(value).lstrip(":").lower() == "true"

    def meta_int(self, key: str) -> int | None:
        value = self.md.get(key)
        if isinstance(value, bool) or value is None:
            return None
        try:
            return int(value)
        except (TypeError, ValueError):
            return None

    def pool(self) -> str | None:
        return self.text("pool") or self.text("pool_name")


def _request_executed(c: _Ctx) -> dict[str, Any]:
    aborted = c.flag("aborted")
    ok = c.flag("success") and not aborted
    return {
        "type": "request", "pool": c.pool(), "worker_id": c.text("worker_id"),
        "command": c.text("command") or "unknown", "duration_us": c.int("duration_us"),
        "status": "ok" if ok else "error", "streaming": c.flag("streaming"),
        "error": c.text("reason") or c.text("client_down_reason"), "source": c.name,
    }


def _execute_stop(c: _Ctx) -> dict[str, Any]:
    duration = c.native_us("duration")
    if duration is None:
        duration = c.ms_us("duration_ms")
    errored = c.text("status") == "error" or (c.int("errors") or 0) > 0 or c.name.endswith("exception")
    return {
        "type": "request", "pool": c.pool(), "worker_id": c.text("worker_id"),
        "command": c.text("command") or "unknown", "duration_us": duration,
        "status": "error" if errored else "ok", "adapter": c.text("adapter"),
        "session_id": c.text("session_id"), "trace_id": c.text("correlation_id"),
        "error": c.text("error") or c.text("error_kind") or c.text("reason"), "source": c.name,
    }


def _execute_start(c: _Ctx) -> dict[str, Any]:
    return {"type": "request_start", "pool": c.pool(), "worker_id": c.text("worker_id"),
            "command": c.text("command"), "adapter": c.text("adapter"),
            "session_id": c.text("session_id"), "trace_id": c.text("correlation_id")}


def _pool(kind: str, build: Callable[[_Ctx], dict[str, Any]] | None = None) -> Handler:
    def handler(c: _Ctx) -> dict[str, Any]:
        event = {"type": "pool", "kind": kind, "pool": c.pool()}
        if build:
            event.update(build(c))
        return event
    return handler


def _worker(kind: str, build: Callable[[_Ctx], dict[str, Any]] | None = None) -> Handler:
    def handler(c: _Ctx) -> dict[str, Any]:
        event = {"type": "worker", "kind": kind, "pool": c.pool(),
                 "worker_id": c.text("worker_id"), "reason": c.text("reason")}
        if build:
            event.update(build(c))
        return event
    return handler


def _session(kind: str, build: Callable[[_Ctx], dict[str, Any]]) -> Handler:
    def handler(c: _Ctx) -> dict[str, Any]:
        return {"type": "session", "kind": kind, "reason": c.text("reason"),
                "adapter": c.text("table_name"), **build(c)}
    return handler


def _python(kind: str, build: Callable[[_Ctx], dict[str, Any]] | None = None) -> Handler:
    def handler(c: _Ctx) -> dict[str, Any]:
        event = {"type": "python", "kind": kind, "pool": c.pool(),
                 "worker_id": c.text("worker_id"), "python_pid": c.meta_int("python_pid"),
                 "trace_id": c.text("correlation_id"), "command": c.text("command"),
                 "library": c.text("library"), "python_env": c.text("python_env"),
                 "name": c.name}
        if build:
            event.update(build(c))
        return event
    return handler


def _python_duration(c: _Ctx) -> dict[str, Any]:
    # Python spans measure wall-clock nanoseconds, whatever the BEAM's native unit is.
    d = c.num("duration")
    return {"python_us": None if d is None else round(d / 1000), "error": c.text("error")}


def _python_metrics(c: _Ctx) -> dict[str, Any]:
    known = {"memory_bytes": c.int("memory_bytes") or c.int("rss_bytes"),
             "cpu_percent": c.num("cpu_percent"), "gc_collected": c.int("collected"),
             "gc_generation": c.int("generation"), "bytes": c.int("size_bytes") or c.int("bytes")}
    pause = c.num("duration")
    if pause is not None and c.name.endswith("gc.completed"):
        known["gc_pause_us"] = round(pause / 1000)
    metrics = {k: v for k, v in c.m.items()
               if type(v) in (int, float) and k not in ("timestamp", "timestamp_ns")}
    return {**known, "metrics": metrics or None}


def _heartbeat(kind: str) -> Handler:
    def build(c: _Ctx) -> dict[str, Any]:
        return {"heartbeat_latency_us": c.ms_us("latency_ms"),
                "missed": c.int("missed") if c.m.get("missed") is not None
                else c.meta_int("missed_heartbeats"),
                "worker_pid": c.text("worker_pid")}
    return _worker(kind, build)


def _zero_copy(kind: str) -> Handler:
    return _python(kind, lambda c: {"duration_us": c.ms_us("duration_ms"), "bytes": c.int("bytes")})


HANDLERS: dict[str, Handler] = {
    "snakepit.request.executed": _request_executed,
    "snakepit.grpc_worker.execute.start": _execute_start,
    "snakepit.grpc_worker.execute.stop": _execute_stop,
    "snakepit.grpc_worker.execute.exception": _execute_stop,
    "snakepit.grpc_worker.execute_session.start": _execute_start,
    "snakepit.grpc_worker.execute_session.stop": _execute_stop,
    "snakepit.grpc_worker.execute_session.exception": _execute_stop,
    "snakepit.pool.call.dispatched": _pool("dispatched", lambda c: {
        "worker_id": c.text("worker_id"), "command": c.text("command"), "queued": c.flag("queued")}),
    "snakepit.pool.saturated": _pool("saturated", lambda c: {
        "queue_depth": c.int("queue_size"), "max_queue_size": c.int("max_queue_size"),
        "available_workers": c.meta_int("available_workers"),
        "busy_workers": c.meta_int("busy_workers")}),
    "snakepit.pool.init_started": _pool("init_started", lambda c: {
        "total_workers": c.int("total_workers")}),
    "snakepit.pool.init_complete": _pool("init_complete", lambda c: {
        "duration_us": c.ms_us("duration_ms"), "total_workers": c.int("total_workers")}),
    "snakepit.pool.capacity_reached": _pool("capacity_reached", lambda c: {
        "capacity": c.int("capacity"), "load": c.int("load"), "worker_profile": "thread",
        "rejected": c.flag("rejected?") if "rejected?" in c.md else c.flag("rejected")}),
    "snakepit.pool.worker_ready": _worker("ready", lambda c: {"worker_count": c.int("worker_count")}),
    "snakepit.pool.worker.spawned": _worker("spawned", lambda c: {
        "startup_us": c.native_us("duration"), "python_pid": c.meta_int("python_pid"),
        "worker_pid": c.text("worker_pid")}),
    "snakepit.pool.worker.terminated": _worker("terminated", lambda c: {
        "lifetime_us": c.native_us("lifetime"), "total_commands": c.int("total_commands"),
        "planned": c.flag("planned"), "worker_pid": c.text("worker_pid")}),
    "snakepit.worker.recycled": _worker("recycled", lambda c: {
        "uptime_s": c.md.get("uptime_seconds") if isinstance(c.md.get("uptime_seconds"), int | float)
        else None,
        "request_count": c.meta_int("request_count"),
        "memory_mb": c.num("memory_mb") if c.m.get("memory_mb") is not None
        else (c.md.get("memory_mb") if isinstance(c.md.get("memory_mb"), int | float) else None),
        "memory_threshold_mb": c.md.get("memory_threshold_mb")
        if isinstance(c.md.get("memory_threshold_mb"), int | float) else None}),
    "snakepit.worker.health_check_failed": _worker("health_check_failed"),
    "snakepit.worker.crash": _worker("crashed", lambda c: {
        "exit_code": c.meta_int("exit_code"), "device": c.text("device")}),
    "snakepit.worker.tainted": _worker("tainted", lambda c: {"taint_ms": c.int("duration_ms")}),
    "snakepit.worker.restarted": _worker("restarted"),
    "snakepit.heartbeat.ping_sent": _heartbeat("heartbeat_ping"),
    "snakepit.heartbeat.pong_received": _heartbeat("heartbeat_pong"),
    "snakepit.heartbeat.heartbeat_timeout": _heartbeat("heartbeat_timeout"),
    "snakepit.heartbeat.monitor_failure": _heartbeat("heartbeat_monitor_failure"),
    "snakepit.heartbeat.monitor_started": _heartbeat("heartbeat_monitor_started"),
    "snakepit.heartbeat.monitor_stopped": _heartbeat("heartbeat_monitor_stopped"),
    "snakepit.bridge.session.pruned": _session("pruned", lambda c: {
        "count": c.int("count"), "remaining_sessions": c.int("remaining_sessions"),
        "max_sessions": c.meta_int("max_sessions")}),
    "snakepit.bridge.session.accumulation_warning": _session("accumulation_warning", lambda c: {
        "current_sessions": c.int("current_sessions"), "max_sessions": c.int("max_sessions"),
        "utilization": c.num("utilization")}),
    "snakepit.python.call.start": _python("call"),
    "snakepit.python.call.stop": _python("call", _python_duration),
    "snakepit.python.call.exception": _python("error", _python_duration),
    "snakepit.python.memory.sampled": _python("memory", _python_metrics),
    "snakepit.python.cpu.sampled": _python("cpu", _python_metrics),
    "snakepit.python.gc.completed": _python("gc", _python_metrics),
    "snakepit.python.error.occurred": _python("error", lambda c: {"error": c.text("error")}),
    "snakepit.python.tool.execution.start": _python("tool_start"),
    "snakepit.python.tool.execution.stop": _python("tool_stop", _python_duration),
    "snakepit.python.tool.execution.exception": _python("tool_exception", _python_duration),
    "snakepit.python.tool.result_size": _python("tool_result_size", _python_metrics),
    "snakepit.python.exception.mapped": _python("exception_mapped"),
    "snakepit.python.exception.unmapped": _python("exception_unmapped"),
    "snakepit.zero_copy.export": _zero_copy("zero_copy_export"),
    "snakepit.zero_copy.import": _zero_copy("zero_copy_import"),
    "snakepit.zero_copy.fallback": _zero_copy("zero_copy_fallback"),
    "snakepit.circuit_breaker.opened": _pool("circuit_opened"),
    "snakepit.circuit_breaker.closed": _pool("circuit_closed"),
    "snakepit.circuit_breaker.half_open": _pool("circuit_half_open"),
    "snakepit.retry.attempt": _pool("retry_attempt", lambda c: {"attempt": c.int("attempt")}),
    "snakepit.retry.success": _pool("retry_success", lambda c: {"attempt": c.int("attempt")}),
    "snakepit.retry.exhausted": _pool("retry_exhausted", lambda c: {"attempt": c.int("attempt")}),
}

# `python.call.*` is a family: any call sub-event Python adds later still counts as a call.
_PREFIX_HANDLERS = (("snakepit.python.call.", _python("call", _python_duration)),)


def is_native(obj: Any) -> bool:
    return type(obj) is dict and "event" in obj and "type" not in obj


def event_name(raw: Any) -> str:
    """``["snakepit", "pool", "saturated"]`` or ``":snakepit.pool.saturated"`` as a dotted name."""
    if isinstance(raw, list) and raw and all(isinstance(p, str) for p in raw):
        return ".".join(p.lstrip(":") for p in raw)
    if isinstance(raw, str) and raw:
        return raw.lstrip(":").replace(".:", ".")
    raise NativeError(f"field 'event': expected a list of names such as "
                      f"[\"snakepit\", \"pool\", \"saturated\"], got {str(raw)[:80]!r}")


def normalise(envelope: dict[str, Any]) -> dict[str, Any]:
    """One native envelope to one canonical event (not yet validated). Raises NativeError."""
    name = event_name(envelope.get("event"))
    handler = HANDLERS.get(name)
    if handler is None:
        handler = next((h for prefix, h in _PREFIX_HANDLERS if name.startswith(prefix)), None)
    if handler is None:
        raise NativeError(f"unknown event {name}")
    measurements = envelope.get("measurements", {})
    metadata = envelope.get("metadata", {})
    if not isinstance(measurements, dict):
        raise NativeError(f"{name}: 'measurements' should be an object")
    if not isinstance(metadata, dict):
        raise NativeError(f"{name}: 'metadata' should be an object")
    per_second = _per_second(envelope.get("native_time_unit", "nanosecond"))
    ctx = _Ctx(name, measurements, metadata, per_second)
    event = handler(ctx)
    event["time"] = _event_time(envelope, ctx)
    node = envelope.get("node") or metadata.get("node")
    if node is not None:
        event["node"] = str(node)
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
    if type(system_time) is int:
        return system_time / ctx.per_second
    timestamp_ns = ctx.md.get("timestamp_ns")
    if type(timestamp_ns) is int:
        return timestamp_ns / 1e9
    raise NativeError(f"{ctx.name}: no event time (expected 'time', measurements.system_time "
                      f"or metadata.timestamp_ns)")
