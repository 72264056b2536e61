"""Each finding on data that should trigger it and data that should not.

Deployments come from the simulator (the queueing of a Snakepit pool) through the real engine
into a real store; lifecycle and session signals the simulator does not make are Snakepit's own
envelopes (tests/snakepit_envelopes.py, each from the line that emits it) through the
normaliser."""

from __future__ import annotations

import math

import pytest

from harness.data import MIX, T0, mean_ms
from models import recommend
from models.recommend_evidence import group_means, pool_evidence, session_evidence
from models.recommend_learning import Outcome, correction, demoted
from schemas.decode import accept
from simulator.model import Command, PoolSpec, Simulation, daily_shape
from store.sqlite import SQLiteStore
from streams.engine import Engine
from tests import snakepit_envelopes as sp

PEAK = T0 + 8 * 3600  # 16:00 UTC: the simulator's daily peak
SHORT_HISTORY = recommend.Targets(shrink_history_s=0)  # these stores hold minutes, not a day


def stored(specs: list[PoolSpec], busy: dict[str, float], seconds: float = 240, seed: int = 1,
           extra: list | None = None) -> tuple[SQLiteStore, float, float]:
    """Simulate ``specs`` at the peak with each pool ``busy`` as given; store what the engine
    makes of it (and of ``extra`` events)."""
    rate = 0.0
    for s in specs:
        s.crash_rate_per_hour, s.error_rate = 0.0, 0.0
        rate += busy[s.name] * s.pool_size * s.threads_per_worker / (mean_ms(s.commands) / 1000)
    for s in specs:
        s.share = busy[s.name] * s.pool_size * s.threads_per_worker \
            / (mean_ms(s.commands) / 1000) / rate
    store, eng = SQLiteStore(":memory:"), Engine()
    events = list(Simulation(rate / daily_shape(PEAK), PEAK, seconds, seed=seed,
                             pools=specs).events())
    events = sorted(events + (extra or []), key=lambda e: e.time)
    for i in range(0, len(events), 5000):
        store.write(eng.process(events[i:i + 5000]))
    store.write(eng.flush())
    return store, PEAK + 30, PEAK + seconds


def evidence(store: SQLiteStore, t0: float, t1: float):
    return pool_evidence(store, t0, t1, resolution=10, peak_s=t1 - t0)


def native(envelopes: list[dict]) -> list:
    out = []
    for env in envelopes:
        event, reason = accept(env)
        assert reason is None, reason
        out.append(event)
    return out


def test_evidence_recovers_the_simulated_service_time() -> None:
    store, t0, t1 = stored([PoolSpec("a", pool_size=6, commands=MIX)], {"a": 0.7})
    ev = evidence(store, t0, t1)["a"]
    assert ev.mean_service_s == pytest.approx(mean_ms(MIX) / 1000, rel=0.05)
    assert ev.utilisation == pytest.approx(0.7, abs=0.07)
    assert ev.pool_size == 6 and ev.commands == {"predict", "embed"}
    # lognormal mixture: E[S^2] from the two commands' own moments
    w = [2 / 3, 1 / 3]
    m2 = sum(wi * (c.median_ms / 1000) ** 2 * math.exp(2 * c.sigma ** 2)
             for wi, c in zip(w, MIX, strict=True))
    scv = m2 / (mean_ms(MIX) / 1000) ** 2 - 1
    assert ev.service_scv == pytest.approx(scv, rel=0.15)


def test_a_pool_too_small_gets_a_bigger_size_and_a_right_sized_one_nothing() -> None:
    store, t0, t1 = stored([PoolSpec("hot", pool_size=4, commands=MIX),
                            PoolSpec("fine", pool_size=8, commands=MIX)],
                           {"hot": 0.96, "fine": 0.6})
    pools = evidence(store, t0, t1)
    recs = recommend.find(pools)
    assert [(r.pool, r.kind) for r in recs] == [("hot", "pool_too_small")]
    rec = recs[0]
    assert rec.setting == "pool_size" and rec.current == 4 and rec.proposed > 4
    assert rec.impact["p95_queue_wait_s"]["after"] < rec.impact["p95_queue_wait_s"]["before"]
    assert rec.impact["rss_mb"] == (rec.proposed - 4) * recommend.WORKER_RSS_MB
    assert f"%{{name: :hot, pool_size: {rec.proposed}}}" in rec.snippet
    assert rec.evidence["measured_p95_queue_wait_s"] > 0.05


def test_an_oversized_pool_is_cut_but_not_below_what_its_peak_needs() -> None:
    store, t0, t1 = stored([PoolSpec("idle", pool_size=16, commands=MIX)], {"idle": 0.15})
    assert recommend.find(evidence(store, t0, t1)) == []  # 4 minutes of history: too little
    (rec,) = recommend.find(evidence(store, t0, t1), targets=SHORT_HISTORY)
    assert rec.kind == "pool_too_large" and rec.current == 16
    assert 3 <= rec.proposed <= 6  # 2.4 busy workers at the peak, ≤ 80 % busy after
    assert rec.impact["utilisation"]["after"] <= 0.8


def test_too_few_requests_make_no_capacity_finding() -> None:
    store, t0, t1 = stored([PoolSpec("hot", pool_size=2, commands=MIX)], {"hot": 0.96},
                           seconds=60)
    assert recommend.find(evidence(store, t0, t1), targets=recommend.Targets(min_requests=5000)
                          ) == []


def test_recycling_too_often_is_found_and_the_default_is_not() -> None:
    light = [Command("transform", 1, 8, 0.3, "pandas")]
    store, t0, t1 = stored([PoolSpec("churn", pool_size=4, commands=light,
                                     worker_max_requests=300),
                            PoolSpec("calm", pool_size=4, commands=light)],
                           {"churn": 0.6, "calm": 0.6})
    recs = [r for r in recommend.find(evidence(store, t0, t1)) if r.kind == "recycling_too_often"]
    assert [r.pool for r in recs] == ["churn"]
    rec = recs[0]
    assert rec.setting == "worker_max_requests" and rec.current == 300
    assert rec.proposed >= 300 * rec.impact["capacity_restarting"]["before"] / 0.005 * 0.99
    assert rec.impact["capacity_restarting"]["before"] > 0.02


def test_memory_recycle_storms_from_snakepits_recycled_event() -> None:
    storms = native([sp.recycled(sp.worker_id("mem", i % 4), PEAK + 40 + 5 * i)
                     for i in range(20)])
    store, t0, t1 = stored([PoolSpec("mem", pool_size=4, commands=MIX)], {"mem": 0.5},
                           extra=storms)
    recs = [r for r in recommend.find(evidence(store, t0, t1)) if r.setting ==
            "memory_threshold_mb"]
    assert [(r.pool, r.current, r.proposed) for r in recs] == [("mem", 800, 2000)]
    few = native([sp.recycled(sp.worker_id("mem", 0), PEAK + 40)])
    store, t0, t1 = stored([PoolSpec("mem", pool_size=4, commands=MIX)], {"mem": 0.5},
                           extra=few)
    assert recommend.memory_recycling(evidence(store, t0, t1)["mem"]) is None


def test_session_limit_from_snakepits_accumulation_warnings() -> None:
    warnings = native([sp.session_accumulation(PEAK + 40 + 10 * i) for i in range(5)])
    store, t0, t1 = stored([PoolSpec("a", pool_size=4, commands=MIX)], {"a": 0.5},
                           extra=warnings)
    rec = recommend.sessions(session_evidence(store, t0, t1, 10))
    assert rec is not None and (rec.current, rec.proposed) == (10000, 20000)
    assert rec.snippet == "config :snakepit, session_max_sessions: 20_000"
    pruned = native([sp.session_pruned(PEAK + 40 + 10 * i) for i in range(5)])
    store, t0, t1 = stored([PoolSpec("a", pool_size=4, commands=MIX)], {"a": 0.5},
                           extra=pruned)
    assert recommend.sessions(session_evidence(store, t0, t1, 10)) is None


def test_imbalance_between_pools_serving_the_same_commands() -> None:
    store, t0, t1 = stored([PoolSpec("east", pool_size=8, commands=MIX),
                            PoolSpec("west", pool_size=8, commands=MIX)],
                           {"east": 0.75, "west": 0.12})
    pools = evidence(store, t0, t1)
    rec = recommend.imbalance(list(pools.values()))
    assert rec is not None and rec.kind == "pool_imbalance" and rec.pool == "east"
    assert rec.proposed["east"] > 8 > rec.proposed["west"]
    assert sum(rec.proposed.values()) == 16
    other = [Command("transform", 1, 25, 0.7, "pandas")]
    store, t0, t1 = stored([PoolSpec("east", pool_size=8, commands=MIX),
                            PoolSpec("batch", pool_size=8, commands=other)],
                           {"east": 0.75, "batch": 0.12})
    assert recommend.imbalance(list(evidence(store, t0, t1).values())) is None


def test_a_slower_python_environment_is_named_with_its_significance() -> None:
    fast = PoolSpec("a", pool_size=4, commands=[Command("predict", 1, 40, 0.5, "torch")],
                    python_env="uv:.venv")
    slow = PoolSpec("a", pool_size=4, commands=[Command("predict", 1, 52, 0.5, "torch")],
                    python_env="system")
    store = SQLiteStore(":memory:")
    for spec, seed in ((fast, 1), (slow, 2)):  # the same pool, two environments, interleaved
        one, _, _ = stored([spec], {"a": 0.5}, seconds=400, seed=seed)
        _copy(one, store)
    groups = group_means(store, PEAK + 30, PEAK + 400, "python_env", 10)
    recs = recommend.environment(groups, "python_env")
    assert [(r.current, r.proposed) for r in recs] == [("system", "uv:.venv")]
    assert recs[0].evidence["p_value"] < 0.01
    same = recommend.environment({k: v for k, v in groups.items() if k[2] == "system"} |
                                 {("a", "predict", "copy"): groups[("a", "predict", "system")]},
                                 "python_env")
    assert same == []


def _copy(src: SQLiteStore, dst: SQLiteStore) -> None:
    from streams.rollup import Rollup

    rows = src.read(src.series("request"), 10, 0, 2 ** 40)
    dst.write([Rollup(r.series.family, r.series.labels, 10, r.bucket, r.agg) for r in rows])


def test_learning_corrects_a_steady_bias_and_demotes_a_failing_kind() -> None:
    biased = [Outcome(i, "a", "pool_too_small", "validated", 0.040, 0.020) for i in range(5)]
    assert correction(biased[:1], "a", "pool_too_small") == pytest.approx(
        math.exp(math.log(0.5) * 10 / 12))
    assert correction(biased, "a", "pool_too_small") == pytest.approx(0.5, rel=0.05)
    assert correction(biased, "b", "pool_too_small") == 1.0
    assert correction(biased, "a", "pool_too_large") == 1.0
    idle = [Outcome(i, "a", "pool_too_large", "validated", 0.0, 0.0) for i in range(5)]
    assert correction(idle, "a", "pool_too_large") == 1.0  # no wait either way: nothing learnt
    failing = [Outcome(i, "a", "recycling_too_often", s, None, None)
               for i, s in enumerate(["validated", "no_effect", "made_worse", "no_effect"])]
    assert demoted(failing, "recycling_too_often")
    assert not demoted(failing[:3], "recycling_too_often")


def test_heartbeat_timeouts_of_slow_but_live_workers_raise_the_timeout() -> None:
    def pong(i: int, latency_ms: int) -> dict:
        env = sp.heartbeat("pong_received", sp.worker_id("hb", i % 4), PEAK + 40 + i)
        env["measurements"]["latency_ms"] = latency_ms
        return env

    timeouts = [sp.heartbeat("heartbeat_timeout", sp.worker_id("hb", i), PEAK + 100 + i)
                for i in range(4)]
    slow = native([pong(i, 4000 + 20 * i) for i in range(40)] + timeouts)
    store, t0, t1 = stored([PoolSpec("hb", pool_size=4, commands=MIX)], {"hb": 0.5}, extra=slow)
    rec = recommend.heartbeat(evidence(store, t0, t1)["hb"])
    assert rec is not None and rec.current == 10_000 and rec.proposed == 20_000
    assert "heartbeat: %{timeout_ms: 20_000}" in rec.snippet
    quick = native([pong(i, 4) for i in range(40)] + timeouts)  # real failures: no setting
    store, t0, t1 = stored([PoolSpec("hb", pool_size=4, commands=MIX)], {"hb": 0.5}, extra=quick)
    assert recommend.heartbeat(evidence(store, t0, t1)["hb"]) is None


def test_worker_profile_where_the_same_commands_run_both_ways() -> None:
    io_bound = [Command("fetch", 1, 40, 0.3, "httpx")]  # threads barely slow each other
    store, t0, t1 = stored([PoolSpec("procs", pool_size=8, commands=io_bound),
                            PoolSpec("threads", pool_size=2, commands=io_bound,
                                     worker_profile="thread", threads_per_worker=4)],
                           {"procs": 0.5, "threads": 0.5})
    recs = recommend.profile(list(evidence(store, t0, t1).values()))
    assert [(r.pool, r.current, r.proposed) for r in recs] == [("procs", "process", "thread")]
    assert "worker_profile: :thread, threads_per_worker: 4" in recs[0].snippet
    store, t0, t1 = stored([PoolSpec("procs", pool_size=8, commands=io_bound),
                            PoolSpec("other", pool_size=2, commands=MIX,
                                     worker_profile="thread", threads_per_worker=4)],
                           {"procs": 0.5, "other": 0.5})
    assert recommend.profile(list(evidence(store, t0, t1).values())) == []  # not comparable


def test_threads_that_add_nothing_make_a_process_recommendation() -> None:
    """CPU-bound under the GIL: 4 threads each 4x slower serve what one process does (the
    simulator's threads always help, so this one is built by hand)."""
    from models.recommend_evidence import PoolEvidence

    procs = PoolEvidence("procs", 0, 1, 0, 1, pool_size=8, worker_profile="process",
                         mean_service_s=0.04, commands={"crunch"})
    threads = PoolEvidence("gil", 0, 1, 0, 1, pool_size=2, threads_per_worker=4,
                           worker_profile="thread", mean_service_s=0.16, commands={"crunch"})
    (rec,) = recommend.profile([procs, threads])
    assert (rec.pool, rec.current, rec.proposed) == ("gil", "thread", "process")
    assert rec.snippet.endswith("%{name: :gil, worker_profile: :process}\n  ]")


def test_queue_timeouts_of_a_pool_with_capacity_and_none_without_them() -> None:
    store, t0, t1 = stored([PoolSpec("bursty", pool_size=4, commands=MIX, queue_timeout_s=0.03),
                            PoolSpec("calm", pool_size=4, commands=MIX)],
                           {"bursty": 0.8, "calm": 0.8})
    pools = evidence(store, t0, t1)
    targets = recommend.Targets(pool_queue_timeout_ms=30)
    rec = recommend.queue_timeout(pools["bursty"], targets)
    assert rec is not None and (rec.current, rec.proposed) == (30, 100)
    assert rec.snippet == "config :snakepit, pool_queue_timeout: 100"
    assert pools["bursty"].timeouts > 0.001 * pools["bursty"].requests
    assert recommend.queue_timeout(pools["calm"], targets) is None
    hot, _, _ = stored([PoolSpec("hot", pool_size=4, commands=MIX, queue_timeout_s=0.03)],
                       {"hot": 0.97})
    assert recommend.queue_timeout(evidence(hot, t0, t1)["hot"], targets) is None  # too small
