"""Helpers for tests against the real broker: topics, producing test streams, reading stores."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from pathlib import Path

import orjson
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness.procs import EXE, wait_for
from sdk.producer import EventProducer


def create_topic(bootstrap: str, name: str, partitions: int = 3) -> None:
    """Create a topic and wait until the broker's metadata shows every partition.

    Creation returns once the controller has it; the metadata a client asks for right after can
    still say "unknown topic" for a moment, and a test must not race that.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(name, num_partitions=partitions)]).values():
        fut.result(timeout=30)
    deadline = time.monotonic() + 30
    while True:
        topic = admin.list_topics(name, timeout=10).topics[name]
        if topic.error is None and len(topic.partitions) == partitions:
            return
        assert time.monotonic() < deadline, f"topic {name} has no metadata after 30 s: {topic.error}"
        time.sleep(0.2)


def produce(bootstrap: str, topic: str, events, batch_size: int = 500) -> None:
    producer = EventProducer(bootstrap, topic, batch_size=batch_size)
    producer.send_many(events)
    assert producer.flush(60) == 0 and producer.failed == 0


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "offset-probe"})
    try:
        meta = c.list_topics(topic, timeout=10).topics[topic]
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions}
    finally:
        c.close()


def stored_offsets(store, group: str, topic: str, partitions) -> dict[int, int]:
    out = {}
    for p in partitions:
        offsets = store.checkpoint_offsets(f"{group}:{topic}:{p}")
        out[p] = offsets[f"{topic}:{p}"] if offsets else 0
    return out


def consume(bootstrap: str, topic: str, n: int, timeout: float) -> list[dict]:
    """The first ``n`` JSON messages of a topic, as a subscriber reading from the start sees
    them (fewer if ``timeout`` passes first)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    out: list[dict] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < n and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is not None and msg.error() is None:
                out.append(orjson.loads(msg.value()))
    finally:
        c.close()
    return out


def distributed_env(bootstrap: str, topic: str, group: str, cassandra_port: int,
                    keyspace: str | None = None) -> dict[str, str]:
    """The environment of an `api` or `worker` process on a test's own topic and keyspace."""
    return {**os.environ, "SNAKEPIT_PERF_KAFKA_BOOTSTRAP": bootstrap,
            "SNAKEPIT_PERF_KAFKA_EVENTS_TOPIC": topic,
            "SNAKEPIT_PERF_KAFKA_DLQ_TOPIC": f"{topic}.dlq",
            "SNAKEPIT_PERF_KAFKA_CONSUMER_GROUP": group,
            "SNAKEPIT_PERF_CASSANDRA_KEYSPACE": keyspace or group,
            "SNAKEPIT_PERF_CASSANDRA_PORT": str(cassandra_port)}


def worker_process(bootstrap: str, topic: str, group: str, keyspace: str, cassandra_port: int,
                   log: Path) -> subprocess.Popen:
    env = distributed_env(bootstrap, topic, group, cassandra_port, keyspace)
    return subprocess.Popen([EXE, "worker"], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)


def run_worker_to_end(store, bootstrap: str, topic: str, group: str, **options) -> None:
    """Run an in-process Faust worker until it has checkpointed every partition of ``topic``
    to its end offset, then stop it."""
    import threading

    from runners.faust_worker import FaustWorker

    worker = FaustWorker(store, bootstrap, topic, group=group, **options)
    ends = end_offsets(bootstrap, topic)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"should_stop": stop.is_set})
    thread.start()
    try:
        wait_for(lambda: stored_offsets(store, group, topic, ends) == ends, 90,
                 "the worker to checkpoint every partition to its end")
    finally:
        stop.set()
        thread.join(60)


def all_rows(session, keyspace: str) -> dict[tuple, bytes]:
    """Every stored rollup's encoded aggregate (its digests column joined back on)."""
    rows = session.execute(f"SELECT family, labels, resolution, bucket, shard, agg, digests "
                           f"FROM {keyspace}.rollups")
    return {(r.family, r.labels, r.resolution, r.bucket, r.shard): r.agg + (r.digests or b"")
            for r in rows}
