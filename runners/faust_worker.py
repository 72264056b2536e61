"""The distributed stream worker: a Faust app whose agent feeds ``snakepit.events`` to one engine
per partition (``runners.partitions``), in a consumer group whose partitions spread over any
number of worker processes and hosts.

Faust does the consuming, the group membership and the offset commits; the engine and the
exactly-once bookkeeping stay framework-free. The agent's stream does not acknowledge messages
by itself: a message is acknowledged (so Faust may commit its offset) only once a stored
checkpoint covers it, which keeps Kafka's committed offsets at or behind the checkpoints, where
a restarted or rebalanced worker must begin. Dead letters and closed rollups (to
``snakepit.rollups``) go through a confluent-kafka producer that is flushed before each
checkpoint, so a checkpoint never covers an undelivered reject or rollup.

A failing store blocks the agent until a checkpoint can be written again: Faust's buffers fill
and it stops fetching (backpressure), group heartbeats go on, and nothing is dropped. (Faust's
``pause_partitions`` is not used for this: it discards records already fetched.) A commit is
taken from the engines in one step (rollups, snapshots: CPU only) and written on a thread while
the agent goes on, so the event loop stays responsive and keeps consuming while Cassandra is
slow; one commit is in flight at a time.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faust
from confluent_kafka import KafkaException, Producer
from faust.types import TP

from runners.partitions import CommitBatch, Partitions
from runners.rollup_message import rollup_message
from schemas.decode import Reject, TimeBounds
from store.base import RollupStore
from streams.rollup import Rollup
from streams.series import Limits

log = logging.getLogger(__name__)


class FaustWorker:
    """One worker process of the group: ``run()`` until told to stop (tests and the bench run
    it on a thread; ``snakepit-perf worker`` on the main thread)."""

    QUIET = 0.1  # s without a message after which the stream counts as caught up

    def __init__(self, store: RollupStore, bootstrap: str, topic: str = "snakepit.events",
                 group: str = "snakepit-perf-workers", dlq_topic: str = "snakepit.events.dlq",
                 lateness: float = 5.0, commit_interval: float = 1.0,
                 max_pending_rollups: int = 200_000, limits: Limits | None = None,
                 on_minutes: Callable[[list[Rollup]], None] | None = None,
                 data_dir: Path | None = None, rollups_topic: str | None = None,
                 time_bounds: TimeBounds | None = None) -> None:
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.rollups_topic = rollups_topic
        self.max_pending_rollups = max_pending_rollups
        self.partitions = Partitions(store, topic, group, self._dead_letter, lateness,
                                     limits, on_minutes,
                                     self._publish if rollups_topic else None, time_bounds)
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                                   "enable.idempotence": True, "compression.type": "lz4"})
        self._held: list[Any] = []  # events handled, not yet covered by a stored checkpoint
        self._lock: asyncio.Lock | None = None  # engines are touched by one party at a time
        self._commit_lock: asyncio.Lock | None = None  # one commit in flight at a time
        self._failures = 0
        self.commit_interval = commit_interval
        self._next_commit = self._paced_until = 0.0
        self._dirty = False  # events handled since the last commit was taken
        self._last_message = 0.0
        self._stopping = False
        # Store writes run on a thread of the worker's own (one per run), not the loop's
        # default executor: that one may already be shut down when the final commit runs.
        self._writer: ThreadPoolExecutor | None = None
        self.app = faust.App(
            group, broker=f"kafka://{bootstrap}", autodiscover=False, web_enabled=False,
            # Faust keeps table files here; this app has no tables, so nothing of value.
            datadir=str(data_dir or Path(tempfile.gettempdir()) / "snakepit-perf-faust"),
            topic_disable_leader=True, store="memory://", consumer_auto_offset_reset="earliest",
            stream_wait_empty=False, broker_commit_interval=commit_interval,
            consumer_max_fetch_size=16 * 1024 * 1024, broker_max_poll_records=1000,
            # A crashed worker's partitions move on after 10 s rather than the 60 s default.
            broker_session_timeout=10.0, broker_heartbeat_interval=2.0)
        events = self.app.topic(topic, key_type=bytes, value_type=bytes,
                                key_serializer="raw", value_serializer="raw")
        self.app.agent(events, name="aggregate")(self._aggregate)
        self.app.timer(self.QUIET, name="checkpoint")(self._checkpoint)
        self.app.on_partitions_revoked.connect(self._on_revoked)

    @property
    def stats(self) -> dict[str, int]:
        return self.partitions.stats

    # -- the agent ----------------------------------------------------------------------------

    async def _aggregate(self, stream: faust.StreamT) -> None:
        async for event in stream.noack().events():
            message = event.message
            if message.tp not in self.app.consumer.assignment():
                continue  # fetched before its partition moved to another worker
            while not await self._resume(message.partition):  # the store is down: wait
                await asyncio.sleep(min(5.0, 0.5 * self._failures))
            async with self._engines():
                self.partitions.handle(message.partition, message.offset, message.value,
                                       message.timestamp)
                self._held.append(event)
                self._dirty, self._last_message = True, time.monotonic()
            if self._failures or self.partitions.pending_rollups() > self.max_pending_rollups:
                while not await self._commit():  # backpressure: wait for the store
                    await asyncio.sleep(min(5.0, 0.5 * self._failures))

    async def _resume(self, partition: int) -> bool:
        """The partition's state is loaded (from its checkpoint if it is new here). A store that
        cannot be read must not cost the message: the agent retries it, never skips it."""
        async with self._engines():
            if partition in self.partitions.held:
                return True
            try:
                await asyncio.get_running_loop().run_in_executor(
                    None, self.partitions.resume, partition)
            except Exception:
                self._failures += 1
                log.exception("loading the checkpoint of partition %d failed; retrying",
                              partition)
                return False
            return True

    async def _checkpoint(self) -> None:
        """Ticks often; commits every ``commit_interval``, or at once when the stream has gone
        quiet (so the last rollups of a burst are stored without waiting for the interval)."""
        if self._stopping:
            return
        now = time.monotonic()
        quiet = (self._dirty and not self._failures and now >= self._paced_until
                 and now - self._last_message >= self.QUIET)
        if (quiet or now >= self._next_commit) and not self._committing().locked():
            await self._commit()

    def _engines(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _committing(self) -> asyncio.Lock:
        if self._commit_lock is None:
            self._commit_lock = asyncio.Lock()
        return self._commit_lock

    async def _commit(self, paced: bool = True) -> bool:
        """Store rollups and checkpoints, then acknowledge the events they cover.

        The commit is taken from the engines at one instant (a snapshot, CPU only) and written
        on a thread while the agent goes on; one commit is in flight at a time. Taking the
        snapshot is paced to at most ~25% of the agent's time, so a big open state costs more
        replay after a crash, never throughput."""
        async with self._committing():
            async with self._engines():
                started = time.monotonic()
                batch = self.partitions.prepare(paced=paced)
                held, self._held = self._held, []
                self._dirty = False
                took = time.monotonic() - started
            self._paced_until = time.monotonic() + 3 * took
            self._next_commit = time.monotonic() + max(self.commit_interval, 3 * took)
            loop = asyncio.get_running_loop()
            done = await loop.run_in_executor(self._writer, self._store, batch)
            if done is None:
                async with self._engines():
                    if batch is not None:
                        self.partitions.restore(batch)
                    self._held[:0] = held
                    self._dirty = True
                self._failures += 1
                return False
            for event in held:
                event.ack()
            if self._failures:
                log.info("store writes recovered after %d failed attempts", self._failures)
                self._failures = 0
            return True

    def _store(self, batch: CommitBatch | None) -> dict[int, int] | None:
        if self._producer.flush(30) > 0:
            log.error("dead-letter messages not delivered; checkpoint postponed")
            return None
        return {} if batch is None else self.partitions.write(batch)

    async def _on_revoked(self, app: faust.App, revoked: set[TP], **_: Any) -> None:
        # If the store is down, or this worker is stopping (its final commit is done, and the
        # loop's threads may be gone), the next owner replays from the last checkpoint.
        if not self._stopping:
            await self._commit()
        async with self._engines():
            gone = {tp.partition for tp in revoked if tp.topic == self.topic}
            self.partitions.release(gone)
            # never acknowledge what no stored checkpoint covers
            self._held = [e for e in self._held if e.message.partition not in gone]

    def _dead_letter(self, partition: int, offset: int, rejects: list[Reject]) -> None:
        where = f"kafka:{self.topic}/{partition}@{offset}"
        for r in rejects:
            self._producer.produce(self.dlq_topic, r.raw, key=f"{where}#{r.index}".encode(),
                                   headers={"reason": r.reason.encode(),
                                            "source": where.encode(),
                                            "index": str(r.index).encode()})
        self._producer.poll(0)

    def _publish(self, shard: str, rollups: list[Rollup]) -> None:
        """Closed rollups to the rollups topic, delivered before their checkpoint is written
        (so none is missed after a crash; a replay re-sends some, under the same keys)."""
        for r in rollups:
            key, value = rollup_message(r, shard)
            while True:
                try:
                    self._producer.produce(self.rollups_topic, value, key=key)
                    break
                except BufferError:  # the local queue is full: let it drain
                    self._producer.poll(0.1)
        if self._producer.flush(30) > 0:
            raise KafkaException(f"rollups not delivered to {self.rollups_topic}")

    # -- running ------------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Run until ``should_stop()``; a final checkpoint is written on the way out."""
        asyncio.run(self._run(should_stop))

    async def _run(self, should_stop: Callable[[], bool]) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        await self.app.start()
        try:
            while not should_stop() and not self.app.should_stop:
                await asyncio.sleep(0.05)
            await self._commit(paced=False)  # the last one: every late delta held, too
        finally:
            self._stopping = True
            await self.app.stop()
            self._producer.flush(30)
            self._writer.shutdown()
