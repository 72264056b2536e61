"""Deploys judged end to end: a real embedded `run` publishing on a real Kafka alerts topic.
A deploy followed by a 3x slower pool is "regressed" on the API, on the topic and at the gate;
a deploy followed by more of the same is "unchanged"."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import msgspec
import orjson
import pytest
from confluent_kafka import Consumer

from harness import kafka as kh
from harness.data import T0
from harness.procs import free_port, up
from simulator.model import Incident, Simulation

pytestmark = [pytest.mark.kafka]
WINDOW_S = 120  # before and after each deploy (settle 0): 12 windows of 10 s a side


def post_events(base: str, events: list) -> None:
    for i in range(0, len(events), 5000):
        r = httpx.post(f"{base}/v1/events", content=msgspec.json.encode(events[i:i + 5000]),
                       headers={"Content-Type": "application/json"}, timeout=60)
        assert r.status_code == 202 and r.json()["rejected"] == [], r.text


def stored(base: str, start: float, end: float) -> float:
    r = httpx.get(f"{base}/v1/query", params={"metric": "requests_total", "stat": "count",
                                               "from": int(start), "to": int(end) + 1}).json()
    return sum(p[1] for s in r["series"] for p in s["points"])


def annotate(base: str, version: str, at: float) -> None:
    out = subprocess.run([kh.EXE, "annotate", "deploy", "--version", version, "--time",
                          f"{at:.3f}", "--url", base], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_deploy_then_a_slower_pool_is_regressed_and_more_of_the_same_is_unchanged(
        kafka_bootstrap, unique_name, tmp_path: Path):
    topic = f"{unique_name}.alerts"
    kh.create_topic(kafka_bootstrap, topic, partitions=1)
    port = free_port()
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path / "data"),
           "SNAKEPIT_PERF_ALERTS_KAFKA": "true", "SNAKEPIT_PERF_KAFKA_BOOTSTRAP": kafka_bootstrap,
           "SNAKEPIT_PERF_KAFKA_ALERTS_TOPIC": topic,
           "SNAKEPIT_PERF_DEPLOYS_BEFORE_S": str(WINDOW_S), "SNAKEPIT_PERF_DEPLOYS_SETTLE_S": "0",
           "SNAKEPIT_PERF_DEPLOYS_AFTER_S": str(WINDOW_S),
           "SNAKEPIT_PERF_DEPLOYS_LATENESS_S": "15", "SNAKEPIT_PERF_DEPLOYS_CHECK_EVERY_S": "1"}
    log = tmp_path / "run.log"
    run = subprocess.Popen([kh.EXE, "run", "--port", str(port)], env=env,
                           stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    subscriber = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{unique_name}-u",
                           "auto.offset.reset": "earliest"})
    subscriber.subscribe([topic])
    try:
        kh.wait_for(lambda: up(port), 60, "run to serve", procs=((run, log),))
        now = time.time()
        # Both windows in the past at the same time of day every run (yesterday 16:00 UTC, the
        # simulated load's flat peak): the simulation, so the verdicts, are the same each run,
        # not a function of when the suite runs (judged at now - 900 s, a calm deploy once came
        # out "regressed" at 03:30, and at 08:00 it always does: the load is rising then).
        calm_deploy, slow_deploy = T0 + 8 * 3600, T0 + 8 * 3600 + 500
        events = [*Simulation(60, calm_deploy - WINDOW_S, 2 * WINDOW_S, seed=11).events(),
                  *Simulation(60, slow_deploy - WINDOW_S, 2 * WINDOW_S, seed=12, incidents=[
                      Incident("latency_regression", "default", slow_deploy,
                               slow_deploy + WINDOW_S)]).events()]
        post_events(base, events)
        expected = sum(1 for e in events if type(e).__name__ == "Request")
        kh.wait_for(lambda: stored(base, calm_deploy - WINDOW_S, now) == expected, 120,
                    f"{expected} requests stored")
        # the deploys are annotated after their data is in: the judge takes them at once
        annotate(base, "v1.4.0", calm_deploy)
        annotate(base, "v1.5.0", slow_deploy)
        out = subprocess.run([kh.EXE, "gate", "--url", base, "--deploy", "v1.5.0", "--wait",
                              "--junit", str(tmp_path / "gate.xml")],
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 1, out.stdout + out.stderr
        assert "deploy v1.5.0: regressed" in out.stdout and "pool=default" in out.stdout
        ok = subprocess.run([kh.EXE, "gate", "--url", base, "--deploy", "v1.4.0", "--wait"],
                            capture_output=True, text=True, timeout=300)
        assert ok.returncode == 0, ok.stdout + ok.stderr

        verdicts = {v["version"]: v for v in httpx.get(f"{base}/v1/deploys").json()}
        assert {k: v["status"] for k, v in verdicts.items()} == \
            {"v1.4.0": "unchanged", "v1.5.0": "regressed"}
        slow = verdicts["v1.5.0"]
        assert abs(slow["time"] - slow_deploy) < 1  # annotations are kept to the second
        assert slow["after"] == [slow["time"], slow["time"] + WINDOW_S]
        assert slow["before"] == [slow["time"] - WINDOW_S, slow["time"]]
        worst = slow["regressions"][0]
        assert worst["change"] > 0.5 and worst["ci"][0] > 0  # 3x the service time
        culprit = {c["dimension"]: c["value"] for c in slow["root_cause"]["culprit"]}
        assert culprit.get("pool") == "default", slow["root_cause"]
        # both runs are benchmark runs of scenario deploy, comparable like any other
        runs = httpx.get(f"{base}/v1/benchmarks", params={"scenario": "deploy"}).json()
        assert sorted(r["labels"]["phase"] for r in runs) == ["after", "after", "before",
                                                              "before"]

        got: dict[str, dict] = {}
        deadline = time.monotonic() + 60
        while len(got) < 2 and time.monotonic() < deadline:
            msg = subscriber.poll(1.0)
            if msg is not None and msg.error() is None:
                note = orjson.loads(msg.value())
                assert dict(msg.headers())["status"] == note["status"].encode()
                got[note["version"]] = note
        assert {k: v["status"] for k, v in got.items()} == \
            {"v1.4.0": "unchanged", "v1.5.0": "regressed"}
        assert got["v1.5.0"]["type"] == "deploy_verdict"
        assert got["v1.5.0"]["summary"] == slow["summary"]
    finally:
        subscriber.close()
        run.terminate()
        run.wait(60)
