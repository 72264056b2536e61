"""How well benchmark comparison works (R9), on simulated Snakepit runs stored like real ones.

Each run is a simulated deployment (two pools, two commands each, ~300 requests/s) aggregated
by the real engine into a real SQLite store, read back and compared by the code the API uses.
Reports, each with the figure the issue asks for:

- A/A: 30 pairs of runs of the same configuration, different seeds: false-regression rate.
- Power: 30 pairs with the P99 of one command of one pool 10 % slower: flagged, and the root
  cause naming that pool and command; a pool too small attributed to queue wait, a slower
  Python library to Python time.
- History: 60 runs with two level shifts, and the 60 A/A runs as a flat history: change points.
- A/B: the sequential test, looked at after every window, with a true 10 % difference and none.

    .venv/bin/python -m bench.benchmark_eval [--pairs 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import time

from api import benchmark_runs as br
from harness.data import T0
from models import benchmark_stats as st
from simulator.model import Command, PoolSpec, Simulation
from store.sqlite import SQLiteStore
from streams.engine import Engine

RATE = 300.0
SECONDS = 300
WARMUP = 30
METHOD = br.Methodology(warmup_s=WARMUP)


def pools(slow: dict[tuple[str, str], float] | None = None, sizes: dict[str, int] | None = None,
          library: dict[str, float] | None = None) -> list[PoolSpec]:
    """Two pools, each serving predict (torch) and embed (numpy) at ~65 % busy; ``slow``
    multiplies one (pool, command)'s service time, ``library`` every command of a library."""
    slow, sizes, library = slow or {}, sizes or {}, library or {}
    out = []
    for name in ("blue", "green"):
        commands = [Command("predict", 2, 40, 0.5, "torch"), Command("embed", 1, 12, 0.4, "numpy")]
        for c in commands:
            c.median_ms *= slow.get((name, c.name), 1.0) * library.get(c.library, 1.0)
        out.append(PoolSpec(name, pool_size=sizes.get(name, 8), share=0.5, commands=commands,
                            python_env="uv:.venv"))
    return out


def simulate(store: SQLiteStore, day: int, seed: int, specs: list[PoolSpec],
             seconds: int = SECONDS, rate: float = RATE) -> tuple[float, float]:
    """One run, on its own day at the same time of day (the same load shape), into ``store``."""
    start = T0 + day * 86400
    eng = Engine()
    batch: list = []
    for event in Simulation(rate, start, seconds, seed=seed, pools=specs).events():
        batch.append(event)
        if len(batch) >= 5000:
            store.write(eng.process(batch))
            batch = []
    store.write(eng.process(batch) + eng.flush())
    return start, start + seconds


class Runs:
    """Simulated runs in one store, each loaded as the API loads it."""

    def __init__(self) -> None:
        self.store = SQLiteStore(":memory:")
        self.day = 0

    def run(self, seed: int, specs: list[PoolSpec], **kw) -> br.RunData:
        t0, t1 = simulate(self.store, self.day, seed, specs, **kw)
        self.day += 1
        return br.load(self.store, [(t0, t1)], [], WARMUP, 10)


def culprit(report: dict) -> list[tuple[str, str]]:
    rc = report["root_cause"] or {}
    return [(c["dimension"], c["value"]) for c in rc.get("culprit", [])]


def aa(runs: Runs, pairs: int) -> list[float]:
    """A/A pairs; returns the runs' P99s (a flat history)."""
    print("## A/A: same configuration, different seeds")
    false, flat = 0, []
    for i in range(pairs):
        a, b = runs.run(1000 + 2 * i, pools()), runs.run(1001 + 2 * i, pools())
        flat += [br.points(r, range(len(r.cells)))["p99"] for r in (a, b)]
        report = br.compare(runs.store, b, a, METHOD, seed=i)
        if report["verdict"] == "regression":
            false += 1
            print("   false:", [(d["slice"], d["metric"], round(d["change"], 3))
                              for d in report["regressions"]])
    print(f"  false-regression rate {false}/{pairs} = {false / pairs:.1%} (aim <= 5 %)")
    mde = [d["mde"] for d in report["differences"]
           if d["slice"] == "overall" and d["metric"] == "p99"]
    print(f"  minimum detectable P99 change (overall, last pair): {mde[0]:.1%}")
    return flat


def power(runs: Runs, pairs: int) -> None:
    print("\n## Power: blue/predict 10 % slower")
    flagged = named = 0
    want = [("pool", "blue"), ("command", "predict")]
    for i in range(pairs):
        a = runs.run(5000 + 2 * i, pools())
        b = runs.run(5001 + 2 * i, pools(slow={("blue", "predict"): 1.10}))
        report = br.compare(runs.store, b, a, METHOD, seed=i)
        flagged += report["verdict"] == "regression"
        named += culprit(report)[:2] == want
        if culprit(report)[:2] != want:
            print("   named:", culprit(report), report["verdict"])
    print(f"  flagged {flagged}/{pairs} = {flagged / pairs:.1%} (aim >= 90 %)")
    print(f"  root cause pool=blue, command=predict {named}/{pairs} = {named / pairs:.1%} "
          f"(aim >= 90 %)")


def attribution(runs: Runs) -> None:
    print("\n## Attribution")
    for title, specs, want in (
            ("pool blue too small (8 -> 6 workers)", pools(sizes={"blue": 6}), "queue_wait"),
            ("library torch 30 % slower", pools(library={"torch": 1.3}), "python")):
        a, b = runs.run(9000, pools()), runs.run(9001, specs)
        report = br.compare(runs.store, b, a, METHOD)
        rc = report["root_cause"] or {}
        grew = (rc.get("time") or {}).get("grew_most")
        print(f"  {title}: verdict {report['verdict']}, grew most: {grew} (want {want}); "
              f"culprit {culprit(report)}")


def history(runs: Runs, flat: list[float]) -> None:
    print("\n## History: change points over 60 runs")
    shifted = []
    for i in range(60):
        scale = 1.0 if i < 20 else 1.10 if i < 40 else 1.21
        specs = pools(slow={(p, c): scale for p in ("blue", "green")
                            for c in ("predict", "embed")})
        r = runs.run(20000 + i, specs, seconds=150, rate=200.0)
        shifted.append(br.points(r, range(len(r.cells)))["p99"])
    print(f"  two level shifts at runs 20 and 40 (+10 % each): change points "
          f"{st.e_divisive(shifted)}")
    if flat:
        print(f"  flat history (the {len(flat)} A/A runs): change points {st.e_divisive(flat)}")


def ab(runs: Runs, pairs: int) -> None:
    print("\n## A/B: sequential test on paired minutes, looked at after every minute")
    for label, factor in (("true 10 % difference (B slower)", 1.10), ("no difference", 1.0)):
        right = wrong = 0
        first: list[int] = []
        for i in range(pairs):
            specs = pools()
            specs[1].commands = [dataclasses.replace(c, median_ms=c.median_ms * factor)
                                 for c in specs[1].commands]
            t0, t1 = simulate(runs.store, runs.day, 40000 + i, specs, seconds=1200, rate=200.0)
            runs.day += 1
            diffs = br.ab_differences(runs.store, ["pool:blue"], ["pool:green"], t0, t1, "p99")
            looks = [st.msprt(diffs[:n]) for n in range(1, len(diffs) + 1)]
            if factor == 1.0:
                wrong += any(s.significant for s in looks)
            else:
                right += looks[-1].significant and looks[-1].ratio > 1
                first += [n + 1 for n, s in enumerate(looks) if s.significant][:1]
                wrong += any(s.significant and s.ratio < 1 for s in looks)
        if factor == 1.0:
            print(f"  {label}: 'no difference' at every look in {pairs - wrong}/{pairs} = "
                  f"{1 - wrong / pairs:.1%} (aim >= 95 %)")
        else:
            print(f"  {label}: declared B slower within 20 minutes in {right}/{pairs} (median "
                  f"{sorted(first)[len(first) // 2] if first else '-'} minutes); wrong sign at "
                  f"any look: {wrong}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--only", choices=("aa", "power", "attribution", "history", "ab"))
    args = parser.parse_args()
    runs = Runs()
    t = time.perf_counter()
    flat = aa(runs, args.pairs) if args.only in (None, "aa") else []
    if args.only in (None, "power"):
        power(runs, args.pairs)
    if args.only in (None, "attribution"):
        attribution(runs)
    if args.only in (None, "history"):
        history(runs, flat)
    if args.only in (None, "ab"):
        ab(runs, args.pairs)
    print(f"\n({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
