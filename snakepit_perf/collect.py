"""``snakepit-perf collect``: the host's and Snakepit's Python workers' figures, from psutil,
for hosts where neither the Elixir forwarder nor the worker SDK can be installed.

Every ``interval`` seconds it sends ``resource`` events: one for the host (per-core and total
CPU, memory in use, disk and network bytes so far, open files from ``/proc/sys/fs/file-nr``)
and one per Snakepit Python worker process. Workers are found by their command line, as
Snakepit starts them (``grpc_server.py`` or ``grpc_server_threaded.py`` with ``--adapter`` /
``--snakepit-run-id``, ``worker/configuration.ex``); the worker id comes from the
``SNAKEPIT_READY_FILE`` in its environment when this user may read it, else ``pid-<pid>``.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil

from sdk.worker import HttpTransport, snakepit_identity

_SERVERS = ("grpc_server.py", "grpc_server_threaded.py")
_MARKERS = ("--adapter", "--snakepit-run-id")


def is_snakepit_worker(cmdline: list[str]) -> bool:
    """Whether a command line is one Snakepit starts for a Python worker."""
    return (any(part.endswith(_SERVERS) for part in cmdline)
            and any(part.split("=", 1)[0] in _MARKERS for part in cmdline))


class Collector:
    """Samples the host and Snakepit's workers; keeps psutil's process handles between samples
    (a process's CPU percent is measured from its previous sample)."""

    def __init__(self, host: str | None = None) -> None:
        self.host = (host or platform.node() or "localhost")[:256]
        self._procs: dict[int, psutil.Process] = {}
        psutil.cpu_percent(percpu=True)  # the first reading of each counter is meaningless

    def sample(self) -> list[dict[str, Any]]:
        now = time.time()
        cores = psutil.cpu_percent(percpu=True)
        host: dict[str, Any] = {
            "type": "resource", "scope": "host", "time": now, "host": self.host,
            "cpu_percent": round(sum(cores) / len(cores), 2), "cpu_per_core": cores,
            "memory_bytes": psutil.virtual_memory().used}
        disk = psutil.disk_io_counters()
        if disk is not None:
            host["disk_read_bytes"], host["disk_write_bytes"] = disk.read_bytes, disk.write_bytes
        net = psutil.net_io_counters()
        if net is not None:
            host["net_rx_bytes"], host["net_tx_bytes"] = net.bytes_recv, net.bytes_sent
        try:
            with open("/proc/sys/fs/file-nr") as f:
                host["open_fds"] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
        return [host, *self._workers(now)]

    def _workers(self, now: float) -> list[dict[str, Any]]:
        out = []
        seen = set()
        for p in psutil.process_iter(["pid", "cmdline"]):
            if not is_snakepit_worker(p.info["cmdline"] or []):
                continue
            proc = self._procs.setdefault(p.pid, p)
            seen.add(p.pid)
            try:
                out.append(self._worker(proc, now))
            except psutil.Error:  # gone, or not ours to read
                continue
        for pid in set(self._procs) - seen:
            del self._procs[pid]
        return out

    def _worker(self, p: psutil.Process, now: float) -> dict[str, Any]:
        try:
            pool, worker_id = snakepit_identity(p.environ())
        except psutil.Error:
            pool, worker_id = None, None
        with p.oneshot():
            e: dict[str, Any] = {
                "type": "resource", "scope": "worker", "time": now, "host": self.host,
                "worker_id": worker_id or f"pid-{p.pid}", "cpu_percent": p.cpu_percent(),
                "memory_bytes": p.memory_info().rss, "open_fds": p.num_fds()}
            try:
                io = p.io_counters()
                e["disk_read_bytes"], e["disk_write_bytes"] = io.read_bytes, io.write_bytes
            except (psutil.Error, AttributeError):
                pass
        if pool is not None:
            e["pool"] = pool
        return e


def run(url: str, key: str | None, interval: float, count: int | None,
        send: Callable[[list[dict[str, Any]]], None] | None = None) -> int:
    """Sample every ``interval`` seconds (``count`` times, or until interrupted) and send; a
    failed send is reported and the sample kept for the next attempt (at most 100 samples)."""
    send = send or HttpTransport(url, key)
    collector = Collector()
    waiting: list[dict[str, Any]] = []
    n = 0
    next_at = time.monotonic() + interval
    try:
        while count is None or n < count:
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            waiting = (waiting + collector.sample())[-100 * 64:]
            n += 1
            try:
                send(waiting)
                waiting = []
            except Exception as exc:  # noqa: BLE001 (report, keep, try again next interval)
                print(f"snakepit-perf collect: sending to {url} failed ({exc}); "
                      f"{len(waiting)} events kept for the next try", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    return 0 if not waiting else 1
