"""Closed rollups as messages on ``snakepit.rollups``: JSON a Kafka consumer can read as is.

Each message is one series' bucket: its labels by dimension name, exact counters, gauge
summaries, distribution summaries (count, sum, min, max and the usual quantiles, in the event's
units) and, for consumers that merge buckets exactly, the stored aggregate itself (base64). The
key names the stored row (family, labels, resolution, bucket, shard), so a rollup re-sent after
a worker restart has the same key as the first one (the topic is at-least-once; a compacted
topic or a consumer keyed on it sees each row once).

>>> from streams.aggregate import Aggregate
>>> from streams.rollup import Rollup
>>> a = Aggregate()
>>> a.add_counter("requests", 3)
>>> key, value = rollup_message(Rollup("pool", ("p",), 60, 1_800_000_000, a), "t:0")
>>> key, orjson.loads(value)["counters"]
(b'["pool",["p"],60,1800000000,"t:0"]', {'requests': 3})
"""

from __future__ import annotations

import base64

import orjson

from streams.aggregate import KNOWN_QUANTILES
from streams.rollup import Rollup, shard_key
from streams.series import FAMILIES

_NAMES = {0.5: "p50", 0.9: "p90", 0.95: "p95", 0.99: "p99", 0.999: "p999"}


def rollup_message(r: Rollup, shard: str) -> tuple[bytes, bytes]:
    """(key, value) of one rollup written under ``shard``."""
    shard = shard_key(shard, r.tag)
    agg = r.agg
    value = {
        "family": r.family,
        "labels": dict(zip(FAMILIES[r.family], r.labels, strict=True)),
        "resolution_s": r.resolution, "bucket": r.bucket, "shard": shard, "late": r.late,
        "counters": agg.counters,
        "gauges": {name: {"last": g.last, "min": g.min, "max": g.max, "mean": g.mean,
                          "samples": g.n} for name, g in agg.gauges.items()},
        "dists": {name: {"count": d.count, "sum": d.sum, "min": d.min, "max": d.max,
                         **{_NAMES[q]: d.quantile(q) for q in KNOWN_QUANTILES}}
                  for name, d in agg.dists.items()},
        "aggregate": base64.b64encode(r.payload()).decode(),
    }
    key = orjson.dumps([r.family, list(r.labels), r.resolution, r.bucket, shard])
    return key, orjson.dumps(value)
