"""``snakepit-perf simulate --serve PORT --url URL``: an app in front of simulated Snakepit pools,
for a real load test (Locust, k6) to load while snakepit-perf watches.

``GET`` or ``POST /call/<command>`` waits for a free worker of the command's pool (queueing
happens for real: each pool has ``pool_size`` workers), holds it for the command's service time
(lognormal, as the simulator's model draws it; ``--slow COMMAND:FACTOR`` scales it), answers, and
sends the request's telemetry — duration, queue wait, Python time, worker — as Snakepit would
emit it, to ``URL``. A request that waits longer than the pool's queue timeout answers 503 and
is reported as a timeout; the pool's error rate answers 500.
"""

from __future__ import annotations

import json
import math
import queue
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from schemas.events import Request
from sdk.http import HttpSender
from simulator.model import Command, PoolSpec, default_pools


class Pools:
    """The pools and their workers; thread-safe."""

    def __init__(self, specs: list[PoolSpec], slow: dict[str, float], node: str = "app@serve",
                 seed: int = 1) -> None:
        self.specs = {s.name: s for s in specs}
        self.commands: dict[str, tuple[PoolSpec, Command]] = {
            c.name: (s, c) for s in specs for c in s.commands}
        self.slow, self.node = slow, node
        self._free = {s.name: queue.LifoQueue() for s in specs}
        for s in specs:
            for i in range(s.pool_size * s.threads_per_worker):
                self._free[s.name].put(f"{s.name}-worker-{i // s.threads_per_worker + 1}")
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def call(self, command: str) -> tuple[int, Request]:
        """Serve one call (blocking for its queue wait and service time)."""
        spec, cmd = self.commands[command]
        arrived = time.time()
        try:
            worker = self._free[spec.name].get(timeout=spec.queue_timeout_s)
        except queue.Empty:
            now = time.time()
            return 503, self._event(spec, cmd, None, now, now - arrived, 0.0, "timeout")
        started = time.time()
        with self._lock:
            service = self._rng.lognormvariate(math.log(cmd.median_ms / 1000), cmd.sigma)
            failed = self._rng.random() < spec.error_rate
        service *= self.slow.get(command, 1.0)
        time.sleep(service)
        self._free[spec.name].put(worker)
        done = time.time()
        return (500 if failed else 200), self._event(
            spec, cmd, worker, done, started - arrived, done - started, "error" if failed else "ok")

    def _event(self, spec: PoolSpec, cmd: Command, worker: str | None, t: float, wait: float,
               service: float, status: str) -> Request:
        return Request(time=t, pool=spec.name, worker_id=worker,
                       worker_profile=spec.worker_profile, adapter=spec.adapter,
                       command=cmd.name, duration_us=int((wait + service) * 1e6), status=status,
                       queue_wait_us=int(wait * 1e6),
                       python_us=int(service * cmd.python_share * 1e6) if worker else None,
                       python_env=spec.python_env, library=cmd.library, node=self.node)


class Telemetry(threading.Thread):
    """Sends the served requests' events in batches, every half second (one sender: the SDK's
    sender is not thread-safe)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True, name="telemetry")
        self.sender = HttpSender(url)
        self.events: queue.Queue[Request] = queue.Queue()

    def run(self) -> None:
        while True:
            time.sleep(0.5)
            self.drain()

    def drain(self) -> None:
        while True:
            try:
                self.sender.send(self.events.get_nowait())
            except queue.Empty:
                break
        self.sender.flush()


def serve(port: int, url: str, slow: dict[str, float], pool_size: int | None = None,
          host: str = "127.0.0.1") -> None:
    """Serve until interrupted; the last events are sent on the way out."""
    specs = default_pools(50.0)
    if pool_size is not None:
        for s in specs:
            s.pool_size = pool_size
    unknown = set(slow) - {c.name for s in specs for c in s.commands}
    if unknown:
        raise ValueError(f"--slow: unknown command(s) {sorted(unknown)}")
    pools = Pools(specs, slow)
    telemetry = Telemetry(url)
    telemetry.start()

    class Handler(BaseHTTPRequestHandler):
        def _call(self) -> None:
            name = self.path.split("?")[0].removeprefix("/call/")
            if not self.path.startswith("/call/") or name not in pools.commands:
                self._answer(404, {"error": f"no command {name!r}; try /call/<command> with one of "
                                            f"{sorted(pools.commands)}"})
                return
            status, event = pools.call(name)
            telemetry.events.put(event)
            self._answer(status, {"command": name, "status": event.status,
                                  "duration_ms": event.duration_us / 1000})

        do_GET = do_POST = _call

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # a load test's every call: not for stderr
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print(f"serving simulated Snakepit pools on http://{host}:{port}/call/<command> "
          f"({', '.join(sorted(pools.commands))}); telemetry to {url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        telemetry.drain()
