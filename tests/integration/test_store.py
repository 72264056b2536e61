"""One behavioural suite for both stores: real SQLite and the real Cassandra node."""

from __future__ import annotations

import time

import pytest

from harness.data import T0
from store.base import Checkpoint, RejectRecord
from store.sqlite import SQLiteStore
from streams.aggregate import Aggregate
from streams.rollup import Rollup, SeriesRef


def agg(n: int, base: float = 100.0) -> Aggregate:
    a = Aggregate()
    a.add_counter("requests", n)
    a.add_values("duration_us", [base + i for i in range(n)])
    a.add_gauge("queue_depth", T0, n)
    return a


@pytest.fixture
def cassandra_store(cassandra_stores, unique_name):
    return cassandra_stores(unique_name)


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.cassandra)])
def store(request, tmp_path):
    if request.param == "cassandra":
        yield request.getfixturevalue("cassandra_store")
        return
    s = SQLiteStore(tmp_path / "s.sqlite3")
    yield s
    s.close()


LABELS = ("pool-a", "process", "grpc", "predict", "", "", "", "")


def test_write_and_read_each_resolution(store):
    rollups = [Rollup("request", LABELS, res, T0 + i * res, agg(i + 1))
               for res in (10, 60, 3600) for i in range(5)]
    store.write(rollups, shard="0")
    ref = SeriesRef("request", LABELS)
    assert store.series("request") == [ref]
    for res in (10, 60, 3600):
        rows = store.read([ref], res, T0, T0 + 5 * res)
        assert [r.bucket for r in rows] == [T0 + i * res for i in range(5)]
        assert [r.agg.counters["requests"] for r in rows] == [1, 2, 3, 4, 5]
        assert rows[2].agg == agg(3)
        assert len(store.read([ref], res, T0 + res, T0 + 3 * res)) == 2


def test_range_reads_span_days_and_partitions(store):
    # 10 s buckets every 6 hours over 9 days: crosses 9 day-partitions at 10 s.
    buckets = [T0 + i * 6 * 3600 for i in range(36)]
    store.write([Rollup("request", LABELS, 10, b, agg(1)) for b in buckets])
    rows = store.read([SeriesRef("request", LABELS)], 10, T0, T0 + 9 * 86400)
    assert [r.bucket for r in rows] == buckets


def test_rewrites_are_idempotent_and_shards_merge(store):
    ref = SeriesRef("request", LABELS)
    for _ in range(3):
        store.write([Rollup("request", LABELS, 10, T0, agg(5))], shard="0")
    store.write([Rollup("request", LABELS, 10, T0, agg(2))], shard="1")
    late = Rollup("request", LABELS, 10, T0, agg(1, base=9000), late=True, tag="offset-77")
    store.write([late], shard="0")
    store.write([late], shard="0")  # a replay of the same input unit
    (row,) = store.read([ref], 10, T0, T0 + 10)
    assert row.agg.counters["requests"] == 5 + 2 + 1
    assert row.agg.dists["duration_us"].max == 9000


def test_checkpoints_round_trip(store):
    assert store.load_checkpoint("g:t:0") is None
    store.write([], checkpoint=("g:t:0", Checkpoint(b"\x00state\xff", {"t:0": 1234})))
    store.write([], checkpoint=("g:t:0", Checkpoint(b"newer", {"t:0": 2000})))
    cp = store.load_checkpoint("g:t:0")
    assert cp.state == b"newer" and cp.offsets == {"t:0": 2000}


def test_large_checkpoints_round_trip_and_replace_each_other(store):
    """Cassandra keeps a big state in 1 MiB parts under a generation the row points to."""
    import os

    big = os.urandom(3 * (1 << 20) + 123)
    store.write([], checkpoint=("big", Checkpoint(big, {"t:0": 7})))
    assert store.load_checkpoint("big").state == big
    assert store.checkpoint_offsets("big") == {"t:0": 7}
    bigger = os.urandom(5 * (1 << 20))
    store.write([], checkpoint=("big", Checkpoint(bigger, {"t:0": 9})))
    assert store.load_checkpoint("big").state == bigger
    store.write([], checkpoint=("big", Checkpoint(b"small", {"t:0": 11})))
    assert store.load_checkpoint("big") == Checkpoint(b"small", {"t:0": 11})
    if hasattr(store, "session"):  # earlier generations' parts are deleted
        rows = store.session.execute(f"SELECT name FROM {store.keyspace}.checkpoint_parts")
        assert not [r for r in rows if r.name == "big"]


def test_cql_looking_values_are_stored_verbatim(store):
    evil = ("x'; DROP TABLE rollups; --", 'quote"d', "semi;colon", "$$", "", "", "", "")
    store.write([Rollup("request", evil, 60, T0, agg(1))])
    assert store.series("request") == [SeriesRef("request", evil)]
    (row,) = store.read([SeriesRef("request", evil)], 60, T0, T0 + 60)
    assert row.agg.counters["requests"] == 1
    store.write([Rollup("request", LABELS, 60, T0, agg(2))])
    assert len(store.series("request")) == 2  # the table is still there


def test_rejects_are_kept_with_reason_and_bytes(store):
    store.add_rejects([RejectRecord(time.time(), "http:127.0.0.1", "bad", b"\xff{raw")])
    (r,) = store.rejects(10)
    assert (r.source, r.reason, r.raw) == ("http:127.0.0.1", "bad", b"\xff{raw")


@pytest.mark.cassandra
def test_cassandra_rows_carry_their_resolution_ttl(cassandra_store):
    store = cassandra_store
    store.write([Rollup("request", LABELS, res, T0, agg(1)) for res in (10, 60, 3600)])
    rows = store.session.execute(
        f"SELECT resolution, TTL(agg) AS ttl FROM {store.keyspace}.rollups")
    ttls = {r.resolution: r.ttl for r in rows}
    for res, keep in store.retention.items():
        assert keep - 60 <= ttls[res] <= keep


@pytest.mark.cassandra
def test_a_count_over_two_hours_reads_no_digest_from_cassandra(cassandra_store, monkeypatch):
    """The bytes the store hands to the decoder, counted: a count query (through the query
    engine) gets only counters, gauges and moments; a percentile gets the digests too."""
    from query.engine import build, run

    store = cassandra_store
    rollups = [Rollup("request", LABELS, 10, T0 + i * 10, agg(400)) for i in range(720)]
    store.write(rollups)
    heads = sum(Aggregate.digests_at(r.payload()) for r in rollups)
    whole = sum(len(r.payload()) for r in rollups)
    assert heads < whole / 3  # the digests are most of a row: reading them is what costs
    seen: list[int] = []
    decode = Aggregate.from_bytes
    monkeypatch.setattr(Aggregate, "from_bytes", classmethod(
        lambda cls, data, dists=None: (seen.append(len(data)), decode(data, dists))[1]))

    def ask(metric: str, stat: str) -> float:
        seen.clear()
        answer = run(store, build(metric, stat, str(T0), str(T0 + 7200), None, None, []))
        assert answer.resolution == 10
        (series,) = answer.series
        return series.points[0][1]

    assert ask("requests_total", "count") == 720 * 400
    assert sum(seen) == heads  # every row, not one digest byte
    assert ask("request_duration_seconds", "max") == pytest.approx(499 / 1e6)
    assert sum(seen) == whole


@pytest.mark.cassandra
def test_cassandra_rows_written_before_the_digests_column_still_read(cassandra_store):
    """Schema version 2 kept the digests inside ``agg``: its rows decode either way, and
    migrating a version-2 table adds the column."""
    store = cassandra_store
    ks = store.keyspace
    store.session.execute(f"ALTER TABLE {ks}.rollups DROP digests")
    store.migrate()
    columns = {c.column_name for c in store.session.execute(
        "SELECT column_name FROM system_schema.columns WHERE keyspace_name=%s AND "
        "table_name='rollups'", (ks,))}
    assert "digests" in columns
    old = agg(50)
    store.session.execute(
        f"INSERT INTO {ks}.rollups (family, labels, resolution, period, bucket, shard, agg) "
        "VALUES (%s, %s, 10, %s, %s, '', %s)",
        ("request", '["old"]', T0 // 86_400, T0, old.to_bytes()))
    ref = SeriesRef("request", ("old",))
    (full,) = store.read([ref], 10, T0, T0 + 10)
    (counts,) = store.read([ref], 10, T0, T0 + 10, dists=set())
    assert full.agg == old
    assert counts.agg.counters == {"requests": 50} and not counts.agg.dists


def test_sqlite_retention_drops_old_rollups(tmp_path):
    s = SQLiteStore(tmp_path / "r.sqlite3", retention={10: 100, 60: 1000, 3600: 10_000})
    s.write([Rollup("request", LABELS, res, T0, agg(1)) for res in (10, 60, 3600)])
    assert s.apply_retention(T0 + 500) == 1
    ref = SeriesRef("request", LABELS)
    assert s.read([ref], 10, T0, T0 + 10) == []
    assert len(s.read([ref], 60, T0, T0 + 60)) == 1


def test_annotations_overlap_and_replays_are_written_once(store):
    from store.base import AnnotationRecord

    deploy = AnnotationRecord(T0 + 100, "deploy", "v2", pool="pool-a", tags={"by": "ci"})
    incident = AnnotationRecord(T0 - 3 * 86400, "incident", "db outage",
                                end_time=T0 + 50)
    store.add_annotations([deploy, incident])
    store.add_annotations([deploy])  # replayed
    assert [a.title for a in store.annotations(T0, T0 + 200)] == ["db outage", "v2"]
    assert store.annotations(T0 + 60, T0 + 90) == []
    (got,) = store.annotations(T0 + 100, T0 + 101)
    assert got.tags == {"by": "ci"} and got.pool == "pool-a"


def test_dashboards_are_saved_replaced_and_deleted(store):
    from store.base import DashboardRecord

    mine = DashboardRecord("d1", "alice", "Latency", '{"panels": []}', "", 1.0)
    shared = DashboardRecord("d2", "bob", "Capacity", '{"panels": [1]}', "viewer", 2.0)
    store.put_dashboard(mine)
    store.put_dashboard(shared)
    assert store.dashboards() == [shared, mine]  # by title
    edited = DashboardRecord("d1", "alice", "Latency (p99)", '{"panels": [2]}', "operator", 3.0)
    store.put_dashboard(edited)
    assert store.dashboards() == [shared, edited]
    store.delete_dashboard("d2")
    assert store.dashboards() == [edited]


def test_benchmark_runs_are_kept_oldest_first_and_replaced_by_id(store):
    from store.base import BenchmarkRecord

    later = BenchmarkRecord("b2", "checkout", T0 + 600, '{"status": "running"}')
    first = BenchmarkRecord("b1", "checkout", T0, '{"status": "finished"}')
    store.put_benchmark(later)
    store.put_benchmark(first)
    assert store.benchmarks() == [first, later]
    finished = BenchmarkRecord("b2", "checkout", T0 + 600, '{"status": "finished", "n": 1}')
    store.put_benchmark(finished)  # finishing a run rewrites its record
    assert store.benchmarks() == [first, finished]
