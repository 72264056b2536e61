"""The distributed store on Apache Cassandra.

Tables (created by a versioned migration, ``migrate()``):

- ``rollups``: partition ``(family, labels, resolution, period)`` where a period is a day of 10 s
  buckets, a week of 1 min buckets or a year of 1 h buckets, so no partition grows without
  bound; clustered by ``bucket, shard``; TimeWindowCompactionStrategy; each row written
  ``USING TTL`` of its resolution's retention.
- ``series``: the catalogue, one partition per family, so dimension filters never scan rollups.
- ``checkpoints``: one partition per worker shard (a single-partition write is atomic). A state
  larger than ``PART_BYTES`` is written first as parts to ``checkpoint_parts`` under a new
  generation; the checkpoint row, written last, names that generation (so a checkpoint is all
  or nothing, and no mutation nears Cassandra's size limit); the previous generation is then
  deleted.
- ``rejects``: recent rejected events per day, with a TTL.

Only prepared statements are used; values never become CQL text. Range reads fan out as
concurrent async queries, one per (series, period).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from uuid import uuid1

import orjson
from cassandra import ConsistencyLevel
from cassandra.cluster import Cluster, Session
from cassandra.concurrent import execute_concurrent_with_args
from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
from cassandra.query import SimpleStatement

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

PERIOD = {10: 86_400, 60: 7 * 86_400, 3600: 365 * 86_400}
REJECT_TTL = 7 * 86_400
SCHEMA_VERSION = 3  # 3: digests in a column of their own
PART_BYTES = 1 << 20
_PARTS = b"SPPARTS1"  # a checkpoint row whose state is in parts: magic, generation, count


def _migrations(keyspace: str, rf: int) -> list[str]:
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {rf}}}",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.schema_version (id int PRIMARY KEY, version int)",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.rollups ("
        " family text, labels text, resolution int, period bigint, bucket bigint, shard text,"
        " agg blob, digests blob, PRIMARY KEY ((family, labels, resolution, period), bucket,"
        " shard))"
        " WITH CLUSTERING ORDER BY (bucket ASC, shard ASC)"
        " AND compaction = {'class': 'TimeWindowCompactionStrategy',"
        " 'compaction_window_unit': 'DAYS', 'compaction_window_size': 1}",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.series ("
        " family text, labels text, PRIMARY KEY ((family), labels))",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.checkpoints ("
        " name text PRIMARY KEY, state blob, offsets text, written double)",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.checkpoint_parts ("
        " name text, generation bigint, seq int, data blob,"
        " PRIMARY KEY ((name, generation), seq))",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.annotations ("
        " day bigint, time double, id text, end_time double, kind text, title text, text text,"
        " pool text, tags text, PRIMARY KEY ((day), time, id))",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.dashboards ("
        " id text PRIMARY KEY, owner text, title text, body text, shared_role text,"
        " updated double)",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.benchmarks ("
        " id text PRIMARY KEY, scenario text, started double, body text)",
        f"CREATE TABLE IF NOT EXISTS {keyspace}.rejects ("
        " day bigint, id timeuuid, time double, source text, reason text, raw blob,"
        " PRIMARY KEY ((day), id)) WITH CLUSTERING ORDER BY (id DESC)",
    ]


def _generation(state: bytes) -> int | None:
    """The parts generation a checkpoint row points to (None: the state is in the row)."""
    return int.from_bytes(state[8:16], "big") if state[:8] == _PARTS else None


class CassandraStore:
    """A :class:`store.base.RollupStore` on Cassandra; thread-safe (the driver session is)."""

    def __init__(self, hosts: Sequence[str], port: int = 9042, keyspace: str = "snakepit_perf",
                 replication_factor: int = 1, retention: dict[int, int] | None = None,
                 write_consistency: str = "LOCAL_QUORUM", read_consistency: str = "LOCAL_QUORUM",
                 connect_timeout: float = 10.0) -> None:
        self.keyspace = keyspace
        self.retention = retention or DEFAULT_RETENTION
        self._cluster = Cluster(list(hosts), port=port, connect_timeout=connect_timeout,
                                protocol_version=5,
                                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()))
        self.session: Session = self._cluster.connect()
        self.session.default_timeout = 30
        self.migrate(replication_factor)
        self._write_cl = getattr(ConsistencyLevel, write_consistency)
        self._read_cl = getattr(ConsistencyLevel, read_consistency)
        ks = keyspace
        self._insert = self._prepare(
            f"INSERT INTO {ks}.rollups (family, labels, resolution, period, bucket, shard, agg,"
            " digests) VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TTL ?", self._write_cl)
        self._insert_series = self._prepare(
            f"INSERT INTO {ks}.series (family, labels) VALUES (?, ?)", self._write_cl)
        where = ("WHERE family=? AND labels=? AND resolution=? AND period=? AND bucket>=?"
                 " AND bucket<?")
        self._select = self._prepare(
            f"SELECT bucket, agg, digests FROM {ks}.rollups {where}", self._read_cl)
        # counters, gauges and moments only: a count over days reads no digest (#22)
        self._select_scalars = self._prepare(
            f"SELECT bucket, agg FROM {ks}.rollups {where}", self._read_cl)
        self._select_series = self._prepare(
            f"SELECT labels FROM {ks}.series WHERE family=?", self._read_cl)
        self._put_checkpoint = self._prepare(
            f"INSERT INTO {ks}.checkpoints (name, state, offsets, written) VALUES (?, ?, ?, ?)",
            self._write_cl)
        self._get_checkpoint = self._prepare(
            f"SELECT state, offsets FROM {ks}.checkpoints WHERE name=?", self._read_cl)
        self._get_offsets = self._prepare(
            f"SELECT offsets FROM {ks}.checkpoints WHERE name=?", self._read_cl)
        self._put_part = self._prepare(
            f"INSERT INTO {ks}.checkpoint_parts (name, generation, seq, data) VALUES (?, ?, ?, ?)",
            self._write_cl)
        self._get_parts = self._prepare(
            f"SELECT data FROM {ks}.checkpoint_parts WHERE name=? AND generation=?",
            self._read_cl)
        self._drop_parts = self._prepare(
            f"DELETE FROM {ks}.checkpoint_parts WHERE name=? AND generation=?", self._write_cl)
        self._generations: dict[str, int | None] = {}  # checkpoint name -> generation in use
        self._put_reject = self._prepare(
            f"INSERT INTO {ks}.rejects (day, id, time, source, reason, raw) VALUES"
            " (?, ?, ?, ?, ?, ?) USING TTL ?", self._write_cl)
        self._get_rejects = self._prepare(
            f"SELECT time, source, reason, raw FROM {ks}.rejects WHERE day=? LIMIT ?",
            self._read_cl)
        self._put_annotation = self._prepare(
            f"INSERT INTO {ks}.annotations (day, time, id, end_time, kind, title, text, pool,"
            " tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", self._write_cl)
        self._get_annotations = self._prepare(
            f"SELECT time, kind, title, text, pool, end_time, tags FROM {ks}.annotations"
            " WHERE day=?", self._read_cl)
        self._put_dashboard = self._prepare(
            f"INSERT INTO {ks}.dashboards (id, owner, title, body, shared_role, updated)"
            " VALUES (?, ?, ?, ?, ?, ?)", self._write_cl)
        # A full read of a small table (a few layouts per user); the API filters it.
        self._get_dashboards = self._prepare(
            f"SELECT id, owner, title, body, shared_role, updated FROM {ks}.dashboards",
            self._read_cl)
        self._delete_dashboard = self._prepare(f"DELETE FROM {ks}.dashboards WHERE id=?",
                                               self._write_cl)
        self._put_benchmark = self._prepare(
            f"INSERT INTO {ks}.benchmarks (id, scenario, started, body) VALUES (?, ?, ?, ?)",
            self._write_cl)
        self._get_benchmarks = self._prepare(
            f"SELECT id, scenario, started, body FROM {ks}.benchmarks", self._read_cl)
        self._known_series: set[tuple[str, str]] = set()

    def _prepare(self, cql: str, consistency: int):
        stmt = self.session.prepare(cql)
        stmt.consistency_level = consistency
        return stmt

    def migrate(self, replication_factor: int = 1) -> int:
        """Apply the schema migrations (idempotent); returns the schema version."""
        for cql in _migrations(self.keyspace, replication_factor):
            self.session.execute(SimpleStatement(cql), timeout=60)
        columns = self.session.execute(
            "SELECT column_name FROM system_schema.columns WHERE keyspace_name=%s AND "
            "table_name='rollups'", (self.keyspace,))
        if "digests" not in {c.column_name for c in columns}:  # a version-2 keyspace: its rows
            # keep their digests inside `agg`, which every read still decodes
            self.session.execute(SimpleStatement(
                f"ALTER TABLE {self.keyspace}.rollups ADD digests blob"), timeout=60)
        self.session.execute(
            f"INSERT INTO {self.keyspace}.schema_version (id, version) VALUES (0, %s)",
            (SCHEMA_VERSION,))
        return SCHEMA_VERSION

    def write(self, rollups: Sequence[Rollup], shard: str = "",
              checkpoint: tuple[str, Checkpoint] | None = None) -> None:
        rows, series = [], []
        for r in rollups:
            labels = orjson.dumps(r.labels).decode()
            key_shard = shard_key(shard, r.tag)
            if r.late and r.tag is None:
                key_shard = f"{shard}@late-{uuid1()}"  # untagged deltas must not overwrite
            ttl = self.retention.get(r.resolution, max(self.retention.values()))
            payload = r.payload()
            cut = Aggregate.digests_at(payload)  # an empty blob, never a null (a tombstone)
            rows.append((r.family, labels, r.resolution, r.bucket // PERIOD[r.resolution],
                         r.bucket, key_shard, payload[:cut], payload[cut:], ttl))
            if (r.family, labels) not in self._known_series:
                series.append((r.family, labels))
        for args_list, stmt in ((rows, self._insert), (series, self._insert_series)):
            if args_list:
                for ok, result in execute_concurrent_with_args(
                        self.session, stmt, args_list, concurrency=64, raise_on_first_error=False):
                    if not ok:
                        raise result
        self._known_series.update(series)
        if checkpoint is not None:
            self._write_checkpoint(*checkpoint)

    def _write_checkpoint(self, name: str, cp: Checkpoint) -> None:
        if name not in self._generations:
            row = self.session.execute(self._get_checkpoint, (name,)).one()
            self._generations[name] = _generation(row.state) if row is not None else None
        before, state = self._generations[name], cp.state
        generation = None
        if len(state) > PART_BYTES:
            generation = time.time_ns()
            parts = [(name, generation, i, state[i * PART_BYTES:(i + 1) * PART_BYTES])
                     for i in range((len(state) + PART_BYTES - 1) // PART_BYTES)]
            for ok, result in execute_concurrent_with_args(self.session, self._put_part, parts,
                                                           concurrency=8,
                                                           raise_on_first_error=False):
                if not ok:
                    raise result
            state = _PARTS + generation.to_bytes(8, "big") + len(parts).to_bytes(4, "big")
        self.session.execute(self._put_checkpoint,
                             (name, state, orjson.dumps(cp.offsets).decode(), time.time()))
        self._generations[name] = generation
        if before is not None:
            self.session.execute(self._drop_parts, (name, before))

    def checkpoint_offsets(self, name: str) -> dict[str, int] | None:
        row = self.session.execute(self._get_offsets, (name,)).one()
        return None if row is None else orjson.loads(row.offsets)

    def load_checkpoint(self, name: str) -> Checkpoint | None:
        row = self.session.execute(self._get_checkpoint, (name,)).one()
        if row is None:
            return None
        state, generation = row.state, _generation(row.state)
        if generation is not None:
            parts = [r.data for r in self.session.execute(self._get_parts, (name, generation))]
            if len(parts) != int.from_bytes(state[16:20], "big"):
                raise RuntimeError(f"checkpoint {name}: parts of generation {generation} missing")
            state = b"".join(parts)
        return Checkpoint(state, orjson.loads(row.offsets))

    def series(self, family: str) -> list[SeriesRef]:
        rows = self.session.execute(self._select_series, (family,))
        return [SeriesRef(family, tuple(orjson.loads(r.labels))) for r in rows]

    def read(self, refs: Iterable[SeriesRef], resolution: int, start: int, end: int,
             dists: Collection[str] | None = None) -> list[StoredRollup]:
        period = PERIOD[resolution]
        args, owners = [], []
        for ref in refs:
            labels = orjson.dumps(ref.labels).decode()
            for p in range(start // period, (end - 1) // period + 1):
                args.append((ref.family, labels, resolution, p, start, end))
                owners.append(ref)
        scalars = dists is not None and not dists
        results = execute_concurrent_with_args(
            self.session, self._select_scalars if scalars else self._select, args,
            concurrency=64, raise_on_first_error=True, results_generator=False)
        out: list[StoredRollup] = []
        for ref, (_, rows) in zip(owners, results, strict=True):
            previous: StoredRollup | None = None
            for row in rows:
                data = row.agg if scalars or row.digests is None else row.agg + row.digests
                agg = Aggregate.from_bytes(data, dists)
                if previous is not None and previous.bucket == row.bucket:
                    previous.agg.merge(agg)  # another shard of the same bucket
                    continue
                previous = StoredRollup(ref, resolution, row.bucket, agg)
                out.append(previous)
        return out

    def add_rejects(self, rejects: Sequence[RejectRecord]) -> None:
        args = [(int(r.time // 86_400), uuid1(), r.time, r.source, r.reason, r.raw, REJECT_TTL)
                for r in rejects]
        for ok, result in execute_concurrent_with_args(self.session, self._put_reject, args,
                                                        raise_on_first_error=False):
            if not ok:
                raise result

    def rejects(self, limit: int = 100) -> list[RejectRecord]:
        out: list[RejectRecord] = []
        day = int(time.time() // 86_400)
        for d in range(day, day - REJECT_TTL // 86_400 - 1, -1):
            for row in self.session.execute(self._get_rejects, (d, limit - len(out))):
                out.append(RejectRecord(row.time, row.source, row.reason, row.raw))
            if len(out) >= limit:
                break
        return out

    def add_annotations(self, annotations: Sequence[AnnotationRecord]) -> None:
        args = [(int(a.time // 86_400), a.time, a.id, a.end_time, a.kind, a.title, a.text,
                 a.pool, orjson.dumps(a.tags).decode()) for a in annotations]
        for ok, result in execute_concurrent_with_args(self.session, self._put_annotation, args,
                                                        raise_on_first_error=False):
            if not ok:
                raise result

    def annotations(self, start: float, end: float) -> list[AnnotationRecord]:
        """Annotations starting in the range or up to 7 days before it (long ones overlap)."""
        days = range(int(start // 86_400) - 7, int(end // 86_400) + 1)
        results = execute_concurrent_with_args(self.session, self._get_annotations,
                                               [(d,) for d in days], raise_on_first_error=True,
                                               results_generator=False)
        out = [AnnotationRecord(r.time, r.kind, r.title, r.text, r.pool, r.end_time,
                                orjson.loads(r.tags))
               for _, rows in results for r in rows]
        return sorted((a for a in out if a.time < end and (a.end_time or a.time) >= start),
                      key=lambda a: a.time)

    def put_dashboard(self, d: DashboardRecord) -> None:
        self.session.execute(self._put_dashboard,
                             (d.id, d.owner, d.title, d.body, d.shared_role, d.updated))

    def dashboards(self) -> list[DashboardRecord]:
        rows = self.session.execute(self._get_dashboards)
        return sorted((DashboardRecord(r.id, r.owner, r.title, r.body, r.shared_role, r.updated)
                       for r in rows), key=lambda d: (d.title, d.id))

    def delete_dashboard(self, dashboard_id: str) -> None:
        self.session.execute(self._delete_dashboard, (dashboard_id,))

    def put_benchmark(self, run: BenchmarkRecord) -> None:
        self.session.execute(self._put_benchmark, (run.id, run.scenario, run.started, run.body))

    def benchmarks(self) -> list[BenchmarkRecord]:
        rows = self.session.execute(self._get_benchmarks)
        return sorted((BenchmarkRecord(r.id, r.scenario, r.started, r.body) for r in rows),
                      key=lambda b: (b.started, b.id))

    def apply_retention(self, now: float) -> int:
        """Rows expire by their own TTL; nothing to delete by hand."""
        return 0

    def close(self) -> None:
        self._cluster.shutdown()
