"""A discrete-event model of a Snakepit deployment that emits the telemetry it would produce.

Not random numbers: requests arrive with a daily shape and bursts, queue when every worker of a
pool is busy (so queue depth and waits emerge), are served with lognormal service times per
command and library, time out in the queue after ``pool_queue_timeout``, fail and retry; workers
start up, are recycled by TTL and max requests, crash and restart; sessions are created, hit,
missed and expire; hosts report CPU, memory and file descriptors. Incidents with known start and
end (latency regression, error burst, crash loop, memory leak, queue saturation) give tests and
detectors labelled data. Same seed, same events.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.events import Event, Pool, Request, Resource, Session, Worker


@dataclass
class Command:
    name: str
    weight: float
    median_ms: float
    sigma: float = 0.5
    library: str = "numpy"
    python_share: float = 0.85  # the rest is Elixir/gRPC overhead


@dataclass
class PoolSpec:
    name: str
    pool_size: int = 4
    worker_profile: str = "process"
    threads_per_worker: int = 1
    adapter: str = "Snakepit.Adapters.GRPCPython"
    python_env: str = "uv:.venv"
    share: float = 1.0  # share of the total arrival rate
    commands: list[Command] = field(default_factory=lambda: [
        Command("predict", 6, 40, 0.5, "torch"), Command("embed", 3, 12, 0.4, "numpy"),
        Command("ping", 1, 1, 0.3, "stdlib")])
    worker_max_requests: int = 5000
    worker_ttl_s: float = 3600
    max_queue: int = 1000
    queue_timeout_s: float = 10.0
    error_rate: float = 0.005
    crash_rate_per_hour: float = 0.02
    startup_ms: float = 900


@dataclass
class Incident:
    kind: str  # latency_regression | error_burst | crash_loop | memory_leak | queue_saturation
    pool: str
    start: float
    end: float

    def active(self, t: float, pool: str) -> bool:
        return self.pool == pool and self.start <= t < self.end


INCIDENT_KINDS = ("latency_regression", "error_burst", "crash_loop", "memory_leak",
                  "queue_saturation")


def default_pools(rate: float) -> list[PoolSpec]:
    """Three pools sized, like a real deployment, to run ~60% busy at the daily peak."""
    pools = [
        PoolSpec("default", share=0.7),
        PoolSpec("gpu", worker_profile="thread", threads_per_worker=4,
                 python_env="venv:/opt/ml", share=0.1,
                 commands=[Command("generate", 1, 180, 0.6, "transformers", 0.95)]),
        PoolSpec("batch", share=0.2, python_env="system",
                 commands=[Command("transform", 1, 25, 0.7, "pandas")]),
    ]
    for spec in pools:
        weights = sum(c.weight for c in spec.commands)
        mean_s = sum(c.weight * c.median_ms / 1000 * math.exp(c.sigma ** 2 / 2)
                     for c in spec.commands) / weights
        slowdown = 1.3 if spec.threads_per_worker > 1 else 1.0
        busy_at_peak = rate * spec.share * 1.6 * mean_s * slowdown
        spec.pool_size = max(2, math.ceil(busy_at_peak / 0.6 / spec.threads_per_worker))
    return pools


def daily_shape(t: float) -> float:
    """Load relative to the daily mean: low at 04:00 UTC, peak at 16:00 UTC."""
    hour = (t % 86400) / 3600
    return 1.0 + 0.6 * math.sin((hour - 10) / 24 * 2 * math.pi)


@dataclass
class _Worker:
    id: str
    started: float
    ready_at: float
    busy: int = 0
    served: int = 0
    retired: bool = False


class Simulation:
    """Yield canonical events in time order for ``duration`` simulated seconds from ``start``."""

    def __init__(self, rate: float, start: float, duration: float, seed: int = 1,
                 pools: list[PoolSpec] | None = None, incidents: list[Incident] | None = None,
                 node: str = "app@host-1") -> None:
        self.rate, self.start, self.end = rate, start, start + duration
        self._unique = itertools.count(1)  # Snakepit's :erlang.unique_integer in worker ids
        self.rng = random.Random(seed)
        self.pools = pools or default_pools(rate)
        self.incidents = incidents or []
        self.node = node
        self._heap: list[tuple[float, int, str, tuple]] = []
        self._seq = 0
        self._workers: dict[str, list[_Worker]] = {}
        self._queues: dict[str, deque] = {}
        self._sessions: dict[str, float] = {}
        self._memory: dict[str, float] = {}

    # -- scheduling -------------------------------------------------------------------------

    def _at(self, t: float, kind: str, *args) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, kind, args))

    def _worker_id(self, pool: str, i: int) -> str:
        """As Snakepit names workers: ``<pool>_worker_<i>_<unique>`` (pool/initializer.ex)."""
        return f"{pool}_worker_{i}_{next(self._unique)}"

    def _replacement(self, worker_id: str) -> str:
        """A restarted or recycled worker comes back under a new id in the same slot."""
        return f"{worker_id.rsplit('_', 1)[0]}_{next(self._unique)}"

    def _incident(self, kind: str, t: float, pool: str) -> bool:
        return any(i.kind == kind and i.active(t, pool) for i in self.incidents)

    def events(self) -> Iterator[Event]:
        for spec in self.pools:
            self._queues[spec.name] = deque()
            self._memory[spec.name] = 300e6
            self._workers[spec.name] = []
            for i in range(spec.pool_size):
                yield from self._spawn(spec, self._worker_id(spec.name, i), self.start)
            self._at(self.start + self.rng.expovariate(self._rate(spec, self.start)), "arrive",
                     spec)
            self._at(self.start + 1, "stats", spec)
        self._at(self.start + 10, "resources")
        while self._heap:
            t, _, kind, args = heapq.heappop(self._heap)
            if t >= self.end:
                break
            yield from getattr(self, f"_on_{kind}")(t, *args)

    def _rate(self, spec: PoolSpec, t: float) -> float:
        r = self.rate * spec.share * daily_shape(t)
        if self._incident("queue_saturation", t, spec.name):
            r = max(r * 6, 1.5 * self._capacity(spec))  # more than the pool can serve
        if self.rng.random() < 0.001:  # the odd short burst
            r *= 3
        return max(r, 1e-6)

    # -- handlers ---------------------------------------------------------------------------

    def _capacity(self, spec: PoolSpec) -> float:
        """Requests per second the pool can serve at most."""
        weights = sum(c.weight for c in spec.commands)
        mean_s = sum(c.weight * c.median_ms / 1000 * math.exp(c.sigma ** 2 / 2)
                     for c in spec.commands) / weights
        return spec.pool_size * spec.threads_per_worker / mean_s

    def _on_arrive(self, t: float, spec: PoolSpec) -> Iterator[Event]:
        self._at(t + self.rng.expovariate(self._rate(spec, t)), "arrive", spec)
        cmd = self.rng.choices(spec.commands, [c.weight for c in spec.commands])[0]
        worker = self._free_worker(spec, t)
        if worker is not None:
            yield from self._start(spec, worker, cmd, t, t)
        elif len(self._queues[spec.name]) < spec.max_queue:
            self._queues[spec.name].append((t, cmd))
        else:
            yield self._request(spec, None, cmd, t, 0, 0, "error", error="queue full")

    def _free_worker(self, spec: PoolSpec, t: float) -> _Worker | None:
        for w in self._workers[spec.name]:
            if w.ready_at <= t and w.busy < spec.threads_per_worker:
                return w
        return None

    def _start(self, spec: PoolSpec, w: _Worker, cmd: Command, arrived: float, t: float
               ) -> Iterator[Event]:
        w.busy += 1
        service = self.rng.lognormvariate(math.log(cmd.median_ms / 1000), cmd.sigma)
        if self._incident("latency_regression", t, spec.name):
            service *= 3
        if spec.worker_profile == "thread" and w.busy > 1:
            service *= 1 + 0.15 * (w.busy - 1)  # threads share the GIL-bound parts
        self._at(t + service, "finish", spec, w, cmd, arrived, t, service)
        return iter(())

    def _on_finish(self, t: float, spec: PoolSpec, w: _Worker, cmd: Command, arrived: float,
                   started: float, service: float) -> Iterator[Event]:
        w.busy -= 1
        w.served += 1
        error_rate = 0.3 if self._incident("error_burst", t, spec.name) else spec.error_rate
        failed = self.rng.random() < error_rate
        retries = 1 if failed and self.rng.random() < 0.5 else None
        session = None
        if self.rng.random() < 0.3:
            session = f"s{self.rng.randrange(2000)}"
            yield from self._touch_session(spec, session, t)
        yield self._request(spec, w, cmd, t, service, started - arrived,
                            "error" if failed else "ok", retries=retries, session=session)
        if w.retired:  # recycled or crashed while this request was in flight
            yield from self._dequeue(spec, t)
            return
        if self._incident("crash_loop", t, spec.name):
            crash_chance = 0.2  # a bad deploy: one request in five takes its worker down
        else:
            crash_chance = spec.crash_rate_per_hour * service / 3600 * spec.pool_size
        if self.rng.random() < crash_chance:
            yield from self._crash(spec, w, t)
        elif w.served >= spec.worker_max_requests or t - w.started >= spec.worker_ttl_s:
            reason = "max_requests" if w.served >= spec.worker_max_requests else "ttl_expired"
            yield from self._recycle(spec, w, t, reason)
        yield from self._dequeue(spec, t)

    def _dequeue(self, spec: PoolSpec, t: float) -> Iterator[Event]:
        queue = self._queues[spec.name]
        while queue:
            worker = self._free_worker(spec, t)
            if worker is None:
                return
            arrived, cmd = queue.popleft()
            if t - arrived > spec.queue_timeout_s:
                yield self._request(spec, None, cmd, t, 0, t - arrived, "timeout")
                continue
            yield from self._start(spec, worker, cmd, arrived, t)

    def _request(self, spec: PoolSpec, w: _Worker | None, cmd: Command, t: float,
                 service: float, wait: float, status: str, retries: int | None = None,
                 session: str | None = None, error: str | None = None) -> Request:
        duration_us = int((service + wait) * 1e6)
        python_us = int(service * cmd.python_share * 1e6) if w is not None else None
        return Request(time=t, pool=spec.name, worker_id=w.id if w else None,
                       worker_profile=spec.worker_profile, adapter=spec.adapter,
                       command=cmd.name, duration_us=duration_us, status=status,
                       queue_wait_us=int(wait * 1e6), python_us=python_us, retries=retries,
                       session_id=session, python_env=spec.python_env, library=cmd.library,
                       segment=self.rng.choice(("free", "pro", "enterprise")), node=self.node,
                       error=error, trace_id=f"{self._seq:x}")

    def _spawn(self, spec: PoolSpec, worker_id: str, t: float) -> Iterator[Event]:
        startup = self.rng.lognormvariate(math.log(spec.startup_ms / 1000), 0.3)
        w = _Worker(worker_id, t, t + startup)
        self._workers[spec.name].append(w)
        self._at(t + startup, "ready", spec, w, startup)
        return iter(())

    def _on_ready(self, t: float, spec: PoolSpec, w: _Worker, startup: float
                  ) -> Iterator[Event]:
        yield Worker(time=t, kind="spawned", worker_id=w.id, pool=spec.name,
                     worker_profile=spec.worker_profile, python_env=spec.python_env,
                     startup_us=int(startup * 1e6), python_pid=self.rng.randrange(1000, 60000),
                     node=self.node)
        yield from self._dequeue(spec, t)

    def _retire(self, spec: PoolSpec, w: _Worker) -> None:
        w.retired = True
        self._workers[spec.name].remove(w)

    def _crash(self, spec: PoolSpec, w: _Worker, t: float) -> Iterator[Event]:
        self._retire(spec, w)
        yield Worker(time=t, kind="crashed", worker_id=w.id, pool=spec.name, exit_code=137,
                     reason="{:exit_status, 137}", node=self.node)
        yield Worker(time=t, kind="restarted", worker_id=w.id, pool=spec.name, node=self.node)
        yield from self._spawn(spec, self._replacement(w.id), t)

    def _recycle(self, spec: PoolSpec, w: _Worker, t: float, reason: str) -> Iterator[Event]:
        self._retire(spec, w)
        yield Worker(time=t, kind="recycled", worker_id=w.id, pool=spec.name, reason=reason,
                     uptime_s=t - w.started, request_count=w.served, node=self.node)
        yield from self._spawn(spec, self._replacement(w.id), t)

    def _touch_session(self, spec: PoolSpec, session: str, t: float) -> Iterator[Event]:
        expires = self._sessions.get(session)
        if expires is not None and expires > t:
            yield Session(time=t, kind="accessed", session_id=session, adapter="ets",
                          pool=spec.name, cache_hit=True,
                          duration_us=int(self.rng.lognormvariate(math.log(40), 0.3)))
        else:
            if expires is not None:
                yield Session(time=t, kind="expired", session_id=session, adapter="ets",
                              pool=spec.name, duration_us=int(self.rng.uniform(50, 300)),
                              bytes_reclaimed=self.rng.randrange(1_000, 50_000))
            yield Session(time=t, kind="created", session_id=session, adapter="ets",
                          pool=spec.name, success=True, cache_hit=False,
                          duration_us=int(self.rng.lognormvariate(math.log(120), 0.4)))
        self._sessions[session] = t + 1800

    def _on_stats(self, t: float, spec: PoolSpec) -> Iterator[Event]:
        self._at(t + 1, "stats", spec)
        workers = self._workers[spec.name]
        busy = sum(1 for w in workers if w.busy)
        yield Pool(time=t, kind="stats", pool=spec.name, worker_profile=spec.worker_profile,
                   queue_depth=len(self._queues[spec.name]), max_queue_size=spec.max_queue,
                   busy_workers=busy, available_workers=len(workers) - busy,
                   pool_size=spec.pool_size, threads_per_worker=spec.threads_per_worker,
                   node=self.node)
        if len(self._queues[spec.name]) >= spec.max_queue * 0.9:
            yield Pool(time=t, kind="saturated", pool=spec.name,
                       queue_depth=len(self._queues[spec.name]), max_queue_size=spec.max_queue,
                       busy_workers=busy, available_workers=len(workers) - busy)

    def _on_resources(self, t: float) -> Iterator[Event]:
        self._at(t + 10, "resources")
        for spec in self.pools:
            growth = 2e6 if self._incident("memory_leak", t, spec.name) else 0
            self._memory[spec.name] = max(300e6, self._memory[spec.name] + growth -
                                          (0 if growth else 1e6))
            busy = sum(w.busy for w in self._workers[spec.name])
            capacity = spec.pool_size * spec.threads_per_worker
            yield Resource(time=t, scope="worker", pool=spec.name, host="host-1",
                           cpu_percent=min(100.0, 100 * busy / capacity + self.rng.uniform(0, 5)),
                           memory_bytes=int(self._memory[spec.name]),
                           open_fds=40 + busy * 3, node=self.node)
        yield Resource(time=t, scope="host", host="host-1",
                       cpu_per_core=[self.rng.uniform(20, 80), self.rng.uniform(20, 80)],
                       memory_bytes=int(sum(self._memory.values()) + 2e9), node=self.node)
