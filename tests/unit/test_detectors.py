"""The stream's anomaly detector on its own (models.detectors), and the benchmark scorer that
judges it (bench.anomaly_score): each on inputs whose right answer is known."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

from bench import anomaly_score
from bench.anomaly_score import PROFILES, normalised, raw_score, sigma
from models import detectors
from models.detectors import ALERT_PROBABILITY, SeriesDetector, for_series

T = 1_800_000_000 // 86_400 * 86_400  # a midnight
STEP = 300


def feed(d: SeriesDetector, xs, start: float = T, step: float = STEP) -> list[float]:
    """Score then learn each value; returns the scores."""
    out = []
    for i, x in enumerate(xs):
        t = start + i * step
        out.append(d.score_one(float(x), t))
        d.learn_one(float(x), t)
    return out


def test_the_docstring_example_runs():
    assert doctest.testmod(detectors).failed == 0


def test_a_cold_start_is_quiet_then_a_spike_is_anomalous_and_normal_values_are_not():
    rng = np.random.default_rng(1)
    d = for_series("p99_s")
    scores = feed(d, 0.1 + rng.normal(0, 0.005, 400))
    assert scores[:detectors.WARMUP_POINTS] == [0.0] * detectors.WARMUP_POINTS
    assert max(scores[100:]) < ALERT_PROBABILITY
    t = T + 400 * STEP
    assert d.score_one(0.5, t) >= ALERT_PROBABILITY
    assert 0.0 <= d.score_one(0.101, t) < 0.9


def test_a_series_of_zeros_has_a_scale_that_never_collapses():
    """Mostly zeros (the MAD is 0): a single 1 is not an anomaly, a burst is, and after the
    burst the zeros and ones are normal again (the baseline is not frozen)."""
    rng = np.random.default_rng(2)
    d = for_series("errors")
    xs = (rng.random(600) < 0.05).astype(float)  # 0 with a 1 now and then
    feed(d, xs)
    t = T + 600 * STEP
    assert d.score_one(1.0, t) < ALERT_PROBABILITY
    assert d.score_one(25.0, t) >= ALERT_PROBABILITY
    after = feed(d, [25, 30, 20] + list(xs[:200]), start=t)
    assert after[0] >= ALERT_PROBABILITY
    assert max(after[50:]) < ALERT_PROBABILITY, "zeros and ones are normal again"


def test_a_generic_flat_series_that_starts_moving_is_one_detection_not_a_frozen_alarm():
    d = for_series()
    rng = np.random.default_rng(3)
    scores = feed(d, [0.0] * 300 + list(np.abs(rng.normal(20, 5, 300))))
    assert scores[300] >= ALERT_PROBABILITY
    assert sum(s >= ALERT_PROBABILITY for s in scores[330:]) <= 3


def test_a_daily_season_is_learned_so_a_value_normal_at_noon_is_anomalous_at_3am():
    hours = np.arange(8 * 288) * STEP / 3600 % 24
    shape = 10 + 90 * np.exp(-((hours - 13) ** 2) / 8)  # 10 at night, 100 at 13:00
    rng = np.random.default_rng(4)
    d = for_series("rate")
    scores = feed(d, shape * (1 + rng.normal(0, 0.03, len(shape))))
    assert max(scores[2 * 288:]) < ALERT_PROBABILITY, "the daily peak itself is normal"
    day9 = T + 8 * 86_400
    assert d.score_one(100.0, day9 + 13 * 3600) < 0.99
    assert d.score_one(100.0, day9 + 3 * 3600) >= ALERT_PROBABILITY
    assert d.score_one(10.0, day9 + 13 * 3600) >= ALERT_PROBABILITY, "a missing peak"


def test_a_level_shift_becomes_the_new_normal_after_one_excursion():
    rng = np.random.default_rng(5)
    d = for_series("p99_s")
    feed(d, 0.1 + rng.normal(0, 0.004, 300))
    scores = feed(d, 0.3 + rng.normal(0, 0.004, 300), start=T + 300 * STEP)
    assert scores[0] >= ALERT_PROBABILITY
    first_normal = next(i for i, s in enumerate(scores) if s < ALERT_PROBABILITY)
    assert first_normal <= 10
    assert sum(s >= ALERT_PROBABILITY for s in scores[first_normal:]) <= 2
    assert abs(d.expected(T + 600 * STEP) - 0.3) < 0.01


def test_after_expect_change_a_shift_is_accepted_sooner():
    def until_normal(deploy: bool) -> int:
        rng = np.random.default_rng(6)
        d = for_series("p99_s")
        feed(d, 0.1 + rng.normal(0, 0.004, 300))
        start = T + 300 * STEP
        if deploy:
            d.expect_change(start)
        scores = feed(d, 0.3 + rng.normal(0, 0.004, 60), start=start)
        return next(i for i, s in enumerate(scores) if s < ALERT_PROBABILITY)

    assert until_normal(True) < until_normal(False)


def test_a_restart_resumes_what_was_learned():
    rng = np.random.default_rng(7)
    xs = 50 + rng.normal(0, 1, 500)
    d = for_series("rate")
    feed(d, xs)
    resumed = SeriesDetector.restore(d.state())
    t = T + 500 * STEP
    for x in (50.0, 51.5, 80.0):
        assert resumed.score_one(x, t) == d.score_one(x, t)
    assert resumed.warm and resumed.score_one(80.0, t) >= ALERT_PROBABILITY


def test_non_finite_values_are_neither_scored_nor_learned():
    d = for_series()
    feed(d, [1.0, 2.0] * 50)
    before = d.state()
    assert d.score_one(math.nan, T) == 0.0
    d.learn_one(math.inf, T)
    assert d.state() == before


# -- the scorer ------------------------------------------------------------------------------

WINDOWS = [[(300, 399)], [(600, 649), (800, 849)]]


def detections(n: int, at: list[int]) -> np.ndarray:
    s = np.zeros(n)
    s[at] = 1.0
    return s


@pytest.mark.parametrize("p", PROFILES, ids=lambda p: p.name)
def test_never_firing_scores_0_and_perfect_scores_100(p):
    never = [np.zeros(1000), np.zeros(1000)]
    perfect = [detections(1000, [300]), detections(1000, [600, 800])]
    assert normalised(never, WINDOWS, 0.5, p) == 0
    assert normalised(perfect, WINDOWS, 0.5, p) == pytest.approx(100)


def test_earlier_is_worth_more_and_only_the_first_detection_in_a_window_counts():
    p = PROFILES[0]
    early = raw_score(detections(1000, [300]) > 0, [(300, 399)], p)
    late = raw_score(detections(1000, [390]) > 0, [(300, 399)], p)
    many = raw_score(detections(1000, [300, 320, 350]) > 0, [(300, 399)], p)
    assert early == pytest.approx(sigma(-1)) and late < early and many == early


def test_false_positives_cost_their_profile_and_less_just_after_a_window():
    std, low_fp = PROFILES[0], PROFILES[1]
    stray = detections(1000, [200, 300]) > 0  # 200: before any window
    assert raw_score(stray, [(300, 399)], std) == pytest.approx(sigma(-1) - 0.11)
    assert raw_score(stray, [(300, 399)], low_fp) == pytest.approx(sigma(-1) - 0.22)
    near = raw_score(detections(1000, [300, 410]) > 0, [(300, 399)], std)
    far = raw_score(detections(1000, [300, 900]) > 0, [(300, 399)], std)
    assert sigma(-1) - 0.11 < far < near < sigma(-1)


def test_detections_in_probation_are_ignored_and_a_missed_window_costs_its_profile():
    low_fn = PROFILES[2]
    probation = int(anomaly_score.PROBATION * 1000) - 1
    assert raw_score(detections(1000, [probation]) > 0, [(300, 399)], low_fn) == -2.0


def test_the_threshold_is_optimised_over_the_whole_corpus():
    scores = [detections(1000, [300]) * 0.9 + detections(1000, [500]) * 0.5,
              detections(1000, [600, 800]) * 0.8]
    best, threshold = anomaly_score.optimise(scores, WINDOWS, PROFILES[0])
    assert 0.5 < threshold <= 0.8 and best == pytest.approx(100)


def test_pages_count_runs_outside_windows_per_day():
    t = T + STEP * np.arange(2880.0)  # 10 days
    s = np.zeros(2880)
    s[[1000, 1001, 1002]] = 1  # one page (3 in a row)
    s[[1500, 1501, 1510, 1511]] = 1  # two pages (9 quiet points between)
    s[2000] = 1  # one point: no page
    s[2500:2502] = 1  # inside a window: not counted
    pages = anomaly_score.pages_per_day(s, t, [(2450, 2550)], 0.5)
    days = (2880 - int(0.15 * 2880) - 101) * STEP / 86_400
    assert pages == pytest.approx(3 / days)


def test_values_near_the_float_limit_and_a_clock_going_backwards_never_break_it():
    """Finite values whose differences overflow (a gauge of ±1.7e308 now and then, as a broken
    producer sends) and minutes out of order: scores stay probabilities, nothing learned turns
    into inf or nan, the extremes are anomalous and normal data is still judged normal."""
    d = for_series()
    rng = np.random.default_rng(8)
    feed(d, 10 + rng.normal(0, 1, 100))
    scores = {}
    for i in range(300):
        t = T + (100 + i) * STEP - (7 * STEP if i % 7 == 0 else 0)  # some minutes go back
        x = 1.7e308 * (1 if i % 40 == 0 else -1) if i % 20 == 0 else 10 + rng.normal(0, 1)
        scores[i] = d.score_one(x, t)
        d.learn_one(x, t)
    assert all(0.0 <= p <= 1.0 for p in scores.values())
    assert all(scores[i] >= ALERT_PROBABILITY for i in range(20, 300, 20)), "each extreme"
    assert max(p for i, p in scores.items() if i % 20) < ALERT_PROBABILITY
    t = T + 400 * STEP
    assert abs(d.expected(t) - 10) < 3
    assert d.score_one(10.0, t) < 0.9 < ALERT_PROBABILITY <= d.score_one(1e6, t)
