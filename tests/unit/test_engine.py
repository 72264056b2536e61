"""Golden tests of the engine: exact counts, accurate percentiles, lateness, checkpoints."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from harness.data import LATENCIES, T0, exact_quantile, requests
from streams.aggregate import Aggregate, compress
from streams.engine import Engine
from streams.requests import RequestPane
from streams.rollup import Rollup
from streams.series import ALL, Limits

QUANTILES = {0.5: 0.01, 0.95: 0.01, 0.99: 0.01, 0.999: 0.02}


def run(events, batch: int = 500, lateness: float = 5.0) -> list[Rollup]:
    eng = Engine(lateness=lateness)
    out: list[Rollup] = []
    for i in range(0, len(events), batch):
        out += eng.process(events[i:i + batch])
    return out + eng.flush()


def per_series(rollups: list[Rollup]) -> dict[tuple, Aggregate]:
    """Every series' buckets, late deltas merged in: what the store would hold."""
    out: dict[tuple, Aggregate] = {}
    for r in rollups:
        key = (r.family, r.labels, r.resolution, r.bucket)
        if key in out:
            out[key].merge(r.agg)
        else:
            out[key] = r.agg
    return out


def merged(rollups: list[Rollup], family: str, resolution: int, **where) -> dict[int, Aggregate]:
    """Stored view: every rollup (and late delta) of a family merged per bucket."""
    from streams.series import FAMILIES

    dims = FAMILIES[family]
    out: dict[int, Aggregate] = {}
    for r in rollups:
        if r.family != family or r.resolution != resolution or ALL in r.labels:
            continue  # the detailed series only; the rolled-up ones are tested on their own
        if any(r.labels[dims.index(k)] != v for k, v in where.items()):
            continue
        out.setdefault(r.bucket, Aggregate()).merge(r.agg)
    return out


@pytest.mark.parametrize("latency", sorted(LATENCIES))
def test_counts_exact_and_percentiles_accurate_per_window(latency: str):
    events = requests(60_000, 600, latency)  # 10 minutes, 100/s
    rollups = run(events)
    for minute, agg in merged(rollups, "request", 60).items():
        window = [e for e in events if minute <= e.time < minute + 60]
        d = agg.dists["duration_us"]
        assert d.count == len(window) == agg.counters["requests"]
        assert d.sum == sum(e.duration_us for e in window)
        assert agg.counters.get("errors", 0) == sum(e.status == "error" for e in window)
        assert agg.counters.get("timeouts", 0) == sum(e.status == "timeout" for e in window)
        assert agg.counters["busy_us"] == sum(e.duration_us for e in window)
        assert d.min == min(e.duration_us for e in window)
        assert d.max == max(e.duration_us for e in window)
        durations = [e.duration_us for e in window]
        for q, tolerance in QUANTILES.items():
            exact = exact_quantile(durations, q)
            assert abs(d.quantile(q) - exact) / exact <= tolerance, (minute, q)


@pytest.mark.parametrize("latency", sorted(LATENCIES))
def test_percentiles_accurate_merged_over_24h_of_windows(latency: str):
    # one event per second for a day, one pool: the cost is per series and pane, and the
    # number of pools changes nothing of what is tested here
    events = requests(86_400, 86_400, latency, seed=7, pools=("pool-a",))
    rollups = run(events, batch=2000)
    tens = merged(rollups, "request", 10)
    assert len(tens) == 8640
    day = Aggregate()
    for bucket in sorted(tens):
        day.merge(tens[bucket])
    hours = merged(rollups, "request", 3600)
    assert len(hours) == 24
    hour_merge = Aggregate()
    for bucket in sorted(hours):
        hour_merge.merge(hours[bucket])
    durations = [e.duration_us for e in events]
    for agg in (day, hour_merge):
        d = agg.dists["duration_us"]
        assert d.count == len(events)
        for q, tolerance in QUANTILES.items():
            exact = exact_quantile(durations, q)
            assert abs(d.quantile(q) - exact) / exact <= tolerance, q


def test_shuffled_within_lateness_equals_in_order():
    events = requests(20_000, 200)
    shuffled = list(events)
    rnd = random.Random(3)
    # Disorder of up to 4 s, inside the 5 s allowed lateness.
    shuffled.sort(key=lambda e: e.time + rnd.uniform(0, 4))
    a = run(events)
    b = run(shuffled)
    assert not any(r.late for r in b)
    assert per_series(a) == per_series(b)


def test_events_past_lateness_are_merged_and_counted():
    events = requests(10_000, 100)
    eng = Engine(lateness=2.0)
    out = eng.process(events[:8000])
    straggler = events[100]  # ~99 s behind the newest event
    out += eng.process([straggler])
    out += eng.flush()
    assert eng.stats["late_events"] == 1
    assert any(r.late for r in out)
    # Merged, the straggler is counted exactly once in its 10 s pane and its minute.
    in_order = run(events[:8000])
    total = merged(out, "request", 10)
    expected = merged(in_order, "request", 10)
    bucket = int(straggler.time // 10) * 10
    assert sum(a.counters["requests"] for a in total.values()) == 8001
    assert total[bucket].counters["requests"] == expected[bucket].counters["requests"] + 1
    minute = int(straggler.time // 60) * 60
    assert merged(out, "request", 60)[minute].counters["requests"] == \
        merged(in_order, "request", 60)[minute].counters["requests"] + 1


def test_events_after_a_flush_are_merged_as_late_data():
    """A finite input flushed, then more of it (a test, or a backfill into a stopped engine):
    the new events come out as late deltas that merge into what the store holds."""
    events = requests(6000, 60)
    eng = Engine()
    out = eng.process(events[:3000]) + eng.flush()
    more = eng.process(events[3000:]) + eng.flush()
    assert more and all(r.late for r in more)
    got, expected = merged(out + more, "request", 10), merged(run(events), "request", 10)
    assert {b: a.counters["requests"] for b, a in got.items()} == \
        {b: a.counters["requests"] for b, a in expected.items()}
    assert sum(a.dists["duration_us"].count for a in got.values()) == 6000


def test_digests_do_not_depend_on_batch_boundaries():
    events = requests(30_000, 300)
    a, b = run(events, batch=500), run(events, batch=1237)
    assert per_series(a) == per_series(b)  # byte-equal aggregates, digests included


def test_snapshot_restore_resumes_exactly():
    events = requests(30_000, 300)
    whole = run(events)
    eng = Engine()
    out = []
    for i in range(0, 15_000, 500):
        out += eng.process(events[i:i + 500])
    restored = Engine.restore(eng.snapshot())
    for i in range(15_000, 30_000, 500):
        out += restored.process(events[i:i + 500])
    out += restored.flush()
    assert per_series(out) == per_series(whole)


def test_busy_panes_compact_into_blocks_and_stay_exact(monkeypatch):
    """A pane keeps at most one block of raw requests; the blocks are cut at fixed row counts,
    so the result still depends neither on batch boundaries nor on checkpoints, and stays
    exact (counts) and accurate (percentiles)."""
    monkeypatch.setattr(RequestPane, "BLOCK", 1000)
    events = requests(30_000, 30)  # 10,000 requests per 10 s pane: ten blocks each
    whole = run(events)
    assert per_series(run(events, batch=1237)) == per_series(whole)
    eng = Engine()
    out = []
    for i in range(0, 15_500, 500):
        out += eng.process(events[i:i + 500])
        assert all(len(p.columns().combo) < 1000 for p in eng.request_panes.values())
    restored = Engine.restore(eng.snapshot())
    for i in range(15_500, 30_000, 500):
        out += restored.process(events[i:i + 500])
    assert per_series(out + restored.flush()) == per_series(whole)
    for minute, agg in merged(whole, "request", 60).items():
        durations = [e.duration_us for e in events if minute <= e.time < minute + 60]
        d = agg.dists["duration_us"]
        assert d.count == len(durations) == agg.counters["requests"]
        assert d.sum == sum(durations)
        for q, tolerance in QUANTILES.items():
            exact = exact_quantile(durations, q)
            assert abs(d.quantile(q) - exact) / exact <= tolerance, (minute, q)


def test_worker_family_and_python_overhead():
    events = requests(5_000, 50)
    rollups = run(events)
    minute = merged(rollups, "worker", 3600, worker_id="w3")
    agg = next(iter(minute.values()))
    mine = [e for e in events if e.worker_id == "w3"]
    assert agg.counters["requests"] == len(mine)
    assert agg.counters.get("errors", 0) == sum(e.status != "ok" for e in mine)
    assert agg.counters["busy_us"] == sum(e.duration_us - (e.queue_wait_us or 0) for e in mine), \
        "a worker is busy from taking a request to finishing it, not while it was queued"
    req = next(iter(merged(rollups, "request", 3600).values()))
    assert req.dists["overhead_us"].sum == sum(e.duration_us - e.python_us for e in events)
    assert req.dists["python_us"].count == len(events)


def test_cardinality_is_bounded_and_overflow_counted():
    events = requests(2_000, 20)
    for i, e in enumerate(events):
        e.command = f"cmd-{i}"
    eng = Engine(limits=Limits(max_label_values=50))
    out = eng.process(events) + eng.flush()
    commands = {r.labels[3] for r in out if r.family == "request" and r.labels[3] != ALL}
    assert len(commands) == 51 and "__other__" in commands
    assert eng.limiter.overflowed == 2_000 - 50
    assert sum(r.agg.counters["requests"] for r in out
               if r.family == "request" and r.resolution == 10 and ALL not in r.labels) == 2_000


def test_other_event_types_feed_their_families():
    from schemas.decode import decode_json

    body = b"""[
      {"type": "worker", "time": %d, "kind": "spawned", "worker_id": "w1", "pool": "p",
       "startup_us": 850000},
      {"type": "worker", "time": %d, "kind": "recycled", "worker_id": "w1", "pool": "p",
       "reason": "max_requests"},
      {"type": "worker", "time": %d, "kind": "crashed", "worker_id": "w2", "pool": "p"},
      {"type": "pool", "time": %d, "kind": "stats", "pool": "p", "queue_depth": 4},
      {"type": "pool", "time": %d, "kind": "stats", "pool": "p", "queue_depth": 9},
      {"type": "session", "time": %d, "kind": "accessed", "adapter": "ets", "duration_us": 40,
       "cache_hit": true},
      {"type": "resource", "time": %d, "scope": "host", "host": "h", "cpu_per_core": [10, 30],
       "memory_bytes": 1024},
      {"type": "python", "time": %d, "kind": "call", "library": "torch", "python_us": 900},
      {"type": "annotation", "time": %d, "kind": "deploy", "title": "v2"}
    ]""" % tuple(T0 + i for i in range(9))
    decoded = decode_json(body)
    assert not decoded.rejects, decoded.rejects
    eng = Engine()
    out = eng.process(decoded.events) + eng.flush()
    by = {(r.family, r.labels): r.agg for r in out if r.resolution == 60}
    w1 = by[("worker", ("p", "w1"))]
    assert w1.counters == {"spawned": 1, "recycled": 1, "recycled.max_requests": 1}
    assert w1.dists["startup_us"].max == 850000
    assert by[("worker", ("p", "w2"))].counters == {"crashed": 1}
    pool = by[("pool", ("p",))].gauges["queue_depth"]
    assert pool[1:] == [9, 4, 9, 13, 2]  # last, min, max, sum, n
    s = by[("session", ("", "ets"))]
    assert s.counters == {"accessed": 1, "cache_hits": 1}
    r = by[("resource", ("host", "h", "", ""))]
    assert r.gauges["cpu_core_1_percent"][1] == 30 and r.gauges["memory_bytes"][1] == 1024
    assert by[("python", ("", "", "torch", ""))].dists["python_us"].count == 1
    assert [a.title for a in eng.annotations] == ["v2"]


def test_late_deltas_of_one_batch_have_one_row_per_key():
    """Two late panes in one closed minute must not produce two rows with the same key
    (the store would keep only the last)."""
    events = requests(3_000, 300)
    eng = Engine(lateness=0)
    out = eng.process(events[2_000:])  # closes everything before ~T0 + 200
    stragglers = [e for e in events[:2_000] if T0 + 60 <= e.time < T0 + 120]
    out += eng.process(stragglers, tag="9")
    out += eng.held_late()  # what a commit writes of the offset group so far
    keys = [(r.family, r.labels, r.resolution, r.bucket, r.tag) for r in out if r.late]
    assert len(keys) == len(set(keys))
    stored: dict[tuple, Aggregate] = {}
    for r in out:  # keyed overwrite, like the store
        stored[(r.family, r.labels, r.resolution, r.bucket, r.tag)] = r.agg
    minute = sum(a.counters.get("requests", 0) for k, a in stored.items()
                 if k[0] == "request" and k[2] == 60 and k[3] == T0 + 60 and ALL not in k[1])
    assert minute == len(stragglers)


def test_rolled_up_series_equal_their_parts():
    events = requests(12_000, 120, pools=("pool-a", "pool-b", "pool-c"))
    rollups = run(events)
    stars = (ALL,) * 7
    for res in (10, 60, 3600):
        by_bucket: dict[int, dict[str, float]] = {}
        for r in rollups:
            if r.family == "request" and r.resolution == res:
                key = "all" if r.labels == (ALL, *stars) else (
                    r.labels[0] if r.labels[1:] == stars else "detail")
                totals = by_bucket.setdefault(r.bucket, {})
                totals[key] = totals.get(key, 0) + r.agg.counters["requests"]
                if key not in ("all", "detail"):
                    totals["pools"] = totals.get("pools", 0) + r.agg.counters["requests"]
        for totals in by_bucket.values():
            assert totals["all"] == totals["detail"] == totals["pools"]
    pool_a = [r for r in rollups if r.family == "request" and r.resolution == 3600
              and r.labels == ("pool-a", *stars)]
    durations = [e.duration_us for e in events if e.pool == "pool-a"]
    d = pool_a[0].agg.dists["duration_us"]
    assert d.count == len(durations) and d.sum == sum(durations)
    exact = exact_quantile(durations, 0.99)
    assert abs(d.quantile(0.99) - exact) / exact <= 0.01


def test_worker_series_keep_the_slowest_requests_and_a_sample_as_exemplars():
    events = requests(20_000, 200)
    rollups = run(events, batch=333)
    for resolution in (10, 60):
        for bucket, agg in merged(rollups, "worker", resolution, pool="pool-a", worker_id="w0").items():
            mine = [e for e in events if e.pool == "pool-a" and e.worker_id == "w0"
                    and bucket <= e.time < bucket + resolution]
            slowest = sorted((e.duration_us for e in mine), reverse=True)[:5]
            kept = [x["duration_us"] for x in agg.exemplars]
            assert kept[:5] == slowest, "the five slowest requests of the bucket, slowest first"
            assert 5 < len(kept) <= 10, "plus a sample of up to five others"
            everything = {(e.time, e.duration_us, e.command) for e in mine}
            assert {(x["time"], x["duration_us"], x["command"]) for x in agg.exemplars} <= everything


@pytest.mark.parametrize("old", [
    b'{"resolutions": [10, 60, 3600], "panes": []}',  # session-2 JSON checkpoints
    b"SPENG4" + compress(b'\x00\x00\x00\x02{}'),  # version 4: a JSON header and blobs
])
def test_a_checkpoint_of_an_older_version_starts_empty_windows_with_a_warning(caplog, old):
    eng = Engine.resume(old, lateness=2.0)
    assert eng.clock.lateness == 2.0 and not eng.request_panes
    assert "checkpoint not restored" in caplog.text
    events = requests(1_000, 10)
    eng.process(events[:500])
    assert Engine.resume(eng.snapshot()).stats["events"] == 500


def _attack(n_pools: int, n_commands: int, start: float = T0) -> list:
    """Every (pool, command) pair once: each label within its own limit, the product is not."""
    events = requests(n_pools * n_commands, 5, start=start)
    for i, e in enumerate(events):
        e.pool, e.command = f"pool-{i % n_pools}", f"cmd-{i // n_pools}"
    return events


def test_active_series_are_bounded_per_family_and_pool_totals_stay_exact():
    limits = Limits(max_label_values=1000, max_series_per_family=300, max_series=10_000)
    eng = Engine(limits=limits)
    events = _attack(40, 50)  # 2,000 request series asked for
    out = eng.process(events) + eng.flush()
    detailed = {r.labels for r in out if r.family == "request" and r.resolution == 10
                and r.labels[1] != ALL}
    folded = {labels for labels in detailed if labels[3] == "__other__"}
    assert len(detailed - folded) == 300 and len(eng.limiter.known["request"]) == 300
    assert {labels[0] for labels in folded} <= {f"pool-{i}" for i in range(40)} and folded
    assert eng.limiter.series_overflowed["request"] > 0
    per_pool = Counter()
    for r in out:
        if r.family == "request" and r.resolution == 10 and r.labels[1:] == (ALL,) * 7 \
                and r.labels[0] != ALL:
            per_pool[r.labels[0]] += r.agg.counters["requests"]
    assert per_pool == Counter(e.pool for e in events), "per-pool totals are exact"


def test_the_global_series_limit_applies_across_families():
    eng = Engine(limits=Limits(max_series_per_family=10_000, max_series=150))
    eng.process(_attack(10, 30))
    assert eng.limiter.total == 150
    assert sum(eng.limiter.series_overflowed.values()) > 0


def test_series_that_went_quiet_free_their_place_when_an_hour_closes():
    limits = Limits(max_series_per_family=100, max_series=10_000)
    eng = Engine(limits=limits, lateness=0)
    eng.process(_attack(5, 20))  # 100 request series: the family is full
    assert len(eng.limiter.known["request"]) == 100
    later = _attack(5, 20, start=T0 + 3 * 3600)  # hours later, new commands
    for e in later:
        e.command = e.command.replace("cmd", "new")
    # Closes the first hour; its series were active in it, so they are kept (and this new
    # one, admitted before the close, is folded: the family was still full).
    eng.process(later[:1])
    assert len(eng.limiter.known["request"]) == 100
    eng.process(_attack(1, 1, start=T0 + 4.5 * 3600))  # one old series, seen again
    assert {labels[3] for labels in eng.limiter.known["request"]} == {"cmd-0"}, \
        "an hour closed without the others: they are forgotten"
    eng.process(later[1:])
    known = eng.limiter.known["request"]
    assert len(known) == 100 and sum(labels[3].startswith("new") for labels in known) == 99


def test_a_restored_engine_makes_the_same_limit_decisions():
    limits = Limits(max_series_per_family=120, max_series=10_000)
    events = _attack(20, 15)
    straight = Engine(limits=limits)
    out_a = straight.process(events[:150]) + straight.process(events[150:]) + straight.flush()
    first = Engine(limits=limits)
    out_b = first.process(events[:150])
    resumed = Engine.restore(first.snapshot(), limits)
    out_b += resumed.process(events[150:]) + resumed.flush()
    assert per_series(out_a) == per_series(out_b)
    assert resumed.limiter.known == straight.limiter.known


def test_late_deltas_are_coalesced_per_offset_group_and_a_replay_rebuilds_them():
    """Shuffled input: one delta row per series and bucket per 1,000 offsets, not per message;
    the held group survives a checkpoint, and what is stored equals the in-order answer."""
    events = requests(20_000, 600)
    shuffled = list(events)
    random.Random(5).shuffle(shuffled)
    messages = [shuffled[i:i + 10] for i in range(0, len(shuffled), 10)]  # 2,000 offsets

    def stored(resume_at: int | None) -> dict:
        eng, rows = Engine(), {}
        for offset, msg in enumerate(messages):
            if offset == resume_at:
                eng = Engine.restore(eng.snapshot())
            out = eng.process(msg, tag=str(offset))
            if offset % 50 == 49 or offset == len(messages) - 1:  # a commit
                out += eng.held_late()
            for r in out:
                rows[(r.family, r.labels, r.resolution, r.bucket, r.tag)] = r.agg  # keyed
        for r in eng.flush():
            rows[(r.family, r.labels, r.resolution, r.bucket, r.tag)] = r.agg
        return rows

    rows = stored(None)
    tags = {k[4] for k in rows if k[4] is not None}
    assert tags == {"g0", "g1000"}, "one delta key per offset group"
    again = stored(1_234)
    assert {k: a.to_bytes() for k, a in again.items()} == {k: a.to_bytes() for k, a in rows.items()}
    per_series: dict[tuple, float] = {}
    for (fam, labels, res, bucket, _), agg in rows.items():
        if fam == "request" and res == 60:
            key = (labels, bucket)
            per_series[key] = per_series.get(key, 0) + agg.counters.get("requests", 0)
    exact = {(r.labels, r.bucket): r.agg.counters["requests"] for r in run(events)
             if r.family == "request" and r.resolution == 60}
    assert per_series == exact
    eng = Engine()
    for offset, msg in enumerate(messages[:300]):
        eng.process(msg, tag=str(offset))
    assert eng.held_late() and eng.held_late() == [], "only what changed is written again"


def test_paced_commits_rewrite_late_rows_at_most_every_late_every_s_and_a_restore_rewrites():
    from streams.engine import LATE_EVERY_S

    events = requests(4_000, 600)
    shuffled = list(events)
    random.Random(6).shuffle(shuffled)
    eng = Engine()
    for offset in range(200):
        eng.process(shuffled[offset * 10:offset * 10 + 10], tag=str(offset))
    first = eng.held_late(now=100.0)
    assert first, "the first paced commit writes the group"
    for offset in range(200, 300):
        eng.process(shuffled[offset * 10:offset * 10 + 10], tag=str(offset))
    assert eng.held_late(now=100.0 + LATE_EVERY_S / 2) == [], "too soon: the changes wait"
    later = eng.held_late(now=100.0 + LATE_EVERY_S)
    assert later
    eng.rewrite_held_late()  # that write failed; then the process dies after a checkpoint
    resumed = Engine.restore(eng.snapshot())
    again = resumed.held_late()
    assert {(r.labels, r.resolution, r.bucket) for r in again} == \
        {(r.labels, r.resolution, r.bucket) for r in first + later}, "all of the group again"
