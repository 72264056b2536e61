"""The distributed deployment end to end: `api` (ingest → Kafka) + `worker` (Kafka → Cassandra)
as separate processes; queries through the API equal exact answers from the sent events."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import msgspec
import pytest

from harness import kafka as kh
from harness.data import T0, exact_quantile, requests
from harness.procs import free_port, up

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]


def test_api_and_worker_processes_answer_exactly(kafka_bootstrap, local_servers,
                                                 cassandra_session, unique_name, tmp_path: Path):
    topic = unique_name
    kh.create_topic(kafka_bootstrap, topic)
    kh.create_topic(kafka_bootstrap, f"{topic}.dlq", partitions=1)
    kh.create_topic(kafka_bootstrap, f"{topic}.alerts", partitions=1)
    port = free_port()
    env = {**kh.distributed_env(kafka_bootstrap, topic, unique_name,
                                local_servers.cassandra_port),
           "SNAKEPIT_PERF_API_PORT": str(port), "SNAKEPIT_PERF_KAFKA_ALERTS_TOPIC": f"{topic}.alerts",
           "SNAKEPIT_PERF_DEPLOYS_BEFORE_S": "300", "SNAKEPIT_PERF_DEPLOYS_SETTLE_S": "0",
           "SNAKEPIT_PERF_DEPLOYS_AFTER_S": "300", "SNAKEPIT_PERF_DEPLOYS_CHECK_EVERY_S": "1"}
    logs = {name: open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (children write to them)
            for name in ("api", "worker")}
    api = subprocess.Popen([kh.EXE, "api"], env=env, stdout=logs["api"],
                           stderr=subprocess.STDOUT)
    worker = subprocess.Popen([kh.EXE, "worker"], env=env, stdout=logs["worker"],
                              stderr=subprocess.STDOUT)
    procs = ((api, tmp_path / "api.log"), (worker, tmp_path / "worker.log"))
    base = f"http://127.0.0.1:{port}"
    try:
        kh.wait_for(lambda: up(port), 60, "the API to serve", procs=procs)
        events = requests(20_000, 600, pools=("pool-a", "pool-b"))
        closing = requests(2, 1, pools=("pool-a", "pool-b"), start=T0 + 3700)
        for i in range(0, len(events), 2000):
            r = httpx.post(f"{base}/v1/events", content=msgspec.json.encode(events[i:i + 2000]),
                           headers={"Content-Type": "application/json"}, timeout=60)
            assert r.status_code == 202 and r.json()["accepted"] == 2000
        httpx.post(f"{base}/v1/events", content=msgspec.json.encode(closing),
                   headers={"Content-Type": "application/json"}, timeout=60)
        bad = httpx.post(f"{base}/v1/events", content=b'[{"type": "request"}]',
                         headers={"Content-Type": "application/json"})
        assert bad.json()["accepted"] == 0 and len(bad.json()["rejected"]) == 1

        params = {"metric": "requests_total", "stat": "count", "from": T0, "to": T0 + 3600,
                  "group_by": "pool"}

        def counted() -> dict[str, float]:
            r = httpx.get(f"{base}/v1/query", params=params, timeout=30).json()
            return {s["labels"]["pool"]: s["points"][0][1] for s in r["series"] if s["points"]}

        kh.wait_for(lambda: sum(counted().values()) == len(events), 120,
                    "the worker to store every event", procs=procs)
        assert counted() == {p: sum(e.pool == p for e in events) for p in ("pool-a", "pool-b")}
        p99 = httpx.get(f"{base}/v1/query", params={
            "metric": "request_duration_seconds", "stat": "p99", "from": T0, "to": T0 + 600,
            "step": "5m", "where": "pool:pool-a"}).json()
        for t, value in p99["series"][0]["points"]:
            window = [e.duration_us for e in events if e.pool == "pool-a" and
                      t <= e.time < t + 300]
            exact = exact_quantile(window, 0.99) / 1e6
            assert abs(value - exact) / exact <= 0.01
        rejects = httpx.get(f"{base}/v1/rejects").json()
        assert any("missing required field" in r["reason"] for r in rejects)
        # a deploy half-way through the same steady traffic: judged by the API, from Cassandra
        out = subprocess.run([kh.EXE, "annotate", "deploy", "--version", "v9", "--time",
                              str(T0 + 300), "--url", base], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        gate = subprocess.run([kh.EXE, "gate", "--url", base, "--deploy", "v9", "--wait"],
                              capture_output=True, text=True, timeout=120)
        assert gate.returncode == 0, gate.stdout + gate.stderr
        verdict = httpx.get(f"{base}/v1/deploys/v9").json()
        assert verdict["status"] == "unchanged" and verdict["after"] == [T0 + 300, T0 + 600]
        notes = kh.consume(kafka_bootstrap, f"{topic}.alerts", 1, 60)
        assert [(n["type"], n["version"], n["status"]) for n in notes] == \
            [("deploy_verdict", "v9", "unchanged")]
    finally:
        for proc, _ in procs:
            proc.terminate()
            proc.wait(30)
        for f in logs.values():
            f.close()
        cassandra_session.execute(f"DROP KEYSPACE IF EXISTS {unique_name}")
