"""What the recommender knows about each pool, read from the stored rollups.

Capacity is judged at the pool's peak: the busiest ``peak_s`` of the range (by requests), since
a pool sized for its average queues every afternoon. Over that peak: the arrival rate, the
service time's mean and squared coefficient of variation, the measured queue waits and
timeouts, the configured size. Over the whole range: recycling, crashes, startup times, queue
and session signals.

Service time is the engine's ``service_us`` (duration - queue wait) where the requests carry
their wait (our SDK, the simulator); where they do not (Snakepit's execute span measures the
worker's call only), the duration is the service time.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from store.base import RollupStore
from streams.aggregate import Dist, Gauge
from streams.rollup import SeriesRef
from streams.series import ALL

_ALL7 = (ALL,) * 7


@dataclass
class PoolEvidence:
    """One pool's numbers over a range, and at its peak within it."""

    pool: str
    start: float  # the range judged
    end: float
    peak_start: float  # the busiest ``peak_s`` of it
    peak_end: float
    requests: float = 0.0  # at the peak
    rate: float = 0.0  # requests per second at the peak
    mean_service_s: float = math.nan
    service_scv: float = math.nan
    p95_wait_s: float | None = None  # measured at the peak (None: the events carry no wait)
    p99_wait_s: float | None = None
    p95_duration_s: float = math.nan
    timeouts: float = 0.0
    errors: float = 0.0
    pool_size: int | None = None  # as the pool reported it (last value in the range)
    threads_per_worker: int = 1
    worker_profile: str = ""
    max_queue_size: int | None = None
    # whole range
    range_requests: float = 0.0
    first_seen: float = math.inf  # the first stored bucket with requests (history length)
    recycled: dict[str, float] = field(default_factory=dict)  # by reason
    crashed: float = 0.0
    spawned: float = 0.0
    mean_startup_s: float | None = None
    recycled_at_requests: float | None = None  # most requests a recycled worker had served
    recycled_at_uptime_s: float | None = None
    memory_threshold_mb: float | None = None
    heartbeat_pongs: float = 0.0
    heartbeat_timeouts: float = 0.0
    heartbeat_p99_s: float | None = None  # pong round trip
    saturated: float = 0.0
    peak_queue_depth: float = 0.0
    commands: set[str] = field(default_factory=set)

    @property
    def servers(self) -> int | None:
        return None if self.pool_size is None else self.pool_size * self.threads_per_worker

    @property
    def down_servers(self) -> float:
        """Servers unavailable on average: recycled and crashed workers starting up again."""
        if self.mean_startup_s is None or self.end <= self.start:
            return 0.0
        restarts = sum(self.recycled.values()) + self.crashed
        return restarts / (self.end - self.start) * self.mean_startup_s * self.threads_per_worker

    @property
    def utilisation(self) -> float:
        """Busy share of the pool's capacity at the peak (offered load / servers)."""
        c = self.servers
        if not c or not math.isfinite(self.mean_service_s):
            return math.nan
        return self.rate * self.mean_service_s / c


def _moments(d: Dist | None) -> tuple[float, float, float]:
    """(count, mean, variance) of a stored distribution, the variance from its centroids."""
    if d is None or d.count == 0:
        return 0.0, math.nan, math.nan
    cents = np.array(d.digest.centroids, dtype=float).reshape(-1, 2)
    w = cents[:, 1]
    mean = d.sum / d.count
    var = float(np.sum(w * (cents[:, 0] - mean) ** 2) / w.sum()) if w.sum() else 0.0
    return float(d.count), mean, var


def _merge(into: dict[str, Dist], name: str, d: Dist | None) -> None:
    if d is None or d.count == 0:
        return
    if name in into:
        into[name].merge(d)
    else:
        into[name] = d.copy()


def _peak(per_bucket: dict[int, float], resolution: int, peak_s: float, lo: int, hi: int
          ) -> tuple[int, int]:
    """The ``[lo, hi)`` buckets of the busiest span of ``peak_s`` seconds (at most the range)."""
    width = max(1, min(round(peak_s / resolution), (hi - lo) // resolution))
    buckets = list(range(lo, hi - (width - 1) * resolution, resolution))
    counts = np.array([per_bucket.get(b, 0.0) for b in range(lo, hi, resolution)])
    sums = np.convolve(counts, np.ones(width), mode="valid")  # every span's total
    best = buckets[int(np.argmax(sums))]
    return best, best + width * resolution


def pool_evidence(store: RollupStore, start: float, end: float, resolution: int = 60,
                  peak_s: float = 900.0) -> dict[str, PoolEvidence]:
    """Evidence for every pool with requests in ``[start, end)``."""
    lo = math.ceil(start / resolution) * resolution
    hi = math.floor(end / resolution) * resolution
    refs = [r for r in store.series("request") if r.labels[1:] == _ALL7 and r.labels[0] != ALL]
    if hi <= lo or not refs:
        return {}
    counts: dict[str, dict[int, float]] = defaultdict(dict)
    for r in store.read(refs, resolution, lo, hi, ()):  # counters only: where is the peak
        counts[r.series.labels[0]][r.bucket] = r.agg.counters.get("requests", 0.0)
    out: dict[str, PoolEvidence] = {}
    for pool, per_bucket in counts.items():
        if not sum(per_bucket.values()):
            continue
        p0, p1 = _peak(per_bucket, resolution, peak_s, lo, hi)
        ev = PoolEvidence(pool, start, end, p0, p1, range_requests=sum(per_bucket.values()),
                          first_seen=min(b for b, n in per_bucket.items() if n))
        dists: dict[str, Dist] = {}
        for r in store.read([SeriesRef("request", (pool, *_ALL7))], resolution, p0, p1,
                            ("duration_us", "queue_wait_us", "service_us")):
            a = r.agg
            ev.requests += a.counters.get("requests", 0.0)
            ev.timeouts += a.counters.get("timeouts", 0.0)
            ev.errors += a.counters.get("errors", 0.0)
            _merge(dists, "d", a.dists.get("duration_us"))
            _merge(dists, "w", a.dists.get("queue_wait_us"))
            _merge(dists, "s", a.dists.get("service_us"))
        ev.rate = ev.requests / (p1 - p0)
        _service(ev, dists.get("d"), dists.get("w"), dists.get("s"))
        out[pool] = ev
    for r in store.series("request"):  # the catalogue: which commands each pool serves
        if ALL not in r.labels and r.labels[0] in out:
            out[r.labels[0]].commands.add(r.labels[3])
            out[r.labels[0]].worker_profile = r.labels[1] or out[r.labels[0]].worker_profile
    _pool_gauges(store, out, resolution, lo, hi)
    _workers(store, out, resolution, lo, hi)
    return out


def _service(ev: PoolEvidence, d: Dist | None, w: Dist | None, s: Dist | None) -> None:
    if d is None or not d.count:
        return
    ev.p95_duration_s = d.quantile(0.95) / 1e6
    carry_wait = w is not None and w.count >= 0.9 * d.count
    if carry_wait:
        ev.p95_wait_s, ev.p99_wait_s = w.quantile(0.95) / 1e6, w.quantile(0.99) / 1e6
    # service times where the requests carry their wait (refused and timed-out ones have none)
    n, mean, var = _moments(s if carry_wait and s is not None and s.count else d)
    ev.mean_service_s = mean / 1e6
    ev.service_scv = var / mean ** 2 if mean > 0 else 0.0


def _last(gauge: Gauge | None, prev: tuple[float, float] | None
          ) -> tuple[float, float] | None:
    if gauge is None:
        return prev
    return (gauge.last_time, gauge.last) if prev is None or gauge.last_time >= prev[0] else prev


def _pool_gauges(store: RollupStore, out: dict[str, PoolEvidence], res: int, lo: int,
                 hi: int) -> None:
    refs = [SeriesRef("pool", (p,)) for p in out]
    last: dict[tuple[str, str], tuple[float, float] | None] = defaultdict(lambda: None)
    for r in store.read(refs, res, lo, hi, ()):
        ev, g = out[r.series.labels[0]], r.agg.gauges
        for name in ("pool_size", "threads_per_worker", "max_queue_size"):
            last[(ev.pool, name)] = _last(g.get(name), last[(ev.pool, name)])
        ev.saturated += r.agg.counters.get("saturated", 0.0)
        if "queue_depth" in g:
            ev.peak_queue_depth = max(ev.peak_queue_depth, g["queue_depth"].max)
    for ev in out.values():
        for name in ("pool_size", "threads_per_worker", "max_queue_size"):
            value = last[(ev.pool, name)]
            if value is not None:
                setattr(ev, name, int(value[1]))


def _workers(store: RollupStore, out: dict[str, PoolEvidence], res: int, lo: int,
             hi: int) -> None:
    refs = [r for r in store.series("worker") if r.labels[0] in out]
    startup: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    pongs: dict[str, Dist] = {}
    for r in store.read(refs, res, lo, hi, ("startup_us", "heartbeat_latency_us")):
        ev, c = out[r.series.labels[0]], r.agg.counters
        ev.crashed += c.get("crashed", 0.0)
        ev.heartbeat_pongs += c.get("heartbeat_pong", 0.0)
        ev.heartbeat_timeouts += c.get("heartbeat_timeout", 0.0)
        _merge(pongs, ev.pool, r.agg.dists.get("heartbeat_latency_us"))
        ev.spawned += c.get("spawned", 0.0)
        for name, value in c.items():
            if name.startswith("recycled."):
                reason = name.split(".", 1)[1]
                ev.recycled[reason] = ev.recycled.get(reason, 0.0) + value
        g = r.agg.gauges
        for name, attr in (("request_count", "recycled_at_requests"),
                           ("uptime_s", "recycled_at_uptime_s")):
            if name in g:
                setattr(ev, attr, max(getattr(ev, attr) or 0.0, g[name].max))
        if "memory_threshold_mb" in g:
            ev.memory_threshold_mb = g["memory_threshold_mb"].last
        d = r.agg.dists.get("startup_us")
        if d is not None and d.count:
            startup[ev.pool][0] += d.sum
            startup[ev.pool][1] += d.count
    for pool, (total, n) in startup.items():
        out[pool].mean_startup_s = total / n / 1e6
    for pool, d in pongs.items():
        out[pool].heartbeat_p99_s = d.quantile(0.99) / 1e6


@dataclass
class SessionEvidence:
    """Deployment-wide session signals: Snakepit's pruning and accumulation events name no
    pool (the ETS table is shared)."""

    pruned: float = 0.0
    warnings: float = 0.0
    max_sessions: int | None = None
    peak_sessions: float = 0.0


def session_evidence(store: RollupStore, start: float, end: float, resolution: int = 60
                     ) -> SessionEvidence:
    lo = math.ceil(start / resolution) * resolution
    hi = math.floor(end / resolution) * resolution
    out = SessionEvidence()
    for r in store.read(store.series("session"), resolution, lo, hi, ()):
        g = r.agg.gauges
        out.pruned += r.agg.counters.get("pruned", 0.0)
        out.warnings += r.agg.counters.get("accumulation_warning", 0.0)
        if "max_sessions" in g:
            out.max_sessions = int(g["max_sessions"].last)
        if "current_sessions" in g:
            out.peak_sessions = max(out.peak_sessions, g["current_sessions"].max)
    return out


def group_means(store: RollupStore, start: float, end: float, dim: str,
                resolution: int = 60) -> dict[tuple[str, str, str], list[float]]:
    """(pool, command, value of ``dim``) -> per-bucket mean service time (s), from the detailed
    request series: the samples a significance test between Python environments or libraries
    runs on."""
    from streams.series import FAMILIES

    dims = FAMILIES["request"]
    i = dims.index(dim)
    lo = math.ceil(start / resolution) * resolution
    hi = math.floor(end / resolution) * resolution
    refs = [r for r in store.series("request") if ALL not in r.labels]
    sums: dict[tuple[str, str, str], dict[int, list[float]]] = defaultdict(
        lambda: defaultdict(lambda: [0.0, 0.0]))
    for r in store.read(refs, resolution, lo, hi, ("duration_us", "service_us")):
        d = r.agg.dists.get("service_us") or r.agg.dists.get("duration_us")
        if d is None or not d.count:
            continue
        labels = r.series.labels
        cell = sums[(labels[0], labels[dims.index("command")], labels[i])][r.bucket]
        cell[0] += d.sum
        cell[1] += d.count
    return {k: [s / n / 1e6 for s, n in v.values() if n] for k, v in sums.items()}
