"""No body is read before its key is checked, and every route caps its body while reading:
200 MB without a key to every route that takes a body is a 401, 200 MB with a key to a
non-ingest route a 413, and the real `run` grows by less than 50 MB doing it."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx
import psutil

from api.auth import hash_key
from harness import kafka as kh
from harness.procs import free_port, up

KEY = "spk_test_guard_key_0123456789"
CHUNK = b"x" * (1024 * 1024)


def chunks(total_mb: int = 200):
    for _ in range(total_mb):
        yield CHUNK


def test_bodies_are_refused_before_they_are_buffered(tmp_path: Path):
    port = free_port()
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(tmp_path),
           "SNAKEPIT_PERF_API_KEYS": f"ci:admin:{hash_key(KEY)}"}
    log = tmp_path / "run.log"
    run = subprocess.Popen([kh.EXE, "run", "--port", str(port)], env=env,
                           stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    base = f"http://127.0.0.1:{port}"
    try:
        kh.wait_for(lambda: up(port), 60, "run to serve", procs=((run, log),))
        auth = {"Authorization": f"Bearer {KEY}"}
        spec = httpx.get(f"{base}/openapi.json", headers=auth).json()
        routes = [(method.upper(), path.replace("{fingerprint}", "f").replace("{id}", "x")
                   .replace("{dashboard_id}", "x"))
                  for path, ops in spec["paths"].items() for method in ops
                  if method in ("post", "put", "patch")]
        assert len(routes) >= 6, routes
        proc = psutil.Process(run.pid)
        before = proc.memory_info().rss
        with httpx.Client(timeout=60) as client:
            for method, path in routes:
                t = time.monotonic()
                r = client.request(method, f"{base}{path}", content=chunks(),
                                   headers={"Content-Type": "application/json"})
                assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
                assert r.headers["content-type"].startswith("application/problem+json")
                assert time.monotonic() - t < 10
            r = client.put(f"{base}/v1/alerts/rules", content=chunks(),
                           headers={**auth, "Content-Type": "application/json"})
            assert r.status_code == 413, r.text[:200]
            r = client.post(f"{base}/v1/events", content=chunks(),
                            headers={**auth, "Content-Type": "application/json"})
            assert r.status_code == 413, r.text[:200]
        grown = (proc.memory_info().rss - before) / 1e6
        assert grown < 50, f"RSS grew {grown:.0f} MB"
        assert KEY not in log.read_text()
    finally:
        run.terminate()
        run.wait(30)
