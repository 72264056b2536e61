"""Mergeable summaries of one series over one time bucket.

An :class:`Aggregate` holds three kinds of statistic, all mergeable so that panes roll up into
longer windows, late events merge into stored rollups, and shards merge at query time:

- counters: exact sums (requests, errors, busy microseconds, ...);
- gauges: last value (by event time), min, max, sum and sample count of a sampled level;
- distributions: exact count/sum/min/max plus a t-digest for quantiles;
- exemplars: a few individual requests behind the numbers (the slowest, and a small uniform
  sample), so a point on a chart can be drilled down to real requests (R10.3).

>>> a = Aggregate()
>>> a.add_values("duration_us", [100, 200, 300])
>>> a.add_counter("requests", 3)
>>> b = Aggregate.from_bytes(a.to_bytes())
>>> b.merge(a)
>>> b.counters["requests"], b.dists["duration_us"].count, b.dists["duration_us"].max
(6, 6, 300.0)
"""

from __future__ import annotations

import functools
import struct
import threading
import zlib
from collections.abc import Collection
from typing import Any

import numpy as np
import orjson
import zstandard
from fastdigest import TDigest

# Centroids per digest: 1000 keeps P99 within 1% and P99.9 within 2% per window and after
# merging a day of 10 s panes (tests/unit/test_engine.py); 400 does not (3% at P99).
MAX_CENTROIDS = 2000


# Quantiles kept precomputed next to each stored digest: a query point made of one stored row
# (one series, step = resolution) answers these without inflating the digest at all.
KNOWN_QUANTILES = (0.5, 0.9, 0.95, 0.99, 0.999)


_local = threading.local()  # zstd (de)compressors are not thread-safe; one per thread
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def compress(data: bytes) -> bytes:
    """Zstandard level 1: ~4x faster than zlib's fastest on digests, and as small."""
    c = getattr(_local, "compressor", None)
    if c is None:
        c = _local.compressor = zstandard.ZstdCompressor(level=1)
    return c.compress(data)


def inflate(blob: bytes) -> bytes:
    """The inverse of :func:`compress` (and of zlib, for blobs written before it)."""
    if blob[:4] != _ZSTD_MAGIC:
        return zlib.decompress(blob)  # written before digests moved to zstd
    d = getattr(_local, "decompressor", None)
    if d is None:
        d = _local.decompressor = zstandard.ZstdDecompressor()
    return d.decompress(blob)


def digest_of_sorted(values: np.ndarray) -> TDigest:
    """A t-digest of ``values`` (float64, sorted ascending), built in numpy.

    fastdigest's own bulk constructor costs ~60 ns per value (it reads the array value by
    value); here the centroids come from a few array operations (~5 ns per value): values are
    cut into at most ``MAX_CENTROIDS`` runs of equal width on the k1 (arcsine) scale, the
    t-digest's scale function, so runs are single values at the tails and wide in the middle,
    and the digest is assembled from its serialised form. If fastdigest's format is not the one
    this was written for (checked once), its constructor is used instead.
    """
    n = len(values)
    if n < 256 or not _own_format_ok():  # small: the fixed cost of the numpy way dominates
        return TDigest.from_values(values, max_centroids=MAX_CENTROIDS)
    if n <= MAX_CENTROIDS:  # every value its own centroid, as fastdigest does
        return TDigest.from_bytes(_digest_bytes(values, values, np.ones(n)))
    starts = _run_starts(n)
    counts = np.diff(np.r_[starts, n]).astype(np.float64)
    means = np.add.reduceat(values, starts) / counts
    return TDigest.from_bytes(_digest_bytes(values, means, counts))


def _run_starts(n: int) -> np.ndarray:
    """Where each run starts: value i (at quantile (i + 0.5) / n) is in run
    floor(C * (asin(2q - 1) / pi + 0.5)), so run j starts at the first i whose quantile is at
    least (sin(pi * (j / C - 0.5)) + 1) / 2; computed for the C boundaries, not the n values."""
    starts = np.minimum(np.ceil(_RUN_BOUNDS * n - 0.5).astype(np.int64), n - 1)
    starts[0] = 0
    return starts[np.r_[True, starts[1:] != starts[:-1]]]  # bounds ascend: drop repeats


_RUN_BOUNDS = (np.sin(np.pi * (np.arange(MAX_CENTROIDS) / MAX_CENTROIDS - 0.5)) + 1) / 2


def _digest_bytes(values: np.ndarray, means: np.ndarray, counts: np.ndarray) -> bytes:
    """fastdigest 0.12's serialised digest (magic, version, sizes, moments, centroids)."""
    n = len(values)
    centroids = np.empty(2 * len(means), np.float64)
    centroids[0::2], centroids[1::2] = means, counts
    return b"".join([b"FASTDIG~", struct.pack("<IQQddddQ", 1, len(means), MAX_CENTROIDS, float(n),
                     float(values.sum()), float(values[0]), float(values[-1]), n),
                     bytes(12), centroids.tobytes()])


_format_ok: bool | None = None


def _own_format_ok() -> bool:
    global _format_ok
    if _format_ok is None:
        values = np.arange(1.0, 9.0)
        means, counts = np.array([1.5, 4.0, 7.5]), np.array([2.0, 3.0, 3.0])
        try:
            d = TDigest.from_bytes(_digest_bytes(values, means, counts))
            _format_ok = d.to_dict() == {
                "max_centroids": MAX_CENTROIDS, "mass": 8.0, "sum": 36.0, "min": 1.0,
                "max": 8.0, "n_values": 8, "centroids": [{"m": 1.5, "c": 2.0},
                                                         {"m": 4.0, "c": 3.0},
                                                         {"m": 7.5, "c": 3.0}]}
        except Exception:  # noqa: BLE001 - any failure means "not our format": fall back
            _format_ok = False
    return _format_ok


class Dist:
    """A distribution: exact moments and extremes, approximate quantiles.

    A decoded Dist keeps its digest deflated until something needs it (a merge, or a quantile
    that was not precomputed), because inflating a full digest costs ~40 µs.
    """

    __slots__ = ("_digest", "_deflated", "known", "count", "sum", "min", "max")

    def __init__(self) -> None:
        self._digest: TDigest | None = TDigest(max_centroids=MAX_CENTROIDS)
        self._deflated: bytes | None = None
        self.known: dict[float, float] = {}
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")

    @property
    def digest(self) -> TDigest:
        if self._digest is None:
            self._digest = TDigest.from_bytes(inflate(self._deflated))
            self._deflated = None
        return self._digest

    @classmethod
    def from_sorted(cls, values: np.ndarray) -> Dist:
        """A distribution of ``values`` (sorted ascending), in bulk: one digest build in Rust."""
        d = cls()
        d._digest = digest_of_sorted(values.astype(np.float64, copy=False))
        d.count = len(values)
        d.sum = values.sum().item()  # exact: integer-valued float64 below 2**53
        d.min, d.max = float(values[0]), float(values[-1])
        return d

    def copy(self) -> Dist:
        d = Dist.__new__(Dist)
        d._digest = None if self._digest is None else self._digest.copy()
        d._deflated, d.known = self._deflated, dict(self.known)
        d.count, d.sum, d.min, d.max = self.count, self.sum, self.min, self.max
        return d

    def add_many(self, values: list[float]) -> None:
        if not values:
            return
        self.digest.merge_inplace(TDigest.from_values(values, max_centroids=MAX_CENTROIDS))
        self.known = {}
        self.count += len(values)
        self.sum += sum(values)
        lo, hi = min(values), max(values)
        if lo < self.min:
            self.min = float(lo)
        if hi > self.max:
            self.max = float(hi)

    def merge(self, other: Dist) -> None:
        if other.count == 0:
            return
        self.digest.merge_inplace(other.digest)
        self.known = {}
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def quantile(self, q: float) -> float | None:
        if self.count == 0:
            return None
        known = self.known.get(round(q, 9))
        if known is not None:
            return known
        # The digest interpolates; clamp to the exact extremes it may overshoot.
        return min(max(self.digest.quantile(q), self.min), self.max)

    def deflated(self) -> bytes:
        """The digest's bytes, compressed (reused as read when the digest was never inflated)."""
        if self._digest is None:
            return self._deflated
        return compress(self._digest.to_bytes())

    def deflate(self) -> None:
        """Keep the digest as compressed bytes (with the usual quantiles precomputed): a live
        digest costs ~4.6 KB however few values it holds, its bytes ~50 for a few values. The
        bytes are the ones ``to_bytes`` would write, so nothing stored changes."""
        if self._digest is not None:
            self._known_quantiles()
            self._deflated = compress(self._digest.to_bytes())
            self._digest = None

    def _known_quantiles(self) -> None:
        if self.count and self._digest is not None and len(self.known) < len(KNOWN_QUANTILES):
            # one call for all of them; clamped to the exact extremes as :meth:`quantile` does
            values = self._digest.quantile_vec(list(KNOWN_QUANTILES))
            self.known = {q: min(max(v, self.min), self.max)
                          for q, v in zip(KNOWN_QUANTILES, values, strict=True)}

    def header(self, name: str, blob: bytes) -> list[Any]:
        self._known_quantiles()
        quantiles = {str(q): self.quantile(q) for q in KNOWN_QUANTILES}
        return [name, self.count, self.sum, self.min, self.max, len(blob), quantiles]

    @classmethod
    def from_header(cls, header: list[Any], deflated: bytes) -> Dist:
        d = cls.__new__(cls)
        d.count, d.sum, d.min, d.max = header[1], header[2], header[3], header[4]
        d.known = {round(float(q), 9): v for q, v in header[6].items()}
        d._digest, d._deflated = None, deflated
        return d


# Exemplars kept per series and bucket: this many slowest requests plus this many sampled ones.
EXEMPLARS = 5


_M64 = (1 << 64) - 1


@functools.lru_cache(maxsize=65_536)  # the same exemplars meet again at every coarser level
def sample_hash(duration_us: int, time: float) -> int:
    """A request's sampling hash: a 64-bit mix of its duration and its time's bits, the same in
    every process and equal to :func:`sample_hashes` (its vectorised twin) element for element."""
    x = (int(duration_us) * 0x9E3779B97F4A7C15
         + struct.unpack("<Q", struct.pack("<d", time))[0]) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def sample_hashes(durations_us: np.ndarray, times: np.ndarray) -> np.ndarray:
    """:func:`sample_hash` of many requests at once (uint64 arithmetic wraps like ``& _M64``)."""
    with np.errstate(over="ignore"):
        x = durations_us.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) \
            + times.astype(np.float64).view(np.uint64)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def select_exemplars(candidates: list[dict[str, Any]], k: int = EXEMPLARS) -> list[dict[str, Any]]:
    """The ``k`` slowest and the ``k`` sampled requests among ``candidates``, slowest first.

    A request is identified by (duration, time); equal ones count once. The sample is the
    ``k`` smallest :func:`sample_hash` values: the smallest hashes of a union are among the
    smallest of its parts, so the choice merges exactly and a replay after a crash stores the
    very same exemplars."""
    unique = {(x["duration_us"], x["time"]): x for x in candidates}
    if len(unique) > k:
        keys = sorted(unique)
        chosen = keys[-k:] + sorted(keys, key=lambda key: sample_hash(*key))[:k]
        unique = {key: unique[key] for key in chosen}
    return [unique[key] for key in sorted(unique, reverse=True)]


class Gauge(list):
    """A sampled level in one bucket: ``[last_time, last, min, max, sum, n]``. A list, so it
    is stored and sent as one (the encoded format does not change); readers use the names."""

    __slots__ = ()

    @property
    def last_time(self) -> float:
        return self[0]

    @property
    def last(self) -> float:
        return self[1]

    @property
    def min(self) -> float:
        return self[2]

    @property
    def max(self) -> float:
        return self[3]

    @property
    def n(self) -> float:
        return self[5]

    @property
    def mean(self) -> float:
        return self[4] / self[5]


class Aggregate:
    """Counters, gauges, distributions and exemplars of one series in one bucket."""

    __slots__ = ("counters", "gauges", "dists", "exemplars")

    def __init__(self) -> None:
        self.counters: dict[str, float] = {}
        self.gauges: dict[str, Gauge] = {}
        self.dists: dict[str, Dist] = {}
        self.exemplars: list[dict[str, Any]] = []

    def add_exemplars(self, candidates: list[dict[str, Any]]) -> None:
        self.exemplars = select_exemplars(self.exemplars + candidates)

    def add_counter(self, name: str, amount: float) -> None:
        self.counters[name] = self.counters.get(name, 0) + amount

    def add_gauge(self, name: str, t: float, value: float) -> None:
        g = self.gauges.get(name)
        if g is None:
            self.gauges[name] = Gauge((t, value, value, value, value, 1))
            return
        if t >= g[0]:
            g[0], g[1] = t, value
        if value < g[2]:
            g[2] = value
        if value > g[3]:
            g[3] = value
        g[4] += value
        g[5] += 1

    def add_values(self, name: str, values: list[float]) -> None:
        d = self.dists.get(name)
        if d is None:
            d = self.dists[name] = Dist()
        d.add_many(values)

    def merge(self, other: Aggregate) -> None:
        for name, amount in other.counters.items():
            self.counters[name] = self.counters.get(name, 0) + amount
        for name, og in other.gauges.items():
            g = self.gauges.get(name)
            if g is None:
                self.gauges[name] = Gauge(og)
                continue
            if og[0] >= g[0]:
                g[0], g[1] = og[0], og[1]
            g[2] = min(g[2], og[2])
            g[3] = max(g[3], og[3])
            g[4] += og[4]
            g[5] += og[5]
        for name, od in other.dists.items():
            if od.count == 0:
                continue
            d = self.dists.get(name)
            if d is None:
                d = self.dists[name] = Dist()
            d.merge(od)
        if other.exemplars:
            self.add_exemplars(other.exemplars)

    def deflate(self) -> Aggregate:
        """Every distribution's digest to bytes (see :meth:`Dist.deflate`); returns self."""
        for d in self.dists.values():
            d.deflate()
        return self

    def copy(self) -> Aggregate:
        a = Aggregate()
        a.counters = dict(self.counters)
        a.gauges = {name: Gauge(g) for name, g in self.gauges.items()}
        a.dists = {name: d.copy() for name, d in self.dists.items()}
        a.exemplars = list(self.exemplars)
        return a

    def to_bytes(self) -> bytes:
        """A compact, deterministic encoding: a JSON header (with exact moments and the
        precomputed quantiles), then each digest compressed on its own (integer microseconds and
        unit weights compress 2-7x). Paid per series and bucket, never per event."""
        names = sorted(self.dists)
        blobs = [self.dists[n].deflated() for n in names]
        obj = {"c": self.counters, "g": self.gauges,
               "d": [self.dists[n].header(n, b) for n, b in zip(names, blobs, strict=True)]}
        if self.exemplars:
            obj["x"] = self.exemplars
        header = orjson.dumps(obj, option=orjson.OPT_SORT_KEYS)
        return len(header).to_bytes(4, "big") + header + b"".join(blobs)

    @staticmethod
    def digests_at(data: bytes) -> int:
        """Where the digests of an encoded aggregate begin: the bytes before hold every
        counter, gauge and distribution moment, all a count, rate or mean needs, so a store can
        keep the two apart and answer those without reading a digest."""
        return 4 + int.from_bytes(data[:4], "big")

    @classmethod
    def from_bytes(cls, data: bytes, dists: Collection[str] | None = None) -> Aggregate:
        """Decode; with ``dists``, only those distributions (the others are left out)."""
        size = int.from_bytes(data[:4], "big")
        obj = orjson.loads(data[4:4 + size])
        a = cls()
        a.counters = obj["c"]
        a.gauges = {name: Gauge(g) for name, g in obj["g"].items()}
        a.exemplars = obj.get("x", [])
        pos = 4 + size
        for entry in obj["d"]:
            name, length = entry[0], entry[5]
            if dists is None or name in dists:
                a.dists[name] = Dist.from_header(entry, data[pos:pos + length])
            pos += length
        return a

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Aggregate) and self.to_bytes() == other.to_bytes()

    def __repr__(self) -> str:
        dists = {k: v.count for k, v in self.dists.items()}
        return f"Aggregate(counters={self.counters}, gauges={list(self.gauges)}, dists={dists})"
