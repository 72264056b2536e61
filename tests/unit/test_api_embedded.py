"""The embedded API end to end (in-process ASGI, real SQLite): ingest, rejects, queries."""

from __future__ import annotations

import gzip

import msgspec
import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from harness.data import T0, exact_quantile, requests
from harness.metrics import samples
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore


@pytest.fixture
def stack(tmp_path):
    store = SQLiteStore(tmp_path / "perf.sqlite3")
    runner = EmbeddedRunner(store)
    app = create_app(Services(store=store, sink=runner, engine=runner.engine, max_body_bytes=1 << 20))
    with TestClient(app) as client:
        yield client, runner
    store.close()


def post(client, events, **kw):
    return client.post("/v1/events", content=msgspec.json.encode(events),
                       headers={"Content-Type": "application/json", **kw.pop("headers", {})}, **kw)


def test_ingest_then_query_matches_exact_answers(stack):
    client, runner = stack
    events = requests(12_000, 1200)  # 20 minutes, 10/s
    for i in range(0, len(events), 1000):
        r = post(client, events[i:i + 1000])
        assert r.status_code == 202 and r.json() == {"accepted": 1000, "rejected": []}
    runner.close_all()
    q = client.get("/v1/query", params={"metric": "request_duration_seconds", "stat": "p99",
                                        "from": T0, "to": T0 + 1200, "step": "5m",
                                        "group_by": "pool"}).json()
    assert q["unit"] == "seconds" and q["resolution"] == 60
    assert [s["labels"] for s in q["series"]] == [{"pool": "pool-a"}, {"pool": "pool-b"}]
    for s in q["series"]:
        assert len(s["points"]) == 4
        for t, value in s["points"]:
            window = [e.duration_us for e in events
                      if e.pool == s["labels"]["pool"] and t <= e.time < t + 300]
            exact = exact_quantile(window, 0.99) / 1e6
            assert abs(value - exact) / exact <= 0.01
    count = client.get("/v1/query", params={"metric": "requests_total", "stat": "count",
                                            "from": T0, "to": T0 + 1200,
                                            "where": ["command:predict", "status:ok"]})
    assert count.status_code == 400 and count.json()["param"] == "where"
    count = client.get("/v1/query", params={"metric": "request_errors_total", "stat": "count",
                                            "from": T0, "to": T0 + 1200,
                                            "where": "command:predict"}).json()
    assert count["series"][0]["points"][0][1] == sum(
        e.status == "error" and e.command == "predict" for e in events)
    rate = client.get("/v1/query", params={"metric": "requests_total", "stat": "rate",
                                           "from": T0 + 600, "to": T0 + 1200, "step": "1m",
                                           "window": "5m"}).json()
    for t, value in rate["series"][0]["points"]:
        assert value == pytest.approx(sum(t + 60 - 300 <= e.time < t + 60 for e in events) / 300)


def test_bad_events_are_reported_kept_and_listed(stack):
    client, _ = stack
    good = {"type": "request", "time": T0, "pool": "p", "command": "c", "duration_us": 5,
            "status": "ok"}
    r = client.post("/v1/events", content=orjson.dumps([good, {**good, "duration_us": "x"}, 7]),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 202
    body = r.json()
    assert body["accepted"] == 1
    assert [x["index"] for x in body["rejected"]] == [1, 2]
    listed = client.get("/v1/rejects").json()
    assert {x["reason"] for x in listed} == {x["reason"] for x in body["rejected"]}
    assert orjson.loads(listed[-1]["raw"]) == {**good, "duration_us": "x"}
    assert listed[0]["source"].startswith("http:")


def test_ndjson_gzip_and_limits(stack):
    client, _ = stack
    line = orjson.dumps({"type": "request", "time": T0, "pool": "p", "command": "c",
                         "duration_us": 5, "status": "ok"})
    body = gzip.compress(b"\n".join([line] * 50 + [b"{oops"]))
    r = client.post("/v1/events", content=body, headers={
        "Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"})
    assert r.status_code == 202 and r.json()["accepted"] == 50
    assert r.json()["rejected"][0]["reason"].startswith("line 51: invalid JSON")
    huge = client.post("/v1/events", content=b"[" + b" " * (2 << 20) + b"]",
                       headers={"Content-Type": "application/json"})
    assert huge.status_code == 413
    assert huge.headers["content-type"] == "application/problem+json"
    assert "exceeds 1048576 bytes" in huge.json()["detail"]
    bomb = client.post("/v1/events", content=gzip.compress(b" " * (4 << 20)),
                       headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
    assert bomb.status_code == 413
    bad = client.post("/v1/events", content=b"{", headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and bad.json()["detail"].startswith("invalid JSON")
    assert client.get("/v1/rejects", params={"limit": 1}).json()[0]["raw"] == "{"
    xml = client.post("/v1/events", content=b"<a/>", headers={"Content-Type": "text/xml"})
    assert xml.status_code == 415 and xml.json()["param"] == "Content-Type"


@pytest.mark.parametrize("params, param", [
    ({"metric": "nope", "from": T0, "to": T0 + 1}, "metric"),
    ({"metric": "requests_total", "stat": "p99", "from": T0, "to": T0 + 1}, "stat"),
    ({"metric": "requests_total", "from": "yesterday", "to": T0 + 1}, "from"),
    ({"metric": "requests_total", "from": "INFINITY", "to": T0 + 1}, "from"),
    ({"metric": "requests_total", "from": T0, "to": "nan"}, "to"),
    ({"metric": "requests_total", "from": T0, "to": T0 - 1}, "to"),
    ({"metric": "requests_total", "from": T0, "to": T0 + 60, "step": "7s"}, "step"),
    ({"metric": "requests_total", "from": T0, "to": T0 + 60, "group_by": "colour"}, "group_by"),
    ({"metric": "request_duration_seconds", "from": T0, "to": T0 + 60, "window": "5m"}, "window"),
    ({"metric": "requests_total", "to": T0 + 60}, "from"),
])
def test_bad_queries_are_problem_json_naming_the_parameter(stack, params, param):
    client, _ = stack
    r = client.get("/v1/query", params=params)
    assert r.status_code in (400, 422)
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["param"] == param


def test_catalogue_and_dimensions(stack):
    client, runner = stack
    post(client, requests(100, 10))
    runner.close_all()
    metrics = {m["name"]: m for m in client.get("/v1/metrics").json()}
    assert metrics["request_duration_seconds"]["unit"] == "seconds"
    assert "p99.9" in metrics["request_duration_seconds"]["stats"]
    assert client.get("/v1/dimensions/pool").json() == ["pool-a", "pool-b"]
    assert client.get("/v1/dimensions/worker_id").json() == [f"w{i}" for i in range(7)]
    assert client.get("/v1/dimensions/colour").status_code == 404


def test_reject_and_accept_counts_are_prometheus_metrics(stack):
    client, _ = stack
    good = {"type": "request", "time": T0, "pool": "p", "command": "c", "duration_us": 5,
            "status": "ok"}
    client.post("/v1/events", content=orjson.dumps([good, good, {"type": "nope"}]),
                headers={"Content-Type": "application/json"})
    text = client.get("/metrics").text
    assert "# TYPE snakepit_perf_events_rejected_total counter" in text
    values = samples(text)
    assert values["snakepit_perf_events_accepted_total"] == 2
    assert values["snakepit_perf_events_rejected_total"] == 1
    assert values["snakepit_perf_engine_events_total"] == 2


def test_filters_negation_prefix_and_utilisation(stack):
    client, runner = stack
    events = requests(6_000, 600, pools=("pool-a", "pool-b", "batch-1"))
    for i in range(0, len(events), 1000):
        assert post(client, events[i:i + 1000]).status_code == 202
    runner.close_all()

    def count(**params) -> dict:
        r = client.get("/v1/query", params={"metric": "requests_total", "stat": "count",
                                            "from": T0, "to": T0 + 600, "group_by": "pool",
                                            **params}).json()
        return {s["labels"]["pool"]: s["points"][0][1] for s in r["series"]}

    per_pool = {p: sum(e.pool == p for e in events) for p in ("pool-a", "pool-b", "batch-1")}
    assert count() == per_pool
    assert count(where="pool!=pool-a") == {k: v for k, v in per_pool.items() if k != "pool-a"}
    assert count(where="pool:pool-*") == {k: v for k, v in per_pool.items() if k != "batch-1"}
    assert count(where=["pool:batch-1", "pool:pool-b"]) == \
        {k: v for k, v in per_pool.items() if k != "pool-a"}
    assert count(where=["pool:pool-*", "command!=embed"]) == {
        p: sum(e.pool == p and e.command != "embed" for e in events)
        for p in ("pool-a", "pool-b")}
    util = client.get("/v1/query", params={
        "metric": "pool_utilization_ratio", "stat": "value", "from": T0, "to": T0 + 600,
        "group_by": "pool"}).json()
    for s in util["series"]:
        mine = [e for e in events if e.pool == s["labels"]["pool"]]
        workers = {e.worker_id for e in mine}
        busy = sum(e.duration_us - (e.queue_wait_us or 0) for e in mine)
        expected = busy / 1e6 / 600 / len(workers)
        assert s["points"][0][1] == pytest.approx(expected)


def test_a_filtered_grouped_query_reads_only_the_series_it_needs(stack, monkeypatch):
    client, runner = stack
    events = requests(6_000, 600, pools=("pool-a", "pool-b", "batch-1"))
    for i in range(0, len(events), 1000):
        assert post(client, events[i:i + 1000]).status_code == 202
    runner.close_all()
    store, returned = runner.store, []
    read = store.read

    def counting_read(*args, **kwargs):
        rows = read(*args, **kwargs)
        returned.extend(rows)
        return rows

    monkeypatch.setattr(store, "read", counting_read)
    params = {"metric": "requests_total", "stat": "count", "from": T0, "to": T0 + 600,
              "step": "1m"}
    r = client.get("/v1/query", params={**params, "where": ["pool:pool-a", "command:predict"],
                                        "group_by": "command"}).json()
    assert r["series"][0]["labels"] == {"command": "predict"}
    assert sum(p[1] for p in r["series"][0]["points"]) == \
        sum(e.pool == "pool-a" and e.command == "predict" for e in events)
    # one detailed series (pool-a, predict) x 10 one-minute buckets, of the 6 detailed and 4
    # rolled-up request series stored
    assert len(returned) == 10
    assert {(row.series.labels[0], row.series.labels[3]) for row in returned} == \
        {("pool-a", "predict")}
    returned.clear()
    client.get("/v1/query", params={**params, "where": "pool:pool-a", "group_by": "command"})
    assert len(returned) == 20 and {row.series.labels[0] for row in returned} == {"pool-a"}


def test_requests_drill_down_lists_the_slowest_real_requests(stack):
    client, runner = stack
    events = requests(3_000, 300)
    assert post(client, events).status_code == 202
    runner.close_all()
    params = {"from": T0 + 60, "to": T0 + 120, "where": ["pool:pool-a", "worker_id:w1"]}
    body = client.get("/v1/requests", params=params).json()
    assert body["resolution"] == 10
    listed = body["requests"]
    mine = [e for e in events if e.pool == "pool-a" and e.worker_id == "w1"
            and T0 + 60 <= e.time < T0 + 120]
    assert listed[0]["duration_us"] == max(e.duration_us for e in mine), "slowest first"
    assert [x["duration_us"] for x in listed] == sorted((x["duration_us"] for x in listed),
                                                        reverse=True)
    real = {(e.time, e.duration_us, e.command, e.status) for e in mine}
    assert all((x["time"], x["duration_us"], x["command"], x["status"]) in real for x in listed)
    assert {(x["pool"], x["worker_id"]) for x in listed} == {("pool-a", "w1")}
    errors = client.get("/v1/requests", params={**params, "where": "pool:pool-a",
                                                "status": "error"}).json()["requests"]
    assert errors and all(x["status"] == "error" for x in errors)
    by_time = client.get("/v1/requests", params={**params, "order": "time", "limit": 3}).json()
    assert len(by_time["requests"]) == 3
    assert [x["time"] for x in by_time["requests"]] == sorted(x["time"] for x in by_time["requests"])
    bad = client.get("/v1/requests", params={"from": T0, "to": T0 + 60, "where": "command:x"})
    assert bad.status_code == 400 and bad.json()["param"] == "where"


def test_a_count_over_any_range_is_exact_over_the_buckets_it_says_it_covered(stack):
    """Ranges that start and end mid-bucket, at 10 s, 1 min and 1 h steps (and as one point):
    the points sum to exactly the events in [covered_from, covered_to), which contains the
    asked range and is made of whole buckets."""
    import random

    client, runner = stack
    events = requests(30_000, 3 * 3600)  # 3 hours from T0
    for i in range(0, len(events), 1_000):
        assert post(client, events[i:i + 1_000]).status_code == 202
        runner.flush()  # the flusher thread's job (not started here)
    runner.close_all()
    rng = random.Random(11)
    times = sorted(e.time for e in events)
    for step in ("10s", "1m", "1h", None):
        for _ in range(6):
            start = T0 + rng.uniform(0, 2 * 3600)
            end = start + rng.uniform(30, 3600)
            params = {"metric": "requests_total", "stat": "count",
                      "from": f"{start:.3f}", "to": f"{end:.3f}"}
            if step:
                params["step"] = step
            r = client.get("/v1/query", params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            lo, hi = body["covered_from"], body["covered_to"]
            assert lo <= start and hi >= end and lo % body["resolution"] == 0 \
                and hi % body["resolution"] == 0
            got = sum(p[1] for s in body["series"] for p in s["points"])
            assert got == sum(1 for t in times if lo <= t < hi), (step, start, end, body)


@pytest.mark.parametrize("wal", [True, False])
def test_the_write_ahead_log_follows_its_switch(tmp_path, wal):
    from snakepit_perf import config
    from snakepit_perf.embedded import build_embedded

    settings = config.load(env={"SNAKEPIT_PERF_DATA_DIR": str(tmp_path),
                                "SNAKEPIT_PERF_INGEST_WAL": str(wal).lower()})
    app = build_embedded(settings)
    with TestClient(app) as client:
        assert post(client, requests(10, 10)).status_code == 202
        assert (app.state.services.runner.wal is not None) is wal
    assert any((tmp_path / "wal").glob("*.wal")) is wal


def test_a_sender_held_back_by_429s_is_not_an_idle_stream(tmp_path):
    """While a sender is refused (rollups wait for a slow store), the flusher must not take
    the quiet for idleness and move the watermark to the wall clock: the rest of the stream
    would all be late (and held, at great cost, as late deltas)."""
    import time

    from runners.embedded import Overloaded

    store = SQLiteStore(tmp_path / "perf.sqlite3")
    runner = EmbeddedRunner(store, idle_grace=0.2)
    events = requests(2_000, 200)
    runner.submit(events[:1000])
    full, runner.max_pending_rollups = runner.max_pending_rollups, -1  # the store is behind
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:  # a sender retrying, refused each time
        with pytest.raises(Overloaded):
            runner.submit(events[1000:1100])
        runner.flush()
        time.sleep(0.05)
    runner.max_pending_rollups = full
    runner.submit(events[1000:])
    assert runner.engine.stats["late_events"] == 0
    time.sleep(0.3)
    runner.flush()  # now it is idle: the last windows close by the wall clock
    assert runner.engine.clock.closed_until > events[-1].time
    store.close()


def test_cpu_per_core_is_a_dimension_that_filters_and_groups(stack):
    client, runner = stack
    events = [{"type": "resource", "scope": "host", "host": h, "time": T0 + i,
               "cpu_per_core": [10.0 + i, 50.0, 90.0], "cpu_percent": 50.0}
              for h in ("a", "b") for i in range(3)]
    assert post(client, events).status_code == 202
    runner.flush()
    runner.close_all()

    def ask(**params) -> dict[str, float]:
        r = client.get("/v1/query", params={"metric": "cpu_core_percent", "from": T0,
                                            "to": T0 + 10, **params})
        assert r.status_code == 200, r.text
        return {",".join(s["labels"].values()): s["points"][0][1] for s in r.json()["series"]}

    assert ask(stat="mean", group_by="core") == {"0": 11.0, "1": 50.0, "2": 90.0}
    assert ask(stat="max", group_by="host,core", where="core:0") == {"a,0": 12.0, "b,0": 12.0}
    assert ask(stat="min", group_by="core", where=["core!=0", "host:b"]) == {"1": 50.0, "2": 90.0}
    assert ask(stat="mean") == {"": pytest.approx((33 + 150 + 270) / 9)}  # every core, host
    r = client.get("/v1/query", params={"metric": "cpu_percent", "stat": "mean", "from": T0,
                                        "to": T0 + 10, "group_by": "core"})
    assert r.status_code == 400  # only the per-core metric has the dimension
