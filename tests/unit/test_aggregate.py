"""Aggregates: the numpy-built digests, exemplar sampling, copies and the stored encoding."""

from __future__ import annotations

import numpy as np
import pytest
from fastdigest import TDigest

from harness.data import LATENCIES
from streams import aggregate
from streams.aggregate import Aggregate, Dist, digest_of_sorted, sample_hash, sample_hashes
from streams.requests import pick_exemplars


@pytest.mark.parametrize("latency", sorted(LATENCIES))
@pytest.mark.parametrize("n", [300, 5_000, 400_000])
def test_numpy_digest_is_as_accurate_as_fastdigests_own(latency: str, n: int):
    values = np.sort(LATENCIES[latency](np.random.default_rng(n), n).round())
    ours, theirs = digest_of_sorted(values), TDigest.from_values(values, max_centroids=2000)
    assert ours.n_values == n and ours.n_centroids <= aggregate.MAX_CENTROIDS
    for q, tolerance in {0.5: 0.01, 0.95: 0.01, 0.99: 0.01, 0.999: 0.02}.items():
        exact = np.quantile(values, q)
        assert abs(ours.quantile(q) - exact) / exact <= tolerance
        assert abs(ours.quantile(q) - exact) <= 2 * abs(theirs.quantile(q) - exact) + 1e-9 * exact


def test_small_digests_are_identical_to_fastdigests_own():
    values = np.sort(np.random.default_rng(1).lognormal(9, 0.9, 1_500).round())
    assert digest_of_sorted(values).to_bytes() == \
        TDigest.from_values(values, max_centroids=2000).to_bytes()


def test_the_installed_fastdigest_reads_the_digests_we_build():
    """Building digests with numpy (2x faster than fastdigest's own at 5k values, 16x at 50k) writes
    fastdigest's byte format; an upgrade that changes it turns that off silently in production
    (the fallback below), so it fails here, loudly."""
    import fastdigest

    assert aggregate._own_format_ok(), f"fastdigest {fastdigest.__version__}: its byte " \
        "format changed; update streams.aggregate._digest_bytes or pin the version"


def test_an_unknown_digest_format_falls_back_to_fastdigest(monkeypatch):
    monkeypatch.setattr(aggregate, "_format_ok", None)
    monkeypatch.setattr(aggregate, "_digest_bytes", lambda *a: b"not a digest")
    values = np.arange(1.0, 10_001.0)
    d = digest_of_sorted(values)
    assert aggregate._format_ok is False and d.n_values == 10_000


def test_sample_hash_is_the_same_scalar_and_vectorised():
    rng = np.random.default_rng(3)
    durations = rng.integers(0, 10**9, 1000).astype(np.float64)
    times = 1.8e9 + rng.random(1000) * 1e5
    assert sample_hashes(durations, times).tolist() == \
        [sample_hash(int(d), float(t)) for d, t in zip(durations, times, strict=True)]


def test_exemplar_candidates_contain_the_exact_choice():
    rng = np.random.default_rng(5)
    n = 20_000
    worker = rng.integers(0, 7, n).astype(np.int32)
    duration = rng.integers(1, 300, n).astype(np.float64)  # many ties, some duplicates
    time = 1.8e9 + rng.integers(0, 50, n) * 0.5
    rows = set(pick_exemplars(worker, duration, time).tolist())
    assert len(rows) < 100 * 7
    for w in range(7):
        mine = [{"duration_us": int(duration[i]), "time": float(time[i]), "row": i}
                for i in np.flatnonzero(worker == w).tolist()]
        chosen = aggregate.select_exemplars(mine)
        candidates = aggregate.select_exemplars([x for x in mine if x["row"] in rows])
        assert [(x["duration_us"], x["time"]) for x in chosen] == \
            [(x["duration_us"], x["time"]) for x in candidates]


def test_copy_is_deep_and_equal():
    a = Aggregate()
    a.add_counter("requests", 3)
    a.add_gauge("queue_depth", 1.0, 4)
    a.dists["duration_us"] = Dist.from_sorted(np.array([1.0, 2.0, 30.0]))
    b = a.copy()
    assert b == a
    b.add_counter("requests", 1)
    b.dists["duration_us"].merge(Dist.from_sorted(np.array([5.0])))
    assert a.counters["requests"] == 3 and a.dists["duration_us"].count == 3


def test_zlib_digests_written_before_zstd_still_read():
    import zlib

    d = Dist.from_sorted(np.array([10.0, 20.0, 30.0]))
    old = Dist.from_header(d.header("x", b""), zlib.compress(d.digest.to_bytes(), 1))
    assert old.digest.quantile(1.0) == 30.0
