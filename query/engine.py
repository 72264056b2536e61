"""The query engine: filter series, pick a resolution, merge rollups into points, compute stats.

Percentiles come from merged digests (across shards, series and buckets), never from averaged
percentiles; counts and sums are exact. Points are stamped with the start of their interval.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from query.catalog import METRICS, Metric
from store.archive import RESOLUTION as ARCHIVE_RESOLUTION
from store.archive import ArchiveReader
from store.base import DEFAULT_RETENTION, RollupStore
from streams.aggregate import Aggregate, Gauge
from streams.rollup import SeriesRef, StoredRollup
from streams.series import ALL, FAMILIES, rolled_up_pool

RESOLUTIONS = (10, 60, 3600)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_QUANTILE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
MAX_POINTS = 11_000
# The rows (series × buckets) one query may read: past it a coarser resolution is read, or the
# query is refused; a server never runs out of memory answering one question.
MAX_ROWS = 500_000
_CORE_GAUGE = re.compile(r"^cpu_core_(\d+)_percent$")


@dataclass(slots=True)
class SeriesPoints:
    labels: dict[str, str]  # the group_by dimensions' values
    points: list[list[float]]  # [bucket start (epoch s), value], on step boundaries


@dataclass(slots=True)
class Answer:
    """A query's answer: the points of each group, and the whole buckets they cover."""

    metric: str
    stat: str
    unit: str
    step: int | None
    resolution: int
    covered_from: int  # the first point's bucket ...
    covered_to: int  # ... to the end of the last bucket overlapping the asked range
    series: list[SeriesPoints]


class QueryError(ValueError):
    """A parameter is wrong; ``param`` names it."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Filter:
    dim: str
    values: list[str] = field(default_factory=list)  # OR-ed; a trailing * is a prefix
    negate: bool = False

    def matches(self, value: str) -> bool:
        hit = any(value.startswith(v[:-1]) if v.endswith("*") else value == v for v in self.values)
        return hit != self.negate


@dataclass
class Query:
    metric: Metric
    stat: str
    start: int
    end: int
    step: int | None = None
    group_by: tuple[str, ...] = ()
    filters: list[Filter] = field(default_factory=list)
    window: int | None = None


_YEAR_10000 = 253_402_300_800  # epoch seconds


def parse_time(value: str, param: str, up: bool = False) -> int:
    """RFC 3339 or epoch seconds to integer epoch seconds, rounded down (``up``: rounded up,
    for the end of a range, so a fractional end never cuts off its last partial second)."""
    rounded = math.ceil if up else math.floor
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not 0 <= seconds < _YEAR_10000:  # also false for NaN
            raise QueryError(param, f"{param}: {value!r} is not a time between 1970 and 9999")
        return rounded(seconds)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError as exc:
        raise QueryError(param, f"{param}: {value!r} is neither RFC 3339 nor epoch seconds") from exc
    if parsed.tzinfo is None:
        raise QueryError(param, f"{param}: {value!r} needs a UTC offset (e.g. Z)")
    return rounded(parsed.timestamp())


def parse_duration(value: str, param: str) -> int:
    m = _DURATION.match(value.strip())
    if not m:
        raise QueryError(param, f"{param}: {value!r} is not a duration such as 10s, 1m, 1h")
    seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    if seconds < 10 or seconds % 10:
        raise QueryError(param, f"{param}: {value!r} must be a multiple of 10s (the finest "
                                f"stored resolution)")
    return int(seconds)


def parse_filters(where: list[str], dims: tuple[str, ...]) -> list[Filter]:
    by_dim: dict[tuple[str, bool], Filter] = {}
    for clause in where:
        negate = "!=" in clause
        dim, sep, value = clause.partition("!=" if negate else ":")
        if not sep or not dim:
            raise QueryError("where", f"where: {clause!r} should be dim:value or dim!=value")
        if dim not in dims:
            raise QueryError("where", f"where: unknown dimension {dim!r}; this metric has "
                                      f"{', '.join(dims)}")
        by_dim.setdefault((dim, negate), Filter(dim, negate=negate)).values.append(value)
    return list(by_dim.values())


def build(metric: str, stat: str, start: str, end: str, step: str | None, group_by: str | None,
          where: list[str], window: str | None = None) -> Query:
    m = METRICS.get(metric)
    if m is None:
        raise QueryError("metric", f"metric: unknown metric {metric!r}; GET /v1/metrics lists them")
    if not (stat in m.stats or (m.kind == "dist" and _QUANTILE.match(stat))):
        raise QueryError("stat", f"stat: {stat!r} does not apply to {metric}; use one of "
                                 f"{', '.join(m.stats)}{' or any pNN.N' if m.kind == 'dist' else ''}")
    if m.kind == "dist" and _QUANTILE.match(stat) and not 0 < float(stat[1:]) < 100:
        raise QueryError("stat", f"stat: quantile {stat!r} must be between p0 and p100")
    q = Query(m, stat, parse_time(start, "from"), parse_time(end, "to", up=True))
    if q.end <= q.start:
        raise QueryError("to", "to: must be later than from")
    if step:
        q.step = parse_duration(step, "step")
        if (q.end - q.start) / q.step > MAX_POINTS:
            raise QueryError("step", f"step: more than {MAX_POINTS} points; use a larger step")
    if group_by:
        q.group_by = tuple(d.strip() for d in group_by.split(",") if d.strip())
        unknown = [d for d in q.group_by if d not in m.dimensions]
        if unknown:
            raise QueryError("group_by", f"group_by: unknown dimension(s) {unknown}; {metric} has "
                                         f"{', '.join(m.dimensions)}")
    q.filters = parse_filters(where, m.dimensions)
    if window:
        if m.kind != "counter":
            raise QueryError("window", "window: only counters have a sliding-window rate")
        q.window = parse_duration(window, "window")
    return q


def resolution_for(q: Query) -> int:
    """The coarsest stored resolution that still resolves the step (and the window); for one
    point over a range, the finest one whose retention covers a range that long."""
    if q.step is None and q.window is None:
        span = q.end - q.start
        return 10 if span <= 2 * 86400 else 60 if span <= 35 * 86400 else 3600
    need = min(x for x in (q.step, q.window) if x)
    return max(r for r in RESOLUTIONS if need % r == 0)


def run(store: RollupStore, q: Query, archive: ArchiveReader | None = None,
        retention: dict[int, int] | None = None, now: float | None = None,
        max_rows: int = MAX_ROWS) -> Answer:
    """Answer ``q``; the part of a 10 s / 1 min range older than the store keeps that
    resolution is read from the Parquet archive (1-minute rollups) when one is configured."""
    m = q.metric
    dims = m.dimensions
    refs = _series(store, q)
    res = affordable(q, len(refs), resolution_for(q), max_rows)
    read_from = q.start - (q.window or 0)
    read_from -= read_from % res
    dists = {m.field} if m.kind == "dist" else set()  # decode no digest a stat won't use
    rows = store.read(refs, res, read_from, q.end, dists)
    if archive is not None and res <= ARCHIVE_RESOLUTION:
        horizon = (now or time.time()) - (retention or DEFAULT_RETENTION)[res]
        if read_from < horizon:
            older = archive.read(refs, read_from, min(q.end, int(horizon)), dists)
            have = {(r.series, r.bucket) for r in rows}
            rows = [r for r in older if (r.series, r.bucket) not in have] + rows
    if m.per_core:
        rows = _per_core(rows, m.field, [f for f in q.filters if f.dim == "core"])
    idx_of = {d: dims.index(d) for d in q.group_by}
    # Points sit on bucket boundaries (multiples of the step, as Prometheus aligns them), and
    # every bucket that overlaps [from, to) counts: a range never loses its edges.
    origin = q.start - q.start % (q.step or res)
    end = -(-q.end // res) * res
    step = q.step or (end - origin)
    points: dict[tuple[str, ...], dict[int, Aggregate]] = {}
    per_bucket: dict[tuple[str, ...], dict[int, float]] = {}
    members: dict[tuple[str, ...], dict[int, set[tuple[str, ...]]]] = {}
    for row in rows:
        group = tuple(row.series.labels[idx_of[d]] for d in q.group_by)
        if m.kind == "counter":
            counts = per_bucket.setdefault(group, {})
            counts[row.bucket] = counts.get(row.bucket, 0) + row.agg.counters.get(m.field, 0)
        if row.bucket < origin:
            continue
        i = (row.bucket - origin) // step
        target = points.setdefault(group, {}).get(i)
        if target is None:
            points[group][i] = row.agg  # rows are fresh objects: merge into the first in place
        else:
            target.merge(row.agg)
        members.setdefault(group, {}).setdefault(i, set()).add(row.series.labels)
    series = []
    for group in sorted(points):
        pts = []
        n_points = math.ceil((end - origin) / step)
        for i in range(n_points):
            agg = points[group].get(i)
            t0 = origin + i * step
            t1 = min(t0 + step, end)
            value = _stat(q, agg, t0, t1, res, per_bucket.get(group, {}),
                          len(members[group].get(i, ())))
            if value is not None:
                pts.append([t0, value])
        series.append(SeriesPoints(dict(zip(q.group_by, group, strict=True)), pts))
    return Answer(m.name, q.stat, m.unit, q.step, res, origin, end, series)


def affordable(q: Query, n_series: int, res: int, max_rows: int) -> int:
    """``res``, or the finest coarser resolution that keeps the rows to read (an upper bound:
    series × buckets) within ``max_rows`` and still resolves the step and window; a query that
    none does is refused, saying what to change."""
    for r in RESOLUTIONS:
        if r < res or any(x is not None and x % r for x in (q.step, q.window)):
            continue
        start = q.start - (q.window or 0)
        if n_series * -(-(q.end - (start - start % r)) // r) <= max_rows:
            return r
    buckets = -(-(q.end - q.start + (q.window or 0)) // res)
    raise QueryError("from", f"this query would read up to {n_series * buckets:,} rows "
                             f"({n_series:,} series × {buckets:,} buckets of {res} s), more than "
                             f"the {max_rows:,} allowed; narrow it with where=, shorten the "
                             "range or use a step that is a multiple of 1h")


def _per_core(rows: list[StoredRollup], field: str, filters: list[Filter]
              ) -> list[StoredRollup]:
    """Each series' per-core gauges as rows of their own, the core number a last label."""
    out = []
    for row in rows:
        for name, gauge in row.agg.gauges.items():
            core = _CORE_GAUGE.match(name)
            if core is None or not all(f.matches(core.group(1)) for f in filters):
                continue
            agg = Aggregate()
            agg.gauges[field] = Gauge(gauge)
            ref = SeriesRef(row.series.family, row.series.labels + (core.group(1),))
            out.append(StoredRollup(ref, row.resolution, row.bucket, agg))
    return out


def _series(store: RollupStore, q: Query) -> list[SeriesRef]:
    """The series to read: the rolled-up ones when the query only slices by pool (or not at
    all), else the detailed ones; never both, which would count requests twice."""
    m = q.metric
    dims = FAMILIES[m.family]
    filters = [f for f in q.filters if f.dim in dims]  # `core` is not a stored label
    refs = store.series(m.family)
    if m.family == "request":
        used = set(q.group_by) | {f.dim for f in q.filters}
        if used <= {"pool"}:
            by_pool = bool(used)
            rolled = [r for r in refs if (pool := rolled_up_pool(r.labels)) is not None
                      and (pool != ALL) == by_pool]
            if rolled:
                return [r for r in rolled if matches(r, dims, filters)]
        refs = [r for r in refs if ALL not in r.labels]
    return [r for r in refs if matches(r, dims, filters)]


def matches(ref: SeriesRef, dims: tuple[str, ...], filters: list[Filter]) -> bool:
    """Whether a series' labels pass every filter."""
    return all(f.matches(ref.labels[dims.index(f.dim)]) for f in filters)


def _stat(q: Query, agg: Aggregate | None, t0: int, t1: int, res: int,
          buckets: dict[int, float], n_series: int) -> float | None:
    m, stat = q.metric, q.stat
    seconds = t1 - t0
    if m.kind == "counter":
        if stat == "rate" and q.window:
            total = sum(v for b, v in buckets.items() if t1 - q.window <= b < t1)
            return total / q.window
        count = agg.counters.get(m.field, 0) if agg is not None else 0
        if stat == "count":
            return count
        if stat == "rate":
            return count / seconds
        rates = [buckets.get(b, 0) / res for b in range(t0 - t0 % res, t1, res) if b >= t0]
        return (max(rates) if stat == "peak_rate" else min(rates)) if rates else None
    if agg is None:
        return None
    if m.kind == "dist":
        d = agg.dists.get(m.field)
        if d is None or d.count == 0:
            return None
        if stat == "count":
            return d.count
        if stat == "sum":
            return d.sum * m.scale
        if stat == "mean":
            return d.sum / d.count * m.scale
        if stat in ("min", "max"):
            return (d.min if stat == "min" else d.max) * m.scale
        return d.quantile(float(stat[1:]) / 100) * m.scale
    if m.kind == "gauge":
        g = agg.gauges.get(m.field)
        if g is None:
            return None
        return getattr(g, stat) * m.scale  # last, min, max or mean
    if m.kind == "ratio":
        den = sum(agg.counters.get(c, 0) for c in m.denominator)
        if den == 0:
            return None
        return sum(agg.counters.get(c, 0) * sign for c, sign in m.numerator) / den
    if m.kind == "busy":
        busy = agg.counters.get(m.field, 0) * m.scale
        per = n_series if m.family == "worker" else 1
        return busy / seconds / max(per, 1)
    raise AssertionError(m.kind)
