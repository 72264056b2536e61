"""The benchmark statistics on data with known answers: each test can fail."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import benchmark_stats as st


def windows(rng: np.random.Generator, n: int = 30, per: int = 2000, scale: float = 1.0,
            ar: float = 0.0) -> st.Sample:
    """One trial of ``n`` windows of lognormal durations (µs); ``ar`` makes each window's level
    follow the last one's (autocorrelated windows, as a queue makes them)."""
    out, level = [], 0.0
    for _ in range(n):
        level = ar * level + rng.normal(0, 0.05)
        v = np.sort(rng.lognormal(math.log(40_000 * scale) + level, 0.5, per))
        out.append(st.Window(10, per, float(rng.binomial(per, 0.01)), v, np.ones(per)))
    return [out]


def compare(run: st.Sample, base: st.Sample, metrics=st.DEFAULT_METRICS, seed: int = 0):
    full = {s: st.Pooled(x).stats(np.ones(sum(len(t) for t in x)), metrics)
            for s, x in (("run", run), ("base", base))}
    ds = st.compare_samples("overall", run, base, full["run"], full["base"], metrics, 0.05, 200,
                            np.random.default_rng(seed))
    st.holm(ds, 0.05, 0.02)
    return {d.metric: d for d in ds}


def test_pooled_quantiles_match_numpy_on_raw_values():
    rng = np.random.default_rng(1)
    sample = windows(rng, n=5)
    raw = np.concatenate([w.means for w in sample[0]])
    got = st.Pooled(sample).stats(np.ones(5), ["p50", "p99"])
    assert got["p50"] == pytest.approx(np.quantile(raw, 0.5), rel=1e-3)
    assert got["p99"] == pytest.approx(np.quantile(raw, 0.99), rel=1e-3)


def test_same_process_is_not_a_regression_and_ten_percent_slower_is():
    rng = np.random.default_rng(2)
    base = windows(rng)
    same = compare(windows(rng), base)
    assert len(same) == len(st.DEFAULT_METRICS) and same["p99"].verdict == "no_change"
    assert not [d.metric for d in same.values() if d.verdict in ("regression", "improvement")]
    slower = compare(windows(rng, scale=1.10), base)
    assert slower["p99"].verdict == "regression" and slower["p50"].verdict == "regression"
    assert 0.05 < slower["p99"].change < 0.15 and slower["p99"].ci_low > 0
    assert slower["throughput"].verdict != "regression"  # same volume


def test_autocorrelated_windows_widen_the_interval():
    """Blocks keep neighbouring windows together: a run whose windows drift together has a
    wider interval than one whose windows are independent."""
    rng = np.random.default_rng(3)
    calm = compare(windows(rng), windows(rng))["p50"]
    drifting = compare(windows(rng, ar=0.9), windows(rng, ar=0.9))["p50"]
    assert drifting.se > 1.5 * calm.se


def test_too_few_windows_judge_nothing():
    rng = np.random.default_rng(4)
    d = compare(windows(rng, n=2), windows(rng, n=2, scale=2.0))
    assert {x.verdict for x in d.values()} == {"not_enough_data"}


@pytest.mark.parametrize("n", [3, 4, 5, 6, 8])
def test_a_few_windows_more_never_judge_less(n: int):
    """Steady-state detection may leave any count from 3 windows up; each is judged (blocks of
    2 would leave 4 windows only 2 blocks, under the minimum)."""
    rng = np.random.default_rng(n)
    d = compare(windows(rng, n=n, scale=2.0), windows(rng, n=n))
    assert d["p50"].verdict == "regression", d["p50"]


def test_holm_keeps_order_and_needs_the_effect_size():
    ds = [st.Difference("s", "p99", 1, 1, 0.10, 0, 0, p, None) for p in (0.001, 0.02, 0.03)]
    ds.append(st.Difference("s", "p50", 1, 1, 0.01, 0, 0, 0.0001, None))  # significant, tiny
    st.holm(ds, 0.05, 0.02)
    assert [round(d.p_adjusted, 4) for d in ds] == [0.003, 0.04, 0.04, 0.0004]
    assert [d.verdict for d in ds] == ["regression", "regression", "regression", "no_change"]


def test_tail_excess_puts_the_slow_requests_on_the_changed_slice():
    rng = np.random.default_rng(5)

    def cells(slow: float) -> list[st.Cell]:
        out = []
        for pool in ("blue", "green"):
            for command in ("predict", "embed"):
                f = slow if (pool, command) == ("blue", "predict") else 1.0
                v = rng.lognormal(math.log(40_000 * f), 0.5, 5000)
                out.append(st.Cell({"pool": pool, "command": command}, 0, 0, 5000, 0, v,
                                   np.ones(5000)))
        return out

    base, run = cells(1.0), cells(1.3)
    threshold = float(np.quantile(np.concatenate([c.means for c in base[:1]]), 0.99))
    shares = st.tail_excess(run, base, threshold, ["pool", "command"])
    top = {(s["dimension"], s["value"]): s["share"] for s in shares}
    assert top[("pool", "blue")] > 0.9 and top[("command", "predict")] > 0.9
    for dim in ("pool", "command"):  # bookkeeping: shares of one dimension add up to 1
        assert sum(s["share"] for s in shares if s["dimension"] == dim) == pytest.approx(1.0)


def test_time_components_split_the_mean_exactly():
    base = {"duration_us": (100.0, 1), "queue_wait_us": (10.0, 1), "python_us": (80.0, 1),
            "overhead_us": (20.0, 1)}
    run = {"duration_us": (150.0, 1), "queue_wait_us": (50.0, 1), "python_us": (85.0, 1),
           "overhead_us": (65.0, 1)}
    t = st.time_components(run, base)
    assert t["grew_most"] == "queue_wait"
    assert (t["queue_wait_change_us"], t["python_change_us"], t["elixir_change_us"]) == (40, 5, 5)
    assert t["queue_wait_share"] + t["python_share"] + t["elixir_share"] == pytest.approx(1.0)


def test_e_divisive_finds_two_level_shifts_and_nothing_in_a_flat_history():
    rng = np.random.default_rng(6)
    flat = list(rng.normal(100, 2, 60))
    assert st.e_divisive(flat) == []
    shifted = list(rng.normal(100, 2, 20)) + list(rng.normal(110, 2, 20)) + \
        list(rng.normal(121, 2, 20))
    found = st.e_divisive(shifted)
    assert len(found) == 2 and abs(found[0] - 20) <= 1 and abs(found[1] - 40) <= 1


def test_mser_drops_a_transient_and_keeps_a_flat_series():
    rng = np.random.default_rng(7)
    warm = [300.0, 220.0, 160.0, 120.0] + list(rng.normal(100, 3, 30))
    assert st.mser(warm) == 4
    assert st.mser(list(rng.normal(100, 3, 34))) == 0


def test_msprt_stays_quiet_without_a_difference_at_every_look():
    false = 0
    for seed in range(300):
        x = np.random.default_rng(100 + seed).normal(0, 0.07, 60)
        false += any(st.msprt(x[:n]).significant for n in range(1, 61))
    # always valid: at most alpha (5 %) of the sequences, however often they are looked at
    assert false <= 15, false


def test_msprt_declares_a_ten_percent_difference_with_the_right_sign():
    x = np.random.default_rng(8).normal(math.log(1.10), 0.07, 60)
    s = st.msprt(x)
    assert s.significant and s.ratio > 1 and s.ci_low > 1 > 0
    early = st.msprt(x[:5])
    assert not early.significant and early.p_value == 1.0
    undecided = st.msprt(np.random.default_rng(9).normal(0, 0.07, 12))
    assert not undecided.significant and undecided.more_windows_needed > 0
