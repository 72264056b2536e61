"""The M/G/c model against an independent solution: the M/M/c birth-death chain solved
numerically (exponential service, where the model should be exact)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from models import queueing


def _chain(servers: int, load: float, states: int = 4000) -> np.ndarray:
    """Stationary distribution of the number in an M/M/c system (μ = 1, λ = load)."""
    p = np.empty(states)
    p[0] = 1.0
    for n in range(1, states):
        p[n] = p[n - 1] * load / min(n, servers)
    return p / p.sum()


def _exact_wait_quantile(servers: int, load: float, q: float) -> float:
    """An arrival that finds n ≥ c in the system waits for n - c + 1 departures at rate c."""
    pi = _chain(servers, load)
    k = np.arange(servers, len(pi)) - servers + 1
    weights = pi[servers:]

    def tail(t: float) -> float:
        return float(np.sum(weights * stats.gamma.sf(t, k, scale=1 / servers)))

    if tail(0.0) <= 1 - q:
        return 0.0
    lo, hi = 0.0, 100.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if tail(mid) > 1 - q else (lo, mid)
    return lo


@pytest.mark.parametrize(("servers", "load"), [(1, 0.5), (2, 1.6), (8, 6.0), (32, 29.0),
                                               (200, 185.0)])
def test_erlang_c_is_the_chains_probability_of_waiting(servers: int, load: float) -> None:
    pi = _chain(servers, load)
    assert queueing.erlang_c(servers, load) == pytest.approx(pi[servers:].sum(), rel=1e-9)


@pytest.mark.parametrize(("servers", "load"), [(2, 1.6), (8, 6.5), (32, 29.0)])
def test_exponential_service_wait_quantiles_are_exact(servers: int, load: float) -> None:
    state = queueing.predict(rate=load, mean_service_s=1.0, scv=1.0, servers=servers)
    assert state.p95_wait_s == pytest.approx(_exact_wait_quantile(servers, load, 0.95), rel=1e-6)
    assert state.p99_wait_s == pytest.approx(_exact_wait_quantile(servers, load, 0.99), rel=1e-6)
    assert state.utilisation == pytest.approx(load / servers)


def test_less_variable_service_waits_less_and_an_overloaded_pool_is_unstable() -> None:
    exp = queueing.predict(10, 0.5, 1.0, 6)
    det = queueing.predict(10, 0.5, 0.0, 6)
    assert det.mean_wait_s == pytest.approx(exp.mean_wait_s / 2)  # Allen–Cunneen's (1 + Cs²)/2
    assert det.p95_wait_s < exp.p95_wait_s
    over = queueing.predict(10, 0.5, 1.0, 5)
    assert not over.stable and math.isinf(over.p95_wait_s)


def test_restarting_workers_take_capacity_away() -> None:
    base = queueing.predict(10, 0.5, 0.5, 8)
    down = queueing.predict(10, 0.5, 0.5, 8, down=1.0)
    assert down.utilisation == pytest.approx(10 * 0.5 * 8 / 7 / 8)
    assert down.p95_wait_s > base.p95_wait_s
    assert not queueing.predict(10, 0.5, 0.5, 1, down=1.0).stable


def test_smallest_meeting_is_the_smallest() -> None:
    rate, mean, scv, target = 300.0, 0.04, 0.7, 0.02
    workers = queueing.smallest_meeting(rate, mean, scv, target, max_util=0.9)
    assert workers is not None
    assert queueing.predict(rate, mean, scv, workers).p95_wait_s <= target
    assert queueing.predict(rate, mean, scv, workers - 1).p95_wait_s > target
    threads = queueing.smallest_meeting(rate, mean, scv, target, 0.9, per_worker=4)
    meets = [w for w in range(1, 100)
             if queueing.predict(rate, mean, scv, 4 * w).p95_wait_s <= target
             and queueing.predict(rate, mean, scv, 4 * w).utilisation <= 0.9]
    assert threads == meets[0]
    assert queueing.smallest_meeting(rate, mean, scv, target, 0.9, limit=3) is None
