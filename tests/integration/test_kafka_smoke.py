"""The Kafka the harness runs is a real Apache Kafka: partitions, consumer groups, two clients."""

from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer, Producer

from harness.kafka import create_topic

pytestmark = pytest.mark.kafka


def test_confluent_kafka_group_consumes_all_partitions(kafka_bootstrap: str, unique_name: str):
    create_topic(kafka_bootstrap, unique_name)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(60):
        producer.produce(unique_name, key=f"pool-{i}", value=f"event-{i}".encode(), partition=i % 3)
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": unique_name,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([unique_name])
    seen: dict[str, int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(seen) < 60 and time.monotonic() < deadline:
            for msg in consumer.consume(100, timeout=1.0):
                assert msg.error() is None, msg.error()
                seen[msg.value().decode()] = msg.partition()
        consumer.commit(asynchronous=False)
        committed = consumer.committed(consumer.assignment(), timeout=10)
    finally:
        consumer.close()
    assert sorted(seen) == sorted(f"event-{i}" for i in range(60))
    assert set(seen.values()) == {0, 1, 2}, "the group reads every partition"
    assert sum(tp.offset for tp in committed) == 60


def test_aiokafka_group_consumes_all_partitions(kafka_bootstrap: str, unique_name: str):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    create_topic(kafka_bootstrap, unique_name)

    async def roundtrip() -> dict[str, int]:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(30):
                await producer.send(unique_name, f"event-{i}".encode(), partition=i % 3)
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(unique_name, bootstrap_servers=kafka_bootstrap,
                                    group_id=unique_name, auto_offset_reset="earliest")
        await consumer.start()
        seen: dict[str, int] = {}
        try:
            deadline = time.monotonic() + 60
            while len(seen) < 30 and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for records in batches.values():
                    for rec in records:
                        seen[rec.value.decode()] = rec.partition
        finally:
            await consumer.stop()
        return seen

    seen = asyncio.run(roundtrip())
    assert sorted(seen) == sorted(f"event-{i}" for i in range(30))
    assert set(seen.values()) == {0, 1, 2}
