"""`snakepit-perf collect` against a real `run`: the host's per-core CPU, and Snakepit's Python
workers found by the command line Snakepit starts them with (worker/configuration.ex:
`grpc_server.py --adapter ... --port ... --elixir-address ... --snakepit-run-id ...`, with
SNAKEPIT_READY_FILE in the environment)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from harness import kafka as kh
from snakepit_perf.collect import is_snakepit_worker

HOLDS_MEMORY = "import time; blob = bytearray(60 * 1024 * 1024); time.sleep(120)"


def test_snakepit_command_lines_are_recognised():
    assert is_snakepit_worker(["python3", "/app/deps/snakepit/priv/python/grpc_server.py",
                               "--adapter", "snakepit_bridge.adapters.showcase.ShowcaseAdapter",
                               "--port", "50053", "--elixir-address", "localhost:50051",
                               "--snakepit-run-id", "a1b2c3"])
    assert is_snakepit_worker(["/venv/bin/python", "grpc_server_threaded.py",
                               "--adapter=my.Adapter", "--max-workers", "8"])
    assert not is_snakepit_worker(["python3", "grpc_server.py"])  # not started by Snakepit
    assert not is_snakepit_worker(["python3", "train.py", "--adapter", "x"])
    assert not is_snakepit_worker([])


def query(base: str, metric: str, group_by: str, where: str) -> dict[str, float]:
    now = int(time.time())
    r = httpx.get(f"{base}/v1/query", params={"metric": metric, "stat": "last", "from": now - 300,
                                              "to": now + 60, "group_by": group_by,
                                              "where": [where]})
    assert r.status_code == 200, r.text
    return {s["labels"][group_by]: s["points"][-1][1] for s in r.json()["series"] if s["points"]}


def test_collect_sends_the_host_and_snakepits_workers(run_server: str, tmp_path: Path):
    script = tmp_path / "grpc_server.py"  # the name Snakepit runs; the body only holds memory
    script.write_text(HOLDS_MEMORY)
    env = {**os.environ, "SNAKEPIT_READY_FILE": f"{tmp_path}/snakepit_ready_ml_worker_2_55_9001"}
    worker = subprocess.Popen([sys.executable, str(script), "--adapter", "my.Adapter",
                               "--port", "0", "--snakepit-run-id", "r1"], env=env)
    other = subprocess.Popen([sys.executable, "-c", HOLDS_MEMORY, "--adapter", "x"])
    try:
        time.sleep(1.0)  # let the worker touch its memory
        out = subprocess.run([kh.EXE, "collect", "--url", run_server, "--interval", "1",
                              "--count", "3"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        rss = psutil.Process(worker.pid).memory_info().rss
        status = Path(f"/proc/{worker.pid}/status").read_text()
        vm_rss = int(next(line for line in status.splitlines()
                          if line.startswith("VmRSS")).split()[1]) * 1024

        def workers() -> dict[str, float]:
            return query(run_server, "memory_bytes", "worker_id", "scope:worker")

        kh.wait_for(lambda: "ml_worker_2_55" in workers(), 60, "the worker's sample stored")
        got = workers()
        assert got["ml_worker_2_55"] == pytest.approx(vm_rss, rel=0.10)
        assert rss > 60 * 1024 * 1024
        assert f"pid-{other.pid}" not in got and len(got) == 1  # not a Snakepit command line
        pools = query(run_server, "memory_bytes", "pool", "scope:worker")
        assert list(pools) == ["ml"]
        cores = query(run_server, "cpu_core_percent", "core", "scope:host")
        assert sorted(cores, key=int) == [str(i) for i in range(psutil.cpu_count())]
        assert all(0 <= v <= 100 for v in cores.values())
        fds = query(run_server, "open_fds", "scope", "scope:host")
        assert fds["host"] == pytest.approx(int(Path("/proc/sys/fs/file-nr").read_text().split()[0]),
                                            rel=0.5)
    finally:
        worker.kill()
        other.kill()
