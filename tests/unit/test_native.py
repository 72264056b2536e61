"""Every event Snakepit 0.13 emits, built from its source (tests/snakepit_envelopes.py), comes
out as the right canonical event: logical pool, units, status, fields, each call once."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.data import T0
from schemas.decode import accept, decode_json
from schemas.native import DEPLOYMENT, TABLE
from tests import snakepit_envelopes as sp

T = float(T0)
D0 = sp.worker_id("default", 0)
G0 = sp.worker_id("gpu_pool", 3)


def tag(event) -> str:
    return type(event).__struct_config__.tag


def one(envelope: dict):
    event, reason = accept(envelope)
    assert reason is None, reason
    return event


CASES = [
    ("execute stop: pool from the worker id, native ns to us",
     sp.execute_stop(D0, "predict", "c1", T, 123_456_789),
     {"type": "request", "pool": "default", "worker_id": D0, "duration_us": 123_457,
      "status": "ok", "trace_id": "c1", "adapter": "Snakepit.Adapters.GRPCPython"}),
    ("execute stop, gRPC deadline", sp.execute_stop(D0, "predict", "c1", T, 30_000_000_000, "timeout"),
     {"type": "request", "status": "timeout", "error": "timeout", "duration_us": 30_000_000}),
    ("execute stop, {kind, reason} error", sp.execute_stop(D0, "p", "c", T, 1_000_000, "kind_reason"),
     {"status": "error", "error": "grpc_error: %GRPC.RPCError{status: 13}"}),
    ("execute stop, plain error", sp.execute_stop(D0, "p", "c", T, 1_000_000, "error"),
     {"status": "error"}),
    ("execute exception: a GenServer call timeout", sp.execute_exception(G0, "p", "c", T, 5_000_000),
     {"type": "request", "pool": "gpu_pool", "status": "timeout", "duration_us": 5000}),
    ("execute_session stop", sp.execute_stop(D0, "p", "c", T, 2_000_000, kind="execute_session",
                                             session="s9"),
     {"type": "request", "session_id": "s9", "duration_us": 2000, "pool": "default"}),
    ("execute start", sp.execute_start(G0, "predict", "c1", T),
     {"type": "request_start", "pool": "gpu_pool", "worker_id": G0, "trace_id": "c1"}),
    ("request executed, unqueued unary: not a second request",
     sp.request_executed("default", D0, "predict", T, 5100),
     {"type": "native", "name": "snakepit.request.executed", "known": True, "pool": "default"}),
    ("request executed, streaming: the only event of the call",
     sp.request_executed_streaming(G0, "stream_tokens", T, 900_000),
     {"type": "request", "pool": "gpu_pool", "streaming": True, "duration_us": 900_000,
      "status": "ok", "command": "stream_tokens"}),
    ("request executed, aborted", sp.request_executed_aborted("gpu_pool", G0, "predict", T),
     {"type": "request", "status": "error", "error": "client_down: normal", "pool": "gpu_pool"}),
    ("dispatched (logical pool)", sp.dispatched("default", D0, "predict", T, True),
     {"type": "pool", "kind": "dispatched", "pool": "default", "queued": True}),
    ("saturated", sp.saturated("default", T),
     {"type": "pool", "kind": "saturated", "queue_depth": 1000, "busy_workers": 4,
      "available_workers": 0}),
    ("init started: no pool", sp.init_started(T),
     {"type": "pool", "kind": "init_started", "pool": DEPLOYMENT, "total_workers": 6}),
    ("init complete: no pool", sp.init_complete(T),
     {"type": "pool", "kind": "init_complete", "pool": DEPLOYMENT, "duration_us": 2_150_000}),
    ("worker ready", sp.worker_ready("default", D0, T),
     {"type": "worker", "kind": "ready", "pool": "default", "worker_count": 4}),
    ("capacity reached, `rejected` key", sp.capacity_reached(T, rejected=True),
     {"type": "pool", "pool": DEPLOYMENT, "capacity": 8, "rejected": True,
      "worker_profile": "thread"}),
    ("capacity reached, not rejected", sp.capacity_reached(T, rejected=False),
     {"rejected": False}),
    ("spawned", sp.spawned(G0, T),
     {"type": "worker", "kind": "spawned", "pool": "gpu_pool", "startup_us": 850_000,
      "python_pid": 4242}),
    ("terminated", sp.terminated(G0, T),
     {"kind": "terminated", "pool": "gpu_pool", "lifetime_us": 3_600_000_000, "planned": True,
      "reason": "{:shutdown, :recycled}"}),
    ("recycled: memory is the BEAM process's", sp.recycled(G0, T),
     {"kind": "recycled", "pool": "gpu_pool", "beam_memory_mb": 812.5, "uptime_s": 3600,
      "request_count": 5000, "memory_threshold_mb": 800, "reason": "memory_threshold"}),
    ("health check failed", sp.health_check_failed(G0, T),
     {"kind": "health_check_failed", "pool": "gpu_pool", "reason": "{:error, :unavailable}"}),
    ("crash", sp.crash(G0, T), {"kind": "crashed", "exit_code": 137, "device": "cuda:0"}),
    ("tainted", sp.tainted(G0, T), {"kind": "tainted", "taint_ms": 60000, "device": "cuda:0"}),
    ("restarted keeps device and exit code", sp.restarted(G0, T),
     {"kind": "restarted", "exit_code": 137, "device": "cuda:0", "pool": "gpu_pool"}),
    ("pong", sp.heartbeat("pong_received", G0, T),
     {"kind": "heartbeat_pong", "pool": "gpu_pool", "heartbeat_latency_us": 4000, "missed": 0}),
    ("heartbeat timeout", sp.heartbeat("heartbeat_timeout", G0, T),
     {"kind": "heartbeat_timeout", "missed": 2}),
    ("monitor failure keeps its reason", sp.heartbeat("monitor_failure", G0, T),
     {"kind": "heartbeat_monitor_failure", "reason": "{:ping_failed, :unavailable}"}),
    ("monitor stopped", sp.heartbeat("monitor_stopped", G0, T),
     {"kind": "heartbeat_monitor_stopped", "reason": "normal"}),
    ("session pruned", sp.session_pruned(T),
     {"type": "session", "kind": "pruned", "count": 12, "remaining_sessions": 88,
      "adapter": "snakepit_sessions", "pool": DEPLOYMENT}),
    ("session accumulation", sp.session_accumulation(T),
     {"type": "session", "kind": "accumulation_warning", "utilization": 0.9}),
    ("exception mapped", sp.python_exception(True, T),
     {"type": "python", "kind": "exception_mapped", "error": "ValueError", "library": "numpy"}),
    ("zero copy: float ms", sp.zero_copy("export", T),
     {"type": "python", "kind": "zero_copy_export", "duration_us": 1250, "bytes": 4096}),
    ("circuit opened, named", sp.circuit_breaker("opened", "gpu_breaker", T),
     {"type": "pool", "kind": "circuit_opened", "pool": "gpu_breaker", "failure_count": 5}),
    ("circuit closed, nil name", sp.circuit_breaker("closed", None, T),
     {"type": "pool", "kind": "circuit_closed", "pool": DEPLOYMENT}),
    ("retry success: `attempts`", sp.retry("success", T),
     {"type": "pool", "kind": "retry_success", "pool": DEPLOYMENT, "attempt": 3}),
    ("retry exhausted keeps the last error", sp.retry("exhausted", T),
     {"kind": "retry_exhausted", "reason": "{:error, :timeout}"}),
]


@pytest.mark.parametrize("envelope, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_snakepit_event_normalises(envelope: dict, expected: dict):
    event = one(envelope)
    assert event.time == pytest.approx(envelope["time"])
    assert event.node == sp.NODE
    for key, value in expected.items():
        actual = tag(event) if key == "type" else getattr(event, key)
        assert actual == value, key


PYTHON = {e["event"][2] + "." + ".".join(e["event"][3:]): e for e in sp.python_events(G0, T)}


@pytest.mark.parametrize("name, expected", [
    ("call.stop", {"kind": "call", "python_us": 2500, "trace_id": "c-py", "command": "predict"}),
    ("call.exception", {"kind": "error", "error": "KeyError: 'x'"}),
    ("memory.sampled", {"kind": "memory", "memory_bytes": 1 << 30}),
    ("cpu.sampled", {"kind": "cpu", "cpu_percent": 55.5}),
    ("gc.completed", {"kind": "gc", "gc_generation": 2}),
    ("error.occurred", {"kind": "error", "error": "ValueError: bad shape"}),
    ("tool.execution.stop", {"kind": "tool_stop", "python_us": 1000}),
    ("tool.execution.exception", {"kind": "tool_exception", "error": "RuntimeError: oops"}),
    ("tool.result_size", {"kind": "tool_result_size", "bytes": 2048}),
])
def test_relayed_python_events_find_the_logical_pool_and_keep_their_fields(name, expected):
    event = one(PYTHON[name])
    assert tag(event) == "python" and event.pool == "gpu_pool" and event.python_pid == 4242
    for key, value in expected.items():
        assert getattr(event, key) == value, key


def test_python_measurements_sent_as_strings_are_numbers():
    event = one(PYTHON["memory.sampled"])
    assert event.metrics["vms_bytes"] == 4294967296.0


def test_kept_events_are_native_and_counted_by_name():
    for envelope in sp.kept_events(T):
        event = one(envelope)
        assert tag(event) == "native" and event.known is True
        assert event.name == ".".join(envelope["event"])
    oom = one(sp.kept_events(T)[-5])
    assert oom.name == "snakepit.error.oom" and oom.measurements["requested_bytes"] == 1 << 33


def test_every_mapped_event_is_emitted_by_the_fixtures_and_nothing_is_rejected():
    envelopes = sp.every_event(T)
    names = {".".join(e["event"]) for e in envelopes}
    assert set(TABLE) <= names, sorted(set(TABLE) - names)
    decoded = decode_json(__import__("orjson").dumps(envelopes))
    assert decoded.rejects == []
    assert len(decoded.events) == len(envelopes)
    pools = {getattr(e, "pool", None) for e in decoded.events}
    assert sp.GENSERVER not in pools and "Snakepit.Pool" not in pools


def test_each_call_counts_once_under_its_logical_pool():
    envelopes, expected = sp.deployment(T)
    decoded = decode_json(__import__("orjson").dumps(envelopes))
    assert decoded.rejects == []
    requests = [e for e in decoded.events if tag(e) == "request"]
    got = {pool: {"requests": 0, "errors": 0, "timeouts": 0} for pool in expected}
    for r in requests:
        got[r.pool]["requests"] += 1
        if r.status != "ok":
            got[r.pool]["errors" if r.status == "error" else "timeouts"] += 1
    assert got == expected


def test_an_unknown_event_is_kept_and_counted_not_rejected():
    event = one(sp.envelope("snakepit.pool.queue.enqueued.v2", {"depth": 3}, {"pool": "default"}, T))
    assert tag(event) == "native" and event.known is False and event.pool == "default"
    assert event.measurements == {"depth": 3.0}


def test_a_worker_id_of_another_shape_falls_back_to_the_deployment_pool():
    event = one(sp.crash("custom-worker", T))
    assert event.pool == DEPLOYMENT


def test_a_native_duration_without_its_unit_is_rejected_not_assumed():
    envelope = sp.execute_stop(D0, "p", "c", T, 1_000_000)
    del envelope["native_time_unit"]
    event, reason = accept(envelope)
    assert event is None and "native_time_unit" in reason
    ok = sp.saturated("default", T)  # carries no native duration: the unit is not needed
    del ok["native_time_unit"]
    assert one(ok).queue_depth == 1000


def test_unit_is_read_from_the_envelope():
    envelope = sp.execute_stop(D0, "p", "c", T, 5000)
    envelope["native_time_unit"] = "microsecond"
    assert one(envelope).duration_us == 5000


@pytest.mark.parametrize("envelope, reason", [
    (sp.envelope("snakepit.pool.saturated", {"queue_size": "seven"}, {"pool": "p"}, T),
     "measurement 'queue_size' should be a number"),
    (sp.envelope("snakepit.pool.saturated", {"queue_size": [1]}, {"pool": "p"}, T),
     "should be a number"),
    (sp.envelope("snakepit.request.executed", {"duration_us": 5}, {"pool": "p"}, T, "fortnight"),
     "field 'native_time_unit'"),
    ({"event": "", "measurements": {}, "time": T}, "field 'event'"),
    ({"event": [1, 2], "measurements": {}, "time": T}, "field 'event'"),
    ({"event": ["snakepit", "worker", "crash"], "measurements": {}, "metadata": {"pool": "p"}},
     "no event time"),
    ({"event": ["snakepit", "worker", "crash"], "measurements": [], "time": T}, "'measurements'"),
    ({"event": ["snakepit", "worker", "crash"], "metadata": "x", "time": T}, "'metadata'"),
    (sp.envelope("snakepit.pool.saturated", {}, {"pool": "p"}, 4e12), "time"),
])
def test_malformed_envelopes_are_rejected_with_a_reason(envelope: dict, reason: str):
    event, why = accept(envelope)
    assert event is None
    assert reason in why, why


def test_metadata_terms_of_any_shape_never_crash_the_normaliser():
    weird = {"pool": {"nested": [1, {"deep": None}]}, "worker_id": 12, "x": [None, True, 1.5],
             "stacktrace": "x" * 100_000}
    counts = Counter()
    for name in TABLE:
        event, reason = accept(sp.envelope(name, {}, weird, T))
        counts["ok" if event is not None else "rejected"] += 1
        if event is None:  # empty measurements: a request without its duration, and so on
            assert "missing required field" in reason, (name, reason)
    assert counts["ok"] > len(TABLE) // 2


def test_the_readme_lists_every_snakepit_event_understood():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [n for n in TABLE if f"`{n.removeprefix('snakepit.')}`" not in readme]
    assert missing == []
