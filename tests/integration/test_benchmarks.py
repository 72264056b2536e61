"""Benchmark runs against the real `run`: runs recorded after the fact and around a load
command, run vs baseline with root cause, baselines by branch and pin, history change points.

Every run is simulated Snakepit traffic at yesterday's 16:00 UTC or just around it, where the
simulator's daily load curve is flat, so the only difference between runs is the one put in."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import pytest

from harness import kafka as kh
from harness.procs import free_port, start_run
from simulator.model import Incident, Simulation

PEAK = (int(time.time()) // 86400 - 1) * 86400 + 16 * 3600
SECONDS = 300


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("benchmarks")
    port = free_port()
    run = start_run(tmp / "data", port, tmp / "run.log")
    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=120) as client:
        client.run, client.log = run, tmp / "run.log"
        yield client
    run.terminate()
    run.wait(60)


def feed(client: httpx.Client, start: float, seconds: float, seed: int, slow: bool = False,
         rate: float = 60.0) -> Callable[[], bool]:
    """Simulated traffic for [start, start + seconds), sent; returns the check that it is
    stored (callers send all their runs, then wait once: one flush, not one per run)."""
    incidents = [Incident("latency_regression", "default", start, start + seconds)] if slow \
        else []
    events = list(Simulation(rate, start, seconds, seed=seed, incidents=incidents).events())
    requests = sum(1 for e in events if type(e).__name__ == "Request")
    for i in range(0, len(events), 5000):
        r = client.post("/v1/events", content=msgspec.json.encode(events[i:i + 5000]),
                        headers={"Content-Type": "application/json"})
        assert r.status_code == 202, r.text

    def stored() -> bool:
        q = client.get("/v1/query", params={"metric": "requests_total", "stat": "count",
                                            "from": start, "to": start + seconds}).json()
        return sum(p[1] for s in q["series"] for p in s["points"]) == requests

    return stored


def record(client: httpx.Client, start: float, branch: str, scenario: str = "checkout",
           seconds: float = SECONDS, **extra) -> dict:
    r = client.post("/v1/benchmarks", json={
        "scenario": scenario, "labels": {"branch": branch}, "from": start,
        "to": start + seconds, "methodology": {"warmup_s": 30}, **extra})
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def runs(api):
    plan = (("base", PEAK - 700, 1, False, "main"), ("same", PEAK - 350, 2, False, "main"),
            ("slow", PEAK, 3, True, "feature"))
    checks = [feed(api, start, SECONDS, seed, slow) for _, start, seed, slow, _ in plan]
    kh.wait_for(lambda: all(check() for check in checks), 120, "the runs' requests stored",
                procs=((api.run, api.log),))
    return {name: record(api, start, branch) for name, start, _, _, branch in plan}


def test_results_are_the_stored_rollups_of_the_runs_windows(api, runs):
    run = runs["base"]
    assert run["status"] == "finished"
    res = run["results"]
    lo, hi = res["windows"][0]
    assert lo >= PEAK - 700 + 30 and hi <= PEAK - 700 + SECONDS  # warm-up dropped, whole windows
    q = {"metric": "requests_total", "stat": "count", "from": lo, "to": hi}
    count = api.get("/v1/query", params=q).json()["series"][0]["points"][0][1]
    assert res["overall"]["requests"] == count
    assert res["overall"]["throughput"] == pytest.approx(count / (hi - lo))
    p99 = api.get("/v1/query", params={**q, "metric": "request_duration_seconds",
                                       "stat": "p99"}).json()["series"][0]["points"][0][1]
    assert res["overall"]["p99"] == pytest.approx(p99, rel=0.01)
    assert set(res["by"]["pool"]) == {"default", "gpu", "batch"}
    assert res["fingerprint"]["python_env"] == "system,uv:.venv,venv:/opt/ml"
    assert int(res["fingerprint"]["pool_size:default"]) >= 2
    detail = api.get(f"/v1/benchmarks/{run['id']}").json()["results"]
    assert detail.pop("client") is None  # the detail adds the load generator's view: none here
    assert detail == res


def test_same_configuration_is_no_change_and_a_slow_pool_is_a_regression_with_its_cause(api, runs):
    same = api.get(f"/v1/benchmarks/{runs['same']['id']}/compare",
                   params={"baseline": runs["base"]["id"]}).json()
    assert same["verdict"] == "no_change", [d for d in same["differences"]
                                            if d["verdict"] != "no_change"][:5]
    p99 = next(d for d in same["differences"]
               if d["slice"] == "overall" and d["metric"] == "p99")
    assert p99["ci"][0] < 0 < p99["ci"][1] and p99["mde"] > 0

    slow = api.get(f"/v1/benchmarks/{runs['slow']['id']}/compare",
                   params={"baseline": runs["base"]["id"]}).json()
    assert slow["verdict"] == "regression"
    assert any(d["slice"] == "pool=default" and d["metric"] == "p99" for d in slow["regressions"])
    gpu = {d["metric"]: d["verdict"] for d in slow["differences"] if d["slice"] == "pool=gpu"}
    assert gpu["p50"] != "regression" and gpu["p99"] != "regression"  # the healthy pool
    cause = slow["root_cause"]
    assert cause["culprit"][0] == {"dimension": "pool", "value": "default",
                                   "share": cause["culprit"][0]["share"]}
    assert cause["time"]["duration_change_us"] > 0 and cause["time"]["grew_most"] is not None
    md = api.get(f"/v1/benchmarks/{runs['slow']['id']}/compare",
                 params={"baseline": runs["base"]["id"], "format": "markdown"})
    assert md.headers["content-type"].startswith("text/markdown")
    assert "**regression**" in md.text and "## Root cause: pool=default" in md.text


def test_auto_baseline_is_the_branch_then_the_pinned_run(api, runs):
    auto = api.get(f"/v1/benchmarks/{runs['slow']['id']}/compare").json()
    assert auto["baseline"] == [runs["base"]["id"], runs["same"]["id"]]  # main, before it
    pinned = api.post(f"/v1/benchmarks/{runs['same']['id']}/pin")
    assert pinned.status_code == 200 and pinned.json()["pinned"]
    auto = api.get(f"/v1/benchmarks/{runs['slow']['id']}/compare").json()
    assert auto["baseline"] == [runs["same"]["id"]]
    listed = api.get("/v1/benchmarks", params={"scenario": "checkout",
                                               "label": "branch:main"}).json()
    assert [r["id"] for r in listed] == [runs["same"]["id"], runs["base"]["id"]]


def test_a_run_recorded_from_an_annotation_pair_is_the_range_they_mark(api, runs):
    for t in (PEAK - 700, PEAK - 700 + SECONDS):
        r = api.post("/v1/annotations", json={"type": "annotation", "time": t,
                                               "kind": "load_test", "title": "nightly load"})
        assert r.status_code == 201, r.text
    run = api.post("/v1/benchmarks", json={"scenario": "checkout", "annotation": "nightly load",
                                           "methodology": {"warmup_s": 30}})
    assert run.status_code == 201, run.text
    assert run.json()["trials"] == [[PEAK - 700, PEAK - 700 + SECONDS]]
    assert run.json()["results"]["overall"] == runs["base"]["results"]["overall"]
    missing = api.post("/v1/benchmarks", json={"scenario": "checkout", "annotation": "nope"})
    assert missing.status_code == 404 and missing.json()["param"] == "annotation"


def test_runs_of_other_scenarios_are_not_compared_and_bad_runs_are_refused(api, runs):
    other = record(api, PEAK - 700, "main", scenario="search")
    r = api.get(f"/v1/benchmarks/{other['id']}/compare", params={"baseline": runs["base"]["id"]})
    assert r.status_code == 409 and "scenario" in r.json()["detail"]
    for body, param in (({"scenario": "x", "from": PEAK}, "to"),
                        ({"scenario": "x", "from": PEAK, "to": PEAK - 1}, "to"),
                        ({"scenario": "x", "where": ["nope:1"]}, "where"),
                        ({"scenario": "x", "trials": [[PEAK, PEAK + 2 * 86400]]}, "to")):
        r = api.post("/v1/benchmarks", json=body)
        assert r.status_code == 400 and r.json()["param"] == param, r.text
    assert api.post("/v1/benchmarks", json={"scenario": "bad name!"}).status_code == 422
    assert api.get("/v1/benchmarks/nope").status_code == 404


def test_history_change_point_is_found_with_its_cause(api):
    # 12 runs: with the permutation test at alpha 0.01, 8 could never be significant
    # (1 of the 70 ways to split 8 runs in halves is p = 0.014).
    starts = [PEAK + 400 + i * 130 for i in range(12)]
    checks = [feed(api, start, 120, 100 + i, slow=i >= 6)
              for i, start in enumerate(starts)]
    kh.wait_for(lambda: all(check() for check in checks), 120, "the 12 runs' requests stored",
                procs=((api.run, api.log),))
    for start in starts:
        record(api, start, "main", scenario="history", seconds=120)
    found = api.get("/v1/regressions", params={"scenario": "history"}).json()
    assert len(found) == 1, found
    cp = found[0]
    assert cp["index"] == 6 and cp["kind"] == "regression" and cp["change"] > 0.2
    assert cp["root_cause"]["culprit"][0]["value"] == "default"


def test_bench_run_wraps_a_load_command_and_fails_on_a_regression(api, runs, tmp_path: Path):
    base = str(api.base_url).rstrip("/")
    # 65 s hold 5 whole 10 s windows or more: 3 at least (the fewest a comparison judges) stay after
    # steady-state detection drops the head of a queue that builds up (MSER drops at most half)
    out = subprocess.run(
        [kh.EXE, "bench", "run", "--scenario", "checkout", "--url", base, "--label",
         "branch=feature", "--baseline", runs["base"]["id"], "--fail-on-regression", "--",
         kh.EXE, "simulate", "--url", base, "--rate", "60", "--duration", "65",
         "--incident", "latency_regression:default:0:65"],
        capture_output=True, text=True, timeout=240)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "**regression**" in out.stdout and "pool=default" in out.stdout
    latest = api.get("/v1/benchmarks", params={"scenario": "checkout", "limit": 1}).json()[0]
    assert latest["status"] == "finished" and latest["labels"] == {"branch": "feature"}
    assert latest["fingerprint"]["cores"].isdigit()
    assert latest["results"]["overall"]["requests"] > 1000


def gate(api: httpx.Client, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([kh.EXE, "gate", "--url", str(api.base_url).rstrip("/"), *args],
                          capture_output=True, text=True, timeout=120)


def test_gate_passes_the_baseline_fails_a_regression_and_says_when_it_cannot_judge(
        api, runs, tmp_path: Path):
    from junitparser import JUnitXml

    start = PEAK - 700
    ok = gate(api, "--from", str(start), "--to", str(start + SECONDS), "--rule", "p99<10s",
              "--rule", "error_rate<0.05", "--rule", "p(95){pool=gpu}<5000")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "**passed**" in ok.stdout

    junit, md = tmp_path / "gate.xml", tmp_path / "gate.md"
    bad = gate(api, "--run", runs["slow"]["id"], "--baseline", runs["base"]["id"],
               "--rule", "regression(p99)<5%", "--rule", "error_rate<0.5",
               "--junit", str(junit), "--markdown", str(md), "--json", str(tmp_path / "g.json"))
    assert bad.returncode == 1, bad.stdout + bad.stderr
    suite = next(iter(JUnitXml.fromfile(str(junit))))
    assert (suite.tests, suite.failures) == (2, 1)
    failed = [c for c in suite if not c.is_passed]
    assert failed[0].name == "regression(p99)<5%" and "baseline:" in failed[0].result[0].text
    text = md.read_text()
    assert "`regression(p99)<5%` | **fail**" in text and " … " in text
    assert orjson_loads(tmp_path / "g.json")["passed"] is False

    for args, reason in (
            (["--from", "1000000000", "--to", "1000000600", "--rule", "p99<1s"], "no requests"),
            (["--run", runs["base"]["id"], "--rule", "regression(p99)<5%", "--baseline",
              "nope"], "no comparison"),
            (["--from", str(start), "--to", str(start + 60), "--rule", "p99 < fast"], "rule")):
        out = gate(api, *args)
        assert out.returncode == 2 and reason in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def orjson_loads(path: Path):
    import orjson

    return orjson.loads(path.read_bytes())
