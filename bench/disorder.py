"""Disorder: the same 600,000 requests (10 minutes of event time, 4 pools) in time order and
shuffled across the 10 minutes, through the real worker (Kafka and Cassandra) and through the
embedded runner (SQLite). Reports each one's time, shuffled as a ratio of in order (aim <= 3x),
and checks that both store the same per-minute counts.

    .venv/bin/python -m bench.disorder [--events 600000]   (starts Kafka and Cassandra if needed)
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
import uuid
from pathlib import Path

import msgspec

from bench.common import report, servers
from bench.worker_kafka import produce_raw, worker_run
from harness import kafka as kh
from harness.data import requests
from runners.embedded import EmbeddedRunner, Overloaded
from store.cassandra import CassandraStore
from store.sqlite import SQLiteStore
from streams.series import ALL

PER_MESSAGE = 500


def streams(n: int) -> tuple[list, list]:
    start = (time.time() - 3 * 3600) // 3600 * 3600  # closed hours: stored once idle
    ordered = requests(n, 600, pools=tuple(f"pool-{i}" for i in range(4)), start=start)
    shuffled = list(ordered)
    random.Random(3).shuffle(shuffled)
    return ordered, shuffled


def minute_counts(store, start: int) -> dict[tuple, float]:
    refs = [r for r in store.series("request") if r.labels[1:] == (ALL,) * 7]
    out: dict[tuple, float] = {}
    for row in store.read(refs, 60, start, start + 3600):
        key = (row.series.labels[0], row.bucket)
        out[key] = out.get(key, 0) + row.agg.counters.get("requests", 0)
    return out


def embedded(events: list) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteStore(Path(d) / "s.sqlite3")
        runner = EmbeddedRunner(store)
        runner.start()  # the flusher thread, as in `run`
        t0 = time.perf_counter()
        for i in range(0, len(events), PER_MESSAGE):
            while True:
                try:
                    runner.submit(events[i:i + PER_MESSAGE])
                    break
                except Overloaded:  # the 429 a sender would get: wait as the SDK does
                    time.sleep(0.05)
        runner.stop()
        runner.close_all()
        elapsed = time.perf_counter() - t0
        counts = minute_counts(store, int(min(e.time for e in events)) // 3600 * 3600)
        store.close()
        return elapsed, counts


def worker(settings, store: CassandraStore, events: list) -> tuple[float, dict]:
    bootstrap = settings.kafka.bootstrap
    topic = f"bench-disorder-{uuid.uuid4().hex[:8]}"
    kh.create_topic(bootstrap, topic, partitions=1)
    enc = msgspec.json.Encoder()
    closing = requests(1, 1, pools=("pool-0",), start=max(e.time for e in events) + 3700)
    messages = [enc.encode(events[i:i + PER_MESSAGE]) for i in range(0, len(events), PER_MESSAGE)]
    produce_raw(bootstrap, topic, [*messages, enc.encode(closing)])
    elapsed = worker_run(bootstrap, topic, store)
    counts = minute_counts(store, int(min(e.time for e in events)) // 3600 * 3600)
    return elapsed, counts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=600_000)
    n = ap.parse_args().events
    ordered, shuffled = streams(n)
    (t_in, c_in), (t_sh, c_sh) = embedded(ordered), embedded(shuffled)
    report(f"embedded runner, {n:,} requests over 10 minutes", [
        ("in time order (baseline)", n / t_in, "events/s"),
        ("shuffled across the 10 minutes", n / t_sh, "events/s")], n / t_in)
    print(f"  shuffled costs {t_sh / t_in:.2f}x; same per-minute counts: {c_in == c_sh}")
    with servers() as settings:
        c = settings.cassandra
        rows = []
        for label, events in (("in time order (baseline)", ordered),
                              ("shuffled across the 10 minutes", shuffled)):
            keyspace = f"bench_{uuid.uuid4().hex[:8]}"
            store = CassandraStore(c.hosts, c.port, keyspace, write_consistency="ONE",
                                   read_consistency="ONE")
            try:
                rows.append((label, *worker(settings, store, events)))
            finally:
                store.session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
                store.close()
    report(f"worker (Kafka + Cassandra), {n:,} requests over 10 minutes",
           [(label, n / t, "events/s") for label, t, _ in rows], n / rows[0][1])
    print(f"  shuffled costs {rows[1][1] / rows[0][1]:.2f}x; same per-minute counts: "
          f"{rows[0][2] == rows[1][2]}")


if __name__ == "__main__":
    main()
