"""The statistics of benchmark runs: run vs baseline, root cause, change points, sequential A/B.

Why these methods:

- **Run vs baseline: a moving-block bootstrap over windows, trials resampled first.** A run's
  data are stored 10 s (or 1 min) windows; neighbouring windows are correlated (a queue that
  builds up lasts several windows), so resampling single windows would understate the noise.
  Blocks of ``round(n ** (1/3))`` consecutive windows keep that correlation (the usual rule for
  the moving-block bootstrap); when a side has several trials (or a baseline is several runs),
  trials are resampled first, so the spread between trials, the honest replicates, is in the
  interval too. The bootstrap gives the standard error of the log ratio run/baseline; the
  interval and the two-sided p-value are Student's t on that scale with one degree of freedom
  per block (a run holds only a few dozen), the minimum detectable effect is
  ``(t(1 - alpha/2) + t(0.8)) * se`` (80 % power). Every comparison of a report is
  corrected together (Holm), so judging 6 metrics on 20 slices does not inflate false alarms.
- **Root cause: bookkeeping of slow requests.** The regressed slice with the strongest evidence
  (change / standard error) sets a threshold, its baseline percentile; per dimension value, the
  run's requests beyond it minus what that value had in the baseline add up to the total excess,
  so each value's share is exact (percentiles are not additive); the values carrying most of it
  name the culprit. The mean request time splits exactly into queue wait, Python time and the
  rest of the Elixir overhead.
- **History: E-Divisive means** (Matteson and James 2014, as used by MongoDB and Apache Otava):
  the energy distance picks the best split, a permutation test keeps it or stops, recursively.
- **A/B: mSPRT** (Johari et al. 2017) on paired per-window log-percentile differences of two
  variants running at the same time: the always-valid p-value and confidence sequence hold
  however often someone looks.
- **Steady state: MSER** (White 1997): the truncation point that minimises the standard error of
  the mean of what is left; windows before it are dropped, as warm-up is, when they are a
  transient (their mean more than 3 standard errors off the rest's).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

QUANTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
DEFAULT_METRICS = ("p50", "p95", "p99", "p99.9", "throughput", "error_rate")


@dataclass(slots=True)
class Window:
    """One stored bucket of one trial of a run, restricted to one slice of its requests."""

    seconds: int
    requests: float = 0.0
    errors: float = 0.0  # errors and timeouts
    means: np.ndarray = field(default_factory=lambda: np.empty(0))  # duration centroids (µs)
    weights: np.ndarray = field(default_factory=lambda: np.empty(0))


Sample = list[list[Window]]  # trials, each its windows in time order


def merged_quantiles(means: np.ndarray, weights: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """Quantiles of a set of centroids, each centroid's weight centred on its mean (as a
    t-digest interpolates); NaN when empty."""
    if len(means) == 0 or weights.sum() <= 0:
        return np.full(len(qs), np.nan)
    order = np.argsort(means, kind="stable")
    m, w = means[order], weights[order]
    total = w.sum()
    centre = np.cumsum(w) - w / 2
    return np.interp(np.asarray(qs) * total, centre, m)


def sample_stats(windows: Sequence[Window], metrics: Sequence[str]) -> dict[str, float]:
    """Every metric of a set of windows (taken together)."""
    seconds = sum(w.seconds for w in windows)
    requests = sum(w.requests for w in windows)
    errors = sum(w.errors for w in windows)
    out: dict[str, float] = {}
    qs = [m for m in metrics if m in QUANTILES]
    if qs:
        means = np.concatenate([w.means for w in windows]) if windows else np.empty(0)
        weights = np.concatenate([w.weights for w in windows]) if windows else np.empty(0)
        values = merged_quantiles(means, weights, [QUANTILES[q] for q in qs])
        out.update(zip(qs, (float(v) for v in values), strict=True))
    if "throughput" in metrics:
        out["throughput"] = requests / seconds if seconds else math.nan
    if "error_rate" in metrics:
        out["error_rate"] = errors / requests if requests else math.nan
    return out


MIN_BLOCKS = 3  # per side, to judge anything


def block_length(n: int) -> int:
    """n^(1/3) windows per block, but never so long that fewer than ``MIN_BLOCKS`` blocks
    remain (4 windows in blocks of 2 would be 2 blocks: less judgeable than 3 windows)."""
    return max(1, min(round(n ** (1 / 3)), n // MIN_BLOCKS))


def _blocks(sample: Sample) -> int:
    """The independent pieces a sample is resampled from (blocks, over every trial)."""
    return sum(math.ceil(len(t) / block_length(len(t))) for t in sample if t)


def resample(sample: Sample, rng: np.random.Generator) -> np.ndarray:
    """One moving-block bootstrap replicate, as how many times each window (trials
    concatenated) is drawn: trials with replacement (when there are several), then within each
    trial ``ceil(n / L)`` blocks of ``L`` windows, cut back to ``n``."""
    sizes = [len(t) for t in sample]
    offsets = np.cumsum([0, *sizes])
    counts = np.zeros(offsets[-1])
    trials = [i for i, n in enumerate(sizes) if n]
    if len(trials) > 1:
        trials = [trials[i] for i in rng.integers(0, len(trials), len(trials))]
    for t in trials:
        n = sizes[t]
        length = block_length(n)
        starts = rng.integers(0, n - length + 1, math.ceil(n / length))
        drawn = (starts[:, None] + np.arange(length)[None, :]).ravel()[:n]
        np.add.at(counts, offsets[t] + drawn, 1)
    return counts


class Pooled:
    """A sample's centroids sorted once, each tagged with its window: a replicate only
    re-weights them (no sort per replicate)."""

    def __init__(self, sample: Sample) -> None:
        windows = [w for t in sample for w in t]
        idx = np.concatenate([np.full(len(w.means), i) for i, w in enumerate(windows)]
                             ) if windows else np.empty(0, int)
        means = np.concatenate([w.means for w in windows]) if windows else np.empty(0)
        weights = np.concatenate([w.weights for w in windows]) if windows else np.empty(0)
        order = np.argsort(means, kind="stable")
        self.means, self.weights, self.idx = means[order], weights[order], idx[order]
        self.requests = np.array([w.requests for w in windows], dtype=float)
        self.errors = np.array([w.errors for w in windows], dtype=float)
        self.seconds = np.array([w.seconds for w in windows], dtype=float)

    def stats(self, counts: np.ndarray, metrics: Sequence[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        qs = [m for m in metrics if m in QUANTILES]
        if qs:
            w = self.weights * counts[self.idx]
            total = w.sum()
            if total > 0:
                centre = np.cumsum(w) - w / 2
                values = np.interp(np.array([QUANTILES[q] for q in qs]) * total, centre,
                                   self.means)
                out.update(zip(qs, (float(v) for v in values), strict=True))
            else:
                out.update((q, math.nan) for q in qs)
        requests = float(counts @ self.requests)
        if "throughput" in metrics:
            seconds = float(counts @ self.seconds)
            out["throughput"] = requests / seconds if seconds else math.nan
        if "error_rate" in metrics:
            out["error_rate"] = float(counts @ self.errors) / requests if requests else math.nan
        return out


def _worse(metric: str, change: float) -> bool:
    """Whether a change of ``metric`` is for the worse (latency and errors up, throughput down)."""
    return change < 0 if metric == "throughput" else change > 0


@dataclass
class Difference:
    """Run vs baseline on one metric of one slice."""

    slice: str
    metric: str
    run: float | None
    baseline: float | None
    change: float | None  # relative (error rate: absolute difference of the rates)
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    mde: float | None  # smallest change this pair of runs could detect (same scale as change)
    se: float | None = None  # standard error on the comparison scale (log ratio)
    p_adjusted: float | None = None
    verdict: str = "no_change"  # regression | improvement | no_change | not_enough_data


def _enough(metric: str, n_run: float, n_base: float) -> bool:
    """A quantile is judged only with >= 10 requests beyond it on each side."""
    if metric in QUANTILES:
        tail = 1 - QUANTILES[metric]
        return min(n_run, n_base) * tail >= 10
    if metric == "error_rate":
        return min(n_run, n_base) >= 100
    return True


def compare_samples(name: str, run: Sample, base: Sample, points_run: dict[str, float],
                    points_base: dict[str, float], metrics: Sequence[str], alpha: float,
                    replicates: int, rng: np.random.Generator) -> list[Difference]:
    """Each metric of one slice, run vs baseline, with bootstrap standard errors."""
    n_run = sum(w.requests for t in run for w in t)
    n_base = sum(w.requests for t in base for w in t)
    judged = [m for m in metrics if _enough(m, n_run, n_base)]
    if min(_blocks(run), _blocks(base)) < MIN_BLOCKS:
        judged = []  # too few windows to tell a change from noise
    boot: dict[str, list[float]] = {m: [] for m in judged}
    pooled_run, pooled_base = Pooled(run), Pooled(base)
    full_run = pooled_run.stats(np.ones(len(pooled_run.requests)), judged)
    full_base = pooled_base.stats(np.ones(len(pooled_base.requests)), judged)
    for _ in range(replicates if judged else 0):
        a = pooled_run.stats(resample(run, rng), judged)
        b = pooled_base.stats(resample(base, rng), judged)
        for m in judged:
            boot[m].append(_scale(m, a[m], b[m]))
    # Student's t with one degree of freedom per block drawn, less one per side: a run holds
    # only a few dozen blocks, and the normal would make its quantile noise look smaller than
    # it is (measured: A/A false alarms at 3x the nominal rate with the normal).
    df = max(1, _blocks(run) + _blocks(base) - 2)
    t_crit = float(sps.t.ppf(1 - alpha / 2, df))
    t_power = float(sps.t.ppf(0.8, df))
    out = []
    for m in metrics:
        r, b = points_run.get(m), points_base.get(m)
        d = Difference(name, m, r, b, None, None, None, None, None, verdict="not_enough_data")
        out.append(d)
        if m not in judged or r is None or b is None:
            continue
        # Tested on the pooled centroids, the data the bootstrap resamples: the merged
        # digest (what ``r``/``b`` report) recompresses them, adding up to ~1 % of noise.
        est = _scale(m, full_run[m], full_base[m])
        reps = np.array([v for v in boot[m] if math.isfinite(v)])
        if not math.isfinite(est) or len(reps) < replicates // 2:
            continue
        se = float(reps.std(ddof=1))
        if se == 0:  # every replicate alike: nothing varies, nothing to test (e.g. no errors)
            continue
        d.verdict, d.se = "no_change", se
        d.change = _unscale(m, est)
        d.ci_low, d.ci_high = _unscale(m, est - t_crit * se), _unscale(m, est + t_crit * se)
        d.p_value = float(2 * sps.t.sf(abs(est) / se, df))
        d.mde = _unscale(m, (t_crit + t_power) * se)
    return out


def _scale(metric: str, run: float, base: float) -> float:
    """The scale comparisons are made on: log ratio, except the error rate (a difference, as
    a baseline without errors has no ratio)."""
    if metric == "error_rate":
        return run - base
    if run > 0 and base > 0:
        return math.log(run / base)
    return math.nan


def _unscale(metric: str, x: float) -> float:
    return x if metric == "error_rate" else math.expm1(x)


def holm(differences: list[Difference], alpha: float, min_effect: float) -> None:
    """Holm-Bonferroni over every judged difference, then a verdict: a regression is a change
    for the worse that is significant after correction and at least ``min_effect`` (relative;
    for the error rate, absolute percentage points / 100)."""
    judged = sorted((d for d in differences if d.p_value is not None), key=lambda d: d.p_value)
    k = len(judged)
    running = 0.0
    for i, d in enumerate(judged):
        running = max(running, min(1.0, (k - i) * d.p_value))
        d.p_adjusted = running
        big = abs(d.change) >= (min_effect / 10 if d.metric == "error_rate" else min_effect)
        if running < alpha and big:
            d.verdict = "regression" if _worse(d.metric, d.change) else "improvement"


# --- root cause --------------------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    """A detailed series in one window: its labels and what the comparison uses of it."""

    labels: dict[str, str]
    trial: int
    bucket: int
    requests: float
    errors: float
    means: np.ndarray
    weights: np.ndarray


def tail_excess(run: Sequence[Cell], base: Sequence[Cell], threshold: float,
                dims: Sequence[str]) -> list[dict]:
    """Which dimension values the extra slow requests come from.

    Per value, the run's requests slower than ``threshold`` (the regressed slice's baseline
    percentile) minus as many as that value had in the baseline, at the run's volume. These
    excesses add up, per dimension, to the run's total excess, so each value's share of it is
    exact bookkeeping, unlike shares of a percentile (which is not additive). Sorted by share,
    largest first; ties: the narrower slice first."""

    def above(cells: Sequence[Cell]) -> tuple[float, float]:
        slow = sum(float(c.weights[c.means > threshold].sum()) for c in cells)
        return slow, sum(float(c.weights.sum()) for c in cells)

    total_run = sum(c.requests for c in run) or 1.0
    out = []
    for dim in dims:
        values = {c.labels[dim] for c in run}
        if len(values) < 2:
            continue  # one value for everything explains everything and says nothing
        excess = {}
        for v in values:
            slow, n = above([c for c in run if c.labels[dim] == v])
            b_slow, b_n = above([c for c in base if c.labels[dim] == v])
            excess[v] = slow - n * (b_slow / b_n if b_n else 0.0)
        total = sum(excess.values())
        if total <= 0:
            continue
        out += [{"dimension": dim, "value": v, "excess_requests": e, "share": e / total,
                 "traffic_share": sum(c.requests for c in run if c.labels[dim] == v) / total_run}
                for v, e in excess.items()]
    out.sort(key=lambda c: (-round(c["share"], 2), c["traffic_share"]))
    return out


def time_components(run: dict[str, tuple[float, float]], base: dict[str, tuple[float, float]]
                    ) -> dict[str, float | None]:
    """Which part of the mean request time grew, in microseconds and as a share of the change.

    ``run``/``base`` map ``duration_us``, ``queue_wait_us``, ``python_us``, ``overhead_us`` to
    ``(sum, count)``. Duration is Python time plus overhead; the overhead holds the queue wait,
    so the rest of it is the Elixir/gRPC share."""

    def mean(side: dict[str, tuple[float, float]], key: str) -> float | None:
        s, n = side.get(key, (0.0, 0))
        return s / n if n else None

    parts: dict[str, float | None] = {}
    for name, key in (("duration", "duration_us"), ("queue_wait", "queue_wait_us"),
                      ("python", "python_us"), ("overhead", "overhead_us")):
        a, b = mean(run, key), mean(base, key)
        parts[name] = None if a is None or b is None else a - b
    if parts["overhead"] is not None and parts["queue_wait"] is not None:
        parts["elixir"] = parts["overhead"] - parts["queue_wait"]
    else:
        parts["elixir"] = parts["overhead"]
    out: dict[str, float | None] = {"duration_change_us": parts["duration"]}
    total = parts["duration"]
    for name in ("queue_wait", "python", "elixir"):
        out[f"{name}_change_us"] = parts[name]
        out[f"{name}_share"] = (parts[name] / total if parts[name] is not None and total
                                else None)
    shares = {n: out[f"{n}_share"] for n in ("queue_wait", "python", "elixir")}
    known = {n: s for n, s in shares.items() if s is not None}
    out["grew_most"] = max(known, key=known.get) if known and total and total > 0 else None
    return out


# --- history -----------------------------------------------------------------------------------


def evidence(d: Difference) -> float:
    """How strongly a difference stands out of its noise: |change| / standard error."""
    if d.se is None or d.change is None:
        return 0.0
    est = d.change if d.metric == "error_rate" else math.log1p(d.change)
    return abs(est) / d.se if d.se else math.inf


def _energy_split(x: np.ndarray, min_size: int) -> tuple[int, float]:
    """The split of ``x`` with the largest E-Divisive statistic (exponent 1) and its value."""
    n = len(x)
    d = np.abs(x[:, None] - x[None, :])
    best, best_q = -1, -math.inf
    for tau in range(min_size, n - min_size + 1):
        a, b = d[:tau, :tau], d[tau:, tau:]
        m = tau
        k = n - tau
        between = d[:tau, tau:].mean()
        within_a = a.sum() / (m * (m - 1)) if m > 1 else 0.0
        within_b = b.sum() / (k * (k - 1)) if k > 1 else 0.0
        q = m * k / n * (2 * between - within_a - within_b)
        if q > best_q:
            best, best_q = tau, q
    return best, best_q


def e_divisive(values: Sequence[float], alpha: float = 0.01, permutations: int = 199,
               min_size: int = 3, seed: int = 0) -> list[int]:
    """Change points of a history (indices where a new level starts), by E-Divisive means with
    a permutation test per split; deterministic for a given ``seed``."""
    x = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    points: list[int] = []
    segments = [(0, len(x))]
    while True:
        best = None
        for lo, hi in segments:
            if hi - lo < 2 * min_size:
                continue
            tau, q = _energy_split(x[lo:hi], min_size)
            if best is None or q > best[3]:
                best = (lo, hi, lo + tau, q)
        if best is None:
            break
        lo, hi, tau, q = best
        seg = x[lo:hi].copy()
        exceed = 0
        for _ in range(permutations):
            rng.shuffle(seg)
            if _energy_split(seg, min_size)[1] >= q:
                exceed += 1
        if (exceed + 1) / (permutations + 1) >= alpha:
            break
        points.append(tau)
        segments.remove((lo, hi))
        segments += [(lo, tau), (tau, hi)]
    return sorted(points)


def mser(values: Sequence[float]) -> int:
    """The MSER truncation point of a series (at most half of it): where steady state starts."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 6:
        return 0
    # variance of x[d:] / (n - d) for every d, from suffix sums (O(n))
    count = np.arange(n, 0, -1, dtype=float)
    s1 = np.cumsum(x[::-1])[::-1]
    s2 = np.cumsum((x * x)[::-1])[::-1]
    var = np.maximum(s2 / count - (s1 / count) ** 2, 0.0)
    score = (var / count)[: n // 2 + 1]
    d = int(np.argmin(score))
    # On a flat series MSER still picks some point; drop the head only if it is a transient:
    # its mean more than 3 standard errors from the rest's.
    if d == 0:
        return 0
    head, tail = x[:d], x[d:]
    if abs(head.mean() - tail.mean()) * math.sqrt(d) <= 3 * tail.std(ddof=1):
        return 0
    return d


# --- A/B ---------------------------------------------------------------------------------------


MIN_WINDOWS = 8  # paired windows before an A/B test may declare anything


@dataclass
class Sequential:
    """The state of an mSPRT on paired differences (B - A, in log units)."""

    windows: int
    mean: float | None  # mean log ratio B/A
    ratio: float | None  # exp(mean): B's stat / A's
    ci_low: float | None  # always-valid confidence sequence of the ratio
    ci_high: float | None
    p_value: float  # always-valid
    significant: bool
    more_windows_needed: int | None  # to resolve the current estimate (or ``effect``)


def msprt(diffs: Sequence[float], alpha: float = 0.05, tau: float = 0.1,
          min_windows: int = MIN_WINDOWS,
          effect: float = 0.05) -> Sequential:
    """An mSPRT with a normal mixture N(0, tau^2) over the mean of ``diffs``; the variance is
    the running sample variance. The p-value is the running minimum of 1/Lambda, so it never
    rises; nothing is declared before ``min_windows`` differences (the variance estimate needs
    them)."""
    x = np.asarray([d for d in diffs if math.isfinite(d)], dtype=float)
    n = len(x)
    p = 1.0
    if n >= max(2, min_windows):  # Lambda after each difference from min_windows on, at once
        i = np.arange(max(2, min_windows), n + 1, dtype=float)
        ybar_i = np.cumsum(x)[i.astype(int) - 1] / i
        s2_i = (np.cumsum(x * x)[i.astype(int) - 1] - i * ybar_i ** 2) / (i - 1)
        ok = s2_i > 1e-300
        s2_i, ybar_i, i = s2_i[ok], ybar_i[ok], i[ok]
        v = s2_i + i * tau ** 2
        log_lambda = 0.5 * np.log(s2_i / v) + i * i * tau ** 2 * ybar_i ** 2 / (2 * s2_i * v)
        if len(log_lambda) and log_lambda.max() > 0:
            p = math.exp(-float(log_lambda.max()))
    if n < max(2, min_windows):
        return Sequential(n, float(x.mean()) if n else None, None, None, None, 1.0, False, None)
    ybar, s2 = float(x.mean()), float(x.var(ddof=1))
    half = _cs_half_width(n, s2, tau, alpha)
    target = max(abs(ybar), math.log1p(effect)) if p >= alpha else None
    more = None
    if target is not None and s2 > 0:
        m = n
        while _cs_half_width(m, s2, tau, alpha) >= target and m < n + 1_000_000:
            m = max(m + 1, int(m * 1.05))
        more = m - n
    return Sequential(n, ybar, math.exp(ybar), math.exp(ybar - half), math.exp(ybar + half), p,
                      p < alpha, more)


def _cs_half_width(n: int, s2: float, tau: float, alpha: float) -> float:
    if s2 <= 0:
        return 0.0
    v = s2 + n * tau ** 2
    return math.sqrt(2 * s2 * v / (n * n * tau ** 2) * math.log(math.sqrt(v / s2) / alpha))

