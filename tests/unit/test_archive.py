"""The Parquet archive read back by pyarrow and DuckDB equals the stored rollups; re-archiving
a day rewrites it identically; old days are deleted by retention."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from harness.data import T0, store_two_hours
from store.archive import apply_archive_retention, archive_day
from store.sqlite import SQLiteStore
from streams.aggregate import Aggregate

DAY = datetime.fromtimestamp(T0, UTC).date()  # T0 is 08:00 UTC


def filled_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store_two_hours(store)
    return store


def test_archive_equals_the_store_for_pyarrow_and_duckdb(tmp_path: Path):
    store = filled_store(tmp_path / "s.sqlite3")
    path = archive_day(store, DAY, tmp_path / "archive")
    assert path.parent.name == f"date={DAY.isoformat()}"
    table = pq.read_table(path)
    refs = store.series("request")
    stored = {(r.series.labels, int(r.bucket)): r.agg
              for r in store.read(refs, 60, T0, T0 + 7200) if "__all__" not in r.series.labels}
    rows = [r for r in table.to_pylist()
            if r["family"] == "request" and r["command"] != "__all__"]
    assert len(rows) == len(stored) == 4 * 120
    for row in rows:
        key = ((row["pool"], row["worker_profile"], row["adapter"], row["command"],
                row["python_env"], row["library"], row["segment"], row["node"]),
               int(row["bucket"].timestamp()))
        agg = stored[key]
        assert Aggregate.from_bytes(row["aggregate"]) == agg
        assert row["requests"] == agg.counters["requests"]
        assert row["duration_p99_s"] == agg.dists["duration_us"].quantile(0.99) / 1e6
    hive = duckdb.sql(
        f"SELECT date, sum(requests)::BIGINT, count(*) FROM read_parquet("
        f"'{tmp_path}/archive/*/*.parquet', hive_partitioning = true) "
        f"WHERE family = 'request' AND pool = '__all__' GROUP BY date").fetchall()
    assert [(str(d), n, c) for d, n, c in hive] == [(DAY.isoformat(), 20_000, 120)]
    store.close()


def test_rearchiving_a_day_is_byte_identical_and_retention_applies(tmp_path: Path):
    store = filled_store(tmp_path / "s.sqlite3")
    first = archive_day(store, DAY, tmp_path / "a").read_bytes()
    assert archive_day(store, DAY, tmp_path / "a").read_bytes() == first
    (tmp_path / "a" / "date=2020-01-01").mkdir()
    removed = apply_archive_retention(tmp_path / "a", 400, DAY + timedelta(days=5))
    assert [p.name for p in removed] == ["date=2020-01-01"]
    assert (tmp_path / "a" / f"date={DAY.isoformat()}").exists()
    store.close()


def test_export_archive_command(tmp_path: Path):
    filled_store(tmp_path / "embedded.sqlite3").close()
    exe = str(Path(sys.executable).with_name("snakepit-perf"))
    out = subprocess.run([exe, "export", "--archive", "--day", DAY.isoformat(),
                          "--data-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=120, env={**os.environ})
    assert out.returncode == 0, out.stderr
    assert pq.read_table(tmp_path / "archive" / f"date={DAY.isoformat()}" /
                         "rollups.parquet").num_rows > 0


def test_queries_past_the_retention_read_the_archive(tmp_path: Path):
    from query import engine as q
    from store.archive import ArchiveReader

    store = filled_store(tmp_path / "s.sqlite3")
    archive_day(store, DAY, tmp_path / "a")
    query = q.build("requests_total", "count", str(T0), str(T0 + 7200), "30m", None, [])
    live = q.run(store, query)
    # 40 days later the 1-minute rows are past their 35-day retention and dropped.
    later = T0 + 40 * 86400
    store.apply_retention(later)
    assert q.run(store, query, now=later).series == []
    from_archive = q.run(store, query, ArchiveReader(tmp_path / "a"), now=later)
    assert from_archive.series == live.series
    assert [p[1] for p in live.series[0].points] == [5_000] * 4
    store.close()


def test_the_embedded_runner_archives_closed_days(tmp_path: Path):
    from runners.embedded import EmbeddedRunner

    store = filled_store(tmp_path / "s.sqlite3")
    runner = EmbeddedRunner(store, archive_dir=tmp_path / "a")
    two_days_later = datetime.combine(DAY + timedelta(days=2), time(), UTC)
    written = runner.archive_closed_days(now=two_days_later)
    assert [p.parent.name for p in written] == [f"date={DAY.isoformat()}"]
    assert runner.archive_closed_days(now=two_days_later) == []
    store.close()
