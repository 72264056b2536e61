"""The metrics users query: Prometheus-style names with units, mapped onto rollup fields."""

from __future__ import annotations

from dataclasses import dataclass

from streams.series import FAMILIES

DIST_STATS = ("count", "sum", "mean", "min", "max", "p50", "p95", "p99", "p99.9")
COUNTER_STATS = ("count", "rate", "peak_rate", "min_rate")
GAUGE_STATS = ("last", "mean", "min", "max")


@dataclass(frozen=True)
class Metric:
    name: str
    family: str
    kind: str  # dist | counter | gauge | ratio | busy
    field: str = ""
    unit: str = ""
    scale: float = 1.0
    numerator: tuple[tuple[str, int], ...] = ()
    denominator: tuple[str, ...] = ()
    help: str = ""
    # one gauge per CPU core in each series (``cpu_core_<i>_percent``), read as a dimension
    per_core: bool = False

    @property
    def stats(self) -> tuple[str, ...]:
        return {"dist": DIST_STATS, "counter": COUNTER_STATS, "gauge": GAUGE_STATS}.get(
            self.kind, ("value",))

    @property
    def dimensions(self) -> tuple[str, ...]:
        return FAMILIES[self.family] + (("core",) if self.per_core else ())


def _dist(name: str, family: str, field: str, help: str) -> Metric:
    return Metric(name, family, "dist", field, "seconds", 1e-6, help=help)


def _counter(name: str, family: str, field: str, help: str) -> Metric:
    return Metric(name, family, "counter", field, "1", help=help)


def _gauge(name: str, family: str, field: str, unit: str, help: str, scale: float = 1.0) -> Metric:
    return Metric(name, family, "gauge", field, unit, scale, help=help)


METRICS: dict[str, Metric] = {m.name: m for m in [
    _dist("request_duration_seconds", "request", "duration_us",
          "request start to completion (R1.1)"),
    _dist("queue_wait_seconds", "request", "queue_wait_us", "time queued before a worker took it"),
    _dist("service_seconds", "request", "service_us",
          "a worker's part of a request: duration minus queue wait (where the wait is known)"),
    _dist("python_exec_seconds", "request", "python_us", "time spent executing Python (R5.2)"),
    _dist("elixir_overhead_seconds", "request", "overhead_us",
          "request duration minus Python execution time (R5.2)"),
    _counter("requests_total", "request", "requests", "completed requests"),
    _counter("request_errors_total", "request", "errors", "requests that ended in an error"),
    _counter("request_timeouts_total", "request", "timeouts", "requests that timed out"),
    _counter("request_retries_total", "request", "retries", "retries reported by requests"),
    Metric("request_success_ratio", "request", "ratio", unit="ratio",
           numerator=(("requests", 1), ("errors", -1), ("timeouts", -1)),
           denominator=("requests",), help="share of requests that succeeded"),
    Metric("concurrent_requests", "request", "busy", "busy_us", "requests", 1e-6,
           help="mean requests in flight (total busy time / wall time, Little's law)"),
    Metric("worker_utilization_ratio", "worker", "busy", "busy_us", "ratio", 1e-6,
           help="busy time (request duration minus its queue wait) / wall time, averaged over "
                "the workers in a group (R3.1)"),
    Metric("pool_utilization_ratio", "worker", "busy", "busy_us", "ratio", 1e-6,
           help="capacity in use: the pool's workers' busy time / (workers x wall time); "
                "group by pool (R4.2)"),
    _dist("worker_response_seconds", "worker", "duration_us", "per-worker response times (R3.2)"),
    _counter("worker_requests_total", "worker", "requests", "requests served per worker"),
    _counter("worker_errors_total", "worker", "errors", "failed requests per worker (R3.3)"),
    _dist("worker_startup_seconds", "worker", "startup_us", "worker spawn time (R3.4)"),
    _counter("worker_recycles_total", "worker", "recycled", "worker recycles (R3.4)"),
    _counter("worker_crashes_total", "worker", "crashed", "worker crashes (R3.4)"),
    _counter("worker_spawns_total", "worker", "spawned", "workers started"),
    _dist("heartbeat_latency_seconds", "worker", "heartbeat_latency_us", "ping/pong round trip"),
    _gauge("queue_depth", "pool", "queue_depth", "requests", "requests waiting in the pool queue"),
    _gauge("pool_busy_workers", "pool", "busy_workers", "workers", "busy workers"),
    _gauge("pool_available_workers", "pool", "available_workers", "workers", "idle workers"),
    _gauge("pool_size", "pool", "pool_size", "workers", "configured pool size"),
    _counter("pool_saturated_total", "pool", "saturated", "times the pool was saturated (R4.2)"),
    _counter("pool_queue_timeouts_total", "pool", "queue_timeout", "requests timed out queued"),
    _dist("session_create_seconds", "session", "create_us", "session creation time (R6.1)"),
    _dist("session_access_seconds", "session", "access_us", "session access latency (R6.2)"),
    _dist("session_cleanup_seconds", "session", "cleanup_us", "session cleanup time (R6.3)"),
    _counter("sessions_created_total", "session", "created", "sessions created"),
    Metric("session_cache_hit_ratio", "session", "ratio", unit="ratio",
           numerator=(("cache_hits", 1),), denominator=("cache_hits", "cache_misses"),
           help="session cache hits / (hits + misses) (R6.2)"),
    _gauge("cpu_percent", "resource", "cpu_percent", "percent", "CPU use (R7.1)"),
    Metric("cpu_core_percent", "resource", "gauge", "cpu_core_percent", "percent", per_core=True,
           help="CPU use of each core (dimension core: 0, 1, ...) (R7.1)"),
    _gauge("scheduler_utilization_ratio", "resource", "scheduler_utilization", "ratio",
           "BEAM scheduler utilisation (R7.1)"),
    _gauge("memory_bytes", "resource", "memory_bytes", "bytes", "resident memory (R7.2)"),
    _gauge("heap_bytes", "resource", "heap_bytes", "bytes", "heap in use (R7.2)"),
    _gauge("open_fds", "resource", "open_fds", "files", "open file descriptors (R7.3)"),
    _gauge("beam_run_queue", "resource", "run_queue", "processes",
           "processes ready to run but waiting for a scheduler (R7.1)"),
    _gauge("beam_processes", "resource", "process_count", "processes", "BEAM processes"),
    _gauge("beam_ports", "resource", "port_count", "ports", "BEAM ports (sockets, files, pipes)"),
    _gauge("gc_collections", "resource", "gc_count", "1",
           "garbage collections so far, as a running count (R7.2)"),
    _dist("python_call_seconds", "python", "python_us", "Python call time per library (R5.3)"),
    _gauge("python_memory_bytes", "python", "memory_bytes", "bytes", "Python worker memory (R5.4)"),
    _dist("python_startup_seconds", "python", "startup_us",
          "Python worker start to ready, from the worker SDK (R5.4)"),
    _dist("python_gc_pause_seconds", "python", "gc_pause_us",
          "time the Python garbage collector paused a worker per sample, from the SDK (R7.2)"),
    _counter("python_calls_total", "python", "call", "tool calls timed in Python by the SDK"),
    _counter("native_events_total", "native", "events",
             "Snakepit events kept by name (those with no canonical type, and unknown names)"),
    _dist("client_request_duration_seconds", "client", "duration_us",
          "latency the load generator observed (Locust, k6), beside the server's (R14.1)"),
    _counter("client_requests_total", "client", "requests", "requests the load generator sent"),
    _counter("client_errors_total", "client", "errors", "requests the load generator saw fail"),
]}
