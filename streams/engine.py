"""The stream engine: event-time panes, watermarks, roll-ups and late merges, batch at a time.

Events go into base panes (10 s by default): requests as numpy columns per bucket
(``streams.requests``, aggregated per series when the pane closes), the rarer types per series
(``streams.series``). A pane closes when the watermark (the oldest source's newest event time
minus the allowed lateness) passes its end; it is emitted as a rollup and merged into the open
bucket of the next resolution (1 min, then 1 h), which close the same way. So longer windows
are built from panes, never by re-reading events.

An event whose pane already closed is *late*: it is not dropped but emitted as a ``late`` delta
rollup for that pane (the store merges it into what it holds) and cascaded into the longer
buckets, merged if they are still open, emitted as deltas if not. Late events are counted.

Fed from a partitioned log (``tag`` = the message offset), late data is coalesced: the late
events of ``LATE_GROUP`` consecutive offsets make one delta per series and bucket, keyed by the
group (``g<first offset>``). They gather in raw late panes, folded into the group's held deltas
when a commit takes them (:meth:`held_late`) or the group completes, all of it in the
checkpointed state. A runner rewrites the group's changed rows at most every ``LATE_EVERY_S``
seconds (and when it completes), each write replacing the last with more: late data is visible
within seconds, a shuffled stream writes one row per series and bucket per group instead of
one per message, each late event is closed once, and a replay rebuilds the same rows (the same
events; only the digests' internal grouping may differ).

>>> eng = Engine(lateness=0)
>>> out = eng.process([Request(time=1_800_000_001.0, pool="p", command="c", duration_us=100,
...                            status="ok")])
>>> out, sorted({(r.family, r.resolution) for r in eng.flush()})[:4]
([], [('request', 10), ('request', 60), ('request', 3600), ('worker', 10)])
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import Counter
from dataclasses import dataclass
from operator import attrgetter

import msgspec
import numpy as np

from schemas.events import Annotation, Event, Native, Python, Request
from streams import series as extract_series
from streams.aggregate import Aggregate, compress, inflate
from streams.dedupe import CallDeduper
from streams.live import LiveState
from streams.python_join import PythonJoin, joinable
from streams.requests import Columns, RequestPane, SeriesIndex
from streams.rollup import Labels, Rollup
from streams.series import CardinalityLimiter, Limits, Pane
from streams.watermark import Watermark

SeriesKey = tuple[str, Labels]  # (family, labels)
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EngineFigures:
    """The engine's counters and series-limit figures at one moment (see ``Engine.figures``)."""

    stats: dict[str, int]  # events, late_events, native:<name>, ...
    active_series: dict[str, int]  # by family
    series_overflowed: dict[str, int]  # new series folded into __other__, by family
    label_overflow: int  # label values folded into __other__
    duplicates_dropped: int  # request copies of one call dropped
    max_series: int
    max_series_per_family: int
    warnings: list[str]


class Engine:
    """Framework-free aggregation core shared by the Faust worker and the embedded runner."""

    def __init__(self, resolutions: tuple[int, ...] = (10, 60, 3600), lateness: float = 5.0,
                 limits: Limits | None = None) -> None:
        if any(b % a for a, b in zip(resolutions, resolutions[1:], strict=False)):
            raise ValueError("each resolution must be a multiple of the previous one")
        self.resolutions = resolutions
        self.clock = Watermark(lateness)
        self.limiter = CardinalityLimiter(limits)
        self.panes: dict[int, dict[SeriesKey, Pane]] = {}  # rarer event types, by bucket
        self.request_panes: dict[int, RequestPane] = {}  # requests, as columns, by bucket
        self.index = SeriesIndex(self.limiter)
        # Open buckets of the longer resolutions, by level (level 0 lives in ``panes``).
        self.buckets: list[dict[int, dict[SeriesKey, Aggregate]]] = [{} for _ in resolutions]
        self.stats: Counter[str] = Counter()
        self.annotations: list[Annotation] = []
        self.calls = CallDeduper()  # a call sent as telemetry and as spans counts once
        self.join = PythonJoin()  # a call's Python time (SDK, spans) into its request
        self.late_group: int | None = None  # the offset group the held late deltas belong to
        # (family, labels, resolution, bucket) -> late delta of the current group
        self.late_held: dict[tuple[str, tuple[str, ...], int, int], Aggregate] = {}
        self.late_changed: set[tuple[str, tuple[str, ...], int, int]] = set()  # since written
        self.late_at = -math.inf  # when held_late(now) last returned the changes
        # late events of the group since the last fold (each held_late, and the group's end)
        self.late_raw: dict[int, RequestPane] = {}
        self.late_raw_others: dict[tuple[SeriesKey, int], Pane] = {}
        self.live: LiveState | None = None  # set by runners that serve live views

    # -- ingest ---------------------------------------------------------------------------

    def process(self, events: list[Event], source: str = "default", tag: str | None = None,
                now: float | None = None) -> list[Rollup]:
        """Aggregate a batch of valid canonical events; returns the rollups that closed.

        ``tag`` names the input unit (a Kafka offset): late deltas carry it, so a replay of the
        same unit produces the same keyed delta and an idempotent store write. ``now`` is the
        clock the batch arrived by: the source's time never passes it, so events a little
        ahead (a fast clock) wait in open panes until they are due instead of closing
        everyone else's windows early.
        """
        if not events:
            return self.advance(self.watermark())
        late_before = self.clock.late_before(self.resolutions[0])
        if set(map(type, events)) == {Request}:  # the common case, checked in C
            reqs, others = events, []
        else:
            reqs = [e for e in events if type(e) is Request]
            others = [e for e in events if type(e) is not Request]
        if reqs and any(map(_SOURCED, reqs)):
            reqs, from_duplicates = self.calls.filter(reqs)
            others.extend(from_duplicates)
        python_calls = [e for e in others if type(e) is Python and joinable(e)] if others else []
        if python_calls:
            self.join.active = True
        if reqs and self.join.python:
            reqs = self.join.fill(reqs)
        out: list[Rollup] = []
        group = None if tag is None else int(tag) // LATE_GROUP * LATE_GROUP
        if group is not None and self.late_group is not None and group != self.late_group:
            out.extend(self.held_late())  # the group is complete: its final deltas
            self.late_held = {}
        if group is not None:
            self.late_group = group
            late_requests, late = self.late_raw, self.late_raw_others
        else:
            late_requests, late = {}, {}
        newest, late_events = -math.inf, 0
        if reqs:
            newest, late_events = self._add_requests(reqs, late_before, late_requests)
        if others:
            newest = max(newest, max(e.time for e in others))
            late_events += sum(1 for e in others if e.time < late_before)
            self._others(others, late_before, late)
        if python_calls:
            self._join_python(python_calls, late_before, late_requests)
        self.clock.observe(source, newest, now)
        self.stats["late_events"] += late_events
        self.stats["events"] += len(events)

        if group is None and (late or late_requests):
            deltas = self._late_deltas(late_requests, late, into_open=True)
            out.extend(Rollup(fam, labels, res, start, agg, late=True)
                       for (fam, labels, res, start), agg in deltas.items())
        out.extend(self.advance(self.watermark()))
        return out

    def _late_deltas(self, late_requests: dict[int, RequestPane],
                     late: dict[tuple[SeriesKey, int], Pane], into_open: bool
                     ) -> dict[tuple[str, tuple[str, ...], int, int], Aggregate]:
        """Close late panes into one delta per (family, labels, resolution, bucket); with
        ``into_open``, what falls into a longer bucket still open is merged into it instead."""
        closed: dict[tuple[SeriesKey, int], Aggregate] = {}
        for bucket, pane in late_requests.items():
            for series, agg in pane.close(self.index).items():
                closed[(series, bucket)] = agg
        for key, p in late.items():
            agg = p.close()
            if key in closed:
                closed[key].merge(agg)
            else:
                closed[key] = agg
        deltas = self._cascade(closed, into_open)
        return {(series[0], series[1], self.resolutions[level], start): agg
                for (level, series, start), agg in deltas.items()}

    def _fold_late(self) -> None:
        """The raw late panes of the group (since the last fold) into its held deltas."""
        if not (self.late_raw or self.late_raw_others):
            return
        deltas = self._late_deltas(self.late_raw, self.late_raw_others, into_open=False)
        self.late_raw, self.late_raw_others = {}, {}
        held = self.late_held
        for key, agg in deltas.items():
            self.late_changed.add(key)
            if key in held:
                held[key].merge(agg)
            else:
                held[key] = agg
            held[key].deflate()  # a live digest costs ~4.6 KB; thousands are held per group

    def _add_requests(self, reqs: list[Request], late_before: float,
                      late: dict[int, RequestPane]) -> tuple[float, int]:
        """Requests into the column panes of their buckets (the late ones into ``late``);
        returns the newest event time and how many were late."""
        res0 = self.resolutions[0]
        cols = self.index.columns(reqs)
        times = cols.time
        buckets = (times // res0).astype(np.int64) * res0
        first, last = int(buckets.min()), int(buckets.max())
        if first == last:
            parts = [(first, cols, reqs)]
        else:  # one stable sort by bucket, then each bucket is a slice (disordered input)
            order = np.argsort(buckets, kind="stable")
            by_bucket, ordered = cols.take(order), list(map(reqs.__getitem__, order.tolist()))
            cuts = [0, *(np.flatnonzero(np.diff(buckets[order])) + 1).tolist(), len(reqs)]
            parts = [(int(buckets[order[a]]), Columns(*(c[a:b] for c in by_bucket)),
                      ordered[a:b]) for a, b in itertools.pairwise(cuts)]
        for bucket, part, part_reqs in parts:
            panes = late if bucket < late_before else self.request_panes
            pane = panes.get(bucket)
            if pane is None:
                pane = panes[bucket] = RequestPane()
            pane.add(part, part_reqs, self.index)
        if self.join.active:
            self.join.remember(reqs, buckets, cols.combo, cols.duration, cols.python)
        if self.live is not None:
            self.live.add(times, self.index.arrays()[2][cols.combo], self.index.pools,
                          cols.duration, cols.status != 0)
        late_events = int((times < late_before).sum()) if first < late_before else 0
        return float(times.max()), late_events

    def _join_python(self, calls: list[Python], late_before: float,
                     late: dict[int, RequestPane]) -> None:
        """Python calls whose request came first: their time into that request's bucket."""
        for e, (bucket, combo, duration) in self.join.match(calls):
            panes = late if bucket < late_before else self.request_panes
            pane = panes.get(bucket)
            if pane is None:
                pane = panes[bucket] = RequestPane()
            pane.add_python(combo, e.python_us or 0, duration)

    def _others(self, events: list[Event], late_before: float,
                late: dict[tuple[SeriesKey, int], Pane]) -> None:
        """The rarer event types, one small extractor each (``streams.series``)."""
        res0 = self.resolutions[0]
        panes = self.panes
        limiter = self.limiter

        def pane(family: str, labels: tuple[str, ...], t: float) -> Pane:
            bucket = int(t // res0) * res0
            series = (family, limiter.labels(family, labels))
            if bucket < late_before:
                return late.setdefault((series, bucket), Pane())
            return panes.setdefault(bucket, {}).setdefault(series, Pane())

        for e in events:
            extract = extract_series.EXTRACTORS.get(type(e))
            if extract is not None:
                extract(e, pane)
                if type(e) is Native:  # per name, bounded like every label
                    name = limiter.labels("native", (e.name, e.pool or ""))[0]
                    self.stats[f"native:{name}"] += 1
            elif type(e) is Annotation:
                self.annotations.append(e)

    def held_late(self, now: float | None = None) -> list[Rollup]:
        """The current group's late deltas that changed since the last call, as rollups (the
        raw late panes are folded into the held deltas first, so each late event is closed
        once, and a commit writes every late event it covers). With ``now`` (a runner's
        monotonic clock), nothing until ``LATE_EVERY_S`` after the last call that returned
        some: the changes wait, in the checkpoint too, for the next. A runner whose write of
        them failed calls :meth:`rewrite_held_late` so the next call returns them all again."""
        if now is not None:
            if now - self.late_at < LATE_EVERY_S:
                return []
            self.late_at = now
        self._fold_late()
        tag = f"g{self.late_group}"
        changed, self.late_changed = self.late_changed, set()
        # frozen copies (the bytes, read back lazily: cheaper than deep copies), since the
        # held deltas go on growing while these are written
        return [Rollup(*key, Aggregate.from_bytes(self.late_held[key].to_bytes()), late=True,
                       tag=tag) for key in sorted(changed)]

    def late_unwritten(self) -> bool:
        """Whether late events wait to be written (folded or not) by :meth:`held_late`."""
        return bool(self.late_raw or self.late_raw_others or self.late_changed)

    def rewrite_held_late(self) -> None:
        """The last :meth:`held_late` was not stored: the next one returns every key."""
        self.late_changed = set(self.late_held)

    def watermark(self) -> float:
        return self.clock.value()

    def forget_source(self, source: str) -> None:
        self.clock.forget(source)

    # -- closing --------------------------------------------------------------------------

    def advance(self, watermark: float) -> list[Rollup]:
        """Close every bucket that ends at or before ``watermark``."""
        if watermark <= self.clock.closed_until:
            return []
        out: list[Rollup] = []
        res0 = self.resolutions[0]
        for bucket in sorted(b for b in {*self.panes, *self.request_panes}
                             if b + res0 <= watermark):
            for series, agg in self._close_bucket(bucket).items():
                self._merge_up(1, series, bucket, agg)
                # closed: from now on only stored, so held as bytes until then (see deflate)
                out.append(Rollup(series[0], series[1], res0, bucket, agg.deflate()))
        top = len(self.resolutions) - 1
        last_hour: set[SeriesKey] | None = None
        for level in range(1, len(self.resolutions)):
            res = self.resolutions[level]
            open_buckets = self.buckets[level]
            for bucket in sorted(b for b in open_buckets if b + res <= watermark):
                closing = open_buckets.pop(bucket)
                if level == top:
                    last_hour = set(closing)
                for series, agg in closing.items():
                    self._merge_up(level + 1, series, bucket, agg)
                    out.append(Rollup(series[0], series[1], res, bucket, agg.deflate()))
        self.clock.closed_until = watermark
        if last_hour is not None and watermark < math.inf:
            self._retain_active(last_hour)
        return out

    def _retain_active(self, last_hour: set[SeriesKey]) -> None:
        """A longest bucket closed: series seen neither in it nor since stop counting
        against the limits (see ``CardinalityLimiter``)."""
        active = set(last_hour)
        for by_bucket in self.buckets[1:]:
            for series in by_bucket.values():
                active.update(series)
        for series in self.panes.values():
            active.update(series)
        for rp in self.request_panes.values():
            active |= rp.series(self.index)
        self.limiter.retain(active)
        self.index.forget_cache()

    def _close_bucket(self, bucket: int) -> dict[SeriesKey, Aggregate]:
        """Every series' aggregate of a base bucket: requests' (columns) and the others'."""
        pane = self.request_panes.pop(bucket, None)
        out = pane.close(self.index) if pane is not None else {}
        for series, p in self.panes.pop(bucket, {}).items():
            agg = p.close()
            if series in out:
                out[series].merge(agg)
            else:
                out[series] = agg
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

    def _cascade(self, closed: dict[tuple[SeriesKey, int], Aggregate], into_open: bool
                 ) -> dict[tuple[int, SeriesKey, int], Aggregate]:
        """Route late panes upward, a level at a time: each level's deltas are merged from
        the one below (an hour from its minutes, not from every pane again: a sixth of the
        digest merges), so a batch emits each key at most once. With ``into_open``, what falls
        into a longer bucket still open is merged into it, and goes no further up from there
        (that bucket merges up when it closes)."""
        deltas: dict[tuple[int, SeriesKey, int], Aggregate] = {}
        below = dict(sorted(closed.items(), key=lambda kv: kv[0][1]))
        for (series, bucket), agg in below.items():  # the base level owns the closed aggregate
            deltas[(0, series, bucket)] = agg
        for level in range(1, len(self.resolutions)):
            res = self.resolutions[level]
            up: dict[tuple[SeriesKey, int], Aggregate] = {}
            for (series, bucket), agg in below.items():
                start = bucket // res * res
                if into_open and start + res > self.clock.closed_until:
                    _merge_copy(self.buckets[level].setdefault(start, {}), series, agg)
                else:
                    _merge_copy(up, (series, start), agg)
            for (series, start), agg in up.items():
                deltas[(level, series, start)] = agg
            below = up
        return deltas

    # -- checkpoints ----------------------------------------------------------------------

    def figures(self) -> EngineFigures:
        """A copy of what the API may show of the engine (``/metrics``, ``/health``), taken
        now: the routes read this, never the engine itself."""
        limiter = self.limiter
        known = list(limiter.known.items())  # a C-level copy: the engine thread may add to it
        return EngineFigures(
            stats=dict(self.stats), active_series={f: len(k) for f, k in known},
            series_overflowed=dict(limiter.series_overflowed),
            label_overflow=limiter.overflowed, duplicates_dropped=self.calls.dropped,
            max_series=limiter.limits.max_series,
            max_series_per_family=limiter.limits.max_series_per_family,
            warnings=limiter.warnings())

    def snapshot(self) -> bytes:
        """All open state, so a restarted worker resumes exactly where this one stood.

        One msgpack document (column arrays and digests as its binary values), compressed
        (zstd level 1): ~3x smaller than the open panes' memory."""
        blob = bytes  # the binary parts go in as they are
        def panes(items):  # ((bucket, series, Pane), ...)
            return [[bucket, fam, list(labels), blob(p.agg.to_bytes()),
                     {n: blob(p.raw_values(n).tobytes()) for n in sorted(p.names())}]
                    for bucket, (fam, labels), p in items]

        def requests(request_panes: dict[int, RequestPane]) -> list:
            out = []
            for bucket, rp in request_panes.items():
                rp.fold(self.index)  # exemplars merge exactly: folding early changes nothing
                out.append([bucket, [blob(c.tobytes()) for c in rp.columns()],
                            blob(_requests_encoder.encode(rp.candidates)),
                            blob(rp.candidate_combos.tobytes()),
                            [[fam, list(labels), blob(agg.to_bytes())]
                             for (fam, labels), agg in rp.compacted.items()],
                            rp.joined])
            return out

        join_counters, join_arrays = self.join.state()
        buckets = [[level, bucket, fam, list(labels), blob(agg.to_bytes())]
                   for level, by_bucket in enumerate(self.buckets)
                   for bucket, series in by_bucket.items()
                   for (fam, labels), agg in series.items()]
        state = {
            "resolutions": self.resolutions, "clock": self.clock.snapshot(),
            "panes": panes((b, s, p) for b, by_series in self.panes.items()
                           for s, p in by_series.items()),
            "buckets": buckets, "requests": requests(self.request_panes),
            "late_panes": panes((b, s, p) for (s, b), p in self.late_raw_others.items()),
            "late_requests": requests(self.late_raw),
            "combos": self.index.state(), "stats": dict(self.stats),
            "limiter": self.limiter.state(),
            "call_keys": blob(self.calls.state()), "late_group": self.late_group,
            "join": [join_counters, {name: blob(a) for name, a in join_arrays.items()}],
            "late": [[fam, list(labels), res, bucket, blob(agg.to_bytes())]
                     for (fam, labels, res, bucket), agg in self.late_held.items()],
        }
        return SNAPSHOT_MAGIC + compress(msgspec.msgpack.encode(state))

    @classmethod
    def resume(cls, data: bytes | None, lateness: float = 5.0, limits: Limits | None = None
               ) -> Engine:
        """The engine of a checkpoint, or a new one if there is none or it was written by an
        older version (its open windows are then lost, and a warning says so)."""
        if data is not None:
            try:
                return cls.restore(data, limits)
            except ValueError as exc:
                log.warning("checkpoint not restored (%s): starting with empty windows; "
                            "buckets that were open lose what they held", exc)
        return cls(lateness=lateness, limits=limits)

    @classmethod
    def restore(cls, data: bytes, limits: Limits | None = None) -> Engine:
        if not data.startswith(SNAPSHOT_MAGIC):
            raise ValueError("not an engine checkpoint of this version")
        obj = msgspec.msgpack.decode(inflate(data[len(SNAPSHOT_MAGIC):]))
        eng = cls(tuple(obj["resolutions"]), limits=limits)
        eng.clock = Watermark.restore(obj["clock"])
        eng.stats.update(obj["stats"])
        eng.limiter.load(obj["limiter"])
        eng.index.load(obj["combos"])
        eng.calls.load(obj["call_keys"])
        counters, arrays = obj["join"]
        eng.join.load(counters, arrays)
        eng.late_group = obj["late_group"]
        for fam, labels, res, bucket, agg in obj["late"]:
            eng.late_held[(fam, tuple(labels), res, bucket)] = Aggregate.from_bytes(agg)
        eng.late_changed = set(eng.late_held)  # what the checkpoint held may not be written yet
        def panes(entries):  # -> (bucket, series, Pane)
            for bucket, fam, labels, agg, values in entries:
                p = Pane()
                p.agg = Aggregate.from_bytes(agg)
                for name, raw in values.items():
                    p.compacted[name] = [np.frombuffer(raw, dtype=np.float64)]
                yield bucket, (fam, tuple(labels)), p

        def requests(entries) -> dict[int, RequestPane]:
            out = {}
            for bucket, columns, candidates, combos, compacted, joined in entries:
                rp = RequestPane()
                rp.chunks = [Columns(*(np.frombuffer(raw, dtype=t)
                                       for raw, t in zip(columns, Columns.DTYPES, strict=True)))]
                rp.rows = len(rp.chunks[0].combo)
                rp.candidates = _requests_decoder.decode(candidates)
                rp.candidate_combos = np.frombuffer(combos, dtype=np.int32)
                rp.compacted = {(fam, tuple(labels)): Aggregate.from_bytes(agg)
                                for fam, labels, agg in compacted}
                rp.joined = [tuple(row) for row in joined]
                out[bucket] = rp
            return out

        for bucket, series, p in panes(obj["panes"]):
            eng.panes.setdefault(bucket, {})[series] = p
        for bucket, series, p in panes(obj["late_panes"]):
            eng.late_raw_others[(series, bucket)] = p
        for level, bucket, fam, labels, agg in obj["buckets"]:
            eng.buckets[level].setdefault(bucket, {})[(fam, tuple(labels))] = \
                Aggregate.from_bytes(agg)
        eng.request_panes = requests(obj["requests"])
        eng.late_raw = requests(obj["late_requests"])
        return eng


def _merge_copy(into: dict, key: object, agg: Aggregate) -> None:
    """Merge ``agg`` into ``into[key]``; a copy of it if there is none (``agg`` stays as is)."""
    target = into.get(key)
    if target is None:
        into[key] = agg.copy()
    else:
        target.merge(agg)


_SOURCED = attrgetter("source")  # requests with a source may be copies of one call
SNAPSHOT_MAGIC = b"SPENG5"  # 5: msgpack (4 and before: a JSON header and blobs, not read)
LATE_GROUP = 1000  # offsets whose late deltas are coalesced into one row per series and bucket
# A paced commit rewrites the open group's late deltas at most this often (wall-clock seconds):
# late data is visible within it, and a shuffled stream is not rewritten at every commit.
LATE_EVERY_S = 5.0
_requests_encoder = msgspec.json.Encoder()
_requests_decoder = msgspec.json.Decoder(list[Request])
