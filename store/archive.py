"""The Parquet archive (R11.5): closed days of 1-minute rollups as Hive-partitioned Parquet.

``<dir>/date=YYYY-MM-DD/rollups.parquet`` holds one row per series and minute: the labels as
columns, exact counters, the main percentiles as columns, and each rollup's full aggregate
(digests included) as binary so later merges stay exact. Rows are sorted and the file is
written deterministically, so archiving the same day again rewrites it byte for byte.
"""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from store.base import RollupStore
from streams.aggregate import Aggregate
from streams.rollup import StoredRollup
from streams.series import FAMILIES

RESOLUTION = 60
DIMENSIONS = sorted({d for dims in FAMILIES.values() for d in dims})
QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "p999": 0.999}
COUNTERS = ("requests", "errors", "timeouts", "retries", "busy_us")
SCHEMA = pa.schema(
    [("family", pa.string()), ("bucket", pa.timestamp("s", tz="UTC")),
     ("resolution_s", pa.int32())]
    + [(d, pa.string()) for d in DIMENSIONS]
    + [(c, pa.float64()) for c in COUNTERS]
    + [("duration_count", pa.int64())]
    + [(f"duration_{q}_s", pa.float64()) for q in QUANTILES]
    + [("counters", pa.map_(pa.string(), pa.float64())), ("aggregate", pa.binary())])


def _row(r: StoredRollup) -> dict:
    agg: Aggregate = r.agg
    dims = dict(zip(FAMILIES[r.series.family], r.series.labels, strict=True))
    d = agg.dists.get("duration_us")
    row = {"family": r.series.family,
           "bucket": datetime.fromtimestamp(r.bucket, UTC), "resolution_s": r.resolution,
           **{dim: dims.get(dim) for dim in DIMENSIONS},
           **{c: agg.counters.get(c) for c in COUNTERS},
           "duration_count": d.count if d else None,
           **{f"duration_{name}_s": (d.quantile(q) / 1e6 if d else None)
              for name, q in QUANTILES.items()},
           "counters": sorted(agg.counters.items()), "aggregate": agg.to_bytes()}
    return row


def archive_day(store: RollupStore, day: date, directory: Path) -> Path:
    """Write one UTC day of 1-minute rollups; returns the file written."""
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())
    rows = []
    for family in sorted(FAMILIES):
        refs = sorted(store.series(family), key=lambda ref: ref.labels)
        rows += [_row(r) for r in store.read(refs, RESOLUTION, start, start + 86400)]
    rows.sort(key=lambda r: (r["family"], r["bucket"], [r[d] or "" for d in DIMENSIONS]))
    target = directory / f"date={day.isoformat()}"
    partial = directory / f".date={day.isoformat()}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    pq.write_table(table, partial / "rollups.parquet", compression="zstd",
                   write_statistics=True, store_schema=True)
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target / "rollups.parquet"


def closed_days(store: RollupStore, now: datetime, lookback_days: int = 35) -> list[date]:
    """Days with data in the last ``lookback_days`` (the 1-minute retention) that are over."""
    end = int(now.timestamp())
    start = end - lookback_days * 86400
    days = set()
    for family in FAMILIES:
        for r in store.read(store.series(family), 3600, start - start % 3600, end):
            days.add(datetime.fromtimestamp(r.bucket, UTC).date())
    today = now.astimezone(UTC).date()
    return sorted(d for d in days if d < today)


def apply_archive_retention(directory: Path, keep_days: int, today: date) -> list[Path]:
    """Delete archived days older than ``keep_days``; returns what was removed."""
    removed = []
    for path in sorted(directory.glob("date=*")):
        day = date.fromisoformat(path.name.split("=", 1)[1])
        if day < today - timedelta(days=keep_days):
            shutil.rmtree(path)
            removed.append(path)
    return removed


class ArchiveReader:
    """Reads archived 1-minute rollups back, for query ranges older than the live retention."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def read(self, refs: list, start: int, end: int,
             dists: set[str] | None = None) -> list[StoredRollup]:
        wanted = {(ref.family, ref.labels): ref for ref in refs}
        out: list[StoredRollup] = []
        day = datetime.fromtimestamp(start, UTC).date()
        last = datetime.fromtimestamp(max(end - 1, start), UTC).date()
        while day <= last:
            path = self.directory / f"date={day.isoformat()}" / "rollups.parquet"
            if path.exists():
                table = pq.read_table(path, filters=[
                    ("bucket", ">=", datetime.fromtimestamp(start, UTC)),
                    ("bucket", "<", datetime.fromtimestamp(end, UTC))])
                for row in table.to_pylist():
                    family = row["family"]
                    key = (family, tuple(row[d] or "" for d in FAMILIES[family]))
                    ref = wanted.get(key)
                    if ref is not None:
                        out.append(StoredRollup(ref, RESOLUTION, int(row["bucket"].timestamp()),
                                                Aggregate.from_bytes(row["aggregate"], dists)))
            day += timedelta(days=1)
        return out

    def archived_days(self) -> set[date]:
        return {date.fromisoformat(p.name.split("=", 1)[1])
                for p in self.directory.glob("date=*") if (p / "rollups.parquet").exists()}
