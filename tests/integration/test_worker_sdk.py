"""The worker SDK inside an adapter-shaped class, in its own process, against a real `run`.

The adapter has Snakepit's shapes: ``execute_tool(tool_name, arguments, context)`` with a
context carrying ``session_id`` (``grpc_server.py``), and the ``SNAKEPIT_READY_FILE`` Snakepit
sets for each worker (``worker/configuration.ex``). The tool bodies time themselves; what the
service stores must agree with them and with ``/proc``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from harness import kafka as kh
from harness.procs import free_port

ADAPTER = textwrap.dedent('''
    import json, os, sys, time
    from sdk.worker import Monitor

    monitor = Monitor(sys.argv[1], libraries=["msgspec"], sample_s=None, flush_s=0.2)

    class Context:
        def __init__(self, session_id):
            self.session_id = session_id

    body_us = {}

    class Adapter:
        @monitor.timed
        def execute_tool(self, tool_name, arguments, context):
            t = time.perf_counter_ns()
            if tool_name == "sleepy":
                time.sleep(arguments["s"])
            else:
                sum(i * i for i in range(arguments["n"]))
            body_us[tool_name] = body_us.get(tool_name, 0) + (time.perf_counter_ns() - t) / 1000
            return {"ok": True}

    adapter = Adapter()
    for i in range(40):
        adapter.execute_tool("sleepy", {"s": 0.002 + 0.0005 * (i % 7)}, Context(f"s{i % 4}"))
        adapter.execute_tool("crunch", {"n": 20_000 + 1_000 * (i % 5)}, context=Context("s1"))
    sessions = {"created": 0, "hits": 0, "misses": 0}
    for i in range(10):
        with monitor.session("created", f"s{i}"):
            time.sleep(0.001)
        sessions["created"] += 1
        hit = i % 3 != 0
        with monitor.session("accessed", f"s{i}", cache_hit=hit):
            pass
        sessions["hits" if hit else "misses"] += 1
    blob = bytearray(30 * 1024 * 1024)  # something for RSS to show
    files = [open(os.devnull) for _ in range(40)]  # and for the fd count, beyond the sender's
    monitor.sample()
    status = dict(line.split(":", 1) for line in open("/proc/self/status"))
    proc = {"rss": int(status["VmRSS"].split()[0]) * 1024,
            "fds": len(os.listdir("/proc/self/fd"))}
    assert monitor.flush(30), monitor.last_error
    print(json.dumps({"body_us": body_us, "sessions": sessions, "proc": proc,
                      "dropped": monitor.dropped, "sent": monitor.sent, "pid": os.getpid()}))
    del blob, files
''')


def query(base: str, metric: str, stat: str, group_by: str, t0: float, **where: str) -> dict:
    params = {"metric": metric, "stat": stat, "from": int(t0) - 60, "to": int(time.time()) + 60,
              "group_by": group_by, "where": [f"{k}:{v}" for k, v in where.items()]}
    r = httpx.get(f"{base}/v1/query", params=params)
    assert r.status_code == 200, r.text
    return {",".join(s["labels"].values()): s["points"][0][1] for s in r.json()["series"]
            if s["points"]}


def test_an_adapter_measured_by_the_sdk_matches_its_own_clock_and_proc(run_server: str,
                                                                       tmp_path: Path):
    t0 = time.time()
    script = tmp_path / "adapter.py"
    script.write_text(ADAPTER)
    env = {**os.environ, "SNAKEPIT_READY_FILE": "/tmp/snakepit_ready_ml_pool_worker_3_17_912"}
    out = subprocess.run([sys.executable, str(script), run_server], env=env, capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["dropped"] == 0 and got["sent"] > 100

    def stored_calls() -> dict:  # the start and memory events count no call: drop their zeros
        calls = query(run_server, "python_calls_total", "count", "command", t0, pool="ml_pool")
        return {command: n for command, n in calls.items() if n}

    kh.wait_for(lambda: stored_calls() == {"sleepy": 40, "crunch": 40}, 90,
                "80 calls stored for ml_pool")
    seconds = query(run_server, "python_call_seconds", "sum", "command", t0, pool="ml_pool")
    for command, body_us in got["body_us"].items():
        assert seconds[command] * 1e6 == pytest.approx(body_us, rel=0.05), command
    from importlib.metadata import version

    from sdk.worker import environment_fingerprint

    libs = query(run_server, "python_calls_total", "count", "library,python_env", t0)
    assert libs[f"msgspec=={version('msgspec')},{environment_fingerprint()}"] == 80

    sessions = got["sessions"]
    created = query(run_server, "sessions_created_total", "count", "adapter", t0)
    assert created == {"python": sessions["created"]}
    hit_ratio = query(run_server, "session_cache_hit_ratio", "value", "adapter", t0)
    assert hit_ratio["python"] == pytest.approx(sessions["hits"] / 10)
    create_s = query(run_server, "session_create_seconds", "min", "adapter", t0)
    assert create_s["python"] >= 0.001

    rss = query(run_server, "memory_bytes", "last", "worker_id", t0, scope="worker")
    assert rss["ml_pool_worker_3_17"] == pytest.approx(got["proc"]["rss"], rel=0.10)
    fds = query(run_server, "open_fds", "last", "worker_id", t0, scope="worker")
    # the sender's connection may be open at one reading and closed at the other: one fd
    assert got["proc"]["fds"] > 40 and abs(fds["ml_pool_worker_3_17"] - got["proc"]["fds"]) <= 1
    startup = query(run_server, "python_startup_seconds", "count", "pool", t0)
    assert startup == {"ml_pool": 1}
    assert httpx.get(f"{run_server}/v1/rejects").json() == []


def test_nothing_reaches_the_adapter_when_the_service_is_down(tmp_path: Path):
    from sdk.worker import Monitor

    dead = f"http://127.0.0.1:{free_port()}"  # nobody listens
    monitor = Monitor(dead, sample_s=None, max_queued=100, flush_s=0.05, retry_s=0.05)

    @monitor.timed
    def tool(x: int) -> int:
        return x * 2

    assert [tool(i) for i in range(500)] == [i * 2 for i in range(500)]
    # the adapter's own exceptions still reach it, unchanged
    with pytest.raises(KeyError), monitor.call("lookup"):
        raise KeyError("x")
    assert not monitor.flush(timeout=1.0)
    monitor.close(timeout=0.5)
    assert monitor.failures >= 1 and "Connection refused" in (monitor.last_error or "")
    held = len(monitor._queue) + len(monitor._pending)
    assert held <= 100 + monitor.batch_size
    assert monitor.dropped + held + monitor.sent == 502  # the start event, 500 calls, 1 error
    assert monitor.dropped >= 400


@pytest.mark.kafka
def test_the_sdk_produces_to_kafka(kafka_bootstrap: str, unique_name: str):
    from sdk.worker import Monitor

    kh.create_topic(kafka_bootstrap, unique_name, partitions=1)
    monitor = Monitor(f"kafka://{kafka_bootstrap}/{unique_name}", pool="p", worker_id="p_worker_1_2",
                      sample_s=None, flush_s=0.05)
    for _ in range(300):
        with monitor.call("predict"):
            pass
    assert monitor.flush(30), monitor.last_error
    monitor.close()
    events = [e for batch in kh.consume(kafka_bootstrap, unique_name, 10, 30) for e in batch]
    calls = [e for e in events if e["kind"] == "call"]
    assert len(calls) == 300 and {e["pool"] for e in calls} == {"p"}
    assert sum(e["kind"] == "started" for e in events) == 1


def test_a_refused_batch_is_dropped_and_counted_and_a_busy_service_retried():
    """An HTTP server answering 413 (refused for good), then 503, then 202."""
    import http.server
    import threading

    answers = iter([413, 503] + [202] * 100)
    bodies: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            self.rfile.read(int(self.headers["Content-Length"]))
            code = next(answers)
            bodies.append(code)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from sdk.worker import Monitor

        monitor = Monitor(f"http://127.0.0.1:{server.server_port}", sample_s=None,
                          batch_size=10, flush_s=0.05, retry_s=0.05)
        monitor.flush(5)  # the start event alone: the 413 takes it
        for _ in range(10):
            with monitor.call("predict"):
                pass
        assert monitor.flush(10), monitor.last_error
        monitor.close()
    finally:
        server.shutdown()
    assert bodies[:3] == [413, 503, 202]
    assert monitor.dropped == 1 and monitor.sent == 10


BRIDGE = textwrap.dedent('''
    """Snakepit's correlation context, as ``snakepit_bridge.otel_tracing`` keeps it (its
    ``telemetry`` package re-exports these): the server sets the id of each request."""
    from contextvars import ContextVar

    _correlation_id = ContextVar("snakepit_correlation_id", default=None)

    def set_correlation_id(value):
        return _correlation_id.set(value)

    def reset_correlation_id(token):
        _correlation_id.reset(token)

    def get_correlation_id(default=None):
        value = _correlation_id.get()
        return value if value is not None else default
''')

JOINED_ADAPTER = textwrap.dedent('''
    import json, sys, time
    from snakepit_bridge.telemetry import reset_correlation_id, set_correlation_id
    from sdk.worker import Monitor

    monitor = Monitor(sys.argv[1], sample_s=None, flush_s=0.2)

    class Adapter:
        @monitor.timed
        def execute_tool(self, tool_name, arguments, context):
            time.sleep(arguments["s"])

    calls = []
    for i in range(30):
        token = set_correlation_id(f"{sys.argv[2]}-{i}")  # as grpc_server does per request
        t = time.perf_counter_ns()
        Adapter().execute_tool("predict", {"s": 0.001 + 0.0002 * i}, None)
        calls.append([f"{sys.argv[2]}-{i}", time.time(), (time.perf_counter_ns() - t) // 1000])
        reset_correlation_id(token)
    assert monitor.flush(30), monitor.last_error
    print(json.dumps(calls))
''')


def test_python_time_joins_the_request_snakepit_reports_in_either_order(run_server: str,
                                                                          tmp_path: Path):
    """The SDK's call time and Snakepit's ``execute.stop`` of the same calls (as the Elixir
    forwarder posts them) become one request each with Python time and Elixir overhead."""
    from tests import snakepit_envelopes as sp

    (tmp_path / "snakepit_bridge").mkdir()
    (tmp_path / "snakepit_bridge" / "__init__.py").write_text("")
    (tmp_path / "snakepit_bridge" / "telemetry.py").write_text(BRIDGE)
    script = tmp_path / "adapter.py"
    script.write_text(JOINED_ADAPTER)
    root = Path(__file__).resolve().parents[2]
    t0 = time.time()

    def adapter(pool: str, prefix: str) -> list:
        env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{root}",
               "SNAKEPIT_READY_FILE": f"/tmp/snakepit_ready_{pool}_worker_1_5_77"}
        out = subprocess.run([sys.executable, str(script), run_server, prefix], env=env,
                             capture_output=True, text=True, timeout=120, cwd=root)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def telemetry(pool: str, calls: list) -> None:  # 1.5 ms of Elixir around each call
        wid = f"{pool}_worker_1_5"
        body = [sp.execute_stop(wid, "predict", cid, t + 0.0015, (us + 1500) * 1000)
                for cid, t, us in calls]
        r = httpx.post(f"{run_server}/v1/events", content=json.dumps(body),
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 202 and r.json()["accepted"] == 30, r.text

    first = adapter("join_a", "ja")  # Python time first (acknowledged), then the telemetry
    telemetry("join_a", first)
    # the telemetry first: the request is aggregated, its Python time added when it comes.
    # Its durations must cover the Python time still to be measured (a joined time is clamped
    # to its request's duration, as a real call's is never longer): the sleeps take 1-7 ms,
    # a loaded machine overshoots them, so 50 ms of Python time is allowed for.
    second = [[f"jb-{i}", time.time(), 50_000 + 200 * i] for i in range(30)]
    telemetry("join_b", second)
    measured = adapter("join_b", "jb")
    assert [c[0] for c in measured] == [c[0] for c in second]

    def settled(pool: str) -> bool:
        """Every call's Python time is stored twice over: as the call's own and joined into
        its request (a late join lands as a delta, written within seconds)."""
        joined = query(run_server, "python_exec_seconds", "sum", "pool", t0, pool=pool)
        own = query(run_server, "python_call_seconds", "sum", "pool", t0, pool=pool)
        count = query(run_server, "python_exec_seconds", "count", "pool", t0, pool=pool)
        return count.get(pool) == 30 and pool in own and \
            abs(joined.get(pool, 0) - own[pool]) < 1e-6

    for pool, calls in (("join_a", first), ("join_b", second)):
        kh.wait_for(lambda p=pool: settled(p), 60, f"Python time joined into {pool}'s 30 "
                    "requests")
        python = query(run_server, "python_call_seconds", "sum", "pool", t0, pool=pool)[pool]
        joined = query(run_server, "python_exec_seconds", "sum", "pool", t0, pool=pool)[pool]
        requests = query(run_server, "requests_total", "count", "pool", t0, pool=pool)[pool]
        duration = query(run_server, "request_duration_seconds", "sum", "pool", t0,
                         pool=pool)[pool]
        overhead = query(run_server, "elixir_overhead_seconds", "sum", "pool", t0,
                         pool=pool)[pool]
        assert requests == 30, pool
        assert joined == pytest.approx(python, abs=1e-6), pool  # every call's Python time
        assert duration == pytest.approx(sum(us + 1500 for _, _, us in calls) / 1e6, abs=1e-5)
        assert overhead == pytest.approx(duration - joined, abs=1e-5), pool
    # the tool bodies (SDK-timed) and the telemetry agree within the 5 % R5.2 asks
    first_python = query(run_server, "python_exec_seconds", "sum", "pool", t0, pool="join_a")
    assert first_python["join_a"] * 1e6 == pytest.approx(sum(us for *_, us in first), rel=0.05)
