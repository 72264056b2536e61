"""The alert lifecycle on synthetic minute signals with known answers."""

from __future__ import annotations

import random

from harness.data import T0, clock_poison, normal
from models.alerts import AlertEngine

T = T0


def feed(engine: AlertEngine, minutes: range, pool: str = "default", seed: int = 1, **over):
    rnd = random.Random(seed)
    notes = []
    for m in minutes:
        notes += engine.observe(T + m * 60, {pool: normal(rnd, **over)})
    return notes


def test_cold_start_is_quiet_and_a_latency_step_fires_then_recovers():
    e = AlertEngine()
    assert feed(e, range(0, 60)) == []
    firing = feed(e, range(60, 70), p99_s=0.4)
    assert [n["status"] for n in firing] == ["firing"]
    note = firing[0]
    assert note["alertname"] == "snakepit_p99_s_anomaly" and note["labels"]["pool"] == "default"
    assert note["at"] == T + 62 * 60  # two bad minutes (for = 2 min), stamped at minute end
    assert note["context"]["observed"] == 0.4
    assert abs(note["context"]["expected"] - 0.08) < 0.01
    assert note["impact"]["affected_requests"] > 0 and "pool_size" in note["remediation"]
    resolved = feed(e, range(70, 80))
    assert [n["status"] for n in resolved] == ["resolved"]
    assert resolved[0]["fingerprint"] == note["fingerprint"]
    assert "back to" in resolved[0]["recovery"] and "peak was 0.4" in resolved[0]["recovery"]


def test_alerts_firing_together_share_one_incident_and_queueing_inhibits_latency():
    e = AlertEngine()
    feed(e, range(0, 60))
    notes = feed(e, range(60, 66), p99_s=0.5, queue_depth_max=400, error_ratio=0.2)
    names = {n["alertname"] for n in notes if n["status"] == "firing"}
    assert names == {"snakepit_queue_depth_max_anomaly", "snakepit_error_ratio_anomaly"}
    assert len({n["incident_id"] for n in notes}) == 1  # one incident, not three pages


def test_a_level_shift_pages_once_then_becomes_the_new_normal():
    e = AlertEngine()
    feed(e, range(0, 60))
    notes = feed(e, range(60, 300), p99_s=0.2)  # a deploy made the pool slower for good
    assert [n["status"] for n in notes] == ["firing", "resolved"]
    assert feed(e, range(300, 400), p99_s=0.2) == []


def test_pools_are_independent():
    e = AlertEngine()
    feed(e, range(0, 60), pool="a")
    feed(e, range(0, 60), pool="b", seed=2)
    notes = feed(e, range(60, 65), pool="a", error_ratio=0.3)
    notes += feed(e, range(60, 65), pool="b", seed=2)
    assert {n["labels"]["pool"] for n in notes} == {"a"}


def test_an_incident_reaches_get_v1_alerts_through_the_embedded_pipeline(tmp_path):
    """Simulated traffic → engine → 1-minute rollups → alert engine → GET /v1/alerts."""
    import msgspec
    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.services import Services
    from models.runner import AlertRunner
    from runners.embedded import EmbeddedRunner
    from simulator.model import Incident, Simulation
    from store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "alerts.sqlite3")
    alerts = AlertRunner()
    runner = EmbeddedRunner(store, on_minutes=alerts.consume)
    app = create_app(Services(store=store, sink=runner, engine=runner.engine, alerts=alerts))
    start = T + 10 * 3600
    incident = Incident("error_burst", "default", start + 5400, start + 6600)
    events = list(Simulation(10, start, 7800, seed=3, incidents=[incident]).events())
    events[len(events) // 3:len(events) // 3] = clock_poison("default")
    with TestClient(app) as client:
        for i in range(0, len(events), 5000):
            client.post("/v1/events", content=msgspec.json.encode(events[i:i + 5000]),
                        headers={"Content-Type": "application/json"})
            runner.flush()
        runner.close_all()
        history = client.get("/v1/alerts", params={"state": "all"}).json()
        mine = [n for n in history if n["labels"]["pool"] == "default"]
        fired = [n for n in mine if n["status"] == "firing"]
        assert fired and all(n["at"] >= incident.start for n in fired)
        assert min(n["at"] for n in fired) - incident.start <= 180
        assert {n["alertname"] for n in fired} == {"snakepit_error_ratio_anomaly"}
        reasons = [r["reason"] for r in client.get("/v1/rejects").json()]
        assert len(reasons) == 2 and any("ahead of the server's clock" in r for r in reasons)
        assert any(n["status"] == "resolved" and n["at"] >= incident.end for n in mine)
        assert client.get("/v1/alerts").json() == []  # nothing firing at the end
        assert client.get("/v1/alerts", params={"state": "bogus"}).status_code == 422
    store.close()


def test_a_restart_resumes_without_cold_start_or_a_second_page(tmp_path):
    from models.runner import AlertRunner
    from store.base import Checkpoint
    from store.sqlite import SQLiteStore

    store = SQLiteStore(tmp_path / "a.sqlite3")
    e = AlertEngine()
    feed(e, range(0, 60))
    assert [n["status"] for n in feed(e, range(60, 65), error_ratio=0.3)] == ["firing"]
    store.write([], checkpoint=("alerts", Checkpoint(e.snapshot())))
    restarted = AlertRunner(store=store).engine  # a new process loads the checkpoint
    assert feed(restarted, range(65, 70), error_ratio=0.3) == []  # still firing: no new page
    notes = feed(restarted, range(70, 80))
    assert [n["status"] for n in notes] == ["resolved"]
    assert notes[0]["incident_id"] == e.history[-1]["incident_id"]
    # Baselines came along: a new incident fires at once, with no 15-minute cold start.
    assert [n["status"] for n in feed(restarted, range(80, 83), p99_s=0.5)] == ["firing"]
    store.close()
