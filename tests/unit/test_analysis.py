"""Compare, trends and correlations on simulated incidents with known answers."""

from __future__ import annotations

import msgspec
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from harness.data import T0
from runners.embedded import EmbeddedRunner
from simulator.model import Incident, Simulation
from store.sqlite import SQLiteStore

START = T0 + 14 * 3600


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    store = SQLiteStore(tmp_path_factory.mktemp("analysis") / "a.sqlite3")
    runner = EmbeddedRunner(store)
    incidents = [Incident("latency_regression", "default", START + 1200, START + 2400),
                 Incident("queue_saturation", "batch", START + 600, START + 1200)]
    events = list(Simulation(60, START, 2400, seed=9, incidents=incidents).events())
    with TestClient(create_app(Services(store=store, sink=runner, engine=runner.engine))) as c:
        for i in range(0, len(events), 5000):
            c.post("/v1/events", content=msgspec.json.encode(events[i:i + 5000]),
                   headers={"Content-Type": "application/json"})
        runner.close_all()
        yield c
    store.close()


def test_compare_finds_the_regressed_period_significant(client):
    # Before either incident (the first 10 minutes) the default and batch pools' medians are
    # alike, and the test finds no difference.
    before = {"metric": "request_duration_seconds", "stat": "p50", "from": START,
              "to": START + 600, "a": ["pool:default"], "b": ["pool:batch"]}
    r = client.get("/v1/compare", params=before).json()
    assert not r["significant"] and r["p_value"] > 0.5
    assert abs(r["relative_difference"]) < 0.05 and r["a"]["steps"] == r["b"]["steps"] == 10
    # During the regression the default pool's median (queueing included) is far above the
    # healthy batch pool's, and the test says so; before it, the two are alike in size.
    during = client.get("/v1/compare", params={
        "metric": "request_duration_seconds", "stat": "p50", "from": START + 1500,
        "to": START + 2400, "a": ["pool:batch"], "b": ["pool:default"]}).json()
    assert during["significant"] and during["p_value"] < 0.001
    assert during["b"]["overall"] > 3 * during["a"]["overall"]
    assert during["relative_difference"] > 2


def test_trend_of_latency_across_the_regression_is_up(client):
    r = client.get("/v1/trends", params={"metric": "request_duration_seconds", "stat": "p50",
                                         "from": START + 600, "to": START + 2400, "step": "1m",
                                         "where": ["pool:default"]}).json()
    assert r["direction"] == "up" and r["slope_per_hour"] > 0 and r["p_value"] < 0.05
    flat = client.get("/v1/trends", params={"metric": "requests_total", "stat": "count",
                                            "from": START, "to": START + 600, "step": "1m",
                                            "where": ["pool:gpu"]}).json()
    assert flat["direction"] == "flat" and flat["points"] == 10


def test_queue_depth_correlates_with_queue_wait_during_saturation(client):
    r = client.get("/v1/correlations", params={
        "metrics": ["queue_depth:mean", "queue_wait_seconds:p99", "cpu_percent:mean"],
        "from": START, "to": START + 1800, "step": "1m", "where": ["pool:batch"]})
    assert r.status_code == 200, r.text
    pairs = {(c["a"], c["b"]): c for c in r.json()}
    qd = pairs[("queue_depth:mean", "queue_wait_seconds:p99")]
    assert qd["pearson_r"] > 0.8 and qd["p_value"] < 0.01 and qd["points"] == 30
    bad = client.get("/v1/correlations", params={"metrics": ["queue_depth:mean"],
                                                 "from": START, "to": START + 60})
    assert bad.status_code == 400 and bad.json()["param"] == "metrics"
