"""A Snakepit pool as a queue: M/G/c by the Allen–Cunneen approximation.

A pool is ``c = pool_size * threads_per_worker`` servers fed by one FIFO queue (Snakepit's
pool queue). Requests arrive at rate ``λ`` and take a service time ``S`` with mean ``E[S]`` and
squared coefficient of variation ``Cs² = Var(S) / E[S]²``. Arrivals from many independent
callers are close to Poisson, so the model is M/G/c:

- the probability of waiting is Erlang C, ``C(c, a)`` with offered load ``a = λ E[S]``, computed
  through the Erlang B recursion (stable for hundreds of servers, no factorials);
- the mean wait is Allen–Cunneen: the M/M/c mean wait scaled by ``(1 + Cs²) / 2``;
- the wait of a request that waits is taken as exponential with the mean that makes the
  overall mean right, ``m = (1 + Cs²) / 2 · E[S] / (c - a)``, so
  ``P(W > t) = C(c, a) · exp(-t / m)`` and the q-quantile of the wait is
  ``m · ln(C / (1 - q))`` when ``C > 1 - q``, else 0.

Why this one: it needs only what the stored rollups hold (a rate and two moments of the service
time), it is exact for exponential service, within ~10 % for the service-time shapes Snakepit
commands have (lognormal, Cs² ≤ 2) at the utilisations that matter (bench.recommend_eval
measures it against the simulator), and the learning step (models.recommend_learning)
corrects what is left per pool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def erlang_c(servers: int, load: float) -> float:
    """Probability that a request waits, for ``servers`` servers and ``load`` Erlangs."""
    if servers <= 0:
        return 1.0
    if load <= 0:
        return 0.0
    if load >= servers:
        return 1.0
    b = 1.0
    for k in range(1, servers + 1):  # Erlang B recursion
        b = load * b / (k + load * b)
    rho = load / servers
    return b / (1 - rho * (1 - b))


@dataclass(frozen=True, slots=True)
class QueueState:
    """What the model predicts for one pool configuration."""

    servers: int
    utilisation: float  # λ E[S] / c; ≥ 1 means the queue grows without bound
    p_wait: float  # probability that a request waits at all
    mean_wait_s: float
    p95_wait_s: float
    p99_wait_s: float

    @property
    def stable(self) -> bool:
        return self.utilisation < 1


def predict(rate: float, mean_service_s: float, scv: float, servers: int, down: float = 0.0
            ) -> QueueState:
    """The steady state of an M/G/c queue (``scv`` = Cs² of the service time). ``down``
    servers are unavailable on average (workers restarting after a recycle or crash): the
    others carry their load, which the model sees as service stretched by ``c / (c - down)``."""
    if down > 0 and servers > down:
        mean_service_s *= servers / (servers - down)
    elif down > 0:
        return QueueState(servers, math.inf, 1.0, math.inf, math.inf, math.inf)
    load = rate * mean_service_s
    util = load / servers if servers > 0 else math.inf
    if util >= 1:
        return QueueState(servers, util, 1.0, math.inf, math.inf, math.inf)
    c = erlang_c(servers, load)
    m = (1 + max(scv, 0.0)) / 2 * mean_service_s / (servers - load)
    return QueueState(servers, util, c, c * m, wait_quantile(c, m, 0.95),
                      wait_quantile(c, m, 0.99))


def wait_quantile(p_wait: float, conditional_mean_s: float, q: float) -> float:
    """The q-quantile of a wait that is 0 with probability ``1 - p_wait`` and exponential with
    mean ``conditional_mean_s`` otherwise."""
    tail = 1 - q
    if p_wait <= tail:
        return 0.0
    return conditional_mean_s * math.log(p_wait / tail)


def smallest_meeting(rate: float, mean_service_s: float, scv: float, target_p95_s: float,
                     max_util: float, per_worker: int = 1, down: float = 0.0,
                     limit: int = 1024) -> int | None:
    """The fewest workers (each ``per_worker`` servers) whose P95 wait is at most
    ``target_p95_s`` and utilisation at most ``max_util``; None past ``limit`` workers."""
    workers = max(1, math.ceil(rate * mean_service_s / per_worker / max_util))
    while workers <= limit:
        state = predict(rate, mean_service_s, scv, workers * per_worker, down)
        if state.stable and state.p95_wait_s <= target_p95_s and state.utilisation <= max_util:
            return workers
        workers += 1
    return None
