"""The store interface the engine writes to and the query API reads from.

Rollups are keyed by (family, labels, resolution, bucket, shard). A regular rollup is written
once per shard (re-writing it is idempotent); a ``late`` delta with a ``tag`` (the Kafka offset
it came from) is its own shard ``<shard>@<tag>``, so replays rewrite it rather than add it again;
a ``late`` delta without a tag (embedded mode) is merged into what the store holds. Readers
merge every shard of a bucket.

Exactly-once after a crash: rollups are written (idempotently) before the checkpoint (engine
state + the next source offsets) that covers them, so a crash in between only makes the replay
rewrite the very same rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from schemas.events import Annotation
from streams.rollup import Rollup, SeriesRef, StoredRollup

# Default retention per resolution, in seconds (R1.3, R11.5): 10 s for 2 days, 1 min for
# 35 days, 1 h for 400 days.
DEFAULT_RETENTION = {10: 2 * 86400, 60: 35 * 86400, 3600: 400 * 86400}


@dataclass(slots=True)
class Checkpoint:
    """Open engine state and, per source (topic-partition), the next offset it has not covered."""

    state: bytes
    offsets: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class RejectRecord:
    time: float
    source: str
    reason: str
    raw: bytes
    id: int | None = None


@dataclass(slots=True)
class AnnotationRecord:
    """A deploy, config change or business event, kept to line metrics up with (R11.4)."""

    time: float
    kind: str
    title: str
    text: str = ""
    pool: str = ""
    end_time: float | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Content-derived, so a replayed annotation is written once."""
        return hashlib.sha1(f"{self.time}|{self.kind}|{self.title}|{self.pool}".encode()
                            ).hexdigest()[:16]


@dataclass(slots=True)
class DashboardRecord:
    """A saved dashboard layout (R10.2): private to its owner, or shared read-only with every
    key of ``shared_role`` or above. ``body`` is the layout JSON the API validated."""

    id: str
    owner: str
    title: str
    body: str
    shared_role: str = ""
    updated: float = 0.0


@dataclass(slots=True)
class BenchmarkRecord:
    """A benchmark run (R9): its scenario, when it started, and the rest (labels, trials,
    methodology, fingerprint, results) as the JSON ``body`` the API owns. Kept for good: a
    baseline must outlive the rollups it was computed from."""

    id: str
    scenario: str
    started: float
    body: str


def annotation_record(event: Annotation) -> AnnotationRecord:
    return AnnotationRecord(event.time, event.kind, event.title, event.text or "",
                            event.pool or "", event.end_time, dict(event.tags or {}))


class RollupStore(Protocol):
    # How long each resolution's rollups are kept, in seconds (older ranges: the archive).
    retention: dict[int, int]

    def write(self, rollups: Sequence[Rollup], shard: str = "",
              checkpoint: tuple[str, Checkpoint] | None = None) -> None:
        """Store rollups (and, atomically with them, a named checkpoint)."""

    def load_checkpoint(self, name: str) -> Checkpoint | None: ...

    def checkpoint_offsets(self, name: str) -> dict[str, int] | None:
        """Only the offsets of a checkpoint (cheap: for lag and progress)."""

    def series(self, family: str) -> list[SeriesRef]:
        """Every series of a family ever written (the catalogue: no scan of rollups)."""

    def read(self, refs: Iterable[SeriesRef], resolution: int, start: int, end: int,
             dists: Collection[str] | None = None) -> list[StoredRollup]:
        """Rollups with ``start <= bucket < end``, shards already merged; with ``dists``, only
        those distributions are decoded (counters and gauges always are)."""

    def add_rejects(self, rejects: Sequence[RejectRecord]) -> None: ...

    def rejects(self, limit: int = 100) -> list[RejectRecord]: ...

    def add_annotations(self, annotations: Sequence[AnnotationRecord]) -> None: ...

    def annotations(self, start: float, end: float) -> list[AnnotationRecord]:
        """Annotations overlapping ``[start, end)``, oldest first."""

    def put_dashboard(self, dashboard: DashboardRecord) -> None: ...

    def dashboards(self) -> list[DashboardRecord]:
        """Every saved dashboard (a handful per user: the API filters by owner and role)."""

    def delete_dashboard(self, dashboard_id: str) -> None: ...

    def put_benchmark(self, run: BenchmarkRecord) -> None: ...

    def benchmarks(self) -> list[BenchmarkRecord]:
        """Every benchmark run, oldest first (hundreds, not millions: the API filters)."""

    def apply_retention(self, now: float) -> int:
        """Drop rollups older than their resolution's retention; returns rows removed."""

    def close(self) -> None: ...
