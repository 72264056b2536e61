"""Measure a Snakepit Python worker from inside: tool-call time, sessions, the process, the
environment. Importable by any Snakepit adapter with no change to Snakepit.

Snakepit's Python server computes ``execution_time_ms`` but its Elixir client drops it, and the
``python.*.sampled`` events exist only in its catalogue; this module fills both gaps::

    from sdk.worker import Monitor

    monitor = Monitor("http://perf.example:8080", libraries=["numpy"])

    class MyAdapter(BaseAdapter):
        @monitor.timed
        def execute_tool(self, tool_name, arguments, context):
            ...

Why it is shaped this way:

- **The adapter never pays for the network.** A call appends one tuple to a bounded deque
  (a few µs); a daemon thread builds the events, batches them (``batch_size`` or
  ``flush_s``) and POSTs NDJSON. Nothing here raises into the adapter: a service that is down
  means batches wait in memory up to ``max_queued`` events, then the oldest are dropped and
  counted (``dropped``), never an exception in a tool call.
- **Calls join their request by Snakepit's correlation id.** Snakepit's server keeps it in a
  context variable (``snakepit_bridge.telemetry.get_correlation_id``); each call event carries
  it as ``trace_id``, the same key the Elixir side's request carries.
- **The worker's identity comes from Snakepit itself.** Snakepit starts each Python process with
  ``SNAKEPIT_READY_FILE=<tmp>/snakepit_ready_<worker_id>_<n>`` (``worker/configuration.ex``), and
  names workers ``<pool>_worker_<i>_<n>``, so pool and worker id need no configuration.
- **Standard library only** (plus psutil for the sampler, when installed): a worker's virtualenv
  should not need this project's dependencies.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import gzip
import json
import os
import platform
import re
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from typing import Any

_READY_FILE = re.compile(r"snakepit_ready_(?P<worker>.+_worker_\d+_\d+)_\d+$")
_WORKER_ID = re.compile(r"^(?P<pool>.+)_worker_\d+_\d+$")
_MAX_LABEL = 256


def snakepit_identity(environ: dict[str, str] | None = None) -> tuple[str | None, str | None]:
    """(pool, worker_id) of this process, from the ready file Snakepit passed it, if any."""
    env = os.environ if environ is None else environ
    m = _READY_FILE.search(os.path.basename(env.get("SNAKEPIT_READY_FILE", "")))
    if m is None:
        return None, None
    worker = m.group("worker")
    pool = _WORKER_ID.match(worker)
    return (pool.group("pool") if pool else None), worker


def environment_fingerprint() -> str:
    """``cpython-3.11.7/venv``: the interpreter and how it is installed (venv, conda, system)."""
    if os.environ.get("CONDA_PREFIX") or os.path.isdir(os.path.join(sys.prefix, "conda-meta")):
        kind = "conda"
    elif sys.prefix != sys.base_prefix:
        kind = "venv"
    else:
        kind = "system"
    return f"{platform.python_implementation().lower()}-{platform.python_version()}/{kind}"


def library_label(name: str) -> str:
    """``numpy==1.26.4``, or the bare name when it is not installed as a distribution."""
    try:
        return f"{name}=={metadata.version(name)}"[:_MAX_LABEL]
    except metadata.PackageNotFoundError:
        return name[:_MAX_LABEL]


def _correlation_source() -> Callable[[], str | None]:
    try:
        from snakepit_bridge.telemetry import get_correlation_id  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 (not inside Snakepit, or an older bridge: no correlation)
        return lambda: None
    return get_correlation_id


class HttpTransport:
    """POST a batch to ``/v1/events`` as gzipped NDJSON; raises on anything but a 2xx."""

    # Long enough for a busy service's 202 (overloaded, it answers 429 at once instead): a
    # batch timed out client-side may have been counted, and resending it counts it twice.
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/") + "/v1/events"
        self.headers = {"Content-Type": "application/x-ndjson", "Content-Encoding": "gzip"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout

    def __call__(self, events: list[dict[str, Any]]) -> None:
        body = gzip.compress(b"\n".join(json.dumps(e, separators=(",", ":")).encode()
                                        for e in events), compresslevel=1)
        req = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as r:  # noqa: S310 (our URL)
            r.read()


class KafkaTransport:
    """Produce a batch to the events topic (needs confluent-kafka in the worker's environment)."""

    def __init__(self, bootstrap: str, topic: str = "snakepit.events") -> None:
        from sdk.producer import EventProducer

        self._producer = EventProducer(bootstrap, topic)

    def __call__(self, events: list[dict[str, Any]]) -> None:
        self._producer.send_many(events)
        if self._producer.flush(10.0):
            raise RuntimeError(f"Kafka did not acknowledge the batch: {self._producer.last_error}")


class Monitor:
    """Times tool calls and sessions, samples the process every ``sample_s`` and ships events.

    ``url`` is a snakepit-perf API (``http://host:8080``) or ``kafka://bootstrap:9092[/topic]``;
    ``transport`` replaces both (a callable that takes a list of event dicts and raises on
    failure). ``pool``/``worker_id`` default to what Snakepit passed the process."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None,
                 transport: Callable[[list[dict[str, Any]]], None] | None = None,
                 pool: str | None = None, worker_id: str | None = None,
                 libraries: Sequence[str] = (), batch_size: int = 500, flush_s: float = 1.0,
                 max_queued: int = 50_000, sample_s: float | None = 10.0,
                 retry_s: float = 1.0) -> None:
        if transport is None:
            if url is None:
                url = os.environ.get("SNAKEPIT_PERF_URL", "http://127.0.0.1:8080")
            if url.startswith("kafka://"):
                bootstrap, _, topic = url.removeprefix("kafka://").partition("/")
                transport = KafkaTransport(bootstrap, topic or "snakepit.events")
            else:
                transport = HttpTransport(url, api_key or os.environ.get("SNAKEPIT_PERF_KEY"))
        self._transport = transport
        found_pool, found_worker = snakepit_identity()
        self.pool = pool or found_pool
        self.worker_id = worker_id or found_worker
        self.python_env = environment_fingerprint()
        self.libraries = {name: library_label(name) for name in libraries}
        self.pid = os.getpid()
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.retry_s = retry_s
        self.max_queued = max_queued
        self.sample_s = sample_s
        self.sent = 0
        self.dropped = 0
        self.failures = 0
        self.last_error: str | None = None
        # Records, not events: building dicts is the sender thread's work, not the adapter's.
        self._queue: deque[tuple] = deque()
        self._pending: list[dict[str, Any]] = []  # built, not yet acknowledged by the service
        self._correlation = _correlation_source()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._gc_started = 0
        self._gc_pauses: list[tuple[int, int, int]] = []  # (pause ns, generation, collected)
        self._started = time.time()
        self._record(("started", self._started, self._startup_us()))
        if sample_s:
            gc.callbacks.append(self._on_gc)
        self._thread = threading.Thread(target=self._run, name="snakepit-perf-monitor",
                                        daemon=True)
        self._thread.start()

    # -- what the adapter calls ---------------------------------------------------------------

    def timed(self, func: Callable | None = None, *, command: str | None = None,
              library: str | None = None) -> Any:
        """Decorate a tool method (``execute_tool(tool_name, arguments, context)`` or a
        ``@tool`` method); the call is timed whether it returns or raises."""
        if func is None:
            return functools.partial(self.timed, command=command, library=library)
        name = command or func.__name__
        lib = self._library(library)
        is_dispatch = func.__name__ == "execute_tool"

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            cmd = name
            if is_dispatch:
                cmd = kwargs.get("tool_name") or (args[1] if len(args) > 1 else name)
            start = time.perf_counter_ns()
            error = None
            try:
                return func(*args, **kwargs)
            except BaseException as exc:
                error = type(exc).__name__
                raise
            finally:
                self._record(("call", time.time(), (time.perf_counter_ns() - start) // 1000,
                              cmd, lib, self._correlation(), error))

        return wrapper

    def call(self, command: str, *, library: str | None = None) -> _CallTimer:
        """Time a block as one tool call: ``with monitor.call("predict"): ...``."""
        return _CallTimer(self, command, self._library(library))

    @contextlib.contextmanager
    def session(self, kind: str = "accessed", session_id: str | None = None, *,
                cache_hit: bool | None = None, adapter: str = "python") -> Iterator[None]:
        """Time creating (``created``) or reading (``accessed``) session state; ``cache_hit``
        says whether it was found in memory (R6.1, R6.2)."""
        start = time.perf_counter_ns()
        ok = False
        try:
            yield
            ok = True
        finally:
            self._record(("session", time.time(), (time.perf_counter_ns() - start) // 1000,
                          kind, session_id, cache_hit, adapter, ok))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is sent; False if not within ``timeout``."""
        deadline = time.monotonic() + timeout
        while (self._queue or self._pending) and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.01)
        return not (self._queue or self._pending)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is left (for up to ``timeout``), then stop the thread."""
        self.flush(timeout)
        self._stopped.set()
        self._wake.set()
        self._thread.join(timeout)
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def sample(self) -> None:
        """Record one sample of the process now (the thread does it every ``sample_s``)."""
        self._record(("sample", time.time(), _process_sample(), self._drain_gc()))

    # -- internals ------------------------------------------------------------------------------

    def _library(self, name: str | None) -> str | None:
        if name is None:
            return next(iter(self.libraries.values()), None) if len(self.libraries) == 1 else None
        if name not in self.libraries:
            self.libraries[name] = library_label(name)
        return self.libraries[name]

    def _record(self, rec: tuple) -> None:
        if len(self._queue) >= self.max_queued:
            self.dropped += 1
            return
        self._queue.append(rec)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter_ns()
        elif self._gc_started and len(self._gc_pauses) < 10_000:
            self._gc_pauses.append((time.perf_counter_ns() - self._gc_started,
                                    info.get("generation", 0), info.get("collected", 0)))

    def _drain_gc(self) -> list[tuple[int, int, int]]:
        pauses, self._gc_pauses = self._gc_pauses, []
        return pauses

    def _startup_us(self) -> int | None:
        try:
            import psutil

            return max(0, int((time.time() - psutil.Process().create_time()) * 1e6))
        except Exception:  # noqa: BLE001 (no psutil: startup time unknown)
            return None

    def _run(self) -> None:
        next_sample = time.monotonic() + (self.sample_s or 0)
        if self.sample_s:
            _process_sample()  # prime psutil's CPU counters: the first reading is meaningless
        while not self._stopped.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            if self.sample_s and time.monotonic() >= next_sample:
                next_sample = time.monotonic() + self.sample_s
                self.sample()
            self._ship()

    def _ship(self) -> None:
        """Send the pending batch, then new records, a batch at a time, until one fails."""
        while self._queue and len(self._pending) < self.batch_size:
            self._pending.extend(self._events(self._queue.popleft()))
        while self._pending:
            batch = self._pending[:self.batch_size]
            try:
                self._transport(batch)
            except urllib.error.HTTPError as exc:
                if exc.code != 429 and exc.code < 500:  # refused for good (400, 401, 413)
                    self.failures += 1
                    self.last_error = f"HTTP {exc.code}: batch of {len(batch)} dropped"
                    self.dropped += len(batch)
                    del self._pending[:len(batch)]
                    continue
                self.failures += 1
                self.last_error = f"HTTP {exc.code}"
                self._bound_pending()
                self._stopped.wait(self.retry_s)
                return
            except Exception as exc:  # noqa: BLE001 (never into the adapter: keep and retry)
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._bound_pending()
                self._stopped.wait(self.retry_s)
                return
            del self._pending[:len(batch)]
            self.sent += len(batch)
            while self._queue and len(self._pending) < self.batch_size:
                self._pending.extend(self._events(self._queue.popleft()))

    def _bound_pending(self) -> None:
        """While the service is away the deque fills up to ``max_queued`` and then counts drops;
        what was already built is kept too, but never more than one ``max_queued``."""
        excess = len(self._pending) - self.max_queued
        if excess > 0:
            del self._pending[:excess]
            self.dropped += excess

    def _base(self, t: float) -> dict[str, Any]:
        e: dict[str, Any] = {"time": t, "python_env": self.python_env}
        if self.pool is not None:
            e["pool"] = self.pool
        if self.worker_id is not None:
            e["worker_id"] = self.worker_id
        return e

    def _events(self, rec: tuple) -> list[dict[str, Any]]:
        kind, t = rec[0], rec[1]
        if kind == "call":
            _, _, us, cmd, lib, corr, error = rec
            e = {"type": "python", "kind": "error" if error else "call", **self._base(t),
                 "python_pid": self.pid, "command": str(cmd)[:_MAX_LABEL], "python_us": us}
            if lib is not None:
                e["library"] = lib
            if corr:
                e["trace_id"] = str(corr)[:_MAX_LABEL]
            if error:
                e["error"] = error
            return [e]
        if kind == "session":
            _, _, us, skind, session, hit, adapter, ok = rec
            e = {"type": "session", "time": t, "kind": skind, "adapter": adapter,
                 "duration_us": us, "success": ok}
            if self.pool is not None:
                e["pool"] = self.pool
            if session is not None:
                e["session_id"] = str(session)[:_MAX_LABEL]
            if hit is not None:
                e["cache_hit"] = hit
            return [e]
        if kind == "started":
            e = {"type": "python", "kind": "started", **self._base(t), "python_pid": self.pid,
                 "name": sys.executable[-_MAX_LABEL:] or "python"}
            if rec[2] is not None:
                e["startup_us"] = rec[2]
            return [e]
        _, _, figures, pauses = rec  # a sample
        out = []
        if figures:
            r = {"type": "resource", "scope": "worker", "time": t,
                 "host": platform.node()[:_MAX_LABEL] or None, **figures["resource"]}
            if self.pool is not None:
                r["pool"] = self.pool
            r["worker_id"] = self.worker_id or f"pid-{self.pid}"
            if pauses:
                r["gc_count"] = figures["gc_count"]
            out.append({k: v for k, v in r.items() if v is not None})
            out.append({"type": "python", "kind": "memory", **self._base(t),
                        "python_pid": self.pid, "memory_bytes": figures["resource"]["memory_bytes"],
                        "metrics": figures["memory"]})
        if pauses:
            out.append({"type": "python", "kind": "gc", **self._base(t), "python_pid": self.pid,
                        "gc_pause_us": sum(p for p, _, _ in pauses) // 1000,
                        "gc_generation": max(g for _, g, _ in pauses),
                        "gc_collected": sum(c for _, _, c in pauses),
                        "metrics": {"collections": len(pauses),
                                    "max_pause_us": max(p for p, _, _ in pauses) // 1000}})
        return out


class _CallTimer:
    """``Monitor.call``'s context manager: a class, not a generator, because it is on the hot
    path (contextlib's generator protocol costs ~3 us a call)."""

    __slots__ = ("monitor", "command", "library", "start")

    def __init__(self, monitor: Monitor, command: str, library: str | None) -> None:
        self.monitor, self.command, self.library = monitor, command, library
        self.start = 0

    def __enter__(self) -> None:
        self.start = time.perf_counter_ns()

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        m = self.monitor
        m._record(("call", time.time(), (time.perf_counter_ns() - self.start) // 1000,
                   self.command, self.library, m._correlation(),
                   kind.__name__ if kind is not None else None))


_PROCESS: Any = None


def _process_sample() -> dict[str, Any] | None:
    """CPU (process and per core), memory (RSS, USS), I/O, FDs and threads of this process."""
    global _PROCESS
    try:
        import psutil
    except ImportError:
        return None
    if _PROCESS is None or _PROCESS.pid != os.getpid():
        _PROCESS = psutil.Process()
    p = _PROCESS
    with p.oneshot():
        rss = p.memory_info().rss
        resource: dict[str, Any] = {"cpu_percent": p.cpu_percent(), "memory_bytes": rss,
                                    "cpu_per_core": psutil.cpu_percent(percpu=True),
                                    "open_fds": p.num_fds() if hasattr(p, "num_fds") else None}
        memory: dict[str, float] = {"rss_bytes": rss, "threads": p.num_threads()}
        with contextlib.suppress(psutil.Error, AttributeError):
            io = p.io_counters()
            resource["disk_read_bytes"] = io.read_bytes
            resource["disk_write_bytes"] = io.write_bytes
        with contextlib.suppress(psutil.Error):
            memory["uss_bytes"] = p.memory_full_info().uss
        times = p.cpu_times()
        memory["cpu_user_s"] = times.user
        memory["cpu_system_s"] = times.system
    return {"resource": resource, "memory": memory,
            "gc_count": sum(s["collections"] for s in gc.get_stats())}


__all__ = ["HttpTransport", "KafkaTransport", "Monitor", "environment_fingerprint",
           "library_label", "snakepit_identity"]
