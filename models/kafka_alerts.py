"""Publish alert notifications to the ``snakepit.alerts`` topic, keyed by group (pool), so a
subscriber sees each pool's firing and resolved notifications in order."""

from __future__ import annotations

from typing import Any

import orjson
from confluent_kafka import Producer


class KafkaAlertPublisher:
    def __init__(self, bootstrap: str, topic: str = "snakepit.alerts") -> None:
        self.topic = topic
        self._producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                   "linger.ms": 5})

    def send(self, notes: list[dict[str, Any]], firing: list[dict[str, Any]]) -> None:
        for note in notes:
            self.publish(note)

    def publish(self, note: dict[str, Any]) -> None:
        self._producer.produce(self.topic, orjson.dumps(note), key=note["group"].encode(),
                               headers={"status": note["status"].encode(),
                                        "fingerprint": note["fingerprint"].encode()})
        # Alerts are rare and must not sit in a local buffer when the worker stops.
        if self._producer.flush(10) > 0:
            raise RuntimeError(f"alert {note['fingerprint']} not delivered to {self.topic}")
