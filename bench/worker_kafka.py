"""The Faust stream worker end to end on the real broker (consume → decode → engine → rollups and
checkpoints in Cassandra) vs a bare aiokafka ``getmany`` + ``orjson.loads`` loop over the same
messages; and the producer library vs raw confluent-kafka produce of pre-encoded batches.

    .venv/bin/python -m bench.worker_kafka     (starts Kafka and Cassandra if needed)
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import orjson
from confluent_kafka import Producer

from bench.common import batches, report, servers
from harness import kafka as kh
from harness.data import requests
from runners.faust_worker import FaustWorker
from sdk.producer import EventProducer
from store.cassandra import CassandraStore


def produce_raw(bootstrap: str, topic: str, messages: list[bytes]) -> float:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4"})
    t0 = time.perf_counter()
    for i, m in enumerate(messages):
        while True:
            try:
                p.produce(topic, m, key=f"pool-{i % 4}".encode())
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    p.flush(60)
    return time.perf_counter() - t0


def bare_consume(bootstrap: str, topic: str, n_messages: int) -> float:
    from aiokafka import AIOKafkaConsumer

    async def go() -> float:
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4()}",
                             auto_offset_reset="earliest", max_partition_fetch_bytes=16 << 20,
                             fetch_max_bytes=64 << 20)
        await c.start()
        seen, t0 = 0, None
        try:
            while seen < n_messages:
                got = await c.getmany(timeout_ms=1000, max_records=5000)
                if got and t0 is None:
                    t0 = time.perf_counter()
                for records in got.values():
                    for r in records:
                        orjson.loads(r.value)
                        seen += 1
            return time.perf_counter() - t0
        finally:
            await c.stop()

    return asyncio.run(go())


def faust_bare(bootstrap: str, topic: str, n_messages: int) -> float:
    """A Faust agent that only decodes each message with orjson: what Faust's consuming costs
    before any of our work (its consumer runs on a thread and hands messages over)."""
    import faust

    app = faust.App(f"bare-faust-{uuid.uuid4().hex[:8]}", broker=f"kafka://{bootstrap}",
                    autodiscover=False, web_enabled=False, topic_disable_leader=True,
                    consumer_auto_offset_reset="earliest", datadir="/tmp/snakepit-perf-faust",
                    consumer_max_fetch_size=16 * 1024 * 1024, broker_max_poll_records=1000)
    seen, started = [0], [0.0]

    @app.agent(app.topic(topic, key_type=bytes, value_type=bytes, key_serializer="raw",
                         value_serializer="raw"))
    async def decode(stream):
        async for value in stream:
            if not seen[0]:
                started[0] = time.perf_counter()
            orjson.loads(value)
            seen[0] += 1

    async def go() -> float:
        await app.start()
        try:
            while seen[0] < n_messages:
                await asyncio.sleep(0.01)
            return time.perf_counter() - started[0]
        finally:
            await app.stop()

    return asyncio.run(go())


def worker_run(bootstrap: str, topic: str, store: CassandraStore) -> float:
    group = f"bench-{uuid.uuid4().hex[:8]}"
    ends = kh.end_offsets(bootstrap, topic)
    worker = FaustWorker(store, bootstrap, topic, group=group, dlq_topic=f"{topic}.dlq",
                         rollups_topic=f"{topic}.rollups")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"should_stop": stop.is_set})
    thread.start()
    # Timed from the first message consumed, as the baseline is: joining the group is not work.
    kh.wait_for(lambda: worker.stats["messages"] > 0, 120, "the first message", interval=0.01)
    t0 = time.perf_counter()
    kh.wait_for(lambda: kh.stored_offsets(store, group, topic, ends) == ends, 900,
                "the worker to finish", interval=0.1)
    elapsed = time.perf_counter() - t0
    stop.set()
    thread.join(60)
    return elapsed


def one_case(settings, store, n_events: int, per_message: int, density: int) -> None:
    """``density``: requests per second of event time (see bench.engine_embedded)."""
    bootstrap = settings.kafka.bootstrap
    topic = f"bench-{per_message}-{uuid.uuid4().hex[:8]}"
    kh.create_topic(bootstrap, topic)
    messages = batches(n_events, per_message, seconds=n_events / density)
    produce_raw(bootstrap, topic, messages)
    base = n_events / bare_consume(bootstrap, topic, len(messages))
    bare_faust = n_events / faust_bare(bootstrap, topic, len(messages))
    worker = n_events / worker_run(bootstrap, topic, store)
    report(f"Faust stream worker, {per_message} event(s) per message, {n_events:,} events, "
           f"{density:,} requests per second of event time", [
        ("bare aiokafka getmany + orjson.loads (baseline)", base, "events/s"),
        ("bare Faust agent + orjson.loads (no engine, no store)", bare_faust, "events/s"),
        ("worker end to end (rollups + checkpoints stored)", worker, "events/s"),
    ], base)


def producer_case(settings) -> None:
    bootstrap = settings.kafka.bootstrap
    n = 300_000
    events = requests(n, n / 5000, pools=tuple(f"pool-{i}" for i in range(4)))
    topic = f"bench-producer-{uuid.uuid4().hex[:8]}"
    kh.create_topic(bootstrap, topic)
    base = n / produce_raw(bootstrap, topic, batches(n, 500))
    producer = EventProducer(bootstrap, topic)
    t0 = time.perf_counter()
    producer.send_many(events)
    producer.flush(60)
    ours = n / (time.perf_counter() - t0)
    report("producer library to the real broker (500 events/message)", [
        ("raw produce of pre-encoded batches (baseline)", base, "events/s"),
        ("EventProducer: encode + batch + produce", ours, "events/s"),
    ], base)


def main() -> None:
    with servers() as settings:
        keyspace = f"bench_{uuid.uuid4().hex[:8]}"
        c = settings.cassandra
        store = CassandraStore(c.hosts, c.port, keyspace, write_consistency="ONE",
                               read_consistency="ONE")
        try:
            producer_case(settings)
            one_case(settings, store, 1_000_000, 500, 100_000)
            one_case(settings, store, 1_000_000, 500, 20_000)
            one_case(settings, store, 1_000_000, 500, 1_000)
            one_case(settings, store, 30_000, 1, 1_000)
        finally:
            store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
            store.close()


if __name__ == "__main__":
    main()
