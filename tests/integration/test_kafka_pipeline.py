"""Events through the real broker: worker → Cassandra rollups equal exact answers; rejects
reach the dead-letter topic with reasons; a crashed and rebalanced worker stores what a
crash-free one does."""

from __future__ import annotations

import base64
import random
import signal
from datetime import UTC, datetime

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from harness import kafka as kh
from harness.data import T0, exact_quantile, requests
from streams.aggregate import Aggregate
from streams.rollup import SeriesRef
from streams.series import ALL

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]


def closing_events(start: float, pools: tuple[str, ...] = ("pool-a", "pool-b")) -> list:
    """One event per pool (so per partition) far enough ahead to close every earlier hour."""
    return requests(len(pools), 1, pools=pools, start=start + 3600 + 30)


def test_worker_rollups_equal_exact_answers_and_rejects_go_to_dlq(
        kafka_bootstrap, cassandra_stores, unique_name):
    topic = unique_name
    kh.create_topic(kafka_bootstrap, topic)
    kh.create_topic(kafka_bootstrap, f"{topic}.dlq", partitions=1)
    events = requests(30_000, 600)
    kh.produce(kafka_bootstrap, topic, events + closing_events(T0))
    good = {"type": "request", "time": T0 + 5, "pool": "pool-a", "command": "predict",
            "duration_us": 77, "status": "ok", "worker_id": "w0"}
    native = {"event": ["snakepit", "grpc_worker", "execute", "stop"],
              "measurements": {"duration": 2_000_000}, "native_time_unit": "nanosecond",
              "metadata": {"pool": "pool-a", "command": "predict", "worker_id": "w0"},
              "time": datetime.fromtimestamp(T0 + 6, UTC).isoformat().replace("+00:00", "Z")}
    raw = Producer({"bootstrap.servers": kafka_bootstrap})
    raw.produce(topic, orjson.dumps([good, {**good, "status": "maybe"}, native]), key=b"pool-a")
    raw.produce(topic, b"\xff not json", key=b"pool-a")
    raw.produce(topic, orjson.dumps({"event": ["snakepit", "pool", "saturated"],
                                     "measurements": {"queue_size": "lots"}, "time": T0 + 7}),
                key=b"pool-a")
    assert raw.flush(30) == 0

    store = cassandra_stores(unique_name)
    kh.create_topic(kafka_bootstrap, f"{topic}.rollups")
    kh.run_worker_to_end(store, kafka_bootstrap, topic, unique_name, dlq_topic=f"{topic}.dlq",
                         rollups_topic=f"{topic}.rollups")

    expected = events + [_as_request(good), _as_request(native, duration_us=2000)]
    published: dict[bytes, dict] = {}  # by key: a re-sent rollup replaces the first
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{unique_name}-r",
                       "auto.offset.reset": "earliest"})
    reader.subscribe([f"{topic}.rollups"])
    try:
        while True:
            batch = [m for m in reader.consume(500, 5) if m.error() is None]
            if not batch:
                break
            published.update((m.key(), orjson.loads(m.value())) for m in batch)
    finally:
        reader.close()
    minutes = [r for r in published.values() if r["family"] == "request"
               and r["resolution_s"] == 60 and r["labels"]["worker_profile"] != ALL]
    assert sum(r["counters"]["requests"] for r in minutes) == len(expected), \
        "every closed rollup is published to the rollups topic"
    one = max(minutes, key=lambda r: r["counters"]["requests"])
    stored = Aggregate.from_bytes(base64.b64decode(one["aggregate"]))
    assert stored.dists["duration_us"].count == one["dists"]["duration_us"]["count"]
    assert one["dists"]["duration_us"]["p99"] == stored.dists["duration_us"].quantile(0.99)
    for pool in ("pool-a", "pool-b"):
        refs = [r for r in store.series("request") if r.labels[0] == pool
                and ALL not in r.labels]
        total = Aggregate()
        for row in store.read(refs, 60, T0, T0 + 600):
            total.merge(row.agg)
        mine = [e.duration_us for e in expected if e.pool == pool]
        d = total.dists["duration_us"]
        assert d.count == len(mine) and d.sum == sum(mine)
        assert abs(d.quantile(0.99) - exact_quantile(mine, 0.99)) / exact_quantile(mine, .99) \
            <= 0.01
    hour = store.read([SeriesRef(r.family, r.labels) for r in store.series("worker")], 3600,
                      T0, T0 + 3600)
    assert sum(r.agg.counters["requests"] for r in hour) == len(expected)

    dlq = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"{unique_name}-dlq",
                    "auto.offset.reset": "earliest"})
    dlq.subscribe([f"{topic}.dlq"])
    got = []
    kh.wait_for(lambda: got.extend(m for m in dlq.consume(10, 1.0) if not m.error())
                or len(got) >= 3, 30, "3 dead letters")
    dlq.close()
    reasons = sorted(dict(m.headers())["reason"].decode() for m in got)
    assert reasons[0].startswith("invalid JSON")
    assert "Invalid enum value 'maybe'" in reasons[1]
    assert reasons[2] == "snakepit.pool.saturated: measurement 'queue_size' should be a number, " \
                         "got 'lots'"
    assert {m.value() for m in got} >= {b"\xff not json"}
    assert all(dict(m.headers())["source"].decode().startswith(f"kafka:{topic}/") for m in got)
    assert len(store.rejects(10)) == 3


def _as_request(obj: dict, **override):
    from schemas.decode import accept

    event, reason = accept(obj)
    assert reason is None
    for k, v in override.items():
        setattr(event, k, v)
    return event


def test_crashes_and_rebalance_store_exactly_what_a_crash_free_run_does(
        kafka_bootstrap, cassandra_stores, cassandra_session, local_servers, unique_name,
        tmp_path):
    topic = unique_name
    kh.create_topic(kafka_bootstrap, topic)
    pools = tuple(f"pool-{i}" for i in range(12))
    # Half the events in one 10 s pane, well over RequestPane.BLOCK per partition, so crashes
    # also hit panes mid-compaction; 150k more over the rest of the hour (many buckets; more
    # only made the test slower: 1M events took 241 s).
    events = requests(500_000, 9.9, pools=pools, seed=5) + \
        requests(150_000, 3590, pools=pools, seed=6, start=T0 + 10)
    kh.produce(kafka_bootstrap, topic, events + closing_events(T0, pools))
    ends = kh.end_offsets(kafka_bootstrap, topic)
    port = local_servers.cassandra_port

    clean = cassandra_stores(f"{unique_name}_clean")
    proc = kh.worker_process(kafka_bootstrap, topic, f"{unique_name}-clean", clean.keyspace,
                             port, tmp_path / "clean.log")
    try:
        kh.wait_for(lambda: kh.stored_offsets(clean, f"{unique_name}-clean", topic, ends) == ends,
                    300, "the crash-free worker to finish",
                    procs=((proc, tmp_path / "clean.log"),))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)

    crashy = cassandra_stores(f"{unique_name}_crashy")
    group = f"{unique_name}-crashy"
    total = sum(ends.values())
    log = tmp_path / "crashy.log"
    rnd = random.Random(11)
    for kill in range(3):
        proc = kh.worker_process(kafka_bootstrap, topic, group, crashy.keyspace, port, log)
        target = total * (kill + 1) // 4 + rnd.randint(0, 50)
        kh.wait_for(lambda t=target: sum(kh.stored_offsets(crashy, group, topic, ends).values())
                    >= t, 300, f"progress before kill {kill + 1}", procs=((proc, log),))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    first = kh.worker_process(kafka_bootstrap, topic, group, crashy.keyspace, port, log)
    kh.wait_for(lambda: sum(kh.stored_offsets(crashy, group, topic, ends).values())
                >= total * 0.85, 300, "progress before the second worker joins",
                procs=((first, log),))
    second = kh.worker_process(kafka_bootstrap, topic, group, crashy.keyspace, port, log)
    try:
        kh.wait_for(lambda: kh.stored_offsets(crashy, group, topic, ends) == ends, 300,
                    "the crashed and rebalanced workers to finish",
                    procs=((first, log), (second, log)))
    finally:
        for p in (first, second):
            p.send_signal(signal.SIGTERM)
            p.wait(60)

    want = kh.all_rows(cassandra_session, clean.keyspace)
    got = kh.all_rows(cassandra_session, crashy.keyspace)
    assert len(want) > 1000
    assert got.keys() == want.keys()
    assert got == want  # byte-equal aggregates: counts and digests
    requests_stored = sum(Aggregate.from_bytes(v).counters.get("requests", 0)
                          for k, v in want.items()
                          if k[0] == "request" and k[2] == 3600 and ALL not in k[1])
    assert requests_stored == len(events)
