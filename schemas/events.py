"""The canonical event types: typed models that are also the validator and the JSON Schema.

Each event is a ``msgspec.Struct`` tagged by its ``type`` field. Decoding a batch of bytes
straight into these structs validates every field in C (types, enums, ranges, lengths, unknown
fields), which is what lets ingest keep up with the broker; the JSON Schema files in ``json/``
are generated from these classes (``python -m schemas.generate``), so code and contract cannot
drift apart (a test checks it).

Times are RFC 3339 strings with an offset or epoch seconds; after decoding, :func:`finish`
turns them into float epoch seconds. Durations are integer microseconds (R1.1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, get_args, get_origin

import msgspec
from msgspec import Meta, Struct

SCHEMA_VERSION = "v1"

# Event times outside this range are almost certainly a unit mistake (ms or µs since epoch).
MIN_EPOCH = 946_684_800.0  # 2000-01-01
MAX_EPOCH = 4_102_444_800.0  # 2100-01-01

Label = Annotated[str, Meta(max_length=256)]
Text = Annotated[str, Meta(max_length=4096)]
Count = Annotated[int, Meta(ge=0)]
Micros = Annotated[int, Meta(ge=0, description="microseconds")]
# Finite and far from overflow: sums of many samples must stay finite (JSON has no infinity).
MAX_AMOUNT = 1e18
Amount = Annotated[float, Meta(ge=0, le=MAX_AMOUNT)]
Number = Annotated[float, Meta(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
EventTime = (Annotated[datetime, Meta(tz=True, description="RFC 3339 with an offset")]
             | Annotated[float, Meta(ge=MIN_EPOCH, le=MAX_EPOCH, description="epoch seconds")])
Tags = Annotated[dict[Label, Label], Meta(max_length=32, description="free-form labels")]
Profile = Literal["process", "thread"]


class Event(Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True, kw_only=True,
            gc=False):
    """Fields every event has (``gc=False``: events hold no cycles, so the collector skips them)."""

    time: EventTime
    node: Label | None = None
    tags: Tags | None = None


class Request(Event, tag="request"):
    """One completed request to a Snakepit pool (R1, R2, R5.2)."""

    pool: Label
    command: Annotated[str, Meta(max_length=256, description="the request type")]
    duration_us: Annotated[int, Meta(ge=0, description="start to completion, microseconds")]
    status: Literal["ok", "error", "timeout"]
    worker_id: Label | None = None
    worker_profile: Profile | None = None
    adapter: Label | None = None
    queue_wait_us: Micros | None = None
    python_us: Annotated[int, Meta(ge=0, description="Python execution time")] | None = None
    retries: Count | None = None
    session_id: Label | None = None
    python_env: Label | None = None
    library: Label | None = None
    segment: Annotated[str, Meta(max_length=256, description="user segment")] | None = None
    run_id: Label | None = None
    trace_id: Label | None = None
    streaming: bool | None = None
    error: Text | None = None
    source: Label | None = None


class RequestStart(Event, tag="request_start"):
    """A request dispatched to a worker (the start of a gRPC execute span)."""

    pool: Label
    worker_id: Label | None = None
    adapter: Label | None = None
    command: Label | None = None
    session_id: Label | None = None
    trace_id: Label | None = None


WorkerKind = Literal[
    "spawned", "ready", "terminated", "recycled", "crashed", "health_check_failed", "tainted",
    "restarted", "heartbeat_ping", "heartbeat_pong", "heartbeat_timeout",
    "heartbeat_monitor_failure", "heartbeat_monitor_started", "heartbeat_monitor_stopped",
]


class Worker(Event, tag="worker"):
    """A worker's lifecycle or heartbeat event (R3.4)."""

    kind: WorkerKind
    worker_id: Label
    pool: Label | None = None
    worker_profile: Profile | None = None
    python_env: Label | None = None
    startup_us: Micros | None = None
    lifetime_us: Micros | None = None
    uptime_s: Amount | None = None
    total_commands: Count | None = None
    request_count: Count | None = None
    reason: Text | None = None
    planned: bool | None = None
    beam_memory_mb: Annotated[float, Meta(
        ge=0, le=MAX_AMOUNT,
        description="the BEAM worker process's memory (Snakepit's recycle check), not Python's")
    ] | None = None
    memory_threshold_mb: Amount | None = None
    exit_code: int | None = None
    heartbeat_latency_us: Micros | None = None
    missed: Count | None = None
    python_pid: Count | None = None
    worker_pid: Label | None = None
    worker_count: Count | None = None
    taint_ms: Count | None = None
    device: Label | None = None


PoolKind = Literal[
    "stats", "saturated", "dispatched", "init_started", "init_complete", "capacity_reached",
    "resized", "queue_timeout", "circuit_opened", "circuit_closed", "circuit_half_open",
    "retry_attempt", "retry_success", "retry_exhausted",
]


class Pool(Event, tag="pool"):
    """A pool's queue, capacity, scaling or circuit-breaker event (R2.3, R4)."""

    kind: PoolKind
    pool: Label
    worker_profile: Profile | None = None
    queue_depth: Count | None = None
    max_queue_size: Count | None = None
    busy_workers: Count | None = None
    available_workers: Count | None = None
    pool_size: Count | None = None
    previous_pool_size: Count | None = None
    threads_per_worker: Count | None = None
    capacity: Count | None = None
    load: Count | None = None
    total_workers: Count | None = None
    duration_us: Micros | None = None
    queued: bool | None = None
    rejected: bool | None = None
    worker_id: Label | None = None
    command: Label | None = None
    requests_total: Count | None = None
    queue_timeouts_total: Count | None = None
    errors_total: Count | None = None
    attempt: Count | None = None
    failure_count: Count | None = None
    reason: Text | None = None


class Session(Event, tag="session"):
    """A session created, accessed, expired or pruned, with its timing (R6)."""

    kind: Literal["created", "accessed", "expired", "deleted", "pruned", "accumulation_warning"]
    session_id: Label | None = None
    adapter: Annotated[str, Meta(max_length=256, description="session store, e.g. ets")] | None = None
    pool: Label | None = None
    duration_us: Micros | None = None
    success: bool | None = None
    cache_hit: bool | None = None
    bytes_reclaimed: Count | None = None
    count: Count | None = None
    remaining_sessions: Count | None = None
    current_sessions: Count | None = None
    max_sessions: Count | None = None
    utilization: Amount | None = None
    reason: Label | None = None


class Resource(Event, tag="resource"):
    """CPU, memory, GC and I/O of a host, a BEAM node or a worker process (R7)."""

    scope: Literal["host", "beam", "worker"]
    host: Label | None = None
    pool: Label | None = None
    worker_id: Label | None = None
    cpu_percent: Amount | None = None
    cpu_per_core: Annotated[list[Amount], Meta(max_length=1024)] | None = None
    scheduler_utilization: Amount | None = None
    memory_bytes: Count | None = None
    heap_bytes: Count | None = None
    gc_count: Count | None = None
    gc_pause_us: Micros | None = None
    disk_read_bytes: Count | None = None
    disk_write_bytes: Count | None = None
    net_rx_bytes: Count | None = None
    net_tx_bytes: Count | None = None
    open_fds: Count | None = None
    run_queue: Annotated[int, Meta(ge=0, description="BEAM run queue length, all schedulers")
                         ] | None = None
    process_count: Count | None = None
    port_count: Count | None = None


PythonKind = Literal[
    "call", "memory", "cpu", "gc", "error", "tool_start", "tool_stop", "tool_exception",
    "tool_result_size", "exception_mapped", "exception_unmapped", "zero_copy_export",
    "zero_copy_import", "zero_copy_fallback", "started",
]


class Python(Event, tag="python"):
    """Execution time, memory, CPU and GC inside a Python worker (R5)."""

    kind: PythonKind
    pool: Label | None = None
    worker_id: Label | None = None
    python_pid: Count | None = None
    python_env: Label | None = None
    library: Label | None = None
    command: Label | None = None
    trace_id: Label | None = None
    python_us: Micros | None = None
    duration_us: Micros | None = None
    startup_us: Annotated[int, Meta(ge=0, description="process start to ready (kind started)")
                          ] | None = None
    memory_bytes: Count | None = None
    cpu_percent: Amount | None = None
    gc_pause_us: Micros | None = None
    gc_generation: Count | None = None
    gc_collected: Count | None = None
    bytes: Count | None = None
    error: Text | None = None
    name: Label | None = None
    metrics: Annotated[dict[Label, Number], Meta(max_length=64)] | None = None


class Native(Event, tag="native"):
    """A Snakepit event with no canonical type of its own, or one this version does not know.

    Kept so that nothing Snakepit emits is lost: counted per name (``native_events_total``),
    with its numeric measurements and its metadata rendered as text."""

    name: Label
    known: bool = True
    pool: Label | None = None
    worker_id: Label | None = None
    measurements: Annotated[dict[Label, Number], Meta(max_length=64)] | None = None
    attributes: Annotated[dict[Label, Text], Meta(max_length=32)] | None = None
    reason: Text | None = None


class Client(Event, tag="client"):
    """One request as the load generator saw it (Locust, k6): client-observed latency, its own
    family so that a load test's requests are never counted again as the server's."""

    tool: Label  # locust, k6, ...
    name: Label  # the request's name as the tool groups it (Locust's name, k6's `name` tag)
    duration_us: Annotated[int, Meta(ge=0, description="send to last byte, microseconds")]
    status: Literal["ok", "error"]
    method: Label | None = None
    scenario: Label | None = None
    run_id: Label | None = None  # the benchmark run it belongs to
    status_code: Annotated[int, Meta(ge=0, le=999)] | None = None
    bytes: Count | None = None
    error: Text | None = None


class Annotation(Event, tag="annotation"):
    """A deploy, config change, business or external event to line performance up with (R11.4)."""

    kind: Literal["deploy", "config_change", "business", "incident", "load_test", "other"]
    title: Label
    text: Text | None = None
    pool: Label | None = None
    end_time: EventTime | None = None
    author: Label | None = None
    run_id: Label | None = None


EVENT_TYPES: tuple[type[Event], ...] = (Request, RequestStart, Worker, Pool, Session, Resource,
                                        Python, Native, Client, Annotation)
AnyEvent = (Request | RequestStart | Worker | Pool | Session | Resource | Python | Native
            | Client | Annotation)
TYPE_NAMES = tuple(sorted(t.__struct_config__.tag for t in EVENT_TYPES))


def _enums() -> dict[tuple[str, str], tuple[str, ...]]:
    """(event type, field) -> allowed values, for reject reasons that say what was expected."""
    out = {}
    for cls in EVENT_TYPES:
        for f in msgspec.structs.fields(cls):
            for t in (f.type, *get_args(f.type)):
                if get_origin(t) is Literal:
                    out[(cls.__struct_config__.tag, f.name)] = get_args(t)
    return out


ENUMS = _enums()


def finish(event: Event) -> str | None:
    """Turn a decoded RFC 3339 time into epoch seconds; returns a reason if it is out of range."""
    for name in ("time", "end_time"):
        value = getattr(event, name, None)
        if isinstance(value, datetime):
            ts = value.timestamp()
            if not MIN_EPOCH <= ts <= MAX_EPOCH:
                return f"`{name}` {value.isoformat()} is outside 2000-01-01..2100-01-01"
            setattr(event, name, ts)
    return None
