"""Render simulated events as Snakepit 0.13 and a forwarder really emit them.

What Snakepit emits (``schemas.native`` has the table): a call's ``grpc_worker.execute`` span,
with the Pool GenServer's name in ``pool``, plus ``request.executed`` (logical pool) when the
call did not wait in the queue; a queue timeout emits nothing; worker lifecycle events name the
GenServer too. Events Snakepit has no telemetry for (pool stats from ``Snakepit.get_stats/1``,
session timings, resources) stay canonical, as a forwarder or our SDK sends them.
"""

from __future__ import annotations

from typing import Any

from schemas.events import Event, Request, Worker

GENSERVER = "Elixir.Snakepit.Pool"
_WORKER_EVENTS = {"spawned": "pool.worker.spawned", "recycled": "worker.recycled",
                  "crashed": "worker.crash", "restarted": "worker.restarted"}


def _envelope(name: str, measurements: dict, metadata: dict, event: Event) -> dict[str, Any]:
    return {"event": ["snakepit", *name.split(".")], "measurements": measurements,
            "metadata": metadata, "time": event.time, "node": event.node,
            "native_time_unit": "nanosecond"}


def to_native(event: Event) -> list[dict[str, Any] | Event]:
    """The items a forwarder would send for one simulated event (none for a queue timeout)."""
    if isinstance(event, Request):
        return _request(event)
    if isinstance(event, Worker) and event.kind in _WORKER_EVENTS:
        return [_worker(event)]
    return [event]


def _request(e: Request) -> list[dict[str, Any] | Event]:
    if e.worker_id is None:  # timed out in the queue: Snakepit only counts it internally
        return []
    failed = e.status != "ok"
    measurements = {"duration": e.duration_us * 1000, "duration_ms": e.duration_us // 1000,
                    "executions": 1, "monotonic_time": -576460752303423488,
                    **({"errors": 1} if failed else {})}
    metadata = {"operation": "execute", "pool": GENSERVER, "worker_id": e.worker_id,
                "command": e.command, "adapter": "Snakepit.Adapters.GRPCPython",
                "correlation_id": e.trace_id, "session_id": e.session_id, "rpc_system": "grpc",
                "span_kind": "client", "status": "error" if failed else "ok",
                **({"error": "timeout" if e.status == "timeout" else e.error or "worker_error"}
                   if failed else {})}
    out: list[dict[str, Any] | Event] = [
        _envelope("grpc_worker.execute.stop", measurements, metadata, e)]
    if not e.queue_wait_us:  # pool/dispatcher.ex: only an unqueued call also reports this
        out.append(_envelope("request.executed", {"duration_us": e.duration_us},
                             {"pool": e.pool, "worker_id": e.worker_id, "command": e.command,
                              "success": not failed}, e))
    return out


def _worker(e: Worker) -> dict[str, Any]:
    name = _WORKER_EVENTS[e.kind]
    metadata: dict[str, Any] = {"worker_id": e.worker_id, "reason": e.reason}
    measurements: dict[str, Any] = {}
    if e.kind == "spawned":
        metadata.update(pool_name=GENSERVER, python_pid=e.python_pid, mode="process")
        measurements = {"duration": (e.startup_us or 0) * 1000, "system_time": int(e.time * 1e9)}
    else:
        metadata["pool"] = GENSERVER
    if e.kind == "recycled":
        measurements = {"count": 1}
        metadata.update(uptime_seconds=round(e.uptime_s or 0), request_count=e.request_count)
    if e.kind in ("crashed", "restarted"):
        metadata["exit_code"] = e.exit_code
    return _envelope(name, measurements, metadata, e)
