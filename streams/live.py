"""Live state for sub-second views (R10.1): the last few minutes of requests at 1 s resolution,
per pool and overall, held in memory so the API answers without a store round trip.

The engine hands over each batch's columns as they are; they are folded into per-second,
per-pool summaries only when someone reads (or when enough are pending), so a stream nobody
watches pays one list append per batch, and a watched one a few numpy calls per read.

>>> import numpy as np
>>> live = LiveState(window_s=60)
>>> live.add(np.array([1_800_000_000.2] * 3), np.zeros(3, np.int32), ["a"],
...          np.array([100, 200, 300]), np.zeros(3, bool))
>>> [(r["pool"], r["requests"], r["max_s"]) for r in live.rows(since=0)]
[('', 3, 0.0003), ('a', 3, 0.0003)]
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
from fastdigest import TDigest

from streams.series import OTHER

ALL = ""  # the pool label of the overall series
FOLD_AT = 50_000  # pending requests that trigger a fold without a reader
# Each (second, pool) holds a digest (~2 KB): pools past this many share one live series
# (``__other__``, as the cardinality limit names its overflow), so
# 1,000 pools cost what 200 do (the rollups keep every pool).
MAX_POOLS = 200


class _Second:
    __slots__ = ("requests", "errors", "busy_us", "max_us", "digest", "version")

    def __init__(self) -> None:
        self.requests = self.errors = self.busy_us = self.max_us = 0
        self.digest = TDigest(max_centroids=200)
        self.version = 0


class LiveState:
    def __init__(self, window_s: int = 300, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock  # seconds older than clock() - window_s are not live (a backfill)
        self._seconds: dict[tuple[int, str], _Second] = {}
        self._newest = 0
        self._version = 0
        self._lock = threading.Lock()
        self._pending: list[tuple[np.ndarray, ...]] = []
        self._pending_n = 0
        self._pools: list[str] = []
        # Monotonic since start, per pool: [requests, errors, duration seconds], for counters.
        self._totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])

    def add(self, times: np.ndarray, pools: np.ndarray, pool_names: list[str],
            durations_us: np.ndarray, errors: np.ndarray) -> None:
        """A batch of requests: event times, pool codes into ``pool_names`` (a list that only
        grows), durations and error flags."""
        with self._lock:
            self._pools = pool_names
            self._pending.append((times.astype(np.int64), pools, durations_us, errors))
            self._pending_n += len(times)
            self._version += 1
            if self._pending_n >= FOLD_AT:
                self._fold()

    def _fold(self) -> None:
        if not self._pending:
            return
        secs, pools, durations, errors = (np.concatenate(c) for c in zip(*self._pending, strict=True))
        self._pending, self._pending_n = [], 0
        n_pools = len(self._pools)
        keys = secs * n_pools + pools
        order = np.argsort(keys, kind="stable")
        keys, durations, errors = keys[order], durations[order], errors[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        ends = np.r_[starts[1:], len(keys)]
        horizon = max(self._newest, int(self.clock())) - self.window_s
        for key, a, b in zip(keys[starts].tolist(), starts.tolist(), ends.tolist(), strict=True):
            sec, pool = divmod(key, n_pools)
            pool_name = self._pools[pool]
            d = durations[a:b]
            count, n_errors, busy = b - a, int(errors[a:b].sum()), int(d.sum())
            for name in (pool_name, ALL):  # counters per pool: cheap, kept for every pool
                total = self._totals[name]
                total[0] += count
                total[1] += n_errors
                total[2] += busy / 1e6
            if sec <= horizon:
                continue  # older than the live window: the rollups have it
            digest = TDigest.from_values(d.astype(np.float64), max_centroids=200)
            for k in ((sec, pool_name if pool < MAX_POOLS else OTHER), (sec, ALL)):
                s = self._seconds.get(k)
                if s is None:
                    s = self._seconds[k] = _Second()
                s.requests += count
                s.errors += n_errors
                s.busy_us += busy
                s.max_us = max(s.max_us, int(d.max()))
                s.digest.merge_inplace(digest)
                s.version = self._version
            self._newest = max(self._newest, sec)
        horizon = self._newest - self.window_s
        for k in [k for k in self._seconds if k[0] <= horizon]:
            del self._seconds[k]

    @property
    def totals(self) -> dict[str, list[float]]:
        """Per pool (and ``ALL``): requests, errors and duration seconds since start."""
        with self._lock:
            self._fold()
            return {pool: list(t) for pool, t in self._totals.items()}

    def recent(self, seconds: int = 60) -> dict[str, TDigest]:
        """Per pool, the merged digest of the last ``seconds`` (for summary quantiles)."""
        with self._lock:
            self._fold()
            out: dict[str, TDigest] = {}
            for (sec, pool), s in self._seconds.items():
                if sec > self._newest - seconds:
                    if pool in out:
                        out[pool].merge_inplace(s.digest)
                    else:
                        out[pool] = s.digest.copy()
            return out

    @property
    def version(self) -> int:
        return self._version

    def rows(self, since: int = 0, seconds: int | None = None) -> list[dict[str, Any]]:
        """Per-second rows changed after version ``since`` (optionally only the last N seconds)."""
        with self._lock:
            self._fold()
            low = self._newest - seconds if seconds else -1
            out = []
            for (sec, pool), s in sorted(self._seconds.items()):
                if s.version > since and sec > low:
                    q = s.digest
                    out.append({"t": sec, "pool": pool, "requests": s.requests,
                                "errors": s.errors, "concurrency": s.busy_us / 1e6,
                                "p50_s": q.quantile(0.5) / 1e6, "p95_s": q.quantile(0.95) / 1e6,
                                "p99_s": q.quantile(0.99) / 1e6,
                                "p999_s": q.quantile(0.999) / 1e6, "max_s": s.max_us / 1e6})
            return out
