"""A Cassandra outage of 30 s during a run loses nothing: the worker pauses, retries, resumes,
and the stored rollups end complete."""

from __future__ import annotations

import threading
import time

import pytest

from harness import kafka as kh
from harness.data import T0, requests
from infra import local
from runners.faust_worker import FaustWorker
from snakepit_perf import config
from streams.rollup import SeriesRef
from streams.series import ALL

pytestmark = [pytest.mark.kafka, pytest.mark.cassandra]


def test_cassandra_stopped_for_30s_loses_nothing(kafka_bootstrap, local_servers,
                                                  cassandra_stores, unique_name):
    settings = config.load()
    cassandra = local.servers(settings.data_dir, cassandra_port=local_servers.cassandra_port)[1]
    if local.status(cassandra).state != "running":
        pytest.fail("this test stops and restarts Cassandra, so the harness (or `infra up`) "
                    "must own it; it is run by another process here")
    topic = unique_name
    kh.create_topic(kafka_bootstrap, topic)
    events = requests(200_000, 1200, pools=tuple(f"pool-{i}" for i in range(6)))
    closing = requests(6, 1, pools=tuple(f"pool-{i}" for i in range(6)), start=T0 + 3700)
    store = cassandra_stores(unique_name)
    worker = FaustWorker(store, kafka_bootstrap, topic, group=unique_name,
                         dlq_topic=f"{topic}.dlq")
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, kwargs={"should_stop": stop.is_set})
    thread.start()
    try:
        kh.produce(kafka_bootstrap, topic, events[:100_000])
        kh.wait_for(lambda: worker.stats["events"] >= 50_000, 120, "the worker to get going")
        local.down([cassandra])
        kh.produce(kafka_bootstrap, topic, events[100_000:] + closing)
        time.sleep(30)
        assert thread.is_alive()
        assert worker.stats["store_failures"] >= 1
        local.up([cassandra])
        ends = kh.end_offsets(kafka_bootstrap, topic)
        kh.wait_for(lambda: _offsets(store, unique_name, topic, ends) == ends, 180,
                    "the worker to catch up after the outage")
    finally:
        stop.set()
        thread.join(60)
        local.up([cassandra])
    refs = [SeriesRef("request", r.labels) for r in store.series("request")
            if r.labels[0] == ALL]  # the deployment-wide rolled-up series
    stored = sum(r.agg.counters["requests"] for r in store.read(refs, 3600, T0, T0 + 3600))
    assert stored == len(events)


def _offsets(store, group, topic, ends):
    try:
        return kh.stored_offsets(store, group, topic, ends)
    except Exception:  # the node is still coming back
        return None
