"""The label attack against the real `run`: 300 pools x 300 commands, every label within its
per-dimension limit, 90,000 series asked for, with the series limit lowered to 2,000 so the test
stays short. The service stays healthy and bounded: the limit holds, the overflow is counted on
/metrics and warned in /health, checkpoints stay on time, and per-pool totals stay exact."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import msgspec
import psutil

from bench.label_attack import events, metric
from harness import kafka as kh
from harness.procs import free_port, start_run

PER_FAMILY = 2_000


def test_the_label_attack_is_bounded_counted_and_keeps_totals_exact(tmp_path: Path,
                                                                     monkeypatch):
    monkeypatch.setenv("SNAKEPIT_PERF_LIMITS_MAX_SERIES_PER_FAMILY", str(PER_FAMILY))
    port = free_port()
    run = start_run(tmp_path / "data", port, tmp_path / "run.log")
    base = f"http://127.0.0.1:{port}"
    try:
        proc = psutil.Process(run.pid)
        idle = proc.memory_info().rss
        start = (time.time() - 2 * 3600) // 3600 * 3600  # a closed hour: stored once idle
        stream = events(90_000, 300, 300, start, 600)
        peak = idle
        with httpx.Client(timeout=60) as client:
            for i in range(0, len(stream), 5000):
                body = msgspec.json.encode(stream[i:i + 5000])
                while (r := client.post(f"{base}/v1/events", content=body, headers={
                        "Content-Type": "application/json"})).status_code == 429:
                    time.sleep(float(r.headers["Retry-After"]))
                assert r.status_code == 202, r.text
                peak = max(peak, proc.memory_info().rss)
        expected: dict[str, float] = {}
        for e in stream:
            expected[e.pool] = expected.get(e.pool, 0) + 1

        def per_pool() -> dict[str, float]:
            q = httpx.get(f"{base}/v1/query", params={
                "metric": "requests_total", "stat": "count", "from": int(start),
                "to": int(start) + 3600, "step": "1h", "group_by": "pool"}, timeout=60).json()
            return {s["labels"]["pool"]: sum(p[1] for p in s["points"]) for s in q["series"]}

        kh.wait_for(lambda: per_pool() == expected, 120, "exact per-pool totals",
                    procs=((run, tmp_path / "run.log"),))
        text = httpx.get(f"{base}/metrics", timeout=30).text
        active = metric(text, "snakepit_perf_series_active")
        assert active['{family="request"}'] == PER_FAMILY
        overflow = metric(text, "snakepit_perf_series_overflow_total")
        assert overflow['{family="request"}'] == 90_000 - PER_FAMILY
        assert metric(text, "snakepit_perf_checkpoint_age_seconds")[""] < 30  # was minutes
        health = httpx.get(f"{base}/health", timeout=30)
        assert health.status_code == 200
        assert any(w.startswith("request: 88000 new series folded into __other__")
                   for w in health.json()["warnings"]), health.json()
        growth_mb = (peak - idle) / 2**20
        assert growth_mb < 400, f"RSS grew {growth_mb:.0f} MB under the attack"
    finally:
        run.terminate()
        run.wait(60)
