"""docker-compose.yml cannot be run here (no Docker engine), so check it against the code."""

from __future__ import annotations

from pathlib import Path

import yaml

from snakepit_perf import config

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _published(service: dict) -> set[int]:
    return {int(p.split(":")[0]) for p in service["ports"]}


def test_compose_publishes_the_ports_the_code_defaults_to():
    defaults = config.load(env={})
    kafka_port = int(defaults.kafka.bootstrap.rsplit(":", 1)[1])
    assert kafka_port in _published(COMPOSE["kafka"])
    assert defaults.cassandra.port in _published(COMPOSE["cassandra"])
    assert defaults.api.port in _published(COMPOSE["api"])
    env = COMPOSE["kafka"]["environment"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{defaults.kafka.bootstrap}"
    assert COMPOSE["kafka"]["image"].startswith("apache/kafka:4.")
    assert COMPOSE["cassandra"]["image"] == "cassandra:5.0"


def test_worker_and_api_settings_are_real_settings_with_the_default_names():
    defaults = config.load(env={})
    for name in ("worker", "api"):
        service = COMPOSE[name]
        env = {k: v for k, v in service["environment"].items() if k.startswith("SNAKEPIT_PERF_")}
        env["SNAKEPIT_PERF_API_KEYS"] = "ci:admin:" + "0" * 64
        loaded = config.load(env=env)  # unknown names would raise
        assert loaded.kafka.events_topic == defaults.kafka.events_topic
        assert loaded.kafka.dlq_topic == defaults.kafka.dlq_topic
        assert loaded.kafka.consumer_group == defaults.kafka.consumer_group
        assert loaded.cassandra.keyspace == defaults.cassandra.keyspace
        assert loaded.cassandra.port == defaults.cassandra.port
        assert service["command"][0] in ("worker", "api")


def test_dockerfile_copies_every_package():
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = [p.rstrip("*") for p in include if (ROOT / p.rstrip("*")).is_dir()]
    assert len(packages) >= 8
    for package in packages:
        assert f"COPY {package} {package}" in dockerfile, package
