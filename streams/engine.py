"""The stream engine: event-time panes, watermarks, roll-ups and late merges, batch at a time.

Events are grouped per batch into base panes (10 s by default) per series. A pane closes when the
watermark (the oldest source's newest event time minus the allowed lateness) passes its end; it
is emitted as a rollup and merged into the open bucket of the next resolution (1 min, then 1 h),
which close the same way. So longer windows are built from panes, never by re-reading events.

An event whose pane already closed is *late*: it is not dropped but emitted as a ``late`` delta
rollup for that pane (the store merges it into what it holds) and cascaded into the longer
buckets, merged if they are still open, emitted as deltas if not. Late events are counted.

>>> eng = Engine(lateness=0)
>>> out = eng.process([Request(time=1_800_000_001.0, pool="p", command="c", duration_us=100,
...                            status="ok")])
>>> out, [(r.family, r.resolution) for r in eng.flush()][:2]
([], [('request', 10), ('worker', 10)])
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
import orjson

from schemas.events import Annotation, Event, Request
from streams import series as extract_series
from streams.aggregate import Aggregate
from streams.live import LiveState
from streams.series import CardinalityLimiter, Pane

SeriesKey = tuple[str, tuple[str, ...]]  # (family, labels)


@dataclass(slots=True)
class Rollup:
    """One closed (or, with ``late``, a delta for an already-closed) bucket of one series."""

    family: str
    labels: tuple[str, ...]
    resolution: int
    bucket: int  # epoch seconds of the bucket start
    agg: Aggregate
    late: bool = False
    tag: str | None = None  # for late deltas: the input unit they came from (e.g. an offset)


class Engine:
    """Framework-free aggregation core shared by the Faust worker and the embedded runner."""

    def __init__(self, resolutions: tuple[int, ...] = (10, 60, 3600), lateness: float = 5.0,
                 max_label_values: int = 1000) -> None:
        if any(b % a for a, b in zip(resolutions, resolutions[1:], strict=False)):
            raise ValueError("each resolution must be a multiple of the previous one")
        self.resolutions = resolutions
        self.lateness = lateness
        self.limiter = CardinalityLimiter(max_label_values)
        self.panes: dict[int, dict[SeriesKey, Pane]] = {}
        # Open buckets of the longer resolutions, by level (level 0 lives in ``panes``).
        self.buckets: list[dict[int, dict[SeriesKey, Aggregate]]] = [{} for _ in resolutions]
        self.source_time: dict[str, float] = {}
        self.closed_until = -math.inf
        self.stats: Counter[str] = Counter()
        self.annotations: list[Annotation] = []
        self.live: LiveState | None = None  # set by runners that serve live views

    # -- ingest ---------------------------------------------------------------------------

    def process(self, events: list[Event], source: str = "default", tag: str | None = None
                ) -> list[Rollup]:
        """Aggregate a batch of valid canonical events; returns the rollups that closed.

        ``tag`` names the input unit (a Kafka offset): late deltas carry it, so a replay of the
        same unit produces the same keyed delta and an idempotent store write.
        """
        res0 = self.resolutions[0]
        late_before = math.floor(self.closed_until / res0) * res0 if self.closed_until > -math.inf \
            else -math.inf
        cache: dict[tuple[str, tuple[str, ...], int], Pane] = {}
        late: dict[tuple[SeriesKey, int], Pane] = {}
        panes = self.panes
        limiter = self.limiter

        def pane(family: str, labels: tuple[str, ...], t: float) -> Pane:
            bucket = int(t // res0) * res0
            key = (family, labels, bucket)
            p = cache.get(key)
            if p is None:
                series = (family, limiter.labels(family, labels))
                if bucket < late_before:
                    p = late.setdefault((series, bucket), Pane())
                else:
                    p = panes.setdefault(bucket, {}).setdefault(series, Pane())
                cache[key] = p
            return p

        if not events:
            return self.advance(self.watermark())
        times = [e.time for e in events]
        newest = max(times)
        if newest > self.source_time.get(source, -math.inf):
            self.source_time[source] = newest
        if min(times) < late_before:
            self.stats["late_events"] += sum(1 for t in times if t < late_before)
        self.stats["events"] += len(events)
        reqs = [e for e in events if type(e) is Request]
        if reqs:
            extract_series.requests(reqs, res0, pane)
            if self.live is not None:
                self.live.add(reqs)
        if len(reqs) < len(events):
            for e in events:
                extract = extract_series.EXTRACTORS.get(type(e))
                if extract is not None:
                    extract(e, pane)
                elif type(e) is Annotation:
                    self.annotations.append(e)

        out: list[Rollup] = []
        if late:
            deltas: dict[tuple[int, SeriesKey, int], Aggregate] = {}
            for (series, bucket), p in sorted(late.items(), key=lambda kv: kv[0][1]):
                self._cascade(0, series, bucket, p.close(), deltas)
            out.extend(Rollup(series[0], series[1], self.resolutions[level], start, agg,
                              late=True, tag=tag)
                       for (level, series, start), agg in deltas.items())
        out.extend(self.advance(self.watermark()))
        return out

    def watermark(self) -> float:
        if not self.source_time:
            return -math.inf
        return min(self.source_time.values()) - self.lateness

    def forget_source(self, source: str) -> None:
        """A partition moved to another worker: it must no longer hold the watermark back."""
        self.source_time.pop(source, None)

    # -- closing --------------------------------------------------------------------------

    def advance(self, watermark: float) -> list[Rollup]:
        """Close every bucket that ends at or before ``watermark``."""
        if watermark <= self.closed_until:
            return []
        out: list[Rollup] = []
        res0 = self.resolutions[0]
        for bucket in sorted(b for b in self.panes if b + res0 <= watermark):
            for series, p in self.panes.pop(bucket).items():
                agg = p.close()
                out.append(Rollup(series[0], series[1], res0, bucket, agg))
                self._merge_up(1, series, bucket, agg)
        for level in range(1, len(self.resolutions)):
            res = self.resolutions[level]
            open_buckets = self.buckets[level]
            for bucket in sorted(b for b in open_buckets if b + res <= watermark):
                for series, agg in open_buckets.pop(bucket).items():
                    out.append(Rollup(series[0], series[1], res, bucket, agg))
                    self._merge_up(level + 1, series, bucket, agg)
        self.closed_until = watermark
        return out

    def flush(self) -> list[Rollup]:
        """Close everything still open (end of input, or a test that wants final answers)."""
        return self.advance(math.inf)

    def _merge_up(self, level: int, series: SeriesKey, bucket: int, agg: Aggregate) -> None:
        if level >= len(self.resolutions):
            return
        res = self.resolutions[level]
        up = self.buckets[level].setdefault(bucket // res * res, {})
        target = up.get(series)
        if target is None:
            up[series] = agg.copy()
        else:
            target.merge(agg)

    def _cascade(self, level: int, series: SeriesKey, bucket: int, agg: Aggregate,
                 deltas: dict[tuple[int, SeriesKey, int], Aggregate]) -> None:
        """Route a late pane upward: merged into a bucket that is still open, else into one
        delta per (resolution, series, bucket), so a batch emits each key at most once."""
        res = self.resolutions[level]
        start = bucket // res * res
        if level > 0 and start + res > self.closed_until:
            up = self.buckets[level].setdefault(start, {})
            if series in up:
                up[series].merge(agg)
            else:
                up[series] = agg.copy()
            return
        key = (level, series, start)
        if key in deltas:
            deltas[key].merge(agg)
        else:
            deltas[key] = agg.copy()
        if level + 1 < len(self.resolutions):
            self._cascade(level + 1, series, bucket, agg, deltas)

    # -- checkpoints ----------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """All open state, so a restarted worker resumes exactly where this one stood."""
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        for series in self.panes.values():
            for p in series.values():
                p.fold_candidates()  # exemplars merge exactly, so folding early changes nothing
        panes = [[bucket, fam, list(labels), b64(p.agg.to_bytes()),
                  {n: b64(p.raw_values(n).tobytes()) for n in sorted(p.names())}]
                 for bucket, series in self.panes.items() for (fam, labels), p in series.items()]
        buckets = [[level, bucket, fam, list(labels), b64(agg.to_bytes())]
                   for level, by_bucket in enumerate(self.buckets)
                   for bucket, series in by_bucket.items()
                   for (fam, labels), agg in series.items()]
        return orjson.dumps({
            "resolutions": self.resolutions, "lateness": self.lateness,
            "closed_until": None if self.closed_until == -math.inf else self.closed_until,
            "source_time": self.source_time, "panes": panes, "buckets": buckets,
            "stats": dict(self.stats),
            "limiter": [[f, i, sorted(v)] for (f, i), v in self.limiter.values.items()],
        })

    @classmethod
    def restore(cls, data: bytes, max_label_values: int = 1000) -> Engine:
        obj = orjson.loads(data)
        eng = cls(tuple(obj["resolutions"]), obj["lateness"], max_label_values)
        eng.closed_until = -math.inf if obj["closed_until"] is None else obj["closed_until"]
        eng.source_time = obj["source_time"]
        eng.stats.update(obj["stats"])
        for bucket, fam, labels, agg, values in obj["panes"]:
            p = Pane()
            p.agg = Aggregate.from_bytes(base64.b64decode(agg))
            for name, raw in values.items():
                p.compacted[name] = [np.frombuffer(base64.b64decode(raw), dtype=np.float64)]
            eng.panes.setdefault(bucket, {})[(fam, tuple(labels))] = p
        for level, bucket, fam, labels, agg in obj["buckets"]:
            eng.buckets[level].setdefault(bucket, {})[(fam, tuple(labels))] = \
                Aggregate.from_bytes(base64.b64decode(agg))
        for fam, i, values in obj["limiter"]:
            eng.limiter.values[(fam, i)] = set(values)
        return eng
