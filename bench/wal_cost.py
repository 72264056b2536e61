"""What durability costs: with the write-ahead log (every batch fsynced before it is
acknowledged) vs without (``[ingest] wal = false``), on the same batches.

Two levels, each alternating the two five (runner) or three (service) times, best of each:

- the runner alone, in this process (no HTTP, no decoding: the log's share of the work is as
  large as it can be), one sender (each batch waits for its own fsync) and eight (grouped);
- end to end: a real `snakepit-perf run` taking POSTs of JSON bodies from eight concurrent
  senders (what "embedded ingest events/s" means to a user), retried on 429 as the SDK does.

300,000 requests in batches of 500 at 20,000 requests per second of event time.

    .venv/bin/python -m bench.wal_cost
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from bench.common import batches, best_of, report, wait_healthy
from runners.embedded import EmbeddedRunner
from schemas.decode import decode_json
from store.sqlite import SQLiteStore

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


def serve(bodies: list[bytes], wal: bool, senders: int = 8) -> float:
    """Seconds until a fresh `run` has answered 202 to every body."""
    with tempfile.TemporaryDirectory(dir=Path.home()) as d:
        port = 18000 + os.getpid() % 1000
        env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": d,
               "SNAKEPIT_PERF_INGEST_WAL": "true" if wal else "false"}
        exe = str(Path(sys.executable).with_name("snakepit-perf"))
        run = subprocess.Popen([exe, "run", "--port", str(port)], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(base)

            def send(part: list[bytes]) -> None:
                with httpx.Client(timeout=60) as c:
                    for body in part:
                        while True:
                            r = c.post(f"{base}/v1/events", content=body,
                                       headers={"Content-Type": "application/json"})
                            if r.status_code == 202:
                                break
                            if r.status_code != 429:
                                raise RuntimeError(f"{r.status_code}: {r.text[:200]}")
                            time.sleep(float(r.headers.get("Retry-After", "1")))

            threads = [threading.Thread(target=send, args=(bodies[i::senders],))
                       for i in range(senders)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return time.perf_counter() - t0
        finally:
            run.terminate()
            run.wait(60)


def main() -> None:
    bodies = batches(N, seconds=N / 20_000)
    decoded = [decode_json(b).events for b in bodies]
    for senders in (1, 8):
        base = logged = 0.0
        for _ in range(5):
            base = max(base, N / best_of(lambda s=senders: run(decoded, False, s), repeat=1))
            logged = max(logged, N / best_of(lambda s=senders: run(decoded, True, s), repeat=1))
        report(f"embedded runner, {senders} sender(s): write-ahead log cost", [
            ("runner without a log (baseline)", base, "events/s"),
            ("runner with the log (fsync before each 202)", logged, "events/s"),
        ], base)
    base = logged = 0.0
    for _ in range(3):
        base = max(base, N / serve(bodies, False))
        logged = max(logged, N / serve(bodies, True))
    report("embedded `run`, 8 HTTP senders: write-ahead log cost", [
        ("`run` with `[ingest] wal = false` (baseline)", base, "events/s"),
        ("`run` with the log (the default)", logged, "events/s"),
    ], base)


if __name__ == "__main__":
    main()
