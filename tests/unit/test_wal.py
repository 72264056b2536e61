"""The write-ahead log: records survive, torn and corrupt tails are cut off and reported, a failed
fsync is never acknowledged nor replayed, covered segments are deleted; the runner replays it."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from harness.data import T0, requests
from runners import wal as wal_module
from runners.embedded import EmbeddedRunner, Unavailable
from runners.wal import WalError, WriteAheadLog
from store.sqlite import SQLiteStore


def test_records_round_trip_in_order(tmp_path: Path):
    log = WriteAheadLog(tmp_path)
    seqs = [log.append(f"batch {i}".encode()) for i in range(5)]
    log.sync(seqs[-1])
    log.close()
    again = WriteAheadLog(tmp_path)
    assert list(again.records()) == [(s, f"batch {i}".encode()) for i, s in enumerate(seqs)]
    assert list(again.records(after=seqs[2])) == [(seqs[3], b"batch 3"), (seqs[4], b"batch 4")]
    assert again.append(b"next") == seqs[-1] + 1


@pytest.mark.parametrize("damage", ["torn", "flipped"])
def test_a_damaged_tail_is_reported_and_cut_off_never_fatal(tmp_path: Path, damage: str):
    log = WriteAheadLog(tmp_path)
    for i in range(3):
        log.sync(log.append(f"batch {i}".encode()))
    log.close()
    (_, path), = log.segments()
    data = path.read_bytes()
    if damage == "torn":
        path.write_bytes(data[:-3])
    else:
        path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    again = WriteAheadLog(tmp_path)
    assert [p for _, p in again.records()] == [b"batch 0", b"batch 1"]
    assert again.corrupt_records >= 1
    again.sync(again.append(b"after"))
    again.close()
    assert [p for _, p in WriteAheadLog(tmp_path).records()] == [b"batch 0", b"batch 1", b"after"]


def test_a_failed_fsync_is_not_acknowledged_and_never_replayed(tmp_path: Path, monkeypatch):
    log = WriteAheadLog(tmp_path)
    log.sync(log.append(b"kept"))
    seq = log.append(b"lost")
    real = wal_module.os.fdatasync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_module.os, "fdatasync", full)
    with pytest.raises(WalError):
        log.sync(seq)
    monkeypatch.setattr(wal_module.os, "fdatasync", real)
    later = log.append(b"later")
    assert later > seq  # numbers are never reused
    log.sync(later)
    with pytest.raises(WalError):
        log.sync(seq)  # still refused: its record is gone
    log.close()
    assert [p for _, p in WriteAheadLog(tmp_path).records()] == [b"kept", b"later"]


def test_a_nearly_full_disk_refuses_before_writing(tmp_path: Path):
    log = WriteAheadLog(tmp_path, min_free_bytes=1 << 62)
    with pytest.raises(WalError, match="disk almost full"):
        log.append(b"x")
    assert list(log.records()) == []


def test_covered_segments_are_deleted(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(wal_module, "SEGMENT_BYTES", 64)
    log = WriteAheadLog(tmp_path)
    seqs = [log.append(b"x" * 50) for _ in range(6)]
    log.sync(seqs[-1])
    assert len(log.segments()) == 6
    assert log.covered(seqs[2]) == 3
    assert [s for s, _ in log.records()] == seqs[3:]


def test_the_runner_replays_what_no_checkpoint_covers(tmp_path: Path):
    events = requests(3000, 30)
    store = SQLiteStore(tmp_path / "a.sqlite3")
    runner = EmbeddedRunner(store, wal_dir=tmp_path / "wal")
    for i in range(0, 3000, 500):
        runner.submit(events[i:i + 500])
    runner.flush()  # a checkpoint covers the first 3000
    more = requests(1000, 10, start=T0 + 30, seed=2)
    runner.submit(more)  # acknowledged, not checkpointed: then the process dies
    runner.wal.close()
    again = EmbeddedRunner(store, wal_dir=tmp_path / "wal")
    assert again.replayed == 1000
    again.close_all()
    total = sum(r.agg.counters.get("requests", 0)
                for r in store.read([s for s in store.series("request") if s.labels[0] == "__all__"],
                                    60, T0 - 60, T0 + 3600))
    assert total == 4000


def test_a_store_that_cannot_write_makes_health_fail_and_ingest_still_durable(tmp_path: Path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    runner = EmbeddedRunner(store, wal_dir=tmp_path / "wal")
    app = create_app(Services(store=store, sink=runner, engine=runner.engine, runner=runner))
    client = TestClient(app)
    assert client.get("/health").status_code == 200

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    store.write = broken
    runner.submit(requests(100, 1))
    assert runner.flush() == 0
    r = client.get("/health")
    assert r.status_code == 503 and "No space left" in r.json()["detail"]
    del store.write
    runner.flush()
    assert client.get("/health").status_code == 200


def test_unavailable_when_the_log_cannot_take_the_batch(tmp_path: Path):
    runner = EmbeddedRunner(SQLiteStore(tmp_path / "a.sqlite3"), wal_dir=tmp_path / "wal")
    runner.wal.min_free_bytes = 1 << 62
    with pytest.raises(Unavailable):
        runner.submit(requests(10, 1))
    assert runner.engine.stats["events"] == 0 and runner.queued_events == 0


def test_a_failed_fsync_leaves_no_trace_of_its_batch_in_what_is_stored(tmp_path: Path,
                                                                       monkeypatch):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    runner = EmbeddedRunner(store, wal_dir=tmp_path / "wal")
    runner.submit(requests(500, 5))
    runner.flush()
    runner.submit(requests(300, 5, start=T0 + 5, seed=3))
    real = wal_module.os.fdatasync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(wal_module.os, "fdatasync", full)
    with pytest.raises(Unavailable):
        runner.submit(requests(200, 5, start=T0 + 10, seed=4))  # refused: must never count
    monkeypatch.setattr(wal_module.os, "fdatasync", real)
    runner.submit(requests(100, 5, start=T0 + 15, seed=5))
    runner.close_all()
    total = sum(r.agg.counters.get("requests", 0)
                for r in store.read([s for s in store.series("request") if s.labels[0] == "__all__"],
                                    60, T0 - 60, T0 + 3600))
    assert total == 500 + 300 + 100  # every acknowledged batch, and not the refused one
