"""Requests, the bulk of the stream, as columns: pulled out per batch, aggregated per pane.

Per batch the engine only reads a few fields out of the decoded requests (C-level ``map`` over
the structs) into numpy columns and appends them to the open pane of their bucket. Grouping by
series, counting and building the digests happen once, when the pane closes, over all of its
requests together. So a request costs a handful of attribute reads, and a series costs a few
numpy calls per pane instead of per batch (a 500-event batch touches dozens of series).

Requests feed two families: ``request`` (by the request dimensions, plus one rolled-up series
per pool and one for the deployment) and ``worker`` (by pool and worker).

A closed pane depends only on the sequence of its requests (below one block, see
``RequestPane.BLOCK``, only on their multiset), never on how they were cut into batches or
checkpoints (values are sorted before digesting; exemplars merge exactly), which is what
exactly-once needs.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, NamedTuple

import numpy as np
from msgspec.structs import astuple

from schemas.events import Request
from streams.aggregate import EXEMPLARS, Aggregate, Dist, sample_hashes
from streams.series import ALL

_ALL7 = (ALL,) * 7
SeriesKey = tuple[str, tuple[str, ...]]

# Fields are read from msgspec's field-order tuples (``astuple``, one C call per request), by
# position: cheaper than one attribute lookup per field.
_FIELD = {name: i for i, name in enumerate(Request.__struct_fields__)}
_labels = itemgetter(*(_FIELD[f] for f in ("pool", "worker_profile", "adapter", "command",
                                           "python_env", "library", "segment", "node",
                                           "worker_id")))
_time, _duration, _wait, _python, _retries, _status = (
    itemgetter(_FIELD[f]) for f in ("time", "duration_us", "queue_wait_us", "python_us",
                                    "retries", "status"))
STATUS = {"ok": 0, "error": 1, "timeout": 2}


class Columns(NamedTuple):
    """A run of requests as arrays. Microseconds are float64 (exact for integers below 2**53,
    and what the digests take); an absent optional field is NaN."""

    combo: np.ndarray  # int32: SeriesIndex code of (request series, worker series)
    time: np.ndarray  # epoch seconds
    duration: np.ndarray  # µs
    wait: np.ndarray  # µs or NaN
    python: np.ndarray  # µs or NaN
    status: np.ndarray  # int8, STATUS
    retries: np.ndarray  # count or NaN

    DTYPES = (np.int32, np.float64, np.float64, np.float64, np.float64, np.int8, np.float64)

    def take(self, rows: np.ndarray) -> Columns:
        return Columns(*(c[rows] for c in self))

    @staticmethod
    def concat(parts: list[Columns]) -> Columns:
        if len(parts) == 1:
            return parts[0]
        return Columns(*(np.concatenate(cs) for cs in zip(*parts, strict=True)))


class SeriesIndex:
    """Dense codes for request series, worker series and the (request, worker) pairs requests
    fall into ("combos"); each request is stored with its combo code.

    Label values pass the cardinality limiter once per distinct combination, not per request.
    Codes are stable for the index's life (open panes and checkpoints hold them); the cache
    from raw label tuples is cleared when it grows large, so a producer sending endless
    distinct values cannot exhaust memory through it (the limiter bounds the rest).
    """

    CACHE_MAX = 100_000

    def __init__(self, limiter: Any) -> None:
        self.limiter = limiter
        self._cache: dict[tuple[Any, ...], int] = {}
        self.request_labels: list[tuple[str, ...]] = []
        self.worker_labels: list[tuple[str, ...]] = []
        self.pools: list[str] = []
        self._codes: dict[Any, int] = {}  # (kind, labels) -> code, kind in request/worker/pool/combo
        self.combos: list[tuple[int, int]] = []  # combo code -> (request code, worker code)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def columns(self, reqs: list[Request]) -> Columns:
        rows = list(map(astuple, reqs))
        keys = list(map(_labels, rows))
        try:
            combo = list(map(self._cache.__getitem__, keys))
        except KeyError:
            combo = [self._combo(k) for k in keys]
        n, f64 = len(rows), np.float64  # numpy turns None into NaN for float arrays
        return Columns(
            np.array(combo, np.int32), np.fromiter(map(_time, rows), f64, n),
            np.fromiter(map(_duration, rows), f64, n), np.array(list(map(_wait, rows)), f64),
            np.array(list(map(_python, rows)), f64),
            np.fromiter(map(STATUS.__getitem__, map(_status, rows)), np.int8, n),
            np.array(list(map(_retries, rows)), f64))

    def _combo(self, key: tuple[Any, ...]) -> int:
        code = self._cache.get(key)
        if code is None:
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            request = self.limiter.labels("request", tuple(v or "" for v in key[:8]))
            worker = self.limiter.labels("worker", (request[0], key[8] or ""))
            code = self._cache[key] = self.add(request, worker)
        return code

    def _code(self, kind: str, labels: Any, table: list[Any]) -> int:
        code = self._codes.get((kind, labels))
        if code is None:
            code = self._codes[(kind, labels)] = len(table)
            table.append(labels)
        return code

    def add(self, request: tuple[str, ...], worker: tuple[str, ...]) -> int:
        """The combo code of a request series and a worker series (limited labels)."""
        pair = (self._code("request", request, self.request_labels),
                self._code("worker", worker, self.worker_labels))
        self._code("pool", request[0], self.pools)
        before = len(self.combos)
        code = self._code("combo", pair, self.combos)
        if len(self.combos) > before:
            self._arrays = None
        return code

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per combo code: its request series, worker series and pool codes."""
        if self._arrays is None:
            request = np.array([r for r, _ in self.combos], np.int32)
            worker = np.array([w for _, w in self.combos], np.int32)
            pool = np.array([self._codes[("pool", self.request_labels[r][0])]
                             for r, _ in self.combos], np.int32)
            self._arrays = (request, worker, pool)
        return self._arrays

    def state(self) -> list[list[list[str]]]:
        """The combos in code order, for a checkpoint (codes are positions)."""
        return [[list(self.request_labels[r]), list(self.worker_labels[w])]
                for r, w in self.combos]

    def forget_cache(self) -> None:
        """After the limiter forgot series: every label tuple asks it again."""
        self._cache.clear()

    def load(self, combos: list[list[list[str]]]) -> None:
        for request, worker in combos:
            self.add(tuple(request), tuple(worker))


def _groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by code (stably), and each group's code and [start, end) in that order."""
    # stable argsort of 16-bit codes is a radix sort: linear, several times faster than int32's
    small = codes.astype(np.int16) if len(codes) and codes.max() < 32_768 else codes
    order = np.argsort(small, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    ends = np.r_[starts[1:], len(order)]
    return order, sorted_codes[starts], np.stack([starts, ends], axis=1)


def _dists(codes: np.ndarray, values: np.ndarray, keep: np.ndarray | None = None
           ) -> dict[int, Dist]:
    """One distribution per code, of the values of its rows (those in ``keep``)."""
    if keep is not None:
        codes, values = codes[keep], values[keep]
    if len(values) == 0:
        return {}
    order, group_codes, bounds = _groups(codes)
    values = values[order]
    return {int(code): Dist.from_sorted(np.sort(values[a:b]))
            for code, (a, b) in zip(group_codes.tolist(), bounds.tolist(), strict=True)}


def _per_code(codes: np.ndarray, n: int, values: np.ndarray | None = None) -> list[int]:
    """Exact integer sums (or counts) per code."""
    if values is None:
        return np.bincount(codes, minlength=n).tolist()
    # float64 sums of integers are exact below 2**53 (µs: 285 years of busy time per pane)
    return np.bincount(codes, weights=values, minlength=n).astype(np.int64).tolist()


def pick_exemplars(worker: np.ndarray, duration: np.ndarray, time: np.ndarray,
                   k: int = EXEMPLARS) -> np.ndarray:
    """Rows that may be exemplars: per worker series, a small superset of the ``k`` slowest
    distinct requests and the ``k`` with the smallest sample hash, which
    :func:`select_exemplars` then narrows down exactly. Found with partial sorts: the rows at or
    above the k-th largest distinct duration, and at or below the k-th smallest distinct hash."""
    hashes = sample_hashes(duration, time)
    order, _, bounds = _groups(worker)
    keep = []
    for a, b in bounds.tolist():
        rows = order[a:b]
        if b - a > 4 * k:
            d, h = duration[rows], hashes[rows]
            rows = rows[(d >= _kth_distinct(d, k, largest=True))
                        | (h <= _kth_distinct(h, k, largest=False))]
        keep.append(rows)
    return np.sort(np.concatenate(keep))


def _kth_distinct(values: np.ndarray, k: int, largest: bool) -> Any:
    """The k-th largest (or smallest) distinct value, looking at as few values as it can."""
    n, wide = len(values), 4 * k
    while wide < n:
        part = np.partition(values, n - wide)[n - wide:] if largest else \
            np.partition(values, wide)[:wide]
        distinct = np.unique(part)
        if len(distinct) >= k:
            return distinct[-k] if largest else distinct[k - 1]
        wide *= 4
    distinct = np.unique(values)
    if len(distinct) < k:
        return distinct[0] if largest else distinct[-1]
    return distinct[-k] if largest else distinct[k - 1]


def exemplar(e: Request) -> dict[str, Any]:
    return {"time": e.time, "duration_us": e.duration_us, "status": e.status,
            "command": e.command, "trace_id": e.trace_id or "", "adapter": e.adapter or "",
            "queue_wait_us": e.queue_wait_us, "python_us": e.python_us,
            "session_id": e.session_id or "", "error": e.error or ""}


class RequestPane:
    """The requests of one open base bucket: column chunks, the requests that may still become
    exemplars (cut down to the possible ones at every checkpoint, see :meth:`fold`), and the
    aggregates of the rows already compacted (see :meth:`compact`)."""

    __slots__ = ("chunks", "rows", "reqs", "unfolded", "candidates", "candidate_combos",
                 "compacted", "joined")

    # Raw rows an open pane keeps at most: every full block of this many (in arrival order) is
    # aggregated and dropped, so a pane's memory and checkpoint stay bounded (~6 MB) however
    # busy the stream. Blocks are cut at fixed row counts, so the closed pane depends only on
    # the sequence of its requests, never on batch or checkpoint boundaries.
    BLOCK = 131_072
    # Decoded requests (~600 bytes each) a pane holds before it folds them into exemplar
    # candidates: bounds that memory to ~10 MB per pane between checkpoints.
    FOLD_AT = 16_384

    def __init__(self) -> None:
        self.chunks: list[Columns] = []
        self.rows = 0
        self.reqs: list[Request] = []  # the requests of the last ``unfolded`` chunks
        self.unfolded = 0
        self.candidates: list[Request] = []
        self.candidate_combos = np.zeros(0, np.int32)
        self.compacted: dict[SeriesKey, Aggregate] = {}  # of the blocks aggregated so far
        # (combo, python µs, duration µs) of requests aggregated before their Python time came
        # (``streams.python_join``): at most one per request, added at close
        self.joined: list[tuple[int, float, float]] = []

    def add(self, cols: Columns, reqs: list[Request], index: SeriesIndex) -> None:
        self.chunks.append(cols)
        self.rows += len(cols.combo)
        self.reqs.extend(reqs)
        self.unfolded += 1
        if self.rows >= self.BLOCK:
            self.compact(index)
        elif len(self.reqs) >= self.FOLD_AT:
            self.fold(index)

    def copy(self) -> RequestPane:
        """A pane that can be closed without closing this one (arrays are never changed in
        place, so they are shared)."""
        p = RequestPane.__new__(RequestPane)
        p.chunks, p.rows, p.reqs, p.unfolded = list(self.chunks), self.rows, list(self.reqs), \
            self.unfolded
        p.candidates, p.candidate_combos = list(self.candidates), self.candidate_combos
        p.compacted = {k: a.copy() for k, a in self.compacted.items()}
        p.joined = list(self.joined)
        return p

    def add_python(self, combo: int, python_us: float, duration_us: float) -> None:
        """The Python time of a request this pane already holds (or held, for a late pane)."""
        self.joined.append((combo, min(python_us, duration_us), duration_us))

    def series(self, index: SeriesIndex) -> set[SeriesKey]:
        """The request and worker series this pane holds rows of."""
        out = set(self.compacted)
        combos = {int(c) for chunk in self.chunks for c in np.unique(chunk.combo)}
        combos.update(combo for combo, _, _ in self.joined)
        for code in combos:
            r, w = index.combos[code]
            out.add(("request", index.request_labels[r]))
            out.add(("worker", index.worker_labels[w]))
        return out

    def columns(self) -> Columns:
        if not self.chunks:  # a late pane that only holds joined Python time
            self.chunks = [Columns(*(np.zeros(0, t) for t in Columns.DTYPES))]
        if len(self.chunks) > 1:
            self.chunks = [Columns.concat(self.chunks)]
        return self.chunks[0]

    def fold(self, index: SeriesIndex) -> None:
        """Keep only the requests that may still be exemplars (picking merges exactly, so
        folding early changes nothing): bounds a pane's memory and its checkpoint."""
        if not self.unfolded:
            return
        new = Columns.concat(self.chunks[-self.unfolded:])
        self.chunks[-self.unfolded:] = [new]
        items = self.candidates + self.reqs
        combos = np.r_[self.candidate_combos, new.combo]
        durations = np.r_[np.array([e.duration_us for e in self.candidates], np.float64),
                          new.duration]
        times = np.r_[np.array([e.time for e in self.candidates], np.float64), new.time]
        keep = pick_exemplars(index.arrays()[1][combos], durations, times)
        self.candidates = [items[i] for i in keep.tolist()]
        self.candidate_combos = combos[keep]
        self.reqs, self.unfolded = [], 0

    def compact(self, index: SeriesIndex) -> None:
        """Aggregate every full block of raw rows into :attr:`compacted` and drop the rows
        (their exemplar candidates stay, folded)."""
        self.fold(index)
        c = self.columns()
        whole = len(c.combo) // self.BLOCK * self.BLOCK
        for start in range(0, whole, self.BLOCK):
            block = Columns(*(col[start:start + self.BLOCK] for col in c))
            _merge_into(self.compacted, self._aggregates(block, index))
        self.chunks = [Columns(*(col[whole:].copy() for col in c))]
        self.rows -= whole

    def close(self, index: SeriesIndex) -> dict[SeriesKey, Aggregate]:
        """The aggregates of every request and worker series this pane's requests fall into."""
        self.fold(index)
        out = self.compacted
        _merge_into(out, self._aggregates(self.columns(), index))
        if self.joined:
            _merge_into(out, self._joined_python(index))
        _roll_up(out)
        chosen: dict[int, list[dict[str, Any]]] = {}
        for code, e in zip(index.arrays()[1][self.candidate_combos].tolist(), self.candidates,
                           strict=True):
            chosen.setdefault(code, []).append(exemplar(e))
        for code, picked in chosen.items():
            out[("worker", index.worker_labels[code])].add_exemplars(picked)
        return out

    def _aggregates(self, c: Columns, index: SeriesIndex) -> dict[SeriesKey, Aggregate]:
        """Detailed request series and worker series (rolled-up ones come at :meth:`close`)."""
        out = self._request_family(c, index)
        out.update(self._worker_family(c, index))
        return out

    def _request_family(self, c: Columns, index: SeriesIndex) -> dict[SeriesKey, Aggregate]:
        codes = index.arrays()[0][c.combo]
        m = len(index.request_labels)
        counts = _per_code(codes, m)
        busy = _per_code(codes, m, c.duration)
        errors = _per_code(codes[c.status == 1], m)
        timeouts = _per_code(codes[c.status == 2], m)
        has_retries = c.retries > 0
        retries = _per_code(codes[has_retries], m, c.retries[has_retries]) \
            if has_retries.any() else [0] * m
        has_python = c.python >= 0  # False for NaN
        dists = {"duration_us": _dists(codes, c.duration),
                 "queue_wait_us": _dists(codes, c.wait, c.wait >= 0),
                 "python_us": _dists(codes, c.python, has_python),
                 "overhead_us": _dists(codes, np.maximum(c.duration - c.python, 0), has_python)}
        # Service time (a worker's part of a request): only where the wait is known, else the
        # duration already is the service time (Snakepit's execute span) and is not kept twice.
        # A request that timed out in the queue, or was refused (queue full: no time at all),
        # was never served.
        service = c.duration - c.wait
        served = (c.wait >= 0) & (c.status != 2) & (service > 0)
        if served.any():
            dists["service_us"] = _dists(codes, service, served)
        out: dict[SeriesKey, Aggregate] = {}
        for code in [code for code, n in enumerate(counts) if n]:  # O(series), not O(requests)
            a = Aggregate()
            a.counters = _counters(("requests", counts[code]), ("busy_us", busy[code]),
                                   ("errors", errors[code]), ("timeouts", timeouts[code]),
                                   ("retries", retries[code]))
            for name, by_code in dists.items():
                d = by_code.get(code)
                if d is not None:
                    a.dists[name] = d
            out[("request", index.request_labels[code])] = a
        return out

    def _joined_python(self, index: SeriesIndex) -> dict[SeriesKey, Aggregate]:
        """The Python time that came after its request: ``python_us`` and ``overhead_us`` of
        the request series, counting no request."""
        combo, python, duration = (np.array(col) for col in zip(*self.joined, strict=True))
        codes = index.arrays()[0][combo.astype(np.int32)]
        overhead = _dists(codes, np.maximum(duration - python, 0))
        out: dict[SeriesKey, Aggregate] = {}
        for code, d in _dists(codes, python).items():
            a = Aggregate()
            a.counters = _counters(("requests", 0), ("busy_us", 0))
            a.dists = {"python_us": d, "overhead_us": overhead[code]}
            out[("request", index.request_labels[code])] = a
        return out

    def _worker_family(self, c: Columns, index: SeriesIndex) -> dict[SeriesKey, Aggregate]:
        worker_of = index.arrays()[1]
        codes = worker_of[c.combo]
        m = len(index.worker_labels)
        counts = _per_code(codes, m)
        busy = _per_code(codes, m, c.duration - np.nan_to_num(c.wait))
        errors = _per_code(codes[c.status != 0], m)
        durations = _dists(codes, c.duration)
        out: dict[SeriesKey, Aggregate] = {}
        for code in sorted(durations, key=index.worker_labels.__getitem__):
            a = Aggregate()
            a.counters = _counters(("requests", counts[code]), ("busy_us", busy[code]),
                                   ("errors", errors[code]))
            a.dists["duration_us"] = durations[code]
            out[("worker", index.worker_labels[code])] = a
        return out


def _roll_up(out: dict[SeriesKey, Aggregate]) -> None:
    """Add the rolled-up request series (per pool, and the deployment), merged from the
    detailed ones in label order (deterministic)."""
    for family, labels in sorted(k for k in out if k[0] == "request"):
        a = out[(family, labels)]
        for target in ((labels[0], *_ALL7), (ALL, *_ALL7)):
            up = out.get(("request", target))
            if up is None:
                out[("request", target)] = a.copy()
            else:
                up.merge(a)


def _merge_into(into: dict[SeriesKey, Aggregate], more: dict[SeriesKey, Aggregate]) -> None:
    for key, agg in more.items():
        if key in into:
            into[key].merge(agg)
        else:
            into[key] = agg


def _counters(*pairs: tuple[str, int]) -> dict[str, float]:
    """Counters as the rest of the engine keeps them: ``requests`` and ``busy_us`` always,
    the rest only when non-zero."""
    return {name: value for name, value in pairs if value or name in ("requests", "busy_us")}

