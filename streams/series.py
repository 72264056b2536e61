"""Which series an event updates, and with what: the declarative part of the pipeline.

Each canonical event type feeds one or more *families* of series. A family fixes its label
names (its dimensions); a series is one combination of label values. Each update is a counter
increment, a gauge sample, or a value for a distribution; units stay as the event carries them
(microseconds, bytes) so counts and sums are exact.

Requests, by far the most numerous events, are aggregated as columns (``streams.requests``);
the rarer types go through one small function each here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from schemas.events import Client, Native, Pool, Python, RequestStart, Resource, Session, Worker
from streams.aggregate import Aggregate

log = logging.getLogger(__name__)

FAMILIES: dict[str, tuple[str, ...]] = {
    "request": ("pool", "worker_profile", "adapter", "command", "python_env", "library",
                "segment", "node"),
    "worker": ("pool", "worker_id"),
    "pool": ("pool",),
    "session": ("pool", "adapter"),
    "resource": ("scope", "host", "pool", "worker_id"),
    "python": ("pool", "python_env", "library", "command"),
    "native": ("name", "pool"),
    "client": ("tool", "scenario", "name", "method", "run_id"),
}

OTHER = "__other__"
# Label value of rolled-up request series: (pool, __all__, ...) sums a pool over every other
# dimension and (__all__, ...) the whole deployment, so the most common queries (overview, by
# pool) read one series per point instead of merging dozens of digests.
ALL = "__all__"
_ALL7 = (ALL,) * 7


def rolled_up_pool(labels: tuple[str, ...]) -> str | None:
    """The pool of a per-pool rolled-up request series, ``ALL`` for the deployment-wide one,
    None for a detailed series."""
    return labels[0] if labels[1:] == _ALL7 else None


class Pane:
    """An open bucket's raw inputs: counters and gauges summed as they come, values buffered.

    Values are kept raw until the pane closes and are then sorted into one t-digest, so the
    digest does not depend on how the stream was cut into batches (needed for exactly-once:
    a replay after a crash must store the very same digest). They are buffered in plain lists
    (the cheapest append) and compacted into float64 arrays past ``COMPACT_AT`` values, which
    bounds a busy pane's memory at ~8 bytes per value.
    """

    COMPACT_AT = 32_768
    __slots__ = ("agg", "values", "compacted")

    def __init__(self) -> None:
        self.agg = Aggregate()
        self.values: dict[str, list[float]] = {}
        self.compacted: dict[str, list[np.ndarray]] = {}

    def add_values(self, name: str, values: list[float]) -> None:
        v = self.values.get(name)
        if v is None:
            self.values[name] = list(values)
            return
        v.extend(values)
        if len(v) > self.COMPACT_AT:
            self.compacted.setdefault(name, []).append(np.array(v, dtype=np.float64))
            self.values[name] = []

    def copy(self) -> Pane:
        p = Pane()
        p.agg = self.agg.copy()
        p.values = {k: list(v) for k, v in self.values.items()}
        p.compacted = {k: list(v) for k, v in self.compacted.items()}
        return p

    def raw_values(self, name: str) -> np.ndarray:
        """Every buffered value of ``name`` (for checkpoints and closing)."""
        parts = [*self.compacted.get(name, ()), np.array(self.values.get(name, ()), np.float64)]
        return np.concatenate(parts)

    def names(self) -> set[str]:
        return set(self.values) | set(self.compacted)

    def close(self) -> Aggregate:
        for name in sorted(self.names()):
            self.agg.add_values(name, np.sort(self.raw_values(name)).tolist())
        self.values, self.compacted = {}, {}
        return self.agg


@dataclass(frozen=True, slots=True)
class Limits:
    """What one producer's labels may cost. Memory grows with active series (each holds
    digests in every open pane and bucket, ~15 KB at the three resolutions), so a limit per
    dimension alone is not enough: 1,000 pools x 1,000 commands are each within it."""

    max_label_values: int = 1000  # distinct values per family and dimension
    max_series_per_family: int = 10_000  # active series of one family (request, worker, ...)
    max_series: int = 25_000  # active series of all families together


class CardinalityLimiter:
    """Caps distinct values per (family, dimension) and active series per family and in all;
    the overflow folds into ``__other__`` and is counted.

    A series past a series limit keeps its first label (its pool, for most families) when that
    value is admitted, so per-pool totals stay exact, and folds the rest: ``(pool, __other__,
    ...)``. "Active" means seen since the hour before last: when an hour closes the engine
    calls :meth:`retain` with the series its open state still holds, so recycled worker ids
    and retired commands free their places instead of filling the limits for ever.

    Decisions depend only on this state (checkpointed with the engine) and, within an hour,
    never change for a label tuple: admitted stays admitted, full stays full. So the cache in
    front of it (``SeriesIndex``) can skip it, and a restored engine decides the same."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.max_values = self.limits.max_label_values
        self.known: dict[str, set[tuple[str, ...]]] = {f: set() for f in FAMILIES}
        self.values: dict[tuple[str, int], set[str]] = {}
        self.total = 0  # series in ``known``
        self.overflowed = 0  # label values folded
        self.series_overflowed: dict[str, int] = {}  # new series folded past a series limit

    def labels(self, family: str, labels: tuple[str, ...]) -> tuple[str, ...]:
        known = self.known[family]
        if labels in known:
            return labels
        fixed = []
        for i, value in enumerate(labels):
            seen = self.values.setdefault((family, i), set())
            if value == ALL:
                fixed.append(value)
            elif value in seen or len(seen) < self.max_values:
                seen.add(value)
                fixed.append(value)
            else:
                fixed.append(OTHER)
                self.overflowed += 1
        result = tuple(fixed)
        if result != labels or result in known:
            return result
        if len(known) >= self.limits.max_series_per_family \
                or self.total >= self.limits.max_series:
            self.series_overflowed[family] = self.series_overflowed.get(family, 0) + 1
            if self.series_overflowed[family] == 1:
                log.warning("%s: more than %d active series (%d in all); new series fold into "
                            "%s (see snakepit_perf_series_overflow_total)", family,
                            self.limits.max_series_per_family, self.total, OTHER)
            return (result[0], *(v if v == ALL else OTHER for v in result[1:]))
        known.add(labels)
        self.total += 1
        return result

    def warnings(self) -> list[str]:
        """One line per family whose new series were folded by a series limit."""
        return [f"{family}: {n} new series folded into {OTHER}: more than "
                f"{self.limits.max_series_per_family} active series in the family or "
                f"{self.limits.max_series} in all (a producer sending unbounded labels?)"
                for family, n in sorted(self.series_overflowed.items())]

    def retain(self, active: set[tuple[str, tuple[str, ...]]]) -> None:
        """Forget the series (and label values) not in ``active``; see the class notes."""
        self.values = {}
        self.total = 0
        for family, known in self.known.items():
            kept = {labels for labels in known if (family, labels) in active}
            self.known[family] = kept
            self.total += len(kept)
            for labels in kept:
                for i, value in enumerate(labels):
                    if value != ALL:
                        self.values.setdefault((family, i), set()).add(value)

    def state(self) -> dict[str, Any]:
        return {"known": {f: sorted(map(list, k)) for f, k in self.known.items() if k},
                "values": [[f, i, sorted(v)] for (f, i), v in self.values.items()],
                "series_overflowed": self.series_overflowed}

    def load(self, state: dict[str, Any] | list) -> None:
        if isinstance(state, list):  # older checkpoints held only the values
            state = {"values": state}
        for family, known in state.get("known", {}).items():
            self.known[family] = set(map(tuple, known))
        self.total = sum(map(len, self.known.values()))
        for family, i, values in state["values"]:
            self.values[(family, i)] = set(values)
        self.series_overflowed.update(state.get("series_overflowed", {}))


# pane(family, labels, event_time) -> the Pane that event updates
PaneFor = Callable[[str, tuple[str, ...], float], Pane]


def request_start(e: RequestStart, pane: PaneFor) -> None:
    pane("pool", (e.pool,), e.time).agg.add_counter("started", 1)


def worker(e: Worker, pane: PaneFor) -> None:
    t = e.time
    p = pane("worker", (e.pool or "", e.worker_id), t)
    p.agg.add_counter(e.kind, 1)
    if e.kind == "recycled" and e.reason:
        p.agg.add_counter(f"recycled.{e.reason}", 1)
    for name in ("startup_us", "lifetime_us", "heartbeat_latency_us"):
        value = getattr(e, name)
        if value is not None:
            p.add_values(name, [value])
    for name in ("beam_memory_mb", "uptime_s", "request_count", "memory_threshold_mb"):
        value = getattr(e, name)
        if value is not None:
            p.agg.add_gauge(name, t, value)


_POOL_GAUGES = ("failure_count", "queue_depth", "max_queue_size", "busy_workers",
                "available_workers", "pool_size", "threads_per_worker", "capacity", "load",
                "total_workers", "requests_total", "queue_timeouts_total", "errors_total")


def pool(e: Pool, pane: PaneFor) -> None:
    t = e.time
    p = pane("pool", (e.pool,), t)
    p.agg.add_counter(e.kind, 1)
    for name in _POOL_GAUGES:
        value = getattr(e, name)
        if value is not None:
            p.agg.add_gauge(name, t, value)
    if e.duration_us is not None:
        p.add_values(f"{e.kind}_us", [e.duration_us])


_SESSION_DURATION = {"created": "create_us", "accessed": "access_us", "expired": "cleanup_us",
                     "deleted": "cleanup_us", "pruned": "cleanup_us"}


def session(e: Session, pane: PaneFor) -> None:
    t = e.time
    p = pane("session", (e.pool or "", e.adapter or ""), t)
    kind = e.kind
    p.agg.add_counter(kind, e.count if kind == "pruned" and e.count is not None else 1)
    if e.success is False:
        p.agg.add_counter(f"{kind}_failed", 1)
    if e.cache_hit is not None:
        p.agg.add_counter("cache_hits" if e.cache_hit else "cache_misses", 1)
    if e.bytes_reclaimed is not None:
        p.agg.add_counter("bytes_reclaimed", e.bytes_reclaimed)
    if e.duration_us is not None and kind in _SESSION_DURATION:
        p.add_values(_SESSION_DURATION[kind], [e.duration_us])
    for name in ("current_sessions", "remaining_sessions", "max_sessions", "utilization"):
        value = getattr(e, name)
        if value is not None:
            p.agg.add_gauge(name, t, value)


_RESOURCE_GAUGES = tuple(f for f in Resource.__struct_fields__
                         if f not in {"time", "node", "tags", "scope", "host", "pool", "worker_id",
                                      "cpu_per_core", "gc_pause_us"})


def resource(e: Resource, pane: PaneFor) -> None:
    t = e.time
    p = pane("resource", (e.scope, e.host or e.node or "", e.pool or "", e.worker_id or ""), t)
    for name in _RESOURCE_GAUGES:
        value = getattr(e, name)
        if value is not None:
            p.agg.add_gauge(name, t, value)
    for i, value in enumerate(e.cpu_per_core or ()):
        p.agg.add_gauge(f"cpu_core_{i}_percent", t, value)
    if e.gc_pause_us is not None:
        p.add_values("gc_pause_us", [e.gc_pause_us])


def python(e: Python, pane: PaneFor) -> None:
    t = e.time
    p = pane("python", (e.pool or "", e.python_env or "", e.library or "", e.command or ""), t)
    p.agg.add_counter(e.kind, 1)
    for name in ("python_us", "duration_us", "gc_pause_us", "startup_us"):
        value = getattr(e, name)
        if value is not None:
            p.add_values(name, [value])
    for name in ("memory_bytes", "cpu_percent"):
        value = getattr(e, name)
        if value is not None:
            p.agg.add_gauge(name, t, value)
    if e.bytes is not None:
        p.agg.add_counter("bytes", e.bytes)
    for name, value in (e.metrics or {}).items():
        p.agg.add_gauge(f"m.{name}", t, value)


def native(e: Native, pane: PaneFor) -> None:
    t = e.time
    p = pane("native", (e.name, e.pool or ""), t)
    p.agg.add_counter("events", 1)
    for name, value in (e.measurements or {}).items():
        p.agg.add_gauge(f"m.{name}", t, value)


def client(e: Client, pane: PaneFor) -> None:
    p = pane("client", (e.tool, e.scenario or "", e.name, e.method or "", e.run_id or ""), e.time)
    p.agg.add_counter("requests", 1)
    if e.status == "error":
        p.agg.add_counter("errors", 1)
    if e.bytes is not None:
        p.agg.add_counter("bytes", e.bytes)
    p.add_values("duration_us", [e.duration_us])


EXTRACTORS: dict[type, Callable[[Any, PaneFor], None]] = {
    RequestStart: request_start, Worker: worker, Pool: pool, Session: session,
    Resource: resource, Python: python, Native: native, Client: client,
}
