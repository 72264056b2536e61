"""A call's Python time (from the worker SDK) joined into its request (Snakepit telemetry).

Requests come from ``grpc_worker.execute.stop`` envelopes as Snakepit emits them
(``tests.snakepit_envelopes``), Python calls from the real ``sdk.worker.Monitor`` timing a
tool while the correlation id is that call's, so both carry what the real sources carry.
"""

from __future__ import annotations

import random
import time

import pytest

from schemas.decode import accept
from sdk.worker import Monitor
from streams.engine import Engine
from streams.python_join import PythonJoin
from streams.rollup import Rollup
from streams.series import ALL
from tests import snakepit_envelopes as sp

WID = sp.worker_id("ml_pool", 2)
POOL = ("ml_pool", *(ALL,) * 7)


def sdk_calls(calls: list[tuple[str, int]]) -> list:
    """Python call events as the SDK sends them: each (correlation id, busy µs) timed by
    ``Monitor.timed`` inside that correlation (Snakepit's server sets it per request)."""
    sent: list[dict] = []
    monitor = Monitor(transport=sent.extend, sample_s=None, flush_s=0.05, worker_id=WID,
                      pool="ml_pool")
    current = {"id": None}
    monitor._correlation = lambda: current["id"]  # what snakepit_bridge.telemetry gives

    @monitor.timed
    def execute_tool(self, tool_name, arguments, context):
        end = time.perf_counter_ns() + arguments["us"] * 1000
        while time.perf_counter_ns() < end:
            pass

    for cid, us in calls:
        current["id"] = cid
        execute_tool(None, "predict", {"us": us}, None)
    monitor.close()
    events = [accept(e)[0] for e in sent if e.get("kind") == "call"]
    assert len(events) == len(calls)
    return events


def requests(calls: list[tuple[str, float, int]]) -> list:
    """Requests from Snakepit's execute.stop telemetry: (correlation id, time, duration µs)."""
    return [accept(sp.execute_stop(WID, "predict", cid, t, us * 1000))[0] for cid, t, us in calls]


def pool_dists(rollups: list[Rollup], resolution: int = 3600) -> dict[str, tuple[int, float]]:
    """(count, sum) of the pool's request distributions, and its request count."""
    out: dict[str, list] = {}
    for r in rollups:
        if r.family == "request" and r.labels == POOL and r.resolution == resolution:
            for name in ("python_us", "overhead_us", "duration_us"):
                d = r.agg.dists.get(name)
                if d is not None:
                    c, s = out.setdefault(name, [0, 0.0])
                    out[name] = [c + d.count, s + d.sum]
            c, s = out.setdefault("requests", [0, 0.0])
            out["requests"] = [c + r.agg.counters.get("requests", 0), 0.0]
    return {k: (c, s) for k, (c, s) in out.items()}


@pytest.fixture(scope="module")
def calls():
    """40 calls: the SDK's events and the telemetry of the same calls (which take longer)."""
    now = time.time()
    python = sdk_calls([(f"corr-{i}", 200 + 20 * i) for i in range(40)])
    reqs = requests([(f"corr-{i}", now - 30 + i * 0.5, p.python_us + 300 + i)
                     for i, p in enumerate(python)])
    return python, reqs


def expected(python, reqs) -> dict[str, tuple[int, float]]:
    return {"python_us": (40, float(sum(p.python_us for p in python))),
            "overhead_us": (40, float(sum(r.duration_us - p.python_us
                                          for p, r in zip(python, reqs, strict=True)))),
            "duration_us": (40, float(sum(r.duration_us for r in reqs))),
            "requests": (40, 0.0)}


def test_python_time_joins_its_request_whichever_comes_first(calls):
    python, reqs = calls
    want = expected(python, reqs)
    for order in ("python first", "request first", "shuffled", "same batch"):
        eng = Engine(lateness=60)
        if order == "python first":
            batches = [python[:1], python[1:], reqs]
        elif order == "request first":
            batches = [python[:1], reqs, python[1:]]  # the first call activates the join
        elif order == "shuffled":
            mixed = python[:1] + random.Random(7).sample(python[1:] + reqs, 79)
            batches = [mixed[i:i + 7] for i in range(0, 80, 7)]
        else:
            batches = [python[:1], reqs[20:] + python[1:] + reqs[:20]]
        out = [r for b in batches for r in eng.process(b)] + eng.flush()
        assert pool_dists(out) == want, order
        assert eng.join.joined == 40 and not eng.join.python and not eng.join.requests, order


def test_python_time_after_its_bucket_closed_is_a_late_delta_counting_no_request(calls):
    python, reqs = calls
    eng = Engine(lateness=0)
    out = eng.process(python[:1]) + eng.process(reqs)
    later = requests([("other", reqs[-1].time + 30, 500)])  # the watermark moves past them
    out += eng.process(later)
    closed = {r.bucket for r in out if r.family == "request" and r.resolution == 10}
    assert closed and all(r.time < max(closed) + 10 for r in reqs)  # their panes closed
    late = eng.process(python[1:])
    assert late and all(r.late for r in late)
    out += late + eng.flush()
    got = pool_dists(out, resolution=10)
    want = expected(python, reqs)
    assert got["python_us"] == want["python_us"] and got["overhead_us"] == want["overhead_us"]
    assert got["requests"] == (41, 0.0)  # the late deltas added Python time, no request


def test_a_checkpoint_between_request_and_python_time_joins_them_after_restore(calls):
    python, reqs = calls
    straight = Engine(lateness=60)
    want = pool_dists(straight.process(python[:1]) + straight.process(reqs[:25])
                      + straight.process(python[1:] + reqs[25:]) + straight.flush())
    eng = Engine(lateness=60)
    out = eng.process(python[:1]) + eng.process(reqs[:25])
    eng = Engine.restore(eng.snapshot())
    assert len(eng.join.requests) == 24 and eng.join.active  # corr-0's was waiting first
    out += eng.process(python[1:30])
    eng = Engine.restore(eng.snapshot())  # mid-pane: joined rows are in the checkpoint too
    out += eng.process(python[30:] + reqs[25:]) + eng.flush()
    assert pool_dists(out) == want == expected(python, reqs)


def test_a_second_copy_of_the_python_time_or_an_unknown_call_joins_nothing(calls):
    python, reqs = calls
    eng = Engine(lateness=60)
    strangers = sdk_calls([("nobody", 100)])
    out = eng.process(python[:1] + strangers) + eng.process(reqs) + eng.process(python[1:])
    out += eng.process(python[5:10]) + eng.flush()  # the SDK retried a batch: no double time
    assert pool_dists(out) == expected(python, reqs)
    py = [r for r in out if r.family == "python" and r.resolution == 3600]
    assert sum(r.agg.dists["python_us"].count for r in py) == 46  # all still counted as calls


def test_python_time_longer_than_the_request_is_cut_to_it():
    now = time.time()
    python = sdk_calls([("slow", 3000)])
    reqs = requests([("slow", now, 1000)])
    for batches in ([python, reqs], [python[:0] + reqs, python]):
        eng = Engine(lateness=60)
        eng.join.active = True
        out = [r for b in batches for r in eng.process(b)] + eng.flush()
        got = pool_dists(out)
        assert got["python_us"] == (1, 1000.0) and got["overhead_us"] == (1, 0.0)


def test_the_join_memory_is_bounded_and_keeps_the_newest(monkeypatch):
    monkeypatch.setattr(PythonJoin, "CAPACITY", 1000)
    now = time.time()
    eng = Engine(lateness=3600)
    eng.join.active = True
    flood = requests([(f"flood-{i}", now, 100) for i in range(5000)])
    for i in range(0, 5000, 500):
        eng.process(flood[i:i + 500])
    assert len(eng.join.requests) == 1000
    python = sdk_calls([("flood-4999", 50), ("flood-0", 50)])
    eng.process(python)
    assert eng.join.joined == 1 and len(eng.join.python) == 1  # flood-0 was evicted
    got = pool_dists(eng.flush())
    assert got["python_us"][0] == 1 and got["requests"] == (5000, 0.0)


def test_no_memory_is_spent_before_the_first_python_call(calls):
    _, reqs = calls
    eng = Engine(lateness=60)
    eng.process(reqs)
    assert not eng.join.active and not eng.join.requests


def test_call_keys_do_not_depend_on_the_process_or_the_batch():
    from streams.dedupe import call_keys

    # what checkpoints hold: a change here makes every checkpoint's call memory useless
    assert call_keys(["abc", "", "é" * 100]) == [10038691681286128466, 3186748632723048317,
                                                 17204536412453813866]
    ids = [f"{i:032x}" for i in range(50_000)] + ["a", "a\x00", "a" * 256, "ü-€-𝄞"]
    keys = call_keys(ids)
    assert len(set(keys)) == len(ids)  # trailing NULs, lengths and UTF-8 all count
    assert [call_keys([i])[0] for i in ids[-4:]] == keys[-4:]  # alone or among longer ids
