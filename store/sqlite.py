"""The embedded store: one SQLite file in WAL mode, same semantics as the Cassandra store.

Rollups, the series catalogue, checkpoints and rejects live in one file; a write of rollups and
its checkpoint is one transaction, so a crash leaves either both or neither.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

import orjson

from store.base import (
    DEFAULT_RETENTION,
    AnnotationRecord,
    BenchmarkRecord,
    Checkpoint,
    DashboardRecord,
    RejectRecord,
    SeriesRef,
    StoredRollup,
)
from streams.aggregate import Aggregate
from streams.rollup import Rollup, shard_key

SCHEMA = """
CREATE TABLE IF NOT EXISTS rollups (
    family TEXT NOT NULL, labels TEXT NOT NULL, resolution INTEGER NOT NULL,
    bucket INTEGER NOT NULL, shard TEXT NOT NULL, agg BLOB NOT NULL,
    PRIMARY KEY (family, labels, resolution, bucket, shard)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS series (
    family TEXT NOT NULL, labels TEXT NOT NULL, first_seen INTEGER, last_seen INTEGER,
    PRIMARY KEY (family, labels)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
    name TEXT PRIMARY KEY, state BLOB NOT NULL, offsets TEXT NOT NULL, written REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS annotations (
    id TEXT PRIMARY KEY, time REAL NOT NULL, end_time REAL, kind TEXT NOT NULL,
    title TEXT NOT NULL, text TEXT NOT NULL, pool TEXT NOT NULL, tags TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS dashboards (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, title TEXT NOT NULL, body TEXT NOT NULL,
    shared_role TEXT NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS benchmarks (
    id TEXT PRIMARY KEY, scenario TEXT NOT NULL, started REAL NOT NULL, body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, source TEXT NOT NULL,
    reason TEXT NOT NULL, raw BLOB NOT NULL
);
"""


class SQLiteStore:
    """A :class:`store.base.RollupStore` on one SQLite file (thread-safe by a lock)."""

    def __init__(self, path: Path | str, retention: dict[int, int] | None = None,
                 rejects_keep_s: float = 7 * 86400,
                 rejects_keep_bytes: int = 64 * 1024 * 1024) -> None:
        self.rejects_keep_s, self.rejects_keep_bytes = rejects_keep_s, rejects_keep_bytes
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.retention = retention or DEFAULT_RETENTION
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect on a new file
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        # Queries read through a connection of their own: in SQLite's WAL mode readers do not
        # wait for a writer, so a long flush never holds up a dashboard (a file only: a second
        # connection to ":memory:" would be another database).
        self._rdb, self._rlock = self._db, self._lock
        if str(path) != ":memory:":
            self._rdb = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._rlock = threading.Lock()

    def write(self, rollups: Sequence[Rollup], shard: str = "",
              checkpoint: tuple[str, Checkpoint] | None = None) -> None:
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                # the bytes of each row: a rollup's own payload (encoded once, shared with the
                # rollups topic), or a merged aggregate for an untagged late delta
                rows: dict[tuple[str, str, int, int, str], Rollup | Aggregate] = {}
                seen: dict[tuple[str, str], list[int]] = {}  # series -> [first, last] seen
                for r in rollups:
                    labels = orjson.dumps(r.labels).decode()
                    row_of: Rollup | Aggregate = r
                    key = (r.family, labels, r.resolution, r.bucket,
                           shard_key(shard, r.tag))
                    if r.late and r.tag is None:  # merge into what is stored (or about to be)
                        before = rows.get(key)
                        if isinstance(before, Rollup):
                            before = before.agg
                        if before is None:
                            row = db.execute(
                                "SELECT agg FROM rollups WHERE family=? AND labels=? AND "
                                "resolution=? AND bucket=? AND shard=?", key).fetchone()
                            before = None if row is None else Aggregate.from_bytes(row[0])
                        if before is not None:
                            row_of = before.copy()
                            row_of.merge(r.agg)
                    rows[key] = row_of
                    span = seen.setdefault((r.family, labels), [r.bucket, r.bucket + r.resolution])
                    span[0] = min(span[0], r.bucket)
                    span[1] = max(span[1], r.bucket + r.resolution)
                db.executemany("INSERT OR REPLACE INTO rollups VALUES (?, ?, ?, ?, ?, ?)",
                               [(*key, row.payload() if isinstance(row, Rollup)
                                 else row.to_bytes()) for key, row in rows.items()])
                db.executemany(
                    "INSERT INTO series VALUES (?, ?, ?, ?) ON CONFLICT (family, labels) DO "
                    "UPDATE SET first_seen=min(first_seen, excluded.first_seen), "
                    "last_seen=max(last_seen, excluded.last_seen)",
                    [(family, labels, first, last) for (family, labels), (first, last)
                     in seen.items()])
                if checkpoint is not None:
                    name, cp = checkpoint
                    db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?, ?, ?, ?)",
                               (name, cp.state, orjson.dumps(cp.offsets).decode(), time.time()))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def checkpoint_offsets(self, name: str) -> dict[str, int] | None:
        with self._lock:
            row = self._db.execute("SELECT offsets FROM checkpoints WHERE name=?",
                                   (name,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        with self._lock:
            row = self._db.execute("SELECT state, offsets FROM checkpoints WHERE name=?",
                                   (name,)).fetchone()
        return None if row is None else Checkpoint(row[0], orjson.loads(row[1]))

    def series(self, family: str) -> list[SeriesRef]:
        with self._rlock:
            rows = self._rdb.execute("SELECT labels FROM series WHERE family=?", (family,))
            return [SeriesRef(family, tuple(orjson.loads(labels))) for (labels,) in rows]

    def read(self, refs: Iterable[SeriesRef], resolution: int, start: int, end: int,
             dists: Collection[str] | None = None) -> list[StoredRollup]:
        out: list[StoredRollup] = []
        with self._rlock:
            for ref in refs:
                rows = self._rdb.execute(
                    "SELECT bucket, agg FROM rollups WHERE family=? AND labels=? AND resolution=?"
                    " AND bucket>=? AND bucket<? ORDER BY bucket",
                    (ref.family, orjson.dumps(ref.labels).decode(), resolution, start, end))
                previous: StoredRollup | None = None
                for bucket, blob in rows:
                    agg = Aggregate.from_bytes(blob, dists)
                    if previous is not None and previous.bucket == bucket:
                        previous.agg.merge(agg)  # another shard of the same bucket
                        continue
                    previous = StoredRollup(ref, resolution, bucket, agg)
                    out.append(previous)
        return out

    def add_rejects(self, rejects: Sequence[RejectRecord]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT INTO rejects (time, source, reason, raw) VALUES (?, ?, ?, ?)",
                [(r.time, r.source, r.reason, r.raw) for r in rejects])

    def rejects(self, limit: int = 100) -> list[RejectRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, time, source, reason, raw FROM rejects ORDER BY id DESC LIMIT ?",
                (limit,)).fetchall()
        return [RejectRecord(t, s, reason, raw, id=i) for i, t, s, reason, raw in rows]

    def add_annotations(self, annotations: Sequence[AnnotationRecord]) -> None:
        with self._lock:
            self._db.executemany(
                "INSERT OR REPLACE INTO annotations VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(a.id, a.time, a.end_time, a.kind, a.title, a.text, a.pool,
                  orjson.dumps(a.tags).decode()) for a in annotations])

    def annotations(self, start: float, end: float) -> list[AnnotationRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT time, kind, title, text, pool, end_time, tags FROM annotations "
                "WHERE time < ? AND coalesce(end_time, time) >= ? ORDER BY time",
                (end, start)).fetchall()
        return [AnnotationRecord(t, k, ti, tx, p, e, orjson.loads(tags))
                for t, k, ti, tx, p, e, tags in rows]

    def put_dashboard(self, d: DashboardRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO dashboards VALUES (?, ?, ?, ?, ?, ?)",
                             (d.id, d.owner, d.title, d.body, d.shared_role, d.updated))

    def dashboards(self) -> list[DashboardRecord]:
        with self._lock:
            rows = self._db.execute("SELECT id, owner, title, body, shared_role, updated "
                                    "FROM dashboards ORDER BY title, id").fetchall()
        return [DashboardRecord(*row) for row in rows]

    def delete_dashboard(self, dashboard_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM dashboards WHERE id=?", (dashboard_id,))

    def put_benchmark(self, run: BenchmarkRecord) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO benchmarks VALUES (?, ?, ?, ?)",
                             (run.id, run.scenario, run.started, run.body))

    def benchmarks(self) -> list[BenchmarkRecord]:
        with self._lock:
            rows = self._db.execute("SELECT id, scenario, started, body FROM benchmarks "
                                    "ORDER BY started, id").fetchall()
        return [BenchmarkRecord(*row) for row in rows]

    def apply_retention(self, now: float) -> int:
        """Drop rollups past their resolution's retention and rejects past ``rejects_keep_s``
        or ``rejects_keep_bytes`` (oldest first); the freed pages are reused by later writes."""
        removed = 0
        with self._lock:
            for resolution, keep in self.retention.items():
                cur = self._db.execute("DELETE FROM rollups WHERE resolution=? AND bucket<?",
                                       (resolution, int(now - keep)))
                removed += cur.rowcount
            removed += self._db.execute("DELETE FROM rejects WHERE time<?",
                                        (now - self.rejects_keep_s,)).rowcount
            row = self._db.execute(
                "SELECT id FROM (SELECT id, SUM(length(raw)) OVER (ORDER BY id DESC) AS total "
                "FROM rejects) WHERE total>? ORDER BY id DESC LIMIT 1",
                (self.rejects_keep_bytes,)).fetchone()
            if row is not None:
                removed += self._db.execute("DELETE FROM rejects WHERE id<=?", row).rowcount
            self._db.execute("PRAGMA incremental_vacuum")
        return removed

    def size_bytes(self) -> int:
        """The database file and its SQLite write-ahead log, in bytes."""
        total = 0
        for suffix in ("", "-wal"):
            p = Path(f"{self.path}{suffix}")
            total += p.stat().st_size if p.exists() else 0
        return total

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._rdb is not self._db:
            with self._rlock:
                self._rdb.close()
