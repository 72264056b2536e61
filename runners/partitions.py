"""Exactly-once aggregation of a partitioned topic, independent of the Kafka client that feeds it.

Three rules give exactly-once results:

1. one engine per partition, fed one message at a time, so its output depends only on the
   partition's own message sequence (never on batch sizes, timing or which worker holds it);
2. rollups are written idempotently (shard = topic:partition; a late delta's shard also names
   the group of offsets it came from), *then* a checkpoint of the engine's open state with the
   next offset;
3. a partition (newly assigned, or after a restart) resumes from its checkpoint: state restored,
   and every message below the checkpointed offset is skipped.

A crash between 2's two writes replays messages whose rollups are already stored; the replay
rewrites the very same rows. The consumer's own committed offsets must never run ahead of the
checkpoints (the runner commits only what :meth:`Partitions.commit` reports as stored), so the
messages a restarted worker is handed start at or before its checkpoints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from schemas.decode import Reject, TimeBounds, decode_json
from schemas.events import Annotation
from store.base import Checkpoint, RejectRecord, RollupStore, annotation_record
from streams.engine import Engine
from streams.rollup import Rollup
from streams.series import Limits

log = logging.getLogger(__name__)

# (partition, offset, rejects of that message) -> sent to the dead-letter topic
DeadLetter = Callable[[int, int, list[Reject]], None]
# (shard, rollups just stored) -> published; raises if they could not be (the commit retries)
Publish = Callable[[str, list[Rollup]], None]


@dataclass
class PartitionState:
    engine: Engine
    next_offset: int
    pending: list[Rollup] = field(default_factory=list)
    dirty: bool = False


@dataclass
class PartCommit:
    rollups: list[Rollup]
    annotations: list[Annotation]
    snapshot: bytes
    next_offset: int
    held: int = 0  # the last ``held`` rollups are copies of the still-open late group


@dataclass
class CommitBatch:
    """What one commit writes, taken from the engines at one instant (see :meth:`prepare`)."""

    rejects: list[RejectRecord]
    parts: dict[int, PartCommit] = field(default_factory=dict)


class Partitions:
    """The engines of the partitions this worker holds, and their commits to the store."""

    def __init__(self, store: RollupStore, topic: str, group: str, dead_letter: DeadLetter,
                 lateness: float = 5.0, limits: Limits | None = None,
                 on_minutes: Callable[[list[Rollup]], None] | None = None,
                 publish: Publish | None = None, time_bounds: TimeBounds | None = None) -> None:
        self.store = store
        self.topic = topic
        self.group = group
        self.dead_letter = dead_letter
        self.lateness = lateness
        self.limits = limits
        # Gets the closed 1-minute rollups once stored (alerting: pools are keyed to partitions,
        # so the worker that owns a partition sees each of its pools whole).
        self.on_minutes = on_minutes
        self.publish = publish  # stored rollups go here before their checkpoint is written
        self.time_bounds = time_bounds or TimeBounds()
        self.held: dict[int, PartitionState] = {}
        self.stats = {"messages": 0, "events": 0, "rejects": 0, "skipped": 0,
                      "store_failures": 0}
        self._pending_rejects: list[RejectRecord] = []

    def checkpoint_name(self, partition: int) -> str:
        return f"{self.group}:{self.topic}:{partition}"

    def resume(self, partition: int) -> PartitionState:
        """The partition's state from its checkpoint (a fresh engine if it has none)."""
        cp = self.store.load_checkpoint(self.checkpoint_name(partition))
        engine = Engine.resume(cp.state if cp is not None else None, self.lateness,
                               self.limits)
        state = PartitionState(engine, cp.offsets[f"{self.topic}:{partition}"] if cp else 0)
        log.info("partition %d resumes at offset %d", partition, state.next_offset)
        self.held[partition] = state
        return state

    def handle(self, partition: int, offset: int, value: bytes | None,
               timestamp: float | None = None) -> None:
        """One message. Messages below the checkpointed offset are already in the state.

        The message's own timestamp is the clock its events are judged by (times too far
        ahead of it are rejected, and the watermark never passes it), so a replay judges
        them exactly as the first pass did; the wall clock only caps a timestamp that is
        itself ahead (a producer with a wrong clock)."""
        state = self.held.get(partition) or self.resume(partition)
        if offset < state.next_offset:
            self.stats["skipped"] += 1
            return
        now = time.time()
        if timestamp and timestamp > 0:
            now = min(timestamp, now)
        decoded = decode_json(value or b"", self.time_bounds.window(now))
        if decoded.rejects:
            self.dead_letter(partition, offset, decoded.rejects)
            where = f"kafka:{self.topic}/{partition}@{offset}"
            now = time.time()
            self._pending_rejects.extend(RejectRecord(now, f"{where}#{r.index}", r.reason, r.raw)
                                         for r in decoded.rejects)
            self.stats["rejects"] += len(decoded.rejects)
        if decoded.events:
            state.pending += state.engine.process(decoded.events, source=str(partition),
                                                  tag=str(offset), now=now)
        state.next_offset = offset + 1
        state.dirty = True
        self.stats["messages"] += 1
        self.stats["events"] += len(decoded.events)

    def pending_rollups(self) -> int:
        return sum(len(s.pending) for s in self.held.values())

    def commit(self, partitions: set[int] | None = None) -> dict[int, int] | None:
        """:meth:`prepare` and :meth:`write` in one go (and :meth:`restore` if the write fails).
        Returns the next offset of every partition now covered by a stored checkpoint (what the
        consumer may commit), or None if the store failed (nothing is lost: the state and the
        pending rollups stay, to retry)."""
        batch = self.prepare(partitions)
        if batch is None:
            return {}
        done = self.write(batch)
        if done is None:
            self.restore(batch)
        return done

    def prepare(self, partitions: set[int] | None = None, paced: bool = False
                ) -> CommitBatch | None:
        """Take what a commit writes out of the engines: pending rollups, rejects, annotations
        and a snapshot of each dirty partition. CPU only, no I/O, so a runner can take it while
        holding the engines and write it on another thread while the engines go on. ``paced``
        (a worker's periodic commits): the open group's late deltas at most every
        ``LATE_EVERY_S`` (streams.engine)."""
        # a partition whose late deltas a paced commit deferred is dirty too: with no new
        # message they would otherwise wait, unwritten, for the next one
        dirty = {p: s for p, s in self.held.items()
                 if (s.dirty or s.engine.late_unwritten())
                 and (partitions is None or p in partitions)}
        if not dirty and not self._pending_rejects:
            return None
        batch = CommitBatch(self._pending_rejects)
        self._pending_rejects = []
        for p, s in dirty.items():
            # the late deltas of the current offset group so far: rewritten, with more, by
            # every commit until the group is complete (see streams.engine)
            held = s.engine.held_late(time.monotonic() if paced else None)
            batch.parts[p] = PartCommit(s.pending + held, s.engine.annotations,
                                        s.engine.snapshot(), s.next_offset, len(held))
            s.pending, s.engine.annotations, s.dirty = [], [], False
        return batch

    def write(self, batch: CommitBatch) -> dict[int, int] | None:
        """Store a prepared batch: per partition its rollups, then (once published) its
        checkpoint. Returns the offsets now covered, or None if the store failed."""
        try:
            if batch.rejects:
                self.store.add_rejects(batch.rejects)
            for p, part in batch.parts.items():
                if part.annotations:  # ids are content-derived: replays rewrite, not add
                    self.store.add_annotations([annotation_record(a) for a in part.annotations])
                self.store.write(part.rollups, shard=f"{self.topic}:{p}")
                if self.publish is not None and part.rollups:
                    self.publish(f"{self.topic}:{p}", part.rollups)
                self.store.write([], checkpoint=(self.checkpoint_name(p), Checkpoint(
                    part.snapshot, {f"{self.topic}:{p}": part.next_offset})))
        except Exception:
            self.stats["store_failures"] += 1
            log.exception("store write failed; holding the state until it recovers")
            return None
        minutes = [r for part in batch.parts.values() for r in part.rollups
                   if r.resolution == 60 and not r.late]
        if self.on_minutes is not None and minutes:
            self.on_minutes(minutes)
        return {p: part.next_offset for p, part in batch.parts.items()}

    def restore(self, batch: CommitBatch) -> None:
        """Put back what a failed write took, ahead of anything newer, for the next commit
        (partitions released meanwhile are dropped: their next owner replays them)."""
        self._pending_rejects[:0] = batch.rejects
        for p, part in batch.parts.items():
            s = self.held.get(p)
            if s is not None:
                # not the open group's copies: the next commit takes fresh ones, of all of it
                s.pending[:0] = part.rollups[:len(part.rollups) - part.held]
                s.engine.rewrite_held_late()
                s.engine.annotations[:0] = part.annotations
                s.dirty = True

    def release(self, partitions: set[int]) -> None:
        """Partitions moved to another worker: forget them (after a final :meth:`commit`)."""
        for p in partitions:
            self.held.pop(p, None)
