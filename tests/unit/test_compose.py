"""docker-compose.yml cannot be run here (no Docker engine), so check it against the defaults."""

from __future__ import annotations

from pathlib import Path

import yaml

from snakepit_perf import config

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _published(service: dict) -> set[int]:
    return {int(p.split(":")[0]) for p in service["ports"]}


def test_compose_publishes_the_ports_the_code_defaults_to():
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    defaults = config.load(env={})
    kafka_port = int(defaults.kafka.bootstrap.rsplit(":", 1)[1])
    assert kafka_port in _published(services["kafka"])
    assert defaults.cassandra.port in _published(services["cassandra"])
    env = services["kafka"]["environment"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{defaults.kafka.bootstrap}"
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["cassandra"]["image"] == "cassandra:5.0"
