"""Envelopes exactly as Snakepit v0.13.0 emits them, each built from the line that emits it.

Read from Snakepit's source (``github:nshkrdotcom/snakepit`` at v0.13.0, commit 18c3a5a);
each builder names its file. Terms are rendered as a forwarder does: atoms as their name
(module atoms with ``Elixir.``), pids as ``#PID<...>``, tuples and structs as ``inspect`` text,
``nil`` as null; the relayed Python events carry Python's stringified metadata.
``:telemetry.span/3`` adds ``duration`` and ``monotonic_time`` to stop measurements,
``monotonic_time`` and ``system_time`` to start ones, and ``kind``/``reason``/``stacktrace`` to
exception metadata; Snakepit's pool GenServer is registered as ``Snakepit.Pool``.
"""

from __future__ import annotations

import itertools
from typing import Any

GENSERVER = "Elixir.Snakepit.Pool"  # Atom.to_string(Snakepit.Pool): the `pool` of worker events
NODE = "app@host-1"
_ids = itertools.count(1000)
_pids = itertools.count(200)


def worker_id(pool: str, i: int) -> str:
    """pool/initializer.ex:292 — "#{pool_name}_worker_#{i}_#{:erlang.unique_integer([:positive])}"."""
    return f"{pool}_worker_{i}_{next(_ids)}"


def pid() -> str:
    return f"#PID<0.{next(_pids)}.0>"


def envelope(name: str, measurements: dict, metadata: dict, t: float, unit: str | None = "nanosecond"
             ) -> dict[str, Any]:
    out = {"event": name.split("."), "measurements": measurements, "metadata": metadata,
           "time": t, "node": NODE}
    if unit is not None:
        out["native_time_unit"] = unit
    return out


# -- requests: grpc_worker/instrumentation.ex, pool/dispatcher.ex, pool/pool.ex --------------

def _execute_meta(kind: str, wid: str, command: str, correlation: str, session: str | None
                  ) -> dict:
    """instrumentation.ex:111 base_execute_metadata/6 (pool is state.pool_name: the GenServer)."""
    return {"operation": kind, "worker_id": wid, "worker_pid": pid(), "command": command,
            "adapter": "Snakepit.Adapters.GRPCPython",
            "adapter_module": "Elixir.Snakepit.Adapters.GRPCPython", "pool": GENSERVER,
            "session_id": session, "correlation_id": correlation, "timeout_ms": 30000,
            "span_kind": "client", "rpc_system": "grpc", "telemetry_source": "snakepit_grpc_worker",
            "telemetry_span_context": "#Reference<0.1.2.3>"}


def execute_start(wid: str, command: str, correlation: str, t: float, kind: str = "execute",
                  session: str | None = None) -> dict:
    return envelope(f"snakepit.grpc_worker.{kind}.start",
                    {"monotonic_time": -576460751234567890, "system_time": int(t * 1e9)},
                    _execute_meta(kind, wid, command, correlation, session), t)


def execute_stop(wid: str, command: str, correlation: str, t: float, duration_ns: int,
                 result: str = "ok", kind: str = "execute", session: str | None = None) -> dict:
    """instrumentation.ex:22-29 measurements, :165-181 build_stop_metadata/2.

    ``result``: ok, ``{:error, reason}`` (error: :timeout from grpc/client_impl.ex:224 for a gRPC
    deadline), or ``{:error, {kind, reason}}``."""
    measurements = {"duration_ms": duration_ns // 1_000_000, "executions": 1,
                    "duration": duration_ns, "monotonic_time": -576460751234567890 + duration_ns}
    meta = _execute_meta(kind, wid, command, correlation, session)
    if result == "ok":
        meta["status"] = "ok"
    else:
        measurements["errors"] = 1
        meta["status"] = "error"
        if result == "timeout":
            meta["error"] = "timeout"
        elif result == "kind_reason":
            meta["error_kind"], meta["error"] = "grpc_error", "%GRPC.RPCError{status: 13}"
        else:
            meta["error"] = "%Snakepit.Error{category: :worker, message: \"boom\"}"
    return envelope(f"snakepit.grpc_worker.{kind}.stop", measurements, meta, t)


def execute_exception(wid: str, command: str, correlation: str, t: float, duration_ns: int,
                      kind: str = "execute") -> dict:
    """:telemetry.span/3 on a raise or exit inside the instrumented call."""
    meta = _execute_meta(kind, wid, command, correlation, None)
    meta.update({"kind": "exit", "reason": "{:timeout, {GenServer, :call, [#PID<0.9.0>, :x, 5000]}}",
                 "stacktrace": "[{:gen_server, :call, 3, [file: ~c\"gen_server.erl\"]}]"})
    return envelope(f"snakepit.grpc_worker.{kind}.exception",
                    {"duration": duration_ns, "monotonic_time": -576460751234567890}, meta, t)


def request_executed(pool: str, wid: str, command: str, t: float, duration_us: int,
                     success: bool = True) -> dict:
    """pool/dispatcher.ex:243 handle_client_alive/3: an unqueued unary call (pool: logical)."""
    return envelope("snakepit.request.executed", {"duration_us": duration_us},
                    {"pool": pool, "worker_id": wid, "command": command, "success": success}, t)


def request_executed_aborted(pool: str, wid: str, command: str, t: float) -> dict:
    """pool/dispatcher.ex:197 handle_client_already_down/7."""
    return envelope("snakepit.request.executed", {"duration_us": 12},
                    {"pool": pool, "worker_id": wid, "command": command, "success": False,
                     "aborted": True, "reason": "client_down", "client_down_reason": "normal"}, t)


def request_executed_streaming(wid: str, command: str, t: float, duration_us: int,
                               ok: bool = True) -> dict:
    """pool/pool.ex:330 emit_stream_telemetry/5: pool is opts[:pool_name] || Snakepit.Pool."""
    return envelope("snakepit.request.executed", {"duration_us": duration_us},
                    {"pool": GENSERVER, "worker_id": wid, "command": command, "success": ok,
                     "streaming": True}, t)


def dispatched(pool: str, wid: str, command: str, t: float, queued: bool) -> dict:
    """pool/dispatcher.ex:148 (queued: false) and pool/event_handler.ex:295 (queued: true)."""
    return envelope("snakepit.pool.call.dispatched", {"system_time": int(t * 1e9)},
                    {"pool": pool, "worker_id": wid, "command": command, "queued": queued}, t)


# -- pool: pool/pool.ex, pool/scheduler.ex, pool/initializer.ex, worker_profile/thread.ex ------

def saturated(pool: str, t: float) -> dict:
    """pool/scheduler.ex:29 handle_pool_saturated/4."""
    return envelope("snakepit.pool.saturated", {"queue_size": 1000, "max_queue_size": 1000},
                    {"pool": pool, "available_workers": 0, "busy_workers": 4}, t)


def init_started(t: float) -> dict:
    """pool/initializer.ex:78 — metadata %{}."""
    return envelope("snakepit.pool.init_started", {"total_workers": 6, "count": 1}, {}, t)


def init_complete(t: float) -> dict:
    """pool/pool.ex:344 — metadata %{pool_workers: %{default: 4, gpu_pool: 2}}."""
    return envelope("snakepit.pool.init_complete",
                    {"duration_ms": 2150, "total_workers": 6, "count": 1},
                    {"pool_workers": {"default": 4, "gpu_pool": 2}}, t)


def worker_ready(pool: str, wid: str, t: float) -> dict:
    """pool/pool.ex:352."""
    return envelope("snakepit.pool.worker_ready", {"worker_count": 4, "count": 1},
                    {"pool_name": pool, "worker_id": wid}, t)


def capacity_reached(t: float, rejected: bool) -> dict:
    """worker_profile/thread.ex:395 and :405 (the key is `rejected`, only when rejected)."""
    meta = {"worker_pid": pid(), "profile": "thread"}
    if rejected:
        meta["rejected"] = True
    return envelope("snakepit.pool.capacity_reached", {"capacity": 8, "load": 8}, meta, t)


# -- worker lifecycle --------------------------------------------------------------------------

def spawned(wid: str, t: float) -> dict:
    """grpc_worker/instrumentation.ex:38 (pool_name: the GenServer)."""
    return envelope("snakepit.pool.worker.spawned",
                    {"duration": 850_000_000, "system_time": int(t * 1e9)},
                    {"node": NODE, "pool_name": GENSERVER, "worker_id": wid, "worker_pid": pid(),
                     "python_port": 50123, "python_pid": 4242, "mode": "process"}, t)


def terminated(wid: str, t: float) -> dict:
    """grpc_worker/instrumentation.ex:60."""
    return envelope("snakepit.pool.worker.terminated",
                    {"lifetime": 3_600_000_000_000, "total_commands": 99},
                    {"node": NODE, "pool_name": GENSERVER, "worker_id": wid, "worker_pid": pid(),
                     "reason": "{:shutdown, :recycled}", "planned": True}, t)


def recycled(wid: str, t: float) -> dict:
    """worker/lifecycle_manager.ex:909 emit_recycle_telemetry/3 (memory_mb: the BEAM process)."""
    return envelope("snakepit.worker.recycled", {"count": 1, "memory_mb": 812.5},
                    {"worker_id": wid, "pool": GENSERVER, "reason": "memory_threshold",
                     "uptime_seconds": 3600, "request_count": 5000, "memory_threshold_mb": 800,
                     "memory_mb": 812.5}, t)


def health_check_failed(wid: str, t: float) -> dict:
    """worker/lifecycle_manager.ex:777."""
    return envelope("snakepit.worker.health_check_failed", {"count": 1},
                    {"worker_id": wid, "pool": GENSERVER, "reason": "{:error, :unavailable}"}, t)


def crash(wid: str, t: float) -> dict:
    """crash_barrier.ex:265 (health_monitor.ex:193 sends the same without exit_code/device)."""
    return envelope("snakepit.worker.crash", {},
                    {"worker_id": wid, "pool": GENSERVER, "reason": "{:exit_status, 137}",
                     "exit_code": 137, "device": "cuda:0"}, t)


def tainted(wid: str, t: float) -> dict:
    """crash_barrier.ex:277 (duration_ms: the configured taint time)."""
    return envelope("snakepit.worker.tainted", {"duration_ms": 60000},
                    {"worker_id": wid, "pool": GENSERVER, "reason": "{:exit_status, 137}",
                     "exit_code": 137, "device": "cuda:0"}, t)


def restarted(wid: str, t: float) -> dict:
    """crash_barrier.ex:105."""
    return envelope("snakepit.worker.restarted", {},
                    {"worker_id": wid, "pool": GENSERVER, "reason": "{:exit_status, 137}",
                     "exit_code": 137, "device": "cuda:0"}, t)


def heartbeat(event: str, wid: str, t: float) -> dict:
    """heartbeat_monitor.ex:431 emit_event/3 and :448-479 heartbeat_measurements/3."""
    base = {"timestamp": 123456, "count": 1}
    measurements = {"ping_sent": {**base, "pings": 1},
                    "pong_received": {**base, "pongs": 1, "latency_ms": 4},
                    "heartbeat_timeout": {**base, "timeouts": 1, "missed": 2},
                    "monitor_failure": {**base, "failures": 1}}.get(event, base)
    meta = {"worker_id": wid, "worker_pid": pid(), "missed_heartbeats": 0, "dependent": True}
    if event == "heartbeat_timeout":
        meta.update(missed_heartbeats=2, missed_count=2)
    if event == "monitor_failure":
        meta["failure_reason"] = "{:ping_failed, :unavailable}"
    if event == "monitor_stopped":
        meta["reason"] = "normal"
    return envelope(f"snakepit.heartbeat.{event}", measurements, meta, t)


HEARTBEATS = ("ping_sent", "pong_received", "heartbeat_timeout", "monitor_failure",
              "monitor_started", "monitor_stopped")


# -- sessions: bridge/session_store.ex ---------------------------------------------------------

def session_pruned(t: float) -> dict:
    """session_store.ex:550."""
    return envelope("snakepit.bridge.session.pruned",
                    {"count": 12, "remaining_sessions": 88, "system_time": int(t * 1e9)},
                    {"reason": "ttl", "table_name": "snakepit_sessions", "max_sessions": 10000}, t)


def session_accumulation(t: float) -> dict:
    """session_store.ex:610."""
    return envelope("snakepit.bridge.session.accumulation_warning",
                    {"current_sessions": 9000, "max_sessions": 10000, "utilization": 0.9,
                     "system_time": int(t * 1e9)},
                    {"reason": "threshold_warning", "table_name": "snakepit_sessions",
                     "strict_mode": False}, t)


# -- Python, relayed by telemetry/grpc_stream.ex:803 -------------------------------------------

def python(name: str, measurements: dict, python_meta: dict, wid: str, t: float,
           correlation: str = "") -> dict:
    """grpc_stream.ex:803 translate_and_emit/2: Python's metadata (stringified by
    snakepit_bridge/telemetry/stream.py:155) merged with node, worker_id, pool_name (the
    GenServer), python_pid, correlation_id and timestamp_ns."""
    meta = {**{k: str(v) for k, v in python_meta.items()}, "node": NODE, "worker_id": wid,
            "pool_name": GENSERVER, "python_pid": 4242, "correlation_id": correlation or None,
            "timestamp_ns": int(t * 1e9)}
    return envelope(f"snakepit.python.{name}", measurements, meta, t)


def python_events(wid: str, t: float) -> list[dict]:
    """Every allow-listed Python event (telemetry/naming.ex:66 catalog), as the bridge's
    ``telemetry.span``/``emit`` send them (snakepit_bridge/telemetry/__init__.py:100-160)."""
    tool = {"tool": "predict", "operation": "infer"}
    return [
        python("call.start", {"count": 1}, tool, wid, t, "c-py"),
        python("call.stop", {"duration": 2_500_000, "count": 1}, tool, wid, t, "c-py"),
        python("call.exception", {"count": 1}, {**tool, "error_type": "KeyError",
                                                "error_message": "'x'"}, wid, t),
        python("memory.sampled", {"rss_bytes": 1 << 30, "vms_bytes": "4294967296"}, {}, wid, t),
        python("cpu.sampled", {"cpu_percent": 55.5}, {}, wid, t),
        python("gc.completed", {"count": 1, "generation": 2}, {}, wid, t),
        python("error.occurred", {"count": 1}, {"error_type": "ValueError",
                                                "error_message": "bad shape"}, wid, t),
        python("tool.execution.start", {"system_time": int(t * 1e9)}, tool, wid, t, "c-t"),
        python("tool.execution.stop", {"duration": 1_000_000}, tool, wid, t, "c-t"),
        python("tool.execution.exception", {"duration": 5000}, {**tool, "error_type": "RuntimeError",
                                                               "error_message": "oops"}, wid, t),
        python("tool.result_size", {"message_size": 2048}, tool, wid, t),
    ]


def python_exception(mapped: bool, t: float) -> dict:
    """error/python_translation.ex:86 — measurements %{}."""
    return envelope(f"snakepit.python.exception.{'mapped' if mapped else 'unmapped'}", {},
                    {"python_type": "ValueError", "library": "numpy", "function": "reshape"}, t)


def zero_copy(kind: str, t: float) -> dict:
    """zero_copy.ex:137 — duration_ms is a float (microseconds / 1000)."""
    return envelope(f"snakepit.zero_copy.{kind}", {"duration_ms": 1.25, "bytes": 4096},
                    {"kind": "tensor", "device": "cpu", "dtype": "float32", "shape": "{2, 3}"}, t)


def circuit_breaker(kind: str, name: str | None, t: float) -> dict:
    """circuit_breaker.ex:297-318 (pool: the breaker's name, which may be nil)."""
    measurements = {"failure_count": 5} if kind == "opened" else {}
    meta = {"pool": name, **({"reason": "failures"} if kind == "opened" else {})}
    return envelope(f"snakepit.circuit_breaker.{kind}", measurements, meta, t)


def retry(kind: str, t: float) -> dict:
    """executor.ex:188-210 (deprecated Executor; pool always nil)."""
    if kind == "attempt":
        return envelope("snakepit.retry.attempt", {"attempt": 2, "delay_ms": 100},
                        {"pool": None, "operation": None}, t)
    meta = {"pool": None, **({"last_error": "{:error, :timeout}"} if kind == "exhausted" else {})}
    return envelope(f"snakepit.retry.{kind}", {"attempts": 3, "total_duration": 0}, meta, t)


def kept_events(t: float) -> list[dict]:
    """Events with no canonical type: shutdown.ex:107, runtime_cleanup.ex:136,
    pool/application_cleanup.ex:261, internal/deprecation.ex:24, error/shape.ex:159,
    error/device.ex:212-224, telemetry/gpu_profiler.ex:388-422."""
    shutdown_meta = {"run_id": "k3x9", "exit_mode": "none", "stop_mode": "if_started",
                     "owned?": True, "status": 0, "cleanup_result": "pending"}
    cleanup_meta = {"beam_run_id": "k3x9", "timestamp": int(t)}
    return [
        *[envelope(f"snakepit.script.shutdown.{k}", {}, shutdown_meta, t)
          for k in ("start", "stop", "cleanup", "exit")],
        *[envelope(f"snakepit.cleanup.{k}", {"count": 3}, cleanup_meta, t)
          for k in ("start", "success", "timeout")],
        *[envelope(f"snakepit.application_cleanup.{k}", {"count": 2}, cleanup_meta, t)
          for k in ("cleanup_success", "orphaned_processes_found", "emergency_cleanup")],
        envelope("snakepit.deprecated.module_used", {"count": 1},
                 {"module": "Elixir.Snakepit.Executor", "replacement": "See module docs",
                  "remove_after": "v0.16.0", "status": "legacy_optional"}, t),
        envelope("snakepit.error.shape_mismatch", {},
                 {"expected": "[2, 3]", "got": "[3, 2]", "dimension": 0, "operation": "matmul"}, t),
        envelope("snakepit.error.device", {},
                 {"expected_device": "cuda:0", "actual_device": "cpu", "operation": "to"}, t),
        envelope("snakepit.error.oom", {"requested_bytes": 1 << 33, "available_bytes": 1 << 30},
                 {"device": "cuda:0", "operation": "alloc"}, t),
        envelope("snakepit.gpu.memory.sampled", {"used_mb": 1000, "total_mb": 16000,
                                                 "free_mb": 15000},
                 {"device": "{:cuda, 0}", "utilization": 0.0625}, t),
        envelope("snakepit.gpu.utilization.sampled", {"gpu_percent": 40, "memory_percent": 6.25},
                 {"device": "{:cuda, 0}"}, t),
        envelope("snakepit.gpu.temperature.sampled", {"celsius": 61.0}, {"device": "{:cuda, 0}"}, t),
        envelope("snakepit.gpu.power.sampled", {"watts": 120.0, "limit_watts": 0.0},
                 {"device": "{:cuda, 0}"}, t),
    ]


def every_event(t: float) -> list[dict]:
    """One envelope of every event Snakepit 0.13 emits."""
    d0, g0 = worker_id("default", 0), worker_id("gpu_pool", 0)
    return [
        execute_start(d0, "predict", "e1", t), execute_stop(d0, "predict", "e1", t, 5_000_000),
        execute_exception(d0, "predict", "e2", t, 7_000_000),
        execute_start(d0, "predict", "e3", t, kind="execute_session", session="s1"),
        execute_stop(d0, "predict", "e3", t, 3_000_000, kind="execute_session", session="s1"),
        execute_exception(d0, "predict", "e4", t, 2_000_000, kind="execute_session"),
        request_executed("default", d0, "predict", t, 5100),
        dispatched("default", d0, "predict", t, queued=False),
        saturated("default", t), init_started(t), init_complete(t), worker_ready("default", d0, t),
        capacity_reached(t, rejected=True), spawned(g0, t), terminated(g0, t), recycled(g0, t),
        health_check_failed(g0, t), crash(g0, t), tainted(g0, t), restarted(g0, t),
        *[heartbeat(h, g0, t) for h in HEARTBEATS], session_pruned(t), session_accumulation(t),
        *python_events(g0, t), python_exception(True, t), python_exception(False, t),
        *[zero_copy(k, t) for k in ("export", "import", "fallback")],
        circuit_breaker("opened", "gpu_breaker", t), circuit_breaker("closed", None, t),
        circuit_breaker("half_open", None, t), *[retry(k, t) for k in ("attempt", "success",
                                                                        "exhausted")],
        *kept_events(t),
    ]


def deployment(t0: float) -> tuple[list[dict], dict[str, dict[str, int]]]:
    """Two pools' calls as Snakepit reports them, plus every other event; returns the
    envelopes (in time order, 0.1 s apart) and, per logical pool, the calls, errors and
    timeouts a correct reading counts (each call once)."""
    d = [worker_id("default", i) for i in range(2)]
    g = worker_id("gpu_pool", 0)
    calls: list[list[dict]] = []
    seq = itertools.count()

    def unary(pool: str, wid: str, result: str = "ok", queued: bool = False) -> None:
        cid, t = f"c{next(seq)}", 0.0
        one = [dispatched(pool, wid, "predict", t, queued), execute_start(wid, "predict", cid, t),
               execute_stop(wid, "predict", cid, t, 40_000_000, result)]
        if not queued:  # dispatcher.ex:243: only the unqueued path emits request.executed
            one.append(request_executed(pool, wid, "predict", t, 40_100, result == "ok"))
        calls.append(one)

    for i in range(6):
        unary("default", d[i % 2])
    unary("default", d[0], queued=True)
    unary("default", d[1], queued=True)
    unary("default", d[0], "error")
    unary("default", d[1], "timeout")
    for _ in range(3):
        calls.append([request_executed_streaming(g, "stream_tokens", 0.0, 900_000)])
    calls.append([execute_start(g, "predict", "cx", 0.0),
                  execute_exception(g, "predict", "cx", 0.0, 5_000_000_000),
                  request_executed("gpu_pool", g, "predict", 0.0, 5_000_100, success=False)])
    unary("gpu_pool", g)
    unary("gpu_pool", g, "kind_reason")
    calls.append([request_executed_aborted("gpu_pool", g, "predict", 0.0)])
    out = [e for call in calls for e in call] + every_event(0.0)
    for i, e in enumerate(out):
        e["time"] = t0 + i * 0.1
    # default: 10 calls above and 4 in every_event (2 of them exceptions of a GenServer timeout)
    expected = {"default": {"requests": 14, "errors": 1, "timeouts": 3},
                "gpu_pool": {"requests": 7, "errors": 2, "timeouts": 1}}
    return out, expected
