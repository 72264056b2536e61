"""Every event in shared/snakepit-telemetry.md normalises to the right canonical event."""

from __future__ import annotations

import pytest

from schemas.decode import accept

T = "2026-11-28T12:00:00.123456Z"
EPOCH = 1795867200.123456


def env(name: str, measurements: dict, metadata: dict, unit: str = "nanosecond", **extra) -> dict:
    return {"event": name.split("."), "measurements": measurements, "metadata": metadata,
            "time": T, "node": "app@host-1", "native_time_unit": unit, **extra}


CASES = [
    ("request executed", env("snakepit.request.executed", {"duration_us": 1234},
                             {"pool": "default", "worker_id": "pool_worker_3", "command": "predict",
                              "success": True}),
     {"type": "request", "pool": "default", "worker_id": "pool_worker_3", "command": "predict",
      "duration_us": 1234, "status": "ok"}),
    ("request executed aborted", env("snakepit.request.executed", {"duration_us": 10},
                                     {"pool": "p", "command": "c", "success": True,
                                      "aborted": True, "client_down_reason": ":normal"}),
     {"type": "request", "status": "error", "error": "normal"}),
    ("execute stop ns", env("snakepit.grpc_worker.execute.stop",
                            {"duration": 123_456_789, "duration_ms": 123, "executions": 1},
                            {"pool": "default", "worker_id": "w3", "command": "predict",
                             "adapter": "Snakepit.Adapters.GRPCPython", "status": ":ok",
                             "correlation_id": "abc", "session_id": "s1"}),
     {"type": "request", "duration_us": 123_457, "status": "ok", "trace_id": "abc",
      "adapter": "Snakepit.Adapters.GRPCPython", "session_id": "s1"}),
    ("execute stop in microsecond native unit",
     env("snakepit.grpc_worker.execute.stop", {"duration": 5000}, {"pool": "p", "command": "c"},
         unit="microsecond"),
     {"type": "request", "duration_us": 5000}),
    ("execute stop error", env("snakepit.grpc_worker.execute_session.stop",
                               {"duration": 2_000_000, "errors": 1},
                               {"pool": "p", "command": "c", "status": "error",
                                "error": "{:timeout, 5000}"}),
     {"type": "request", "status": "error", "duration_us": 2000, "error": "{:timeout, 5000}"}),
    ("execute exception", env("snakepit.grpc_worker.execute.exception", {"duration": 1_000_000},
                              {"pool": "p", "command": "c"}),
     {"type": "request", "status": "error", "duration_us": 1000}),
    ("execute start", env("snakepit.grpc_worker.execute.start",
                          {"system_time": 1, "monotonic_time": -5}, {"pool": "p", "worker_id": "w"}),
     {"type": "request_start", "pool": "p", "worker_id": "w"}),
    ("execute_session start", env("snakepit.grpc_worker.execute_session.start",
                                  {"system_time": 1}, {"pool": "p", "session_id": "s"}),
     {"type": "request_start", "session_id": "s"}),
    ("execute_session exception", env("snakepit.grpc_worker.execute_session.exception",
                                      {"duration": 3_000_000}, {"pool": "p", "command": "c"}),
     {"type": "request", "status": "error", "duration_us": 3000}),
    ("python call start", env("snakepit.python.call.start", {}, {"pool_name": "p"}),
     {"type": "python", "kind": "call", "pool": "p"}),
    ("python call exception", env("snakepit.python.call.exception", {"duration": 9000},
                                  {"error": "KeyError"}),
     {"type": "python", "kind": "error", "python_us": 9, "error": "KeyError"}),
    ("dispatched", env("snakepit.pool.call.dispatched", {"system_time": 1},
                       {"pool": "p", "worker_id": "w", "command": "c", "queued": "true"}),
     {"type": "pool", "kind": "dispatched", "queued": True}),
    ("saturated", env("snakepit.pool.saturated", {"queue_size": 7, "max_queue_size": 1000},
                      {"pool": "p", "available_workers": 0, "busy_workers": 4}),
     {"type": "pool", "kind": "saturated", "queue_depth": 7, "max_queue_size": 1000,
      "busy_workers": 4, "available_workers": 0}),
    ("init started", env("snakepit.pool.init_started", {"total_workers": 4, "count": 1},
                         {"pool": "p"}),
     {"type": "pool", "kind": "init_started", "total_workers": 4}),
    ("init complete", env("snakepit.pool.init_complete",
                          {"duration_ms": 1500, "total_workers": 4, "count": 1},
                          {"pool": "p", "pool_workers": "[...]"}),
     {"type": "pool", "kind": "init_complete", "duration_us": 1_500_000}),
    ("worker ready (pool_name)", env("snakepit.pool.worker_ready", {"worker_count": 3, "count": 1},
                                     {"pool_name": "p", "worker_id": "w"}),
     {"type": "worker", "kind": "ready", "pool": "p", "worker_count": 3}),
    ("capacity reached", env("snakepit.pool.capacity_reached", {"capacity": 8, "load": 8},
                             {"worker_pid": "#PID<0.123.0>", "profile": "thread",
                              "rejected?": True, "pool": "t"}),
     {"type": "pool", "kind": "capacity_reached", "capacity": 8, "load": 8,
      "worker_profile": "thread", "rejected": True}),
    ("spawned", env("snakepit.pool.worker.spawned", {"duration": 850_000_000, "system_time": 1},
                    {"node": "n", "pool_name": "p", "worker_id": "w", "worker_pid": "#PID<0.9.0>",
                     "python_port": 50051, "python_pid": 4242, "mode": "process"}),
     {"type": "worker", "kind": "spawned", "pool": "p", "startup_us": 850_000,
      "python_pid": 4242, "worker_pid": "#PID<0.9.0>"}),
    ("terminated", env("snakepit.pool.worker.terminated",
                       {"lifetime": 3_600_000_000_000, "total_commands": 99},
                       {"pool_name": "p", "worker_id": "w", "reason": ":shutdown",
                        "planned": True}),
     {"type": "worker", "kind": "terminated", "lifetime_us": 3_600_000_000,
      "total_commands": 99, "reason": "shutdown", "planned": True}),
    ("recycled", env("snakepit.worker.recycled", {"count": 1, "memory_mb": 812.5},
                     {"worker_id": "w", "pool": "p", "reason": ":memory_threshold",
                      "uptime_seconds": 3600, "request_count": 5000, "memory_mb": 812.5,
                      "memory_threshold_mb": 800}),
     {"type": "worker", "kind": "recycled", "reason": "memory_threshold", "memory_mb": 812.5,
      "uptime_s": 3600, "request_count": 5000, "memory_threshold_mb": 800}),
    ("health check failed", env("snakepit.worker.health_check_failed", {"count": 1},
                                {"worker_id": "w", "pool": "p", "reason": "timeout"}),
     {"type": "worker", "kind": "health_check_failed", "reason": "timeout"}),
    ("crash", env("snakepit.worker.crash", {}, {"worker_id": "w", "pool": "p",
                                                 "reason": "{:exit_status, 137}",
                                                 "exit_code": 137, "device": "cuda:0"}),
     {"type": "worker", "kind": "crashed", "exit_code": 137, "device": "cuda:0",
      "reason": "{:exit_status, 137}"}),
    ("tainted", env("snakepit.worker.tainted", {"duration_ms": 60000},
                    {"worker_id": "w", "pool": "p"}),
     {"type": "worker", "kind": "tainted", "taint_ms": 60000}),
    ("restarted", env("snakepit.worker.restarted", {}, {"worker_id": "w", "pool": "p"}),
     {"type": "worker", "kind": "restarted"}),
    ("pong", env("snakepit.heartbeat.pong_received",
                 {"timestamp": 123, "count": 1, "latency_ms": 4},
                 {"worker_id": "w", "worker_pid": "#PID<0.1.0>", "missed_heartbeats": 0}),
     {"type": "worker", "kind": "heartbeat_pong", "heartbeat_latency_us": 4000, "missed": 0}),
    ("heartbeat timeout", env("snakepit.heartbeat.heartbeat_timeout",
                              {"timestamp": 1, "count": 1, "timeouts": 1, "missed": 3},
                              {"worker_id": "w", "missed_heartbeats": 3}),
     {"type": "worker", "kind": "heartbeat_timeout", "missed": 3}),
    *[(f"heartbeat {n}", env(f"snakepit.heartbeat.{n}", {"timestamp": 1, "count": 1},
                             {"worker_id": "w"}),
       {"type": "worker", "kind": k})
      for n, k in [("ping_sent", "heartbeat_ping"), ("monitor_failure", "heartbeat_monitor_failure"),
                   ("monitor_started", "heartbeat_monitor_started"),
                   ("monitor_stopped", "heartbeat_monitor_stopped")]],
    ("session pruned", env("snakepit.bridge.session.pruned",
                           {"count": 12, "remaining_sessions": 88, "system_time": 1},
                           {"reason": "ttl", "table_name": ":snakepit_sessions",
                            "max_sessions": 10000}),
     {"type": "session", "kind": "pruned", "count": 12, "remaining_sessions": 88,
      "adapter": "snakepit_sessions", "reason": "ttl"}),
    ("session accumulation", env("snakepit.bridge.session.accumulation_warning",
                                 {"current_sessions": 9000, "max_sessions": 10000,
                                  "utilization": 0.9, "system_time": 1},
                                 {"reason": "near_limit", "table_name": "t", "strict_mode": False}),
     {"type": "session", "kind": "accumulation_warning", "current_sessions": 9000,
      "utilization": 0.9}),
    ("python call stop", env("snakepit.python.call.stop", {"duration": 2_500_000},
                             {"node": "n", "worker_id": "w", "pool_name": "p", "python_pid": 7,
                              "correlation_id": "c1", "timestamp_ns": 1}),
     {"type": "python", "kind": "call", "python_us": 2500, "pool": "p", "trace_id": "c1"}),
    ("python memory", env("snakepit.python.memory.sampled", {"rss_bytes": 1 << 30},
                          {"worker_id": "w", "pool_name": "p"}),
     {"type": "python", "kind": "memory", "memory_bytes": 1 << 30}),
    ("python cpu", env("snakepit.python.cpu.sampled", {"cpu_percent": 55.5}, {"worker_id": "w"}),
     {"type": "python", "kind": "cpu", "cpu_percent": 55.5}),
    ("python gc", env("snakepit.python.gc.completed",
                      {"duration": 3_000_000, "collected": 120, "generation": 2}, {}),
     {"type": "python", "kind": "gc", "gc_pause_us": 3000, "gc_collected": 120,
      "gc_generation": 2}),
    ("python error", env("snakepit.python.error.occurred", {}, {"error": "ValueError"}),
     {"type": "python", "kind": "error", "error": "ValueError"}),
    ("tool stop", env("snakepit.python.tool.execution.stop", {"duration": 1_000_000}, {}),
     {"type": "python", "kind": "tool_stop", "python_us": 1000}),
    ("tool start", env("snakepit.python.tool.execution.start", {}, {}),
     {"type": "python", "kind": "tool_start"}),
    ("tool exception", env("snakepit.python.tool.execution.exception", {"duration": 5000}, {}),
     {"type": "python", "kind": "tool_exception", "python_us": 5}),
    ("tool result size", env("snakepit.python.tool.result_size", {"bytes": 2048}, {}),
     {"type": "python", "kind": "tool_result_size", "bytes": 2048}),
    ("exception mapped", env("snakepit.python.exception.mapped", {}, {}),
     {"type": "python", "kind": "exception_mapped"}),
    ("exception unmapped", env("snakepit.python.exception.unmapped", {}, {}),
     {"type": "python", "kind": "exception_unmapped"}),
    *[(f"zero copy {k}", env(f"snakepit.zero_copy.{k}", {"duration_ms": 2, "bytes": 4096}, {}),
       {"type": "python", "kind": f"zero_copy_{k}", "duration_us": 2000, "bytes": 4096})
      for k in ("export", "import", "fallback")],
    *[(f"circuit {k}", env(f"snakepit.circuit_breaker.{k}", {}, {"pool": "p"}),
       {"type": "pool", "kind": f"circuit_{k}"}) for k in ("opened", "closed", "half_open")],
    *[(f"retry {k}", env(f"snakepit.retry.{k}", {"attempt": 2}, {"pool": "p"}),
       {"type": "pool", "kind": f"retry_{k}", "attempt": 2})
      for k in ("attempt", "success", "exhausted")],
]


@pytest.mark.parametrize("envelope, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_native_event_normalises(envelope: dict, expected: dict):
    event, reason = accept(envelope)
    assert reason is None, reason
    assert event.time == pytest.approx(EPOCH)
    assert event.node == "app@host-1"
    for key, value in expected.items():
        actual = type(event).__struct_config__.tag if key == "type" else getattr(event, key)
        assert actual == value, key


def test_every_documented_event_has_a_case():
    from schemas.native import HANDLERS

    covered = {".".join(c[1]["event"]) for c in CASES}
    assert set(HANDLERS) <= covered


def test_time_falls_back_to_system_time_in_native_units():
    e = env("snakepit.pool.saturated", {"queue_size": 1, "max_queue_size": 2,
                                         "system_time": 1_795_867_200_500_000}, {"pool": "p"},
            unit="microsecond")
    del e["time"]
    event, reason = accept(e)
    assert reason is None and event.time == pytest.approx(1_795_867_200.5)


@pytest.mark.parametrize("envelope, reason", [
    (env("snakepit.nope.never", {}, {}), "unknown event snakepit.nope.never"),
    (env("snakepit.pool.saturated", {"queue_size": "7"}, {"pool": "p"}),
     "measurement 'queue_size' should be a number"),
    (env("snakepit.request.executed", {"duration_us": 5}, {"pool": "p"}, unit="fortnight"),
     "field 'native_time_unit'"),
    ({"event": "not a list", "measurements": {}}, "unknown event not a list"),
    ({"event": ["snakepit", "worker", "crash"], "measurements": {}, "metadata": {"pool": "p"}},
     "no event time"),
    (env("snakepit.worker.crash", {}, {"pool": "p"}), "missing required field `worker_id`"),
])
def test_bad_native_envelopes_are_rejected_with_a_reason(envelope: dict, reason: str):
    event, why = accept(envelope)
    assert event is None
    assert reason in why
