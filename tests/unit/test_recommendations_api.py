"""Recommendations through the API (in-process ASGI, real SQLite, events posted to ingest):
found, applied, validated with the benchmark method, rolled back when a change hurts."""

from __future__ import annotations

import msgspec
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.recommendations import Recommender, targets
from api.services import Services
from harness.data import MIX, T0, mean_ms
from models.recommend import RecommendSettings
from runners.embedded import EmbeddedRunner
from simulator.model import PoolSpec, Simulation, daily_shape
from store.sqlite import SQLiteStore

PEAK = T0 + 8 * 3600
BEFORE, AFTER = 360.0, 420.0
CONFIG = RecommendSettings(before_s=300, settle_s=60, after_s=300, lateness_s=0, lookback_hours=1,
                         peak_minutes=5, shrink_history_hours=0)


class Clock:
    def __init__(self) -> None:
        self.now = PEAK + BEFORE

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def stack(tmp_path):
    store = SQLiteStore(tmp_path / "perf.sqlite3")
    runner = EmbeddedRunner(store)
    app = create_app(Services(store=store, sink=runner, engine=runner.engine))
    clock = Clock()
    app.state.recommender = Recommender(app.state.services, CONFIG, clock=clock)
    with TestClient(app) as client:
        yield client, runner, clock
    store.close()


def simulate(client, runner, size: int, busy_at_8: float, start: float, seconds: float,
             seed: int) -> None:
    """One pool ``default`` of ``size`` workers, loaded so that 8 workers would be
    ``busy_at_8`` busy, posted to ingest as a producer would."""
    rate = busy_at_8 * 8 / (mean_ms(MIX) / 1000) / daily_shape(PEAK)
    spec = PoolSpec("default", pool_size=size, commands=list(MIX), crash_rate_per_hour=0,
                    error_rate=0)
    events = list(Simulation(rate, start, seconds, seed=seed, pools=[spec]).events())
    for i in range(0, len(events), 5000):
        r = client.post("/v1/events", content=msgspec.json.encode(events[i:i + 5000]),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 202, r.text
    runner.close_all()


def listing(client, **params):
    r = client.get("/v1/recommendations", params={"to": PEAK + BEFORE, **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_too_small_pool_is_recommended_applied_and_validated(stack):
    client, runner, clock = stack
    simulate(client, runner, 4, 0.475, PEAK, BEFORE, seed=1)  # 4 workers 95 % busy
    (rec,) = listing(client)
    assert rec["kind"] == "pool_too_small" and rec["state"] == "open"
    assert rec["current"] == 4 and rec["proposed"] > 4
    assert listing(client, state="dismissed") == []

    r = client.post(f"/v1/recommendations/{rec['id']}/applied",
                    json={"time": PEAK + BEFORE, "end": str(PEAK + BEFORE)})
    assert r.status_code == 201, r.text
    assert r.json()["tags"]["to"] == str(rec["proposed"])
    again = client.post(f"/v1/recommendations/{rec['id']}/applied",
                        json={"end": str(PEAK + BEFORE)})
    assert again.status_code == 409
    simulate(client, runner, rec["proposed"], 0.475, PEAK + BEFORE, AFTER, seed=2)

    judge = client.app.state.recommender
    assert judge.due() == []  # the after window has not passed yet
    clock.now = PEAK + BEFORE + AFTER
    (judged,) = judge.check()
    outcome = judged["outcome"]
    assert outcome["status"] == "validated", outcome
    assert outcome["improvements"] and not outcome["regressions"]
    items = {i["id"]: i for i in listing(client)}
    assert items[rec["id"]]["state"] == "validated"
    (acc,) = client.get("/v1/recommendations/accuracy").json()
    assert acc["predicted_s"] == pytest.approx(rec["impact"]["p95_queue_wait_s"]["after"])
    assert acc["observed_s"] == pytest.approx(outcome["observed"])
    assert judge.due() == []  # judged once


def test_a_harmful_change_is_flagged_and_rolled_back_to_the_previous_value(stack):
    client, runner, clock = stack
    simulate(client, runner, 8, 0.6, PEAK, BEFORE, seed=3)  # right-sized
    assert listing(client) == []
    r = client.post("/v1/annotations", json={
        "type": "annotation", "time": PEAK + BEFORE, "kind": "config_change",
        "title": "halve default", "pool": "default",
        "tags": {"setting": "pool_size", "from": "8", "to": "4"}})
    assert r.status_code == 201, r.text
    simulate(client, runner, 4, 0.6, PEAK + BEFORE, AFTER, seed=4)  # 120 % busy
    clock.now = PEAK + BEFORE + AFTER
    (judged,) = client.app.state.recommender.check()
    assert judged["outcome"]["status"] == "made_worse"
    items = listing(client, to=PEAK + BEFORE + AFTER)
    (rollback,) = [i for i in items if i["kind"] == "rollback"]
    assert rollback["setting"] == "pool_size" and rollback["proposed"] == 8
    assert rollback["current"] == 4 and rollback["priority"] == "high"
    assert "%{name: :default, pool_size: 8}" in rollback["snippet"]
    assert any(d["metric"].startswith("p9") for d in rollback["impact"]["regressions"])


def test_dismissed_and_unknown_recommendations(stack):
    client, runner, _ = stack
    simulate(client, runner, 16, 0.1, PEAK, BEFORE, seed=5)  # 16 workers, 5 % busy
    (rec,) = listing(client)
    assert rec["kind"] == "pool_too_large"
    r = client.post(f"/v1/recommendations/{rec['id']}/dismiss", json={"end": str(PEAK + BEFORE)})
    assert r.status_code == 201
    assert [i["state"] for i in listing(client)] == ["dismissed"]
    assert client.post("/v1/recommendations/nope/applied", json={}).status_code == 404
    bad = client.get("/v1/recommendations", params={"state": "maybe"})
    assert bad.status_code == 400 and bad.json()["param"] == "state"


def test_a_pool_size_change_nobody_annotated_is_seen_and_validated(stack):
    client, runner, clock = stack
    simulate(client, runner, 8, 0.6, PEAK, BEFORE, seed=3)
    simulate(client, runner, 4, 0.6, PEAK + BEFORE, AFTER, seed=4)  # halved, unannotated
    clock.now = PEAK + BEFORE + AFTER
    (judged,) = client.app.state.recommender.check()
    assert judged["outcome"]["status"] == "made_worse"
    assert (judged["outcome"]["from"], judged["outcome"]["to"]) == ("8", "4")
    marks = client.get("/v1/annotations", params={"from": PEAK, "to": PEAK + 2000}).json()
    assert [(m["kind"], m["tags"]["source"]) for m in marks] == [("config_change", "observed")]
    assert marks[0]["time"] == PEAK + BEFORE  # the 10 s bucket the new size first showed in
    assert client.app.state.recommender.check() == []  # seen once, judged once
    (rollback,) = [i for i in listing(client, to=PEAK + BEFORE + AFTER) if i["kind"] == "rollback"]
    assert rollback["proposed"] == 8


def test_settings_reach_the_recommender():
    from snakepit_perf import config
    from snakepit_perf.alerting import recommender

    settings = config.load(env={"SNAKEPIT_PERF_RECOMMEND_TARGET_P95_WAIT_MS": "20"})
    store = SQLiteStore(":memory:")
    r = recommender(Services(store=store, sink=EmbeddedRunner(store)), settings, None)
    assert targets(r.config).p95_wait_s == 0.02 and r.config.after_s == 600


def test_annotations_anyone_may_write_do_not_break_listing_or_judging(stack):
    """Tags are free text: a recommendation id that does not exist, JSON that is not, a
    setting with no values, a prediction that is not a number."""
    client, runner, clock = stack
    simulate(client, runner, 8, 0.6, PEAK, BEFORE, seed=3)
    for i, tags in enumerate(({"recommendation": "nope"}, {"recommendation": "x", "recommendation_json": "{"},
                 {"recommendation": "y", "recommendation_json": "[1]"},
                 {"setting": "pool_size"},
                 {"setting": "pool_size", "from": "8", "to": "4",
                  "predicted_raw_p95_queue_wait_s": "fast"})):
        r = client.post("/v1/annotations", json={
            "type": "annotation", "time": PEAK + BEFORE, "kind": "config_change",
            "title": f"odd change {i}", "pool": "default", "tags": tags})
        assert r.status_code == 201, r.text
    simulate(client, runner, 4, 0.6, PEAK + BEFORE, AFTER, seed=4)
    clock.now = PEAK + BEFORE + AFTER
    judged = client.app.state.recommender.check()
    assert len(judged) == 5 and {j["outcome"]["status"] for j in judged} == {"made_worse"}
    assert all(j["outcome"]["predicted_raw"] is None for j in judged)
    items = listing(client, to=PEAK + BEFORE + AFTER)
    kinds = sorted((i["kind"], i["state"]) for i in items)
    assert kinds == [("config_change", "made_worse")] * 5 + [
        ("pool_too_small", "open"), ("rollback", "open")]  # the halved pool is too small now
    (rollback,) = [i for i in items if i["kind"] == "rollback"]  # only where "from" is known
    assert rollback["proposed"] == 8
    assert client.get("/v1/recommendations/accuracy").json() == []
