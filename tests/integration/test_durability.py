"""Acknowledged means durable (embedded `run`): SIGKILLs at random moments lose no acknowledged
event; overload answers 429 with Retry-After; a full disk answers 503 and loses nothing
acknowledged before it; the service applies its retention itself; `worker` and `api` start
from a brand-new HOME."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from harness import kafka as kh
from harness.procs import free_port, start_run, up
from schemas.events import Request

BATCH = 500


def batch(n: int, start: float) -> bytes:
    """Batch ``n``: 500 requests whose pool and command name the batch (each dimension stays
    under the 1,000-value cardinality limit), so what is stored can be matched batch by batch."""
    return msgspec.json.encode([
        Request(time=start + n * 0.05 + i * 1e-4, pool=f"p{n % 40}", command=f"c{n // 40}",
                duration_us=1000 + i, status="ok") for i in range(BATCH)])


def stored_by_batch(base: str, start: float, end: float) -> dict[str, float]:
    r = httpx.get(f"{base}/v1/query", params={
        "metric": "requests_total", "stat": "count", "from": int(start), "to": int(end) + 1,
        "step": "1h", "group_by": "pool,command"}, timeout=30)
    assert r.status_code == 200, r.text
    out = {}
    for s in r.json()["series"]:
        if not s["labels"]["command"][1:].isdigit():  # not a numbered batch
            continue
        n = int(s["labels"]["command"][1:]) * 40 + int(s["labels"]["pool"][1:])
        total = sum(p[1] for p in s["points"])
        if total:
            out[f"b{n}"] = total
    return out


class Sender:
    """Posts numbered batches until stopped, as one client; records what it sent and what was
    acknowledged (a connection error, e.g. the server killed, ends it)."""

    def __init__(self, base: str, start: float, counter, sent: set[int], acked: set[int]) -> None:
        self.base, self.start, self.counter, self.sent, self.acked = base, start, counter, sent, \
            acked
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                mine = next(self.counter)
                self.sent.add(mine)
                try:
                    r = client.post(f"{self.base}/v1/events", content=batch(mine, self.start),
                                    headers={"Content-Type": "application/json"})
                except httpx.TransportError:
                    return
                if r.status_code == 202:
                    self.acked.add(mine)

    def join(self) -> None:
        self.stop.set()
        self.thread.join(30)


def test_sigkill_at_random_moments_loses_no_acknowledged_event(tmp_path: Path):
    rng = random.Random(7)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    start = (time.time() - 3 * 3600) // 3600 * 3600  # a closed hour: stored once idle
    acked: set[int] = set()
    sent: set[int] = set()
    counter = iter(range(10**6))
    log = tmp_path / "run.log"
    for _kill in range(5):
        run = start_run(tmp_path, port, log)
        sender = Sender(base, start, counter, sent, acked)
        time.sleep(rng.uniform(0.5, 3.0))
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        sender.join()
    assert len(acked) > 50
    run = start_run(tmp_path, port, log)
    try:
        end = start + (max(sent) + 1) * 0.05 + 1

        def complete() -> bool:
            got = stored_by_batch(base, start, end)
            return all(got.get(f"b{i}") == BATCH for i in acked)

        kh.wait_for(complete, 90, f"the {len(acked)} acknowledged batches to be stored")
        got = stored_by_batch(base, start, end)
        assert len(got) >= len(acked)
        assert all(v == BATCH for v in got.values()), "a batch is stored whole or not at all"
        assert {int(k[1:]) for k in got} <= sent
        assert len(got) - len(acked) <= 5, "only a batch in flight at a kill may be extra"
        metrics = httpx.get(f"{base}/metrics").text
        assert "snakepit_perf_wal_replayed_events" in metrics
    finally:
        run.terminate()
        run.wait(30)


def test_overload_answers_429_with_retry_after_and_loses_nothing_acknowledged(tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env_extra = {"SNAKEPIT_PERF_INGEST_MAX_QUEUED_EVENTS": "2000"}
    os.environ.update(env_extra)
    try:
        run = start_run(tmp_path, port, tmp_path / "run.log")
    finally:
        for k in env_extra:
            os.environ.pop(k)
    start = (time.time() - 3 * 3600) // 3600 * 3600
    codes: list[int] = []
    acked: list[int] = []
    lock = threading.Lock()
    counter = iter(range(10**6))

    def hammer() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(40):
                with lock:
                    mine = next(counter)
                r = client.post(f"{base}/v1/events", content=batch(mine, start),
                                headers={"Content-Type": "application/json"})
                with lock:
                    codes.append(r.status_code)
                    if r.status_code == 202:
                        acked.append(mine)
                    elif r.status_code == 429:
                        assert r.headers["Retry-After"].isdigit()
                        assert r.headers["content-type"].startswith("application/problem+json")
                        assert "limit 2000" in r.json()["detail"]
    try:
        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert 429 in codes and 202 in codes
        assert set(codes) <= {202, 429}, set(codes)
        end = start + 400 * 0.05 + 1
        kh.wait_for(lambda: sorted(stored_by_batch(base, start, end)) ==
                    sorted(f"b{i}" for i in acked), 60, "exactly the acknowledged batches stored")
    finally:
        run.terminate()
        run.wait(30)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 24 MB filesystem of its own (tmpfs; the harness runs as root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                       capture_output=True, text=True)
    assert r.returncode == 0, f"cannot mount a tmpfs for the full-disk test: {r.stderr}"
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_answers_503_and_keeps_what_was_acknowledged(small_disk: Path, tmp_path: Path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    run = start_run(small_disk, port, log)
    start = (time.time() - 3 * 3600) // 3600 * 3600
    acked, n = [], 0
    try:
        with httpx.Client(timeout=30) as client:
            for n in range(2000):
                r = client.post(f"{base}/v1/events", content=batch(n, start),
                                headers={"Content-Type": "application/json"})
                if r.status_code != 202:
                    break
                acked.append(n)
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "disk" in r.json()["detail"] or "No space" in r.json()["detail"]
        assert r.headers["Retry-After"].isdigit()
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        # space comes back: the service recovers by itself and still has every acknowledged batch
        subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
        run = start_run(small_disk, port, log)
        end = start + (n + 1) * 0.05 + 1
        kh.wait_for(lambda: all(stored_by_batch(base, start, end).get(f"b{i}") == BATCH
                                for i in acked), 90, f"the {len(acked)} acknowledged batches")
        r = httpx.post(f"{base}/v1/events", content=batch(n + 1, start),
                       headers={"Content-Type": "application/json"})
        assert r.status_code == 202
    finally:
        run.terminate()
        run.wait(30)


@pytest.mark.kafka
@pytest.mark.cassandra
def test_worker_and_api_start_from_a_brand_new_home(tmp_path: Path, local_servers, unique_name):
    """No earlier command and no data dir: each creates the folders it needs and serves."""
    port = free_port()
    for command in ("worker", "api"):
        home = tmp_path / f"home-{command}"
        home.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIT_PERF_")}
        env.update(HOME=str(home), SNAKEPIT_PERF_KAFKA_BOOTSTRAP=local_servers.kafka_bootstrap,
                   SNAKEPIT_PERF_KAFKA_EVENTS_TOPIC=unique_name,
                   SNAKEPIT_PERF_KAFKA_CONSUMER_GROUP=unique_name,
                   SNAKEPIT_PERF_CASSANDRA_KEYSPACE=unique_name,
                   SNAKEPIT_PERF_CASSANDRA_PORT=str(local_servers.cassandra_port))
        log = tmp_path / f"{command}.log"
        args = [kh.EXE, command, *(["--port", str(port)] if command == "api" else [])]
        proc = subprocess.Popen(args, env=env, stdout=open(log, "wb"),  # noqa: SIM115
                                stderr=subprocess.STDOUT)
        try:
            if command == "api":
                kh.wait_for(lambda: up(port), 90, "the api to serve", procs=((proc, log),))
            else:
                kh.wait_for(lambda log=log: "consuming" in log.read_text(), 90,
                            "the worker to start", procs=((proc, log),))
                time.sleep(10)  # Faust creates its data dir once it starts its app
            assert proc.poll() is None, log.read_text()[-3000:]
            assert "FileNotFoundError" not in log.read_text(), log.read_text()[-3000:]
            assert (home / ".snakepit-perf").is_dir()
        finally:
            proc.terminate()
            proc.wait(60)


def stored_bytes(db: Path) -> int:
    """The database file's size with SQLite's -wal file folded in and emptied (the -wal file
    keeps its size between checkpoints, so adding it would measure checkpoint timing)."""
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.stat().st_size


def test_the_running_service_applies_its_retention(tmp_path: Path):
    """10 s rollups kept 1 h, rejects ~1 s, checked every second: old rows and rejects go away
    by themselves, the 1-minute rollups stay, and the file stops growing."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = {"SNAKEPIT_PERF_RETENTION_RAW_10S_HOURS": "1",
                "SNAKEPIT_PERF_RETENTION_REJECTS_DAYS": "0.00001",
                "SNAKEPIT_PERF_RETENTION_CHECK_EVERY_S": "1"}
    os.environ.update(settings)
    try:
        run = start_run(tmp_path, port, tmp_path / "run.log")
    finally:
        for k in settings:
            os.environ.pop(k)
    sizes = []
    try:
        for round_ in range(4):
            start = (time.time() - 3 * 3600) // 60 * 60 + round_ * 600
            body = b"\n".join([batch(i, start) for i in range(40)])
            r = httpx.post(f"{base}/v1/events", content=b"[" + b",".join(
                b[1:-1] for b in body.split(b"\n")) + b", {\"type\": \"nope\"}]",
                headers={"Content-Type": "application/json"}, timeout=30)
            assert r.status_code == 202 and len(r.json()["rejected"]) == 1

            def minute_rows(start: float = start) -> float:
                r = httpx.get(f"{base}/v1/query", params={
                    "metric": "requests_total", "stat": "count", "from": int(start),
                    "to": int(start) + 60, "step": "1m"}).json()
                return sum(p[1] for s in r["series"] for p in s["points"])

            kh.wait_for(lambda f=minute_rows: f() == 40 * BATCH, 60, "the minute rollups")

            def raw_rows(start: float = start) -> float:
                r = httpx.get(f"{base}/v1/query", params={
                    "metric": "requests_total", "stat": "count", "from": int(start),
                    "to": int(start) + 60, "step": "10s"}).json()
                return sum(p[1] for s in r["series"] for p in s["points"])

            kh.wait_for(lambda f=raw_rows: f() == 0, 30, "10 s rollups past retention removed")
            kh.wait_for(lambda: httpx.get(f"{base}/v1/rejects").json() == [], 30,
                        "old rejects removed")
            assert minute_rows() == 40 * BATCH
            sizes.append(stored_bytes(tmp_path / "embedded.sqlite3"))
        # Measured: ~0.6 MB a round, flat (the minute and hour rollups and the alert state it
        # keeps, in the pages the deleted rows freed); the file never balloons.
        growth = [b - a for a, b in zip(sizes, sizes[1:], strict=False)]
        assert max(growth) < 1.3e6 and growth[-1] < 1.5 * growth[0], sizes
        metrics = httpx.get(f"{base}/metrics").text
        assert "snakepit_perf_store_bytes" in metrics
    finally:
        run.terminate()
        run.wait(30)


@pytest.mark.kafka
@pytest.mark.cassandra
def test_distributed_kills_of_api_and_worker_lose_no_acknowledged_event(
        kafka_bootstrap, local_servers, unique_name, tmp_path: Path):
    """The `api` answers 202 once Kafka has the batch (acks=all, idempotent producer); the
    worker resumes from its checkpoint: SIGKILLs of both at random moments lose nothing."""
    rng = random.Random(11)
    topic = unique_name
    kh.create_topic(kafka_bootstrap, topic)
    kh.create_topic(kafka_bootstrap, f"{topic}.dlq", partitions=1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**kh.distributed_env(kafka_bootstrap, topic, unique_name,
                                local_servers.cassandra_port),
           "SNAKEPIT_PERF_API_PORT": str(port), "SNAKEPIT_PERF_DATA_DIR": str(tmp_path)}

    def spawn(command: str) -> subprocess.Popen:
        return subprocess.Popen([kh.EXE, command], env=env, stderr=subprocess.STDOUT,
                                stdout=open(tmp_path / f"{command}.log", "ab"))  # noqa: SIM115

    api, worker = spawn("api"), spawn("worker")
    start = (time.time() - 3 * 3600) // 3600 * 3600
    acked: set[int] = set()
    sent: set[int] = set()
    counter = iter(range(10**6))
    try:
        for _cycle in range(3):
            kh.wait_for(lambda: up(port), 90, "the api to serve",
                        procs=((api, tmp_path / "api.log"),))
            sender = Sender(base, start, counter, sent, acked)
            time.sleep(rng.uniform(1.0, 3.0))
            worker.send_signal(signal.SIGKILL)
            time.sleep(rng.uniform(0.2, 1.5))
            api.send_signal(signal.SIGKILL)
            api.wait(30)
            worker.wait(30)
            sender.join()
            api, worker = spawn("api"), spawn("worker")
        kh.wait_for(lambda: up(port), 90, "the api to serve")
        closing = msgspec.json.encode([
            Request(time=start + 3600 + 30, pool=f"p{i}", command="closing", duration_us=1,
                    status="ok") for i in range(40)])
        assert httpx.post(f"{base}/v1/events", content=closing,
                          headers={"Content-Type": "application/json"}).status_code == 202
        assert len(acked) > 20
        end = start + 3600

        def complete() -> bool:
            got = stored_by_batch(base, start, end - 1)
            return all(got.get(f"b{i}") == BATCH for i in acked)

        kh.wait_for(complete, 180, f"the {len(acked)} acknowledged batches in Cassandra",
                    interval=2)
        got = stored_by_batch(base, start, end - 1)
        assert len(got) >= len(acked)
        assert all(v == BATCH for v in got.values()), "a batch is stored whole, exactly once"
        assert {int(k[1:]) for k in got} <= sent
    finally:
        api.terminate()
        worker.terminate()
        api.wait(60)
        worker.wait(60)
