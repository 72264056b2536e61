"""Per-pool signals, one value per closed minute, taken from the engine's 1-minute rollups.

>>> from streams.aggregate import Aggregate
>>> from streams.rollup import Rollup
>>> a = Aggregate(); a.add_counter("requests", 120); a.add_counter("errors", 6)
>>> a.add_values("duration_us", [1000.0] * 120)
>>> rows = [Rollup("request", ("p", *("__all__",) * 7), 60, 1_800_000_000, a)]
>>> s = minute_signals(rows)[(1_800_000_000, "p")]
>>> s["rate"], s["error_ratio"], s["p99_s"]
(2.0, 0.05, 0.001)
"""

from __future__ import annotations

from collections.abc import Iterable

from streams.rollup import Rollup
from streams.series import ALL, rolled_up_pool

Signals = dict[str, float]


def minute_signals(rollups: Iterable[Rollup]) -> dict[tuple[int, str], Signals]:
    """``{(minute, pool): {signal: value}}`` from closed (non-late) 1-minute rollups."""
    out: dict[tuple[int, str], Signals] = {}
    busy: dict[tuple[int, str], list[float]] = {}  # per worker that served requests: busy share
    for r in rollups:
        if r.resolution != 60 or r.late:
            continue
        a = r.agg
        if r.family == "request" and rolled_up_pool(r.labels) not in (None, ALL):
            s = out.setdefault((r.bucket, r.labels[0]), {})
            n = a.counters.get("requests", 0)
            s["rate"] = n / 60
            bad = a.counters.get("errors", 0) + a.counters.get("timeouts", 0)
            s["errors"] = bad
            s["error_ratio"] = bad / n if n else 0.0
            d = a.dists.get("duration_us")
            if d is not None and d.count:
                s["p50_s"] = d.quantile(0.5) / 1e6
                s["p99_s"] = d.quantile(0.99) / 1e6
            w = a.dists.get("queue_wait_us")
            if w is not None and w.count:
                s["queue_wait_p99_s"] = w.quantile(0.99) / 1e6
        elif r.family == "worker":
            s = out.setdefault((r.bucket, r.labels[0]), {})
            s["crashes"] = s.get("crashes", 0) + a.counters.get("crashed", 0)
            s["recycles"] = s.get("recycles", 0) + a.counters.get("recycled", 0)
            if a.counters.get("requests"):
                busy.setdefault((r.bucket, r.labels[0]), []).append(a.counters["busy_us"] / 6e7)
        elif r.family == "pool":
            s = out.setdefault((r.bucket, r.labels[0]), {})
            g = a.gauges.get("queue_depth")
            if g is not None:
                s["queue_depth_max"] = g.max
        elif r.family == "resource" and r.labels[0] == "worker":
            g = a.gauges.get("memory_bytes")
            if g is not None:
                s = out.setdefault((r.bucket, r.labels[2]), {})
                s["memory_bytes"] = s.get("memory_bytes", 0) + g.last
    for key, shares in busy.items():
        out[key]["utilization"] = sum(shares) / len(shares)
    return out
