// The built-in views. Panel views are plain layouts (the same shape /v1/dashboards stores), so
// any of them can be edited and saved as a dashboard of one's own.
const p = (title, metric, stats, group_by = "", width = 6, where = []) =>
  ({ title, metric, stats, group_by, where, width, height: 1 });

export const VIEWS = {
  overview: {
    name: "Overview", tiles: true, alerts: true, live: true,
    layout: { title: "Overview", range: "15m", where: [], panels: [
      p("Throughput by pool (req/s)", "requests_total", ["rate"], "pool"),
      p("Latency percentiles", "request_duration_seconds", ["p50", "p95", "p99", "p99.9"]),
      p("Errors by pool (req/s)", "request_errors_total", ["rate"], "pool"),
      p("Active requests by pool", "concurrent_requests", ["value"], "pool"),
      p("Queue depth by pool (max)", "queue_depth", ["max"], "pool"),
      p("Pool utilisation", "pool_utilization_ratio", ["value"], "pool"),
    ] },
  },
  pools: {
    name: "Pools", table: "pools",
    layout: { title: "Pools", range: "1h", where: [], panels: [
      p("P99 latency by pool", "request_duration_seconds", ["p99"], "pool"),
      p("Throughput by pool (req/s)", "requests_total", ["rate"], "pool"),
      p("Utilisation by pool", "pool_utilization_ratio", ["value"], "pool"),
      p("Queue wait P95 by pool", "queue_wait_seconds", ["p95"], "pool"),
    ] },
  },
  workers: {
    name: "Workers", table: "workers",
    layout: { title: "Workers", range: "1h", where: [], panels: [
      p("Worker utilisation", "worker_utilization_ratio", ["value"], "worker_id"),
      p("Worker P99 response time", "worker_response_seconds", ["p99"], "worker_id"),
      p("Worker errors", "worker_errors_total", ["count"], "worker_id"),
      p("Recycles and crashes", "worker_recycles_total", ["count"], "pool"),
    ] },
  },
  sessions: {
    name: "Sessions",
    layout: { title: "Sessions", range: "1h", where: [], panels: [
      p("Session creation time", "session_create_seconds", ["p50", "p99"], "adapter"),
      p("Session access latency", "session_access_seconds", ["p50", "p99"], "adapter"),
      p("Session cache hit ratio", "session_cache_hit_ratio", ["value"], "adapter"),
      p("Sessions created (per s)", "sessions_created_total", ["rate"], "adapter"),
      p("Session cleanup time", "session_cleanup_seconds", ["p50", "max"], "adapter", 12),
    ] },
  },
  python: {
    name: "Python",
    layout: { title: "Python environments", range: "1h", where: [], panels: [
      p("Python execution time P95 by env", "python_exec_seconds", ["p95"], "python_env"),
      p("Elixir overhead P95 by env", "elixir_overhead_seconds", ["p95"], "python_env"),
      p("Python time by library (mean)", "python_exec_seconds", ["mean"], "library"),
      p("Elixir overhead by library (mean)", "elixir_overhead_seconds", ["mean"], "library"),
      p("Python time by pool (P50)", "python_exec_seconds", ["p50"], "pool"),
      p("Request duration by pool (P50)", "request_duration_seconds", ["p50"], "pool"),
      p("Python call time P95 by library (worker SDK)", "python_call_seconds", ["p95"], "library"),
      p("Python worker memory (max)", "python_memory_bytes", ["max"], "pool"),
      p("Python worker startup", "python_startup_seconds", ["max"], "python_env"),
    ] },
  },
  resources: {
    name: "Resources",
    layout: { title: "Resources next to latency", range: "1h", where: [], panels: [
      p("P99 latency", "request_duration_seconds", ["p99"], "", 12),
      p("CPU", "cpu_percent", ["mean"], "scope"),
      p("CPU per core (hosts)", "cpu_core_percent", ["mean"], "core"),
      p("Memory", "memory_bytes", ["max"], "scope"),
      p("Scheduler utilisation", "scheduler_utilization_ratio", ["mean"], "host"),
      p("Open file descriptors", "open_fds", ["max"], "scope"),
    ] },
  },
  correlations: { name: "Correlations", special: "correlations" },
  requests: { name: "Requests", special: "requests" },
  benchmarks: { name: "Benchmarks", special: "benchmarks" },
  recommendations: { name: "Recommendations", special: "recommendations" },
};

// Signals the correlation view lines up against P99 latency (metric:stat).
export const CORRELATED = [
  ["request_duration_seconds:p99", "P99 latency"],
  ["requests_total:rate", "Throughput"],
  ["request_errors_total:rate", "Error rate"],
  ["concurrent_requests:value", "Active requests"],
  ["queue_depth:max", "Queue depth"],
  ["queue_wait_seconds:p95", "Queue wait P95"],
  ["pool_utilization_ratio:value", "Pool utilisation"],
  ["cpu_percent:mean", "CPU"],
  ["memory_bytes:max", "Memory"],
  ["python_exec_seconds:p95", "Python time P95"],
];
