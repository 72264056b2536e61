"""A real Prometheus server (Debian's package) scrapes `/metrics` of a running service, and its
own query API returns the values we exposed."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from harness import kafka as kh
from harness.metrics import samples
from harness.procs import free_port, up
from schemas.events import Request

PROMETHEUS = shutil.which("prometheus")


@pytest.fixture
def service(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path / "data")}
    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 (the child writes to it until the end)
    run = subprocess.Popen([kh.EXE, "run", "--port", str(port)], env=env, stdout=log,
                           stderr=subprocess.STDOUT)
    kh.wait_for(lambda: up(port), 30, "run to serve", procs=((run, tmp_path / "run.log"),))
    yield port
    run.terminate()
    run.wait(30)
    log.close()


def test_prometheus_scrapes_what_we_expose(service: int, tmp_path: Path):
    assert PROMETHEUS, "the test bootstrap installs Debian's prometheus package"
    now = time.time()
    burst = [Request(time=now, pool="scraped", command="c", duration_us=1000 * (i % 100 + 1),
                     status="error" if i % 10 == 0 else "ok") for i in range(500)]
    r = httpx.post(f"http://127.0.0.1:{service}/v1/events", content=msgspec.json.encode(burst),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 202
    exposed = samples(httpx.get(f"http://127.0.0.1:{service}/metrics").text)
    assert exposed['snakepit_requests_total{pool="scraped"}'] == 500
    assert exposed['snakepit_request_duration_seconds{pool="scraped",quantile="0.99"}'] > 0

    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: snakepit-perf\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{service}']}}]\n")
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
    prom = subprocess.Popen([PROMETHEUS, f"--config.file={config}",
                             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{prom_port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{prom_port}/api/v1/query"

    def value(expr: str) -> float | None:
        try:
            data = httpx.get(api, params={"query": expr}, timeout=2).json()["data"]["result"]
        except (httpx.TransportError, KeyError, ValueError):
            return None
        return float(data[0]["value"][1]) if data else None

    try:
        kh.wait_for(lambda: value('snakepit_requests_total{pool="scraped"}') == 500, 60,
                    "Prometheus to scrape the counter",
                    procs=((prom, tmp_path / "prometheus.log"),))
        assert value('snakepit_request_errors_total{pool="scraped"}') == 50
        assert value('snakepit_request_duration_seconds_count{pool="scraped"}') == 500
        p99 = value('snakepit_request_duration_seconds{pool="scraped",quantile="0.99"}')
        assert p99 == pytest.approx(0.0995, rel=0.02)
        assert value("snakepit_perf_events_accepted_total") == 500
    finally:
        prom.terminate()
        prom.wait(30)
        log.close()
