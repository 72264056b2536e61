"""Our commands as real processes: free ports, waiting for them to serve, an embedded ``run``."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

EXE = str(Path(sys.executable).with_name("snakepit-perf"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def up(port: int) -> bool:
    """Whether a service answers ``/health`` with 200 on ``port``."""
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.5,
             procs: tuple[tuple[subprocess.Popen, Path], ...] = ()) -> None:
    """Poll ``predicate``; fail early, with its log, if a process it depends on died."""
    deadline = time.monotonic() + timeout
    while not predicate():
        for proc, log in procs:
            assert proc.poll() is None, f"worker exited with {proc.returncode} while waiting " \
                                        f"for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(interval)


def start_run(data_dir: Path, port: int, log: Path, *extra: str) -> subprocess.Popen:
    """An embedded ``run`` on ``port`` keeping its data in ``data_dir``, once it serves."""
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(data_dir)}
    run = subprocess.Popen([EXE, "run", "--port", str(port), *extra], env=env,
                           stdout=open(log, "ab"), stderr=subprocess.STDOUT)  # noqa: SIM115
    wait_for(lambda: up(port), 60, "run to serve", procs=((run, log),))
    return run


@contextlib.contextmanager
def recording(tmp: Path) -> Iterator[str]:
    """A real embedded `run` recording into ``tmp``, at the URL it yields."""
    port = free_port()
    run = start_run(tmp / "data", port, tmp / "run.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        run.terminate()
        run.wait(60)
