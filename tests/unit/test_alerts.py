"""The alert lifecycle on synthetic minute signals with known answers."""

from __future__ import annotations

import random

from models.alerts import AlertEngine

T = 1_800_000_000


def normal(rnd: random.Random, **over) -> dict[str, float]:
    s = {"rate": 20 + rnd.uniform(-1, 1), "p99_s": 0.08 + rnd.uniform(-0.005, 0.005),
         "error_ratio": 0.005 + rnd.uniform(-0.001, 0.001), "queue_depth_max": rnd.choice([0, 1]),
         "crashes": 0.0}
    s.update(over)
    return s


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
