"""A write-ahead log of accepted batches: what the embedded runner acknowledged survives a kill.

Each batch is one record, ``[length u32][crc32 u32][seq u64][payload]``, appended to the current
segment (``<first seq>.wal``) and fsynced before ingest answers 202. Fsyncs are grouped: a
writer whose record was covered by another writer's fsync does not fsync again, so concurrent
requests share the disk's flush (as Prometheus's WAL and Kafka's log do). On start, records
after the checkpoint's sequence number are replayed; segments a checkpoint covers are deleted.
A torn or corrupt record (a crash mid-write, a bad disk) ends its segment's replay: it is
reported and cut off, never a reason not to start.

A failed write or fsync (a full disk) is not acknowledged, and the segment is cut back to its
last synced record, so an unacknowledged batch is never replayed; the next append starts a new
segment, so the log recovers by itself once space returns.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">IIQ")  # payload length, crc32 of seq + payload, seq
SEGMENT_BYTES = 64 * 1024 * 1024


class WalError(OSError):
    """The batch could not be made durable; it was not acknowledged."""


class WriteAheadLog:
    def __init__(self, directory: Path, min_free_bytes: int = 16 * 1024 * 1024) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.min_free_bytes = min_free_bytes
        self.lock = threading.Lock()  # appends
        self.sync_lock = threading.Lock()  # one fsync at a time
        self.corrupt_records = 0
        self.next_seq = 1
        self.written_seq = 0  # last seq written to the file
        self.synced_seq = 0  # last seq known on disk
        self._lost: set[int] = set()  # written, then cut back after a failed write or fsync
        self._file = None
        self._synced_offset = 0
        self._size = 0
        segments = self.segments()
        if segments:
            last = 0
            for seq, _ in self.records():
                last = seq
            self.next_seq = max(last, segments[-1][0] - 1) + 1
            self.written_seq = self.synced_seq = self.next_seq - 1

    # -- reading ----------------------------------------------------------------------------

    def segments(self) -> list[tuple[int, Path]]:
        out = []
        for path in self.dir.glob("*.wal"):
            try:
                out.append((int(path.stem), path))
            except ValueError:
                continue
        return sorted(out)

    def records(self, after: int = 0) -> Iterator[tuple[int, bytes]]:
        """Every intact record with a sequence number above ``after``, in order."""
        for _, path in self.segments():
            with open(path, "rb") as f:
                data = f.read()
            pos = 0
            while pos < len(data):
                if len(data) - pos < _HEADER.size:
                    self._torn(path, pos, "a partial record header")
                    break
                length, crc, seq = _HEADER.unpack_from(data, pos)
                end = pos + _HEADER.size + length
                body = data[pos + _HEADER.size:end]
                if end > len(data):
                    self._torn(path, pos, "a record cut short")
                    break
                if zlib.crc32(body, zlib.crc32(struct.pack(">Q", seq))) != crc:
                    self._torn(path, pos, "a checksum mismatch")
                    break
                if seq > after:
                    yield seq, body
                pos = end

    def _torn(self, path: Path, pos: int, what: str) -> None:
        self.corrupt_records += 1
        log.warning("write-ahead log %s: %s at byte %d; the rest of this segment is ignored "
                    "(it was never acknowledged, or the disk corrupted it)", path.name, what, pos)
        if self._file is None:  # cut it off so new records never follow garbage
            try:
                os.truncate(path, pos)
            except OSError:
                log.exception("could not cut %s at byte %d", path.name, pos)

    # -- writing ----------------------------------------------------------------------------

    def append(self, payload: bytes) -> int:
        """Write one record (not yet synced); returns its sequence number. Call under the
        caller's ordering lock, so sequence numbers follow processing order. Numbers only
        grow: one lost to a failed write is a gap, never reused."""
        with self.lock:
            free = shutil.disk_usage(self.dir).free
            if free < self.min_free_bytes:
                raise WalError(28, f"disk almost full: {free // 1024} KiB free under {self.dir}, "
                                   f"{self.min_free_bytes // 1024} KiB needed")
            seq = self.next_seq
            record = _HEADER.pack(len(payload), zlib.crc32(payload, zlib.crc32(struct.pack(">Q", seq))),
                                  seq) + payload
            try:
                if self._file is None or self._size >= SEGMENT_BYTES:
                    self._open_segment()
                self._file.write(record)
                self._file.flush()
            except OSError as exc:
                self.written_seq = seq
                self.next_seq += 1
                self._cut_back()
                raise WalError(exc.errno or 5, f"writing the write-ahead log failed: {exc}") \
                    from exc
            self.next_seq += 1
            self.written_seq = seq
            self._size += len(record)
            return seq

    def sync(self, seq: int) -> None:
        """Return once record ``seq`` is on disk (group commit: one fsync covers every record
        written before it started)."""
        with self.sync_lock:
            if seq in self._lost:
                raise WalError(5, "the write-ahead log was cut back after a failed write")
            if self.synced_seq >= seq:
                return
            with self.lock:
                f, target, offset = self._file, self.written_seq, self._size
            if f is None:
                raise WalError(5, "the write-ahead log segment was closed after a failed write")
            try:
                os.fdatasync(f.fileno())
            except OSError as exc:
                with self.lock:
                    if self._file is f:
                        self._cut_back()
                raise WalError(exc.errno or 5, f"syncing the write-ahead log failed: {exc}") \
                    from exc
            with self.lock:
                if self._file is f:
                    self._synced_offset = max(self._synced_offset, offset)
                self.synced_seq = max(self.synced_seq, target)
        if seq in self._lost:
            raise WalError(5, "the write-ahead log was cut back after a failed write")

    def _open_segment(self) -> None:
        if self._file is not None:  # what it holds must be on disk before a later fsync counts
            os.fdatasync(self._file.fileno())
            self._file.close()
        self._file = open(self.dir / f"{self.next_seq:020d}.wal", "ab")  # noqa: SIM115
        self._size = self._synced_offset = self._file.tell()
        fd = os.open(self.dir, os.O_RDONLY)  # the new file's name must survive a power loss too
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _cut_back(self) -> None:
        """After a failed write or fsync: drop what was not synced and close the segment, so
        no unacknowledged record is ever replayed; the next append opens a new one."""
        f, self._file = self._file, None
        self._lost.update(range(self.synced_seq + 1, self.written_seq + 1))
        if f is None:
            return
        try:
            f.truncate(self._synced_offset)
        except OSError:
            log.exception("could not cut the write-ahead log back to its last synced record")
        with contextlib.suppress(OSError):
            f.close()

    def covered(self, seq: int) -> int:
        """A checkpoint now covers every record up to ``seq``: delete the segments it covers
        whole; returns how many were deleted."""
        segments = self.segments()
        removed = 0
        for (_, path), (next_first, _) in zip(segments, segments[1:], strict=False):
            if next_first - 1 <= seq:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def is_lost(self, seq: int) -> bool:
        return seq in self._lost

    def lost_count(self) -> int:
        """How many records were cut back after failed writes, ever (a change means loss)."""
        return len(self._lost)

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for _, p in self.segments() if p.exists())

    def close(self) -> None:
        with self.lock:
            if self._file is not None:
                self._file.close()
                self._file = None
