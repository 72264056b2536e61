"""The exactly-once bookkeeping of the distributed worker, without a broker (the Faust runner
around it is tested against the real Kafka and Cassandra in tests/integration)."""

from __future__ import annotations

import msgspec

from harness.data import T0, requests
from runners.partitions import Partitions
from store.sqlite import SQLiteStore


def _messages(n: int = 40, per: int = 100) -> list[bytes]:
    events = requests(n * per, 120)
    return [msgspec.json.encode(events[i:i + per]) for i in range(0, n * per, per)]


class FlakyStore(SQLiteStore):
    failing = False

    def write(self, *args, **kwargs):
        if self.failing:
            raise ConnectionError("store down")
        return super().write(*args, **kwargs)


def test_a_resumed_partition_skips_what_its_checkpoint_covers(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    msgs = _messages()
    first = Partitions(store, "t", "g", dead_letter=lambda *a: None)
    for offset, m in enumerate(msgs[:25]):
        first.handle(0, offset, m)
    assert first.commit() == {0: 25}
    for offset, m in enumerate(msgs[25:30], start=25):
        first.handle(0, offset, m)  # processed, never checkpointed: a crash loses it here
    again = Partitions(store, "t", "g", dead_letter=lambda *a: None)
    for offset, m in enumerate(msgs):  # the consumer replays from an older committed offset
        again.handle(0, offset, m)
    assert again.stats["skipped"] == 25 and again.stats["events"] == 15 * 100
    assert again.held[0].next_offset == len(msgs)


def test_a_failed_commit_keeps_everything_for_the_next_one(tmp_path):
    store = FlakyStore(tmp_path / "b.sqlite3")
    parts = Partitions(store, "t", "g", dead_letter=lambda *a: None)
    for offset, m in enumerate(_messages()):
        parts.handle(offset % 2, offset // 2, m)
    store.failing = True
    assert parts.commit() is None and parts.stats["store_failures"] == 1
    store.failing = False
    assert parts.commit() == {0: 20, 1: 20}
    assert store.load_checkpoint("g:t:1").offsets == {"t:1": 20}


def test_rejects_go_to_the_dead_letter_callback_with_their_offset(tmp_path):
    store = SQLiteStore(tmp_path / "c.sqlite3")
    letters = []
    parts = Partitions(store, "t", "g", dead_letter=lambda p, o, r: letters.append((p, o, r)))
    parts.handle(3, 7, b'[{"type": "request", "time": %d, "pool": "p"}]' % T0)
    (partition, offset, rejects), = letters
    assert (partition, offset) == (3, 7) and "command" in rejects[0].reason
    assert parts.commit() == {3: 8}


def test_stored_rollups_are_published_before_their_checkpoint(tmp_path):
    store = SQLiteStore(tmp_path / "d.sqlite3")
    sent: list[tuple[str, int, bool]] = []
    fail = [True]

    def publish(shard, rollups):
        if fail[0]:
            raise ConnectionError("broker down")
        sent.append((shard, len(rollups), store.checkpoint_offsets("g:t:0") is None))

    parts = Partitions(store, "t", "g", dead_letter=lambda *a: None, publish=publish)
    for offset, m in enumerate(_messages()):
        parts.handle(0, offset, m)
    assert parts.commit() is None, "an unpublished rollup is not checkpointed"
    assert store.checkpoint_offsets("g:t:0") is None
    fail[0] = False
    assert parts.commit() == {0: 40}
    (shard, n, before_checkpoint), = sent
    assert shard == "t:0" and n > 0 and before_checkpoint


def _rollup_rows(store: SQLiteStore) -> list[tuple]:
    return store._db.execute("SELECT * FROM rollups ORDER BY 1, 2, 3, 4, 5").fetchall()


def test_a_write_that_fails_while_the_engines_go_on_loses_nothing(tmp_path):
    msgs = _messages()
    reference = SQLiteStore(tmp_path / "ref.sqlite3")
    ref = Partitions(reference, "t", "g", dead_letter=lambda *a: None)
    for offset, m in enumerate(msgs):
        ref.handle(0, offset, m)
    assert ref.commit() == {0: 40}

    store = FlakyStore(tmp_path / "e.sqlite3")
    parts = Partitions(store, "t", "g", dead_letter=lambda *a: None)
    for offset, m in enumerate(msgs[:30]):
        parts.handle(0, offset, m)
    batch = parts.prepare()  # taken; the write runs on another thread ...
    for offset, m in enumerate(msgs[30:], start=30):
        parts.handle(0, offset, m)  # ... while the engine goes on
    store.failing = True
    assert parts.write(batch) is None
    parts.restore(batch)
    store.failing = False
    assert parts.commit() == {0: 40}
    assert _rollup_rows(store) == _rollup_rows(reference) != []
    assert store.load_checkpoint("g:t:0").state == reference.load_checkpoint("g:t:0").state


def test_late_deltas_held_by_a_paced_commit_are_written_once_the_stream_is_quiet(
        tmp_path, monkeypatch):
    """A paced commit defers the open group's late deltas; a later commit with no new message
    must still write them (else they wait, invisible, for the next message), and so must the
    worker's last one on the way out."""
    import time

    import streams.engine as engine_module

    store = SQLiteStore(tmp_path / "d.sqlite3")
    parts = Partitions(store, "t", "g", dead_letter=lambda *a: None)
    events = requests(2000, 120)
    parts.handle(0, 0, msgspec.json.encode(events[1000:]))  # the later minute first
    late = events[:1000]  # then the earlier one: late
    parts.handle(0, 1, msgspec.json.encode(late[:500]))
    batch = parts.prepare(paced=True)
    parts.write(batch)
    parts.handle(0, 2, msgspec.json.encode(late[500:]))

    def stored() -> float:  # the first minute's 10 s rows (all closed: its events are late)
        refs = [r for r in store.series("request") if r.labels[0] == "__all__"]
        return sum(r.agg.counters.get("requests", 0)
                   for r in store.read(refs, 10, int(late[0].time) // 10 * 10,
                                       int(late[-1].time) // 10 * 10))

    batch = parts.prepare(paced=True)  # within LATE_EVERY_S of the last: deferred
    if batch is not None:
        parts.write(batch)
    deferred = stored()
    clock = time.monotonic() + engine_module.LATE_EVERY_S + 1
    monkeypatch.setattr("runners.partitions.time.monotonic", lambda: clock)
    batch = parts.prepare(paced=True)  # no new message since
    assert batch is not None
    parts.write(batch)
    whole = sum(1 for e in late if e.time < int(late[-1].time) // 10 * 10)
    assert deferred < whole == stored()
