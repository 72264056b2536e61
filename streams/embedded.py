"""The embedded runner: the engine in-process, fed by HTTP ingest and the load generator.

Batches are aggregated as they arrive (under a lock; the engine is not thread-safe) and closed
rollups are written to the store by a background thread once a second, together with a
checkpoint of the open state, so a restart resumes where the last checkpoint stood; once an
hour, closed days are archived to Parquet (when an archive folder is set). When no
events arrive for ``idle_grace`` seconds, the wall clock moves the watermark so that the last
panes of a stream that went quiet still close.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from schemas.events import Event
from store.base import Checkpoint, RollupStore, annotation_record
from streams.engine import Engine, Rollup
from streams.live import LiveState

log = logging.getLogger(__name__)

CHECKPOINT = "embedded"
SOURCE = "embedded"


class EmbeddedRunner:
    """Owns one engine and one store; ``submit`` from any thread, ``start``/``stop`` the flusher."""

    def __init__(self, store: RollupStore, lateness: float = 5.0, idle_grace: float = 5.0,
                 flush_interval: float = 1.0, max_label_values: int = 1000,
                 archive_dir: Path | None = None, archive_every: float = 3600.0,
                 on_minutes: Callable[[list[Rollup]], None] | None = None) -> None:
        self.store = store
        cp = store.load_checkpoint(CHECKPOINT)
        self.engine = Engine.resume(cp.state if cp is not None else None, lateness,
                                    max_label_values)
        self.engine.live = LiveState()
        self.idle_grace = idle_grace
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._pending: list[Rollup] = []
        self._last_event = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.write_errors = 0
        self.on_minutes = on_minutes  # gets each flush's closed 1-minute rollups (alerting)
        self.archive_dir = archive_dir
        self.archive_every = archive_every
        self._last_archive = -math.inf

    def submit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        with self._lock:
            self._pending.extend(self.engine.process(list(events), source=SOURCE))
            self._last_event = time.monotonic()

    def flush(self, now: float | None = None) -> int:
        """Write closed rollups and a checkpoint; returns how many rollups were written."""
        with self._lock:
            if time.monotonic() - self._last_event >= self.idle_grace:
                newest = max(self.engine.source_time.values(), default=None)
                if newest is not None:
                    wall = (now or time.time()) - self.engine.lateness - self.idle_grace
                    self._pending.extend(self.engine.advance(max(newest, wall)))
            pending, self._pending = self._pending, []
            notes, self.engine.annotations = self.engine.annotations, []
            state = self.engine.snapshot()
        try:
            if notes:
                self.store.add_annotations([annotation_record(a) for a in notes])
            self.store.write(pending, checkpoint=(CHECKPOINT, Checkpoint(state)))
            if self.on_minutes is not None:
                self.on_minutes([r for r in pending if r.resolution == 60 and not r.late])
        except Exception:
            # Keep the rollups for the next attempt: a slow or failing store delays, never loses.
            self.write_errors += 1
            log.exception("writing %d rollups failed; will retry", len(pending))
            with self._lock:
                self._pending[:0] = pending
                self.engine.annotations[:0] = notes
            return 0
        return len(pending)

    def close_all(self) -> int:
        """Close every open window now (end of a finite input) and write it."""
        with self._lock:
            self._pending.extend(self.engine.flush())
        return self.flush()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="snakepit-perf-flusher",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.flush()

    def archive_closed_days(self, now: datetime | None = None) -> list[Path]:
        """The scheduled job: write every closed day not yet in the Parquet archive."""
        if self.archive_dir is None:
            return []
        from store.archive import ArchiveReader, archive_day, closed_days

        done = ArchiveReader(self.archive_dir).archived_days()
        now = now or datetime.now(UTC)
        return [archive_day(self.store, day, self.archive_dir)
                for day in closed_days(self.store, now) if day not in done]

    def _run(self) -> None:
        wait = self.flush_interval
        while not self._stop.wait(wait):
            started = time.monotonic()
            self.flush()
            # A big open state makes each checkpoint slow: keep checkpointing under ~25% of the
            # time, at the price of rollups reaching the store a little later.
            wait = max(self.flush_interval, 3 * (time.monotonic() - started))
            if time.monotonic() - self._last_archive >= self.archive_every:
                self._last_archive = time.monotonic()
                try:
                    self.archive_closed_days()
                except Exception:
                    log.exception("archiving closed days failed; will retry in %.0f s",
                                  self.archive_every)
