"""Alerts arrive on the real `snakepit.alerts` topic: a consumer subscribes as a user would and
sees the incident fire and resolve for the right pool."""

from __future__ import annotations

import threading

import orjson
import pytest
from confluent_kafka import Consumer

from models.kafka_alerts import KafkaAlertPublisher
from models.runner import AlertRunner
from simulator.model import Incident, Simulation
from streams.kafka_worker import KafkaWorker
from tests.integration import kafka_helpers as kh
from tests.support import T0

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]


def test_a_simulated_incident_fires_and_resolves_on_the_alerts_topic(
        kafka_bootstrap, cassandra_stores, unique_name):
    topic, alerts_topic = unique_name, f"{unique_name}.alerts"
    kh.create_topic(kafka_bootstrap, topic)
    kh.create_topic(kafka_bootstrap, alerts_topic, partitions=1)
    start = T0 + 10 * 3600
    incident = Incident("error_burst", "default", start + 5400, start + 6600)
    kh.produce(kafka_bootstrap, topic,
               list(Simulation(10, start, 7800, seed=3, incidents=[incident]).events()))
    subscriber = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{unique_name}-u",
                           "auto.offset.reset": "earliest"})
    subscriber.subscribe([alerts_topic])

    store = cassandra_stores(unique_name)
    alerts = AlertRunner(outputs=[KafkaAlertPublisher(kafka_bootstrap, alerts_topic)])
    worker = KafkaWorker(store, kafka_bootstrap, topic, group=unique_name,
                         dlq_topic=f"{topic}.dlq", on_minutes=alerts.consume)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"should_stop": stop.is_set})
    thread.start()
    got: list[dict] = []
    try:
        def resolved() -> bool:
            got.extend(orjson.loads(m.value()) for m in subscriber.consume(50, 0.5)
                       if m.error() is None)
            return any(n["status"] == "resolved" for n in got)

        kh.wait_for(resolved, 120, "a resolved alert on the topic")
    finally:
        stop.set()
        thread.join(60)
        subscriber.close()
    firing = [n for n in got if n["status"] == "firing"]
    assert firing and {n["labels"]["pool"] for n in firing} == {"default"}
    assert min(n["at"] for n in firing) - incident.start <= 180
    assert all(n["group"] == "pool=default" and n["incident_id"] for n in got)
    assert {n["fingerprint"] for n in got if n["status"] == "resolved"} <= \
        {n["fingerprint"] for n in firing}
