"""Which series an event updates, and with what: the declarative part of the pipeline.

Each canonical event type feeds one or more *families* of series. A family fixes its label
names (its dimensions); a series is one combination of label values. Each update is a counter
increment, a gauge sample, or a value for a distribution; units stay as the event carries them
(microseconds, bytes) so counts and sums are exact.

Requests, by far the most numerous events, are grouped per batch and updated a group at a time
(:func:`requests`); the rarer types go through one small function each.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any

import numpy as np

from schemas.events import Pool, Python, RequestStart, Resource, Session, Worker
from streams.aggregate import EXEMPLARS, Aggregate

FAMILIES: dict[str, tuple[str, ...]] = {
    "request": ("pool", "worker_profile", "adapter", "command", "python_env", "library",
                "segment", "node"),
    "worker": ("pool", "worker_id"),
    "pool": ("pool",),
    "session": ("pool", "adapter"),
    "resource": ("scope", "host", "pool", "worker_id"),
    "python": ("pool", "python_env", "library", "command"),
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
    CANDIDATES_AT = 128
    __slots__ = ("agg", "values", "compacted", "candidates")

    def __init__(self) -> None:
        self.agg = Aggregate()
        self.values: dict[str, list[float]] = {}
        self.compacted: dict[str, list[np.ndarray]] = {}
        self.candidates: list[Any] = []  # requests that may become exemplars

    def add_candidates(self, requests: list[Any]) -> None:
        """Buffer requests that may become exemplars; cut down to the possible ones every
        ``CANDIDATES_AT``, so the cost per request is a list append and a C-level sort."""
        self.candidates.extend(requests)
        if len(self.candidates) > self.CANDIDATES_AT:
            self.candidates = _exemplar_candidates(self.candidates)

    def fold_candidates(self) -> None:
        """Turn the buffered candidates into the aggregate's exemplars (at close, snapshot)."""
        if self.candidates:
            self.agg.add_exemplars([_exemplar(e) for e in _exemplar_candidates(self.candidates)])
            self.candidates = []

    def add_values(self, name: str, values: list[float]) -> None:
        v = self.values.get(name)
        if v is None:
            self.values[name] = list(values)
            return
        v.extend(values)
        if len(v) > self.COMPACT_AT:
            self.compacted.setdefault(name, []).append(np.array(v, dtype=np.float64))
            self.values[name] = []

    def raw_values(self, name: str) -> np.ndarray:
        """Every buffered value of ``name`` (for checkpoints and closing)."""
        parts = [*self.compacted.get(name, ()), np.array(self.values.get(name, ()), np.float64)]
        return np.concatenate(parts)

    def names(self) -> set[str]:
        return set(self.values) | set(self.compacted)

    def close(self) -> Aggregate:
        self.fold_candidates()
        for name in sorted(self.names()):
            self.agg.add_values(name, np.sort(self.raw_values(name)).tolist())
        self.values, self.compacted = {}, {}
        return self.agg


class CardinalityLimiter:
    """Caps distinct values per (family, dimension); the overflow folds into ``__other__``."""

    def __init__(self, max_values: int) -> None:
        self.max_values = max_values
        self.known: dict[str, set[tuple[str, ...]]] = {f: set() for f in FAMILIES}
        self.values: dict[tuple[str, int], set[str]] = {}
        self.overflowed = 0

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
        if result == labels:
            known.add(labels)
        return result


# pane(family, labels, event_time) -> the Pane that event updates
PaneFor = Callable[[str, tuple[str, ...], float], Pane]

_request_key = attrgetter("pool", "worker_profile", "adapter", "command", "python_env", "library",
                          "segment", "node")
_worker_key = attrgetter("pool", "worker_id")
_time = attrgetter("time")


def requests(reqs: list[Any], resolution: int, pane: PaneFor) -> None:
    """Group a batch's requests by series and bucket, then update each group in bulk.

    Requests feed two families: ``request`` (by the request dimensions) and ``worker`` (by pool
    and worker); each is grouped separately so that neither pays for the other's cardinality.
    """
    times = [e.time for e in reqs]
    lo = int(min(times) // resolution)
    if lo == int(max(times) // resolution):  # the common case: one bucket for the whole batch
        batches = [(lo * resolution, reqs)]
    else:
        split: dict[int, list[Any]] = {}
        for e in reqs:
            split.setdefault(int(e.time // resolution), []).append(e)
        batches = [(b * resolution, es) for b, es in sorted(split.items())]
    for t, es in batches:
        for key, g in _group(es, _request_key).items():
            _request_group(tuple(v or "" for v in key), g, t, pane)
        for (pool_name, worker_id), g in _group(es, _worker_key).items():
            _worker_group((pool_name, worker_id or ""), g, t, pane)


def _group(events: list[Any], key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = {}
    for e in events:
        k = key(e)
        g = groups.get(k)
        if g is None:
            groups[k] = [e]
        else:
            g.append(e)
    return groups


def _request_group(labels: tuple[str, ...], g: list[Any], t: float, pane: PaneFor) -> None:
    durations = [e.duration_us for e in g]
    statuses = [e.status for e in g]
    n = len(g)
    busy = sum(durations)
    not_ok = n - statuses.count("ok")
    timeouts = statuses.count("timeout") if not_ok else 0
    retries = sum(e.retries for e in g if e.retries)
    waits = [e.queue_wait_us for e in g if e.queue_wait_us is not None]
    pys = [e for e in g if e.python_us is not None]
    python = [e.python_us for e in pys]
    overhead = [e.duration_us - e.python_us if e.duration_us > e.python_us else 0 for e in pys]
    for target in (labels, (labels[0], *_ALL7), (ALL, *_ALL7)):
        p = pane("request", target, t)
        c = p.agg.counters
        c["requests"] = c.get("requests", 0) + n
        c["busy_us"] = c.get("busy_us", 0) + busy
        if not_ok:
            c["errors"] = c.get("errors", 0) + not_ok - timeouts
            if timeouts:
                c["timeouts"] = c.get("timeouts", 0) + timeouts
        if retries:
            c["retries"] = c.get("retries", 0) + retries
        p.add_values("duration_us", durations)
        if waits:
            p.add_values("queue_wait_us", waits)
        if pys:
            p.add_values("python_us", python)
            p.add_values("overhead_us", overhead)


def _worker_group(labels: tuple[str, str], g: list[Any], t: float, pane: PaneFor) -> None:
    durations = [e.duration_us for e in g]
    n = len(g)
    w = pane("worker", labels, t)
    c = w.agg.counters
    c["requests"] = c.get("requests", 0) + n
    # A worker is busy from taking a request to finishing it: the queue wait before is not its.
    waits = sum(e.queue_wait_us for e in g if e.queue_wait_us)
    c["busy_us"] = c.get("busy_us", 0) + sum(durations) - waits
    errors = n - [e.status for e in g].count("ok")
    if errors:
        c["errors"] = c.get("errors", 0) + errors
    w.add_values("duration_us", durations)
    w.add_candidates(g)


_duration = attrgetter("duration_us")


def _exemplar_candidates(requests: list[Any]) -> list[Any]:
    """The slowest and the sampled requests, chosen as :func:`streams.aggregate.select_exemplars`
    chooses (by (duration, time), sampled by its hash) with C-level keys and sorts."""
    keys = list(zip(map(_duration, requests), map(_time, requests), strict=True))
    by_key = dict(zip(keys, requests, strict=True))  # equal requests count once
    if len(by_key) <= 2 * EXEMPLARS:
        return list(by_key.values())
    ordered = sorted(by_key)
    chosen = ordered[-EXEMPLARS:] + sorted(ordered, key=hash)[:EXEMPLARS]
    return [by_key[k] for k in chosen]


def _exemplar(e: Any) -> dict[str, Any]:
    return {"time": e.time, "duration_us": e.duration_us, "status": e.status,
            "command": e.command, "trace_id": e.trace_id or "", "adapter": e.adapter or "",
            "queue_wait_us": e.queue_wait_us, "python_us": e.python_us,
            "session_id": e.session_id or "", "error": e.error or ""}


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
    for name in ("memory_mb", "uptime_s", "request_count"):
        value = getattr(e, name)
        if value is not None:
            p.agg.add_gauge(name, t, value)


_POOL_GAUGES = ("queue_depth", "max_queue_size", "busy_workers", "available_workers", "pool_size",
                "threads_per_worker", "capacity", "load", "total_workers", "requests_total",
                "queue_timeouts_total", "errors_total")


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
    for name in ("python_us", "duration_us", "gc_pause_us"):
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


EXTRACTORS: dict[type, Callable[[Any, PaneFor], None]] = {
    RequestStart: request_start, Worker: worker, Pool: pool, Session: session,
    Resource: resource, Python: python,
}
