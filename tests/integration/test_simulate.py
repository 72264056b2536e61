"""`snakepit-perf simulate` drives the embedded `run` over HTTP and a real Kafka topic."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer

from harness import kafka as kh
from harness.metrics import samples
from harness.procs import free_port, up
from sdk.producer import EventProducer, ProducerBufferFull

EXE = kh.EXE


def test_simulate_drives_the_embedded_run_over_http(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path)}
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 (the child writes to it until the end)
    run = subprocess.Popen([EXE, "run", "--port", str(port)], env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    try:
        kh.wait_for(lambda: up(port), 30, "run to serve", procs=((run, tmp_path / "run.log"),))
        start = int(time.time()) - 600
        sim = subprocess.run([EXE, "simulate", "--url", f"http://127.0.0.1:{port}", "--fast",
                              "--rate", "100", "--duration", "120", "--start", str(start),
                              "--seed", "4"], capture_output=True, text=True, timeout=120)
        assert sim.returncode == 0, sim.stderr
        sent = int(sim.stdout.split()[1])
        # 100/s for 120 s, shaped by the time of day (the simulated night is quieter)
        assert "0 rejected" in sim.stdout and sent > 5_000
        params = {"metric": "requests_total", "stat": "count", "from": start,
                  "to": start + 120}

        def counted() -> float:
            r = httpx.get(f"http://127.0.0.1:{port}/v1/query", params=params).json()
            return sum(p[1] for s in r["series"] for p in s["points"])

        # The runner closes the last panes once the stream has been idle for a few seconds.
        kh.wait_for(lambda: counted() > 0.95 * sent / 1.5, 60, "rollups to be queryable")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert samples(metrics)["snakepit_perf_events_accepted_total"] == sent
    finally:
        run.terminate()
        run.wait(30)
        log.close()


@pytest.mark.kafka
def test_simulate_produces_batches_to_a_real_topic(kafka_bootstrap: str, unique_name: str,
                                                   tmp_path: Path):
    kh.create_topic(kafka_bootstrap, unique_name)
    env = {**os.environ, "SNAKEPIT_PERF_KAFKA_EVENTS_TOPIC": unique_name}
    sim = subprocess.run([EXE, "simulate", "--kafka", kafka_bootstrap, "--fast", "--rate", "50",
                          "--duration", "60", "--native"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert sim.returncode == 0, sim.stderr
    sent = int(sim.stdout.split()[1])
    c = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_name,
                  "auto.offset.reset": "earliest"})
    c.subscribe([unique_name])
    import orjson

    seen, native = 0, 0
    deadline = time.monotonic() + 60
    while seen < sent and time.monotonic() < deadline:
        for m in c.consume(100, 1.0):
            if m.error() is None:
                batch = orjson.loads(m.value())
                seen += len(batch)
                native += sum("event" in e for e in batch)
    c.close()
    assert seen == sent and native > sent / 2


def test_producer_buffer_full_is_a_clear_error():
    # Nothing listens on port 1; log_level 0 keeps librdkafka's reconnect chatter out of the
    # test report.
    producer = EventProducer("127.0.0.1:1", batch_size=1, max_buffered_messages=5,
                             **{"message.timeout.ms": 60_000, "log_level": 0})
    event = {"type": "request", "time": 1.8e9, "pool": "p", "command": "c", "duration_us": 1,
             "status": "ok"}
    with pytest.raises(ProducerBufferFull, match="buffer of 5 messages is full"):
        for _ in range(10):
            producer.send(event)
