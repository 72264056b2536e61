"""The embedded runner: the engine in-process, fed by HTTP ingest and the load generator.

With a write-ahead log (``wal_dir``), ``submit`` returns only once its batch is on disk: a
batch is appended to the log and aggregated, in log order, then its fsync is waited for
(grouped with concurrent batches'); a checkpoint only ever covers synced batches, and a
restart restores the last checkpoint and replays the log after it, so what was acknowledged is
never lost, and a late checkpoint costs replay time, not data. Work waiting
to be aggregated is bounded (``max_queued_events``), and so are closed rollups waiting for the
store (``max_pending_rollups``: sparse, high-cardinality data closes a rollup per series and
pane, faster than a store may take them): past either ``submit`` raises ``Overloaded`` instead of
queueing without end.

Batches are aggregated as they arrive (under a lock; the engine is not thread-safe) and closed
rollups are written to the store by a background thread once a second, together with a
checkpoint of the open state (and the last log record it covers); once an
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

import msgspec

from runners.wal import WalError, WriteAheadLog
from schemas.events import AnyEvent, Event
from store.base import Checkpoint, RollupStore, annotation_record
from streams.engine import Engine
from streams.live import LiveState
from streams.rollup import Rollup
from streams.series import Limits

log = logging.getLogger(__name__)

CHECKPOINT = "embedded"
SOURCE = "embedded"
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(list[AnyEvent]).decode


class Overloaded(Exception):
    """More work is waiting than the bound allows; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(Exception):
    """The batch cannot be made durable now (a full disk, a failing log); nothing was kept."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmbeddedRunner:
    """Owns one engine and one store; ``submit`` from any thread, ``start``/``stop`` the flusher."""

    STOP_FLUSH_BUDGET_S = 3.0  # a final checkpoint slower than this is left to the log

    def __init__(self, store: RollupStore, lateness: float = 5.0, idle_grace: float = 5.0,
                 flush_interval: float = 1.0, limits: Limits | None = None,
                 archive_dir: Path | None = None, archive_every: float = 3600.0,
                 on_minutes: Callable[[list[Rollup]], None] | None = None,
                 wal_dir: Path | None = None, max_queued_events: int = 200_000,
                 max_pending_rollups: int = 25_000,
                 retention_every: float = 3600.0) -> None:
        self.store = store
        cp = store.load_checkpoint(CHECKPOINT)
        self.engine = Engine.resume(cp.state if cp is not None else None, lateness,
                                    limits)
        self.engine.live = LiveState()
        self.wal = WriteAheadLog(wal_dir) if wal_dir is not None else None
        self.covered_seq = cp.offsets.get("wal", 0) if cp is not None else 0
        self.replayed = 0
        self._pending: list[Rollup] = []
        if self.wal is not None:
            self._replay()
        self.max_queued_events = max_queued_events
        self.max_pending_rollups = max_pending_rollups
        self._writing = 0  # rollups the flusher is writing now
        self.queued_events = 0
        self.overloaded = 0
        self._queue_lock = threading.Lock()
        self._lost_seen = 0
        self.retention_every = retention_every
        self._last_retention = -math.inf
        self.idle_grace = idle_grace
        self.flush_interval = flush_interval
        self._lock = threading.Lock()
        self._last_event = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.write_errors = 0
        self.last_flush_s = 0.0
        self.checkpointed_at = time.time()  # the last checkpoint stored (or the start)
        self.failing_since: float | None = None  # the store's writes have failed since then
        self.last_error = ""
        self.on_minutes = on_minutes  # gets each flush's closed 1-minute rollups (alerting)
        self.archive_dir = archive_dir
        self.archive_every = archive_every
        self._last_archive = -math.inf

    def _replay(self) -> None:
        """Aggregate what the log holds after the checkpoint (batches acknowledged but not yet
        covered by a checkpoint when the last process stopped)."""
        for seq, payload in self.wal.records(after=self.covered_seq):
            if self.wal.is_lost(seq):  # written, then refused: never acknowledged
                continue
            try:
                events = _decode(payload)
            except msgspec.DecodeError:
                log.warning("write-ahead log record %d is not a batch of events; skipped", seq)
                continue
            self._pending.extend(self.engine.process(events, source=SOURCE, tag=str(seq),
                                                     now=time.time()))
            self.covered_seq = seq
            self.replayed += len(events)
        if self.replayed:
            log.info("replayed %d acknowledged events from the write-ahead log", self.replayed)

    def reserve(self, n: int) -> None:
        """Count ``n`` events as waiting, or raise ``Overloaded`` past the bound (callers that
        queue work elsewhere first, like the API's ingest threads, reserve before queueing)."""
        with self._queue_lock:
            # a sender is here, even one refused: the stream is not idle (see flush)
            self._last_event = time.monotonic()
            waiting = len(self._pending) + self._writing
            if waiting > self.max_pending_rollups:
                self.overloaded += 1
                raise Overloaded(f"{waiting} closed rollups are waiting to be stored "
                                 f"(limit {self.max_pending_rollups}); retry shortly")
            if self.queued_events and self.queued_events + n > self.max_queued_events:
                self.overloaded += 1
                raise Overloaded(f"{self.queued_events} events are waiting to be aggregated "
                                 f"(limit {self.max_queued_events}); retry shortly")
            self.queued_events += n

    def release(self, n: int) -> None:
        with self._queue_lock:
            self.queued_events -= n
            self._last_event = time.monotonic()  # the stream is idle only from its last batch

    def submit(self, events: Sequence[Event], reserved: bool = False) -> None:
        """Aggregate a batch; with a log, return only once it is durable. Raises ``Overloaded``
        past the queue bound and ``Unavailable`` when the batch could not be made durable
        (then it is not aggregated either: a 503 never counts). ``reserved``: the caller
        already counted the batch with ``reserve``."""
        if not events:
            return
        n = len(events)
        if not reserved:
            self.reserve(n)
        try:
            if self.wal is None:
                with self._lock:
                    self.covered_seq += 1  # batches are numbered as the log would number them
                    self._pending.extend(self.engine.process(
                        list(events), source=SOURCE, tag=str(self.covered_seq), now=time.time()))
                return
            self._submit_logged(list(events))
        finally:
            self.release(n)

    def _submit_logged(self, events: list[Event]) -> None:
        """Append and aggregate in log order (under the engine's lock), then wait for the
        fsync outside it, so one batch's fsync overlaps the next batches' aggregation. If the
        fsync fails, the engine holds a batch that was never acknowledged: it is rebuilt from
        the checkpoint and the log (which no longer has that batch) before the 503."""
        payload = _encode(events)
        with self._lock:
            try:
                seq = self.wal.append(payload)
            except WalError as exc:
                raise Unavailable(str(exc)) from exc
            self._pending.extend(self.engine.process(events, source=SOURCE, tag=str(seq),
                                                     now=time.time()))
            self.covered_seq = seq
        try:
            self.wal.sync(seq)
        except WalError as exc:
            self._rebuild()
            raise Unavailable(str(exc)) from exc

    def _rebuild(self) -> None:
        """Drop the in-memory state, which may hold batches the log lost, and rebuild it from
        the last checkpoint and what the log still holds (once per loss)."""
        with self._lock:
            if self.wal.lost_count() == self._lost_seen:
                return
            self._lost_seen = self.wal.lost_count()
            cp = self.store.load_checkpoint(CHECKPOINT)
            live = self.engine.live
            self.engine = Engine.resume(cp.state if cp is not None else None,
                                        self.engine.clock.lateness, self.engine.limiter.limits)
            self.engine.live = live
            self.covered_seq = cp.offsets.get("wal", 0) if cp is not None else 0
            self._pending = []
            self._replay()
            log.warning("rebuilt the engine from the checkpoint and the write-ahead log after a "
                        "failed write (%d lost, unacknowledged batches dropped)", self._lost_seen)

    def flush(self, now: float | None = None, paced: bool = False) -> int:
        """Write closed rollups and a checkpoint; returns how many rollups were written.
        ``paced`` (the flusher's own flushes): the open group's late deltas are rewritten at
        most every ``LATE_EVERY_S`` (streams.engine)."""
        with self._lock:
            # idle: no batch waiting (one blocked behind a long flush is not idleness, and
            # moving the watermark to the wall clock then would make the stream late)
            if not self.queued_events and time.monotonic() - self._last_event >= self.idle_grace:
                newest = max(self.engine.clock.source_time.values(), default=None)
                if newest is not None:
                    wall = (now or time.time()) - self.engine.clock.lateness - self.idle_grace
                    self._pending.extend(self.engine.advance(max(newest, wall)))
            # the late deltas of the current batch group so far (see streams.engine): held
            # copies, rewritten with more by every flush until the group is complete
            held = self.engine.held_late(time.monotonic() if paced else None)
            pending, self._pending = self._pending + held, []
            self._writing = len(pending)
            notes, self.engine.annotations = self.engine.annotations, []
            state = self.engine.snapshot()
            covered = self.covered_seq
        try:
            return self._write(pending, len(held), notes, state, covered)
        finally:
            self._writing = 0

    def _write(self, pending: list[Rollup], held: int, notes: list, state: bytes,
               covered: int) -> int:
        if self.wal is not None:  # only a state whose every batch is on disk is checkpointed
            try:
                self.wal.sync(covered)
            except WalError:
                self._rebuild()
                return 0
        try:
            if notes:
                self.store.add_annotations([annotation_record(a) for a in notes])
            self.store.write(pending, checkpoint=(CHECKPOINT, Checkpoint(state, {"wal": covered})))
        except Exception as exc:
            # Keep the rollups for the next attempt: a slow or failing store delays, never loses.
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            if self.failing_since is None:
                self.failing_since = time.time()
            log.exception("writing %d rollups failed; will retry", len(pending))
            with self._lock:  # (not the held copies: the next flush takes fresh ones, of all)
                self._pending[:0] = pending[:len(pending) - held]
                self.engine.rewrite_held_late()
                self.engine.annotations[:0] = notes
            return 0
        self.failing_since = None
        self.checkpointed_at = time.time()
        if self.wal is not None:
            self.wal.covered(covered)
        if self.on_minutes is not None:
            try:
                self.on_minutes([r for r in pending if r.resolution == 60 and not r.late])
            except Exception:
                log.exception("alert evaluation of a flush failed")
        return len(pending)

    def apply_retention(self, now: float | None = None) -> int:
        """Delete rollups and rejects past the configured retention (the scheduled job)."""
        apply = getattr(self.store, "apply_retention", None)
        return apply(now or time.time()) if apply is not None else 0

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
        if self.wal is None or self.last_flush_s < self.STOP_FLUSH_BUDGET_S:
            self.flush()
        else:  # a slow checkpoint would hold up the exit; the log replays what it would cover
            log.info("skipping the final checkpoint (the last took %.1f s): the write-ahead log "
                     "covers what it would store", self.last_flush_s)
        if self.wal is not None:
            self.wal.close()

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
            self.flush(paced=True)
            self.last_flush_s = time.monotonic() - started
            # A big open state makes each checkpoint slow: keep checkpointing under ~25% of the
            # time, at the price of rollups reaching the store a little later.
            wait = max(self.flush_interval, 3 * (time.monotonic() - started))
            if time.monotonic() - self._last_retention >= self.retention_every:
                self._last_retention = time.monotonic()
                try:
                    self.apply_retention()
                except Exception:
                    log.exception("applying the retention failed; will retry")
            if time.monotonic() - self._last_archive >= self.archive_every:
                self._last_archive = time.monotonic()
                try:
                    self.archive_closed_days()
                except Exception:
                    log.exception("archiving closed days failed; will retry in %.0f s",
                                  self.archive_every)
