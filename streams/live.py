"""Live state for sub-second views (R10.1): the last few minutes of requests at 1 s resolution,
per pool and overall, held in memory so the API answers without a store round trip.

>>> from schemas.events import Request
>>> live = LiveState(window_s=60)
>>> live.add([Request(time=1_800_000_000.2, pool="a", command="c", duration_us=d, status="ok")
...           for d in (100, 200, 300)])
>>> [(r["pool"], r["requests"], r["max_s"]) for r in live.rows(since=0)]
[('', 3, 0.0003), ('a', 3, 0.0003)]
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

from fastdigest import TDigest

from schemas.events import Request

ALL = ""  # the pool label of the overall series


class _Second:
    __slots__ = ("requests", "errors", "busy_us", "max_us", "digest", "version")

    def __init__(self) -> None:
        self.requests = self.errors = self.busy_us = self.max_us = 0
        self.digest = TDigest(max_centroids=200)
        self.version = 0


class LiveState:
    def __init__(self, window_s: int = 300) -> None:
        self.window_s = window_s
        self._seconds: dict[tuple[int, str], _Second] = {}
        self._newest = 0
        self._version = 0
        self._lock = threading.Lock()
        # Monotonic since start, per pool: [requests, errors, duration seconds], for counters.
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])

    def add(self, reqs: list[Request]) -> None:
        groups: dict[tuple[int, str], list[Request]] = defaultdict(list)
        for e in reqs:
            groups[(int(e.time), e.pool)].append(e)
        with self._lock:
            self._version += 1
            for (sec, pool), es in groups.items():
                durations = [e.duration_us for e in es]
                errors = sum(e.status != "ok" for e in es)
                for name in (pool, ALL):
                    total = self.totals[name]
                    total[0] += len(es)
                    total[1] += errors
                    total[2] += sum(durations) / 1e6
                if sec <= self._newest - self.window_s:
                    continue  # older than the live window: the rollups have it
                for key in ((sec, pool), (sec, ALL)):
                    s = self._seconds.get(key)
                    if s is None:
                        s = self._seconds[key] = _Second()
                    s.requests += len(es)
                    s.errors += errors
                    s.busy_us += sum(durations)
                    s.max_us = max(s.max_us, max(durations))
                    s.digest.merge_inplace(TDigest.from_values(durations, max_centroids=200))
                    s.version = self._version
                self._newest = max(self._newest, sec)
            horizon = self._newest - self.window_s
            for key in [k for k in self._seconds if k[0] <= horizon]:
                del self._seconds[key]

    def recent(self, seconds: int = 60) -> dict[str, TDigest]:
        """Per pool, the merged digest of the last ``seconds`` (for summary quantiles)."""
        with self._lock:
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
