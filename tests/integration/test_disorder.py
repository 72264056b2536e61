"""Disorder costs little and changes nothing: the same requests in time order and shuffled
across 10 minutes of event time, through the real worker (Kafka, Cassandra) and the embedded
runner, store the same counts, sums and extremes per series and minute; the shuffled stream's
late deltas take one row per series and bucket per offset group, not one per message.
(bench.disorder measures the cost at 600,000 events.)"""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from harness import kafka as kh
from harness.data import T0, requests
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore

N = 100_000


def streams() -> tuple[list, list]:
    ordered = requests(N, 600, pools=("pool-a", "pool-b", "pool-c", "pool-d"), start=T0)
    shuffled = list(ordered)
    random.Random(3).shuffle(shuffled)
    return ordered, shuffled


def exact_part(store) -> dict[tuple, tuple]:
    """Per detailed request series and minute, the exact statistics (deltas merged)."""
    refs = [r for r in store.series("request") if "__all__" not in r.labels]
    out: dict[tuple, list] = {}
    for row in store.read(refs, 60, T0, T0 + 3600):
        d = row.agg.dists["duration_us"]
        key = (row.series.labels, row.bucket)
        acc = out.setdefault(key, [0, 0, 0.0, float("inf"), float("-inf")])
        acc[0] += row.agg.counters.get("requests", 0)
        acc[1] += row.agg.counters.get("errors", 0)
        acc[2] += d.sum
        acc[3], acc[4] = min(acc[3], d.min), max(acc[4], d.max)
    return {k: tuple(v) for k, v in out.items()}


def test_the_embedded_runner_stores_the_same_for_shuffled_input(tmp_path: Path):
    results = []
    for name, events in zip(("ordered", "shuffled"), streams(), strict=True):
        store = SQLiteStore(tmp_path / f"{name}.sqlite3")
        runner = EmbeddedRunner(store)
        for i in range(0, N, 500):
            runner.submit(events[i:i + 500])
            if i % 5_000 == 0:
                runner.flush()
        runner.close_all()
        results.append(exact_part(store))
        store.close()
    assert results[0] and results[0] == results[1]
    assert sum(v[0] for v in results[0].values()) == N


@pytest.mark.kafka
@pytest.mark.cassandra
def test_the_worker_stores_the_same_for_shuffled_input_in_few_rows(
        kafka_bootstrap, cassandra_stores, unique_name):
    results, late_rows, all_rows = [], [], []
    for name, events in zip(("ordered", "shuffled"), streams(), strict=True):
        topic = f"{unique_name}-{name}"
        kh.create_topic(kafka_bootstrap, topic, partitions=1)
        enc = msgspec.json.Encoder()
        closing = requests(1, 1, pools=("pool-a",), start=T0 + 600 + 3700)
        raw = Producer({"bootstrap.servers": kafka_bootstrap, "linger.ms": 5})
        for i in range(0, N, 500):
            raw.produce(topic, enc.encode(events[i:i + 500]))
            raw.poll(0)
        raw.produce(topic, enc.encode(closing))
        assert raw.flush(60) == 0
        store = cassandra_stores(f"{unique_name}_{name}")
        kh.run_worker_to_end(store, kafka_bootstrap, topic, f"{unique_name}-{name}")
        results.append(exact_part(store))
        shards = [r.shard for r in
                  store.session.execute(f"SELECT shard FROM {store.keyspace}.rollups")]
        late_rows.append(sum(1 for shard in shards if "@" in shard))
        all_rows.append(len(shards))
    assert results[0] and results[0] == results[1]
    assert sum(v[0] for v in results[0].values()) == N
    assert late_rows[0] == 0 and late_rows[1] > 0
    # at most one delta row per stored row of the in-order run (one offset group), where one
    # per message would be up to 200
    assert late_rows[1] <= all_rows[0], f"{late_rows[1]} delta rows for {all_rows[0]} rows"
