"""Rollup store and query figures, each against a baseline of the same run:

- rollup write throughput (rows/s), SQLite and Cassandra, vs encoding the same rows only;
- a 30-day, 1-minute range read of one series (43,200 rows) merged to hourly P99s, vs reading
  the same rows without merging;
- the query engine over 30 days and 20 series, grouped by pool, P99 per hour (it reads the
  hourly rollups the engine wrote alongside the 1-minute ones), vs the bare store read;
- stored bytes per series per day at each resolution;
- Cassandra: a 30-day read of one series without its digests (what a count needs), vs with;
  the 30-day, 20-series hourly P99 query's p50/p95.

    .venv/bin/python -m bench.store_query   (starts Cassandra if needed)
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.common import best_of, report, servers
from harness.data import T0
from query import engine as q
from store.sqlite import SQLiteStore
from streams.aggregate import Aggregate
from streams.rollup import Rollup, SeriesRef

DAYS = 30


def minute_aggs(n: int, seed: int = 1, per_minute: int = 600) -> list[Aggregate]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = Aggregate()
        values = np.sort(rng.lognormal(9, 0.8, per_minute)).tolist()
        a.add_values("duration_us", values)
        a.add_counter("requests", per_minute)
        a.add_counter("busy_us", sum(values))
        out.append(a)
    return out


def labels(i: int) -> tuple[str, ...]:
    return (f"pool-{i % 4}", "process", "grpc", f"cmd-{i}", "", "", "", "")


def write_rate(store, rollups: list[Rollup]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(rollups), 2000):
        store.write(rollups[i:i + 2000], shard="bench")
    return len(rollups) / (time.perf_counter() - t0)


def month_rollups(n_series: int, aggs: list[Aggregate], resolution: int = 60) -> list[Rollup]:
    n = DAYS * 86400 // resolution
    return [Rollup("request", labels(s), resolution, T0 + i * resolution,
                   aggs[(s * 7 + i) % len(aggs)]) for s in range(n_series) for i in range(n)]


def read_merge(store, ref: SeriesRef) -> tuple[float, float]:
    t0 = time.perf_counter()
    rows = store.read([ref], 60, T0, T0 + DAYS * 86400)
    t_read = time.perf_counter() - t0
    hourly: dict[int, Aggregate] = {}
    for r in rows:
        h = r.bucket - r.bucket % 3600
        if h in hourly:
            hourly[h].merge(r.agg)
        else:
            hourly[h] = r.agg
    p99s = [a.dists["duration_us"].quantile(0.99) for a in hourly.values()]
    assert len(rows) == DAYS * 1440 and len(p99s) == DAYS * 24
    return t_read, time.perf_counter() - t0


def main() -> None:
    aggs = minute_aggs(200)
    hour_aggs = minute_aggs(20, per_minute=2000)
    encode_only = [Rollup("request", labels(0), 60, T0 + i * 60, aggs[i % 200])
                   for i in range(20_000)]
    t0 = time.perf_counter()
    for r in encode_only:
        r.agg.to_bytes()
    base_encode = len(encode_only) / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as d:
        sqlite = SQLiteStore(Path(d) / "bench.sqlite3")
        sqlite_rate = write_rate(sqlite, month_rollups(1, aggs))
        write_rate(sqlite, month_rollups(20, hour_aggs, 3600))
        report("rollup writes (1-minute rollups with digests of 600 values)", [
            ("encode rows only (baseline)", base_encode, "rows/s"),
            ("SQLite write", sqlite_rate, "rows/s"),
        ], base_encode)

        ref = SeriesRef("request", labels(0))
        t_read, t_merge = min(read_merge(sqlite, ref) for _ in range(3))
        print(f"  30-day 1-min read of one series (43,200 rows), SQLite: read {t_read * 1000:,.0f}"
              f" ms, read + merge to hourly P99s {t_merge * 1000:,.0f} ms "
              f"({t_merge / t_read:.2f}x the bare read)")

        query = q.build("request_duration_seconds", "p99", str(T0), str(T0 + DAYS * 86400),
                        "1h", "pool", [])
        latencies = []
        for _ in range(5):
            t0 = time.perf_counter()
            q.run(sqlite, query)
            latencies.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sqlite.read(sqlite.series("request"), 3600, T0, T0 + DAYS * 86400)
        bare = time.perf_counter() - t0
        print(f"  query engine, 30 days, 20 series, by pool, P99 per hour: median "
              f"{statistics.median(latencies) * 1000:,.0f} ms, max {max(latencies) * 1000:,.0f} ms"
              f" ({statistics.median(latencies) / bare:.2f}x the bare store read of "
              f"{bare * 1000:,.0f} ms)")
        live = q.build("request_duration_seconds", "p99", str(T0), str(T0 + 3600), "10s",
                       "pool", [])
        t0 = time.perf_counter()
        q.run(sqlite, live)
        print(f"  1-hour range at 10 s (no 10 s data stored here, so the read is empty): "
              f"{(time.perf_counter() - t0) * 1000:,.1f} ms")

        ten = minute_aggs(20, per_minute=100)
        sizes = {res: sum(len(a.to_bytes()) for a in group) / len(group)
                 for res, group in ((10, ten), (60, aggs), (3600, hour_aggs))}
        print("\n## stored bytes per series per day (aggregate blobs, deflated; 600 requests/min)")
        for res, per_day in ((10, 8640), (60, 1440), (3600, 24)):
            print(f"  {res:>5} s resolution: {sizes[res]:,.0f} B per row, "
                  f"{sizes[res] * per_day / 1e6:,.2f} MB per series per day")
        sqlite.close()

    with servers() as settings:
        from store.cassandra import CassandraStore

        c = settings.cassandra
        ks = f"bench_{uuid.uuid4().hex[:8]}"
        cass = CassandraStore(c.hosts, c.port, ks, write_consistency="ONE",
                              read_consistency="ONE")
        try:
            rows1 = month_rollups(1, aggs)
            rate = write_rate(cass, rows1)
            report("Cassandra", [("encode rows only (baseline)", base_encode, "rows/s"),
                                 ("Cassandra write", rate, "rows/s")], base_encode)
            t_read, t_merge = min(read_merge(cass, SeriesRef("request", labels(0)))
                                  for _ in range(3))
            print(f"  30-day 1-min read of one series (43,200 rows), Cassandra: read "
                  f"{t_read * 1000:,.0f} ms, read + merge to hourly P99s {t_merge * 1000:,.0f} ms"
                  f" ({t_merge / t_read:.2f}x the bare read)")
            ref, span = SeriesRef("request", labels(0)), (T0, T0 + DAYS * 86400)
            full = best_of(lambda: cass.read([ref], 60, *span))
            counts = best_of(lambda: cass.read([ref], 60, *span, dists=set()))
            report("the same 43,200 rows, counters only (a count or rate query)", [
                ("with digests (baseline)", 43_200 / full, "rows/s"),
                ("counters, gauges and moments only", 43_200 / counts, "rows/s")],
                43_200 / full)
            write_rate(cass, month_rollups(20, hour_aggs, 3600))
            latencies = sorted(best_of(lambda: q.run(cass, query), 1) for _ in range(20))
            print(f"  query engine on Cassandra, 30 days, 20 series, by pool, P99 per hour: "
                  f"p50 {latencies[9] * 1000:,.0f} ms, p95 {latencies[18] * 1000:,.0f} ms")
        finally:
            cass.session.execute(f"DROP KEYSPACE IF EXISTS {ks}")
            cass.close()


if __name__ == "__main__":
    main()
