"""Alerts arrive on the real `snakepit.alerts` topic: a consumer subscribes as a user would and
sees the incident fire and resolve for the right pool, across a restart of the worker, though
a node with a broken clock sent events from 2099 and 1971 into the same pool's stream."""

from __future__ import annotations

import threading

import orjson
import pytest
from confluent_kafka import Consumer

from harness import kafka as kh
from harness.data import T0, clock_poison
from models.kafka_alerts import KafkaAlertPublisher
from models.runner import AlertRunner
from runners.faust_worker import FaustWorker
from simulator.model import Incident, Simulation

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]


def test_a_simulated_incident_fires_and_resolves_on_the_alerts_topic(
        kafka_bootstrap, cassandra_stores, unique_name):
    topic, alerts_topic = unique_name, f"{unique_name}.alerts"
    kh.create_topic(kafka_bootstrap, topic)
    kh.create_topic(kafka_bootstrap, alerts_topic, partitions=1)
    start = T0 + 10 * 3600
    incident = Incident("error_burst", "default", start + 5400, start + 6600)
    events = list(Simulation(10, start, 7800, seed=3, incidents=[incident]).events())
    middle = incident.start + 600
    first = [e for e in events if e.time < middle]
    first[len(first) // 3:len(first) // 3] = clock_poison("default")
    kh.produce(kafka_bootstrap, topic, first)
    subscriber = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{unique_name}-u",
                           "auto.offset.reset": "earliest"})
    subscriber.subscribe([alerts_topic])

    store = cassandra_stores(unique_name)
    got: list[dict] = []

    def run_worker(until, what: str) -> None:
        """A worker with its alert runner, as `snakepit-perf worker` wires them, until ``until``."""
        alerts = AlertRunner(outputs=[KafkaAlertPublisher(kafka_bootstrap, alerts_topic)],
                             store=store, checkpoint=f"alerts:{unique_name}", shared=True)
        worker = FaustWorker(store, kafka_bootstrap, topic, group=unique_name,
                             dlq_topic=f"{topic}.dlq", on_minutes=alerts.consume)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, kwargs={"should_stop": stop.is_set})
        thread.start()
        try:
            def seen() -> bool:
                got.extend(orjson.loads(m.value()) for m in subscriber.consume(50, 0.5)
                           if m.error() is None)
                return until()

            kh.wait_for(seen, 120, what)
        finally:
            stop.set()
            thread.join(60)

    try:
        run_worker(lambda: any(n["status"] == "firing" for n in got), "a firing alert")
        before_restart = len(got)
        # The worker stops mid-incident; its successor resumes the alert state.
        kh.produce(kafka_bootstrap, topic, [e for e in events if e.time >= middle])
        run_worker(lambda: any(n["status"] == "resolved" for n in got), "a resolved alert")
    finally:
        subscriber.close()
    firing = [n for n in got if n["status"] == "firing"]
    assert firing and {n["labels"]["pool"] for n in firing} == {"default"}
    assert min(n["at"] for n in firing) - incident.start <= 180
    assert all(n["group"] == "pool=default" and n["incident_id"] for n in got)
    resolved = [n for n in got if n["status"] == "resolved"]
    assert {n["fingerprint"] for n in resolved} <= {n["fingerprint"] for n in firing}
    after = got[before_restart:]
    assert not any(n["status"] == "firing" and n["fingerprint"] in
                   {f["fingerprint"] for f in got[:before_restart]} for n in after), \
        "the restarted worker does not page again for an alert already firing"
    assert {n["incident_id"] for n in resolved} <= {n["incident_id"] for n in firing}
    reasons = [r.reason for r in store.rejects(100)]
    assert any("2099-12-31T00:00:00Z is" in r and "ahead of the server's clock" in r
               for r in reasons), reasons
    assert any("`$.time`" in r for r in reasons), reasons  # 1971: before the schema's 2000
