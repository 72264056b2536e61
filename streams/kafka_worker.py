"""The distributed stream worker: a Kafka consumer group member running one engine per partition.

Exactly-once results come from three rules:

1. one engine per partition, fed one message at a time, so its output depends only on the
   partition's own message sequence (never on batch sizes, timing or which worker holds it);
2. rollups are written idempotently (shard = topic:partition; a late delta's shard also names
   the offset it came from), *then* a checkpoint of the engine's open state with the next offset;
3. on assignment a partition resumes from its checkpoint: state restored, consumer seeked.

A crash between 2's two writes replays messages whose rollups are already stored; the replay
rewrites the very same rows. Kafka's own committed offsets are updated too, but only so that
consumer-lag tools work; recovery never reads them.

A slow or failing store stops the worker from checkpointing and pauses consumption
(backpressure); nothing is dropped and writing resumes when the store answers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from schemas.decode import decode_json
from store.base import Checkpoint, RejectRecord, RollupStore, annotation_record
from streams.engine import Engine, Rollup

log = logging.getLogger(__name__)


@dataclass
class PartitionState:
    engine: Engine
    next_offset: int
    pending: list[Rollup] = field(default_factory=list)
    dirty: bool = False


class KafkaWorker:
    def __init__(self, store: RollupStore, bootstrap: str, topic: str = "snakepit.events",
                 group: str = "snakepit-perf-workers", dlq_topic: str = "snakepit.events.dlq",
                 lateness: float = 5.0, commit_interval: float = 1.0,
                 max_pending_rollups: int = 200_000, max_label_values: int = 1000,
                 on_minutes: Callable[[list[Rollup]], None] | None = None) -> None:
        self.store = store
        self.topic = topic
        self.group = group
        self.dlq_topic = dlq_topic
        self.lateness = lateness
        self.commit_interval = commit_interval
        self.max_pending_rollups = max_pending_rollups
        self.max_label_values = max_label_values
        # Gets the closed 1-minute rollups once stored (alerting: pools are keyed to partitions,
        # so the worker that owns a partition sees each of its pools whole).
        self.on_minutes = on_minutes
        self.partitions: dict[int, PartitionState] = {}
        self.stats = {"messages": 0, "events": 0, "rejects": 0, "store_failures": 0}
        self._paused = False
        self._pending_rejects: list[RejectRecord] = []
        self._consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False,
            "fetch.max.bytes": 64 * 1024 * 1024, "max.partition.fetch.bytes": 16 * 1024 * 1024,
            # A crashed worker's partitions move on after 10 s rather than the 45 s default.
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000,
        })
        self._dlq = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                              "enable.idempotence": True})

    # -- assignment -------------------------------------------------------------------------

    def _checkpoint_name(self, partition: int) -> str:
        return f"{self.group}:{self.topic}:{partition}"

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            cp = self.store.load_checkpoint(self._checkpoint_name(tp.partition))
            if cp is None:
                engine = Engine(lateness=self.lateness, max_label_values=self.max_label_values)
                tp.offset = OFFSET_BEGINNING
                next_offset = 0
            else:
                engine = Engine.restore(cp.state, self.max_label_values)
                next_offset = cp.offsets[f"{self.topic}:{tp.partition}"]
                tp.offset = next_offset
            self.partitions[tp.partition] = PartitionState(engine, next_offset)
        log.info("assigned partitions %s", [(tp.partition, tp.offset) for tp in partitions])
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._commit(force=True)
        for tp in partitions:
            self.partitions.pop(tp.partition, None)
        consumer.unassign()

    # -- the loop ---------------------------------------------------------------------------

    def run(self, should_stop=lambda: False, max_messages: int | None = None) -> None:
        self._consumer.subscribe([self.topic], on_assign=self._on_assign,
                                 on_revoke=self._on_revoke)
        last_commit = time.monotonic()
        try:
            while not should_stop():
                msgs = [] if self._paused else self._consumer.consume(1000, timeout=0.2)
                for msg in msgs:
                    if msg.error() is not None:
                        log.warning("consume error: %s", msg.error())
                        continue
                    self._handle(msg)
                if self._paused:  # keep group membership alive; handle anything already fetched
                    msg = self._consumer.poll(0.2)
                    if msg is not None and msg.error() is None:
                        self._handle(msg)
                if time.monotonic() - last_commit >= self.commit_interval or self._too_much():
                    self._commit()
                    last_commit = time.monotonic()
                if max_messages is not None and self.stats["messages"] >= max_messages:
                    break
            self._commit(force=True)
        finally:
            self._consumer.close()
            self._dlq.flush(30)

    def _handle(self, msg) -> None:
        state = self.partitions.get(msg.partition())
        if state is None or msg.offset() < state.next_offset:
            return  # not ours any more, or already covered by the restored state
        decoded = decode_json(msg.value() or b"")
        if decoded.rejects:
            self._reject(msg, decoded.rejects)
        if decoded.events:
            state.pending += state.engine.process(decoded.events, source=str(msg.partition()),
                                                  tag=str(msg.offset()))
        state.next_offset = msg.offset() + 1
        state.dirty = True
        self.stats["messages"] += 1
        self.stats["events"] += len(decoded.events)

    def _reject(self, msg, rejects) -> None:
        where = f"kafka:{msg.topic()}/{msg.partition()}@{msg.offset()}"
        now = time.time()
        for r in rejects:
            self._dlq.produce(self.dlq_topic, r.raw, key=f"{where}#{r.index}".encode(),
                              headers={"reason": r.reason.encode(), "source": where.encode(),
                                       "index": str(r.index).encode()})
        self._dlq.poll(0)
        self._pending_rejects.extend(RejectRecord(now, f"{where}#{r.index}", r.reason, r.raw)
                                     for r in rejects)
        self.stats["rejects"] += len(rejects)

    def _too_much(self) -> bool:
        return sum(len(s.pending) for s in self.partitions.values()) > self.max_pending_rollups

    def _commit(self, force: bool = False) -> bool:
        """Write pending rollups, then checkpoints; pause consuming while the store fails."""
        dirty = {p: s for p, s in self.partitions.items() if s.dirty}
        if not dirty and not self._pending_rejects:
            return True
        try:
            if self._dlq.flush(30) > 0:
                raise KafkaException("dead-letter messages not delivered")
            if self._pending_rejects:
                self.store.add_rejects(self._pending_rejects)
                self._pending_rejects = []
            minutes: list[Rollup] = []
            for p, s in dirty.items():
                minutes += [r for r in s.pending if r.resolution == 60 and not r.late]
                if s.engine.annotations:  # ids are content-derived: replays rewrite, not add
                    self.store.add_annotations([annotation_record(a)
                                                for a in s.engine.annotations])
                    s.engine.annotations = []
                self.store.write(s.pending, shard=f"{self.topic}:{p}")
                s.pending = []
                self.store.write([], checkpoint=(self._checkpoint_name(p), Checkpoint(
                    s.engine.snapshot(), {f"{self.topic}:{p}": s.next_offset})))
                s.dirty = False
        except Exception:
            self.stats["store_failures"] += 1
            log.exception("store write failed; pausing consumption until it recovers")
            if not self._paused and self._consumer.assignment():
                self._consumer.pause(self._consumer.assignment())
                self._paused = True
            time.sleep(min(5.0, 0.5 * self.stats["store_failures"]))
            return False
        if self.on_minutes is not None and minutes:
            self.on_minutes(minutes)
        if self._paused:
            self._consumer.resume(self._consumer.assignment())
            self._paused = False
            log.info("store writes recovered; consumption resumed")
        offsets = [TopicPartition(self.topic, p, s.next_offset) for p, s in dirty.items()]
        if offsets:
            try:
                self._consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException as exc:  # lag visibility only; recovery never reads these
                log.debug("offset commit failed: %s", exc)
        return True
