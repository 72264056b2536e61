"""What durability costs: the embedded runner with its write-ahead log (every batch fsynced
before it is acknowledged) vs the same runner without one, on the same batches, same process.

One sender (each batch waits for its own fsync: the worst case) and eight concurrent senders
(fsyncs grouped), 300,000 requests in batches of 500 at 20,000 requests per second of event
time; runs alternate five times and each figure is the best.

    .venv/bin/python -m bench.wal_cost
"""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

from bench.common import batches, best_of, report
from schemas.decode import decode_json
from store.sqlite import SQLiteStore
from streams.embedded import EmbeddedRunner

N = 300_000


def run(decoded: list[list], wal: bool, senders: int) -> None:
    with tempfile.TemporaryDirectory(dir=Path.home()) as d:  # a real disk, not a tmpfs
        store = SQLiteStore(f"{d}/bench.sqlite3")
        runner = EmbeddedRunner(store, wal_dir=Path(d) / "wal" if wal else None,
                                max_queued_events=10**9)
        parts = [decoded[i::senders] for i in range(senders)]
        threads = [threading.Thread(target=lambda p=p: [runner.submit(b) for b in p])
                   for p in parts]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        runner.close_all()
        store.close()


def main() -> None:
    decoded = [decode_json(b).events for b in batches(N, seconds=N / 20_000)]
    for senders in (1, 8):
        base = logged = 0.0
        for _ in range(5):
            base = max(base, N / best_of(lambda s=senders: run(decoded, False, s), repeat=1))
            logged = max(logged, N / best_of(lambda s=senders: run(decoded, True, s), repeat=1))
        report(f"embedded runner, {senders} sender(s): write-ahead log cost", [
            ("runner without a log (baseline)", base, "events/s"),
            ("runner with the log (fsync before each 202)", logged, "events/s"),
        ], base)


if __name__ == "__main__":
    main()
