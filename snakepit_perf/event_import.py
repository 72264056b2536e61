"""``snakepit-perf import events FILE…``: history recorded elsewhere (NDJSON, or JSON arrays;
gzip too) POSTed to ``/v1/events`` — the way to load a backfill.

NDJSON lines are forwarded as they are (the service validates each one and answers with what
it refused, by line); a JSON array file is split into its items without decoding them
(msgspec's ``Raw``). Batches go out on a few connections at once; a 429 or 503 is waited out as
its ``Retry-After`` says and the batch sent again (the service kept nothing of it), so an import
can run against a busy service. Progress (bytes, events, events/s) goes to stderr.
"""

from __future__ import annotations

import gzip
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
import msgspec

BATCH = 5000  # events per POST: large enough to amortise a request, far under the body limit
SENDERS = 4  # POSTs in flight
GZIP_MAGIC = b"\x1f\x8b"  # gzip is recognised by its bytes, whatever the file is named
MAX_WAIT_S = 300.0  # how long one batch is retried on 429/503 before the import gives up
_raw_items = msgspec.json.Decoder(list[msgspec.Raw])
_LINE_PREFIX = re.compile(r"^line \d+: ")  # the service numbers lines within its batch


class ImportFailed(Exception):
    """The service refused a batch for good, or could not be reached."""


@dataclass
class Report:
    accepted: int = 0
    rejected: int = 0
    bytes_read: int = 0
    reasons: list[str] = field(default_factory=list)  # the first few rejects, where and why
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(slots=True)
class Batch:
    body: bytes  # NDJSON
    path: Path
    lines: list[int]  # each event's line in the file (its item number in a JSON array)


def batches(path: Path, report: Report) -> Iterator[Batch]:
    """``path``'s events, BATCH at a time. A JSON array is read whole (NDJSON streams: prefer
    it for large files)."""
    before = report.bytes_read
    with path.open("rb") as raw, \
            (gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw) as f:
        if f.peek(64 * 1024).lstrip()[:1] == b"[":
            items = _raw_items.decode(f.read())  # the array's items, undecoded
            report.bytes_read = before + raw.tell()
            for i in range(0, len(items), BATCH):
                chunk = items[i:i + BATCH]
                yield Batch(b"\n".join(bytes(x) for x in chunk), path,
                            list(range(i + 1, i + 1 + len(chunk))))
            return
        body: list[bytes] = []
        lines: list[int] = []
        for n, line in enumerate(f, 1):
            if line.strip():
                body.append(line.rstrip(b"\n"))
                lines.append(n)
                if len(body) >= BATCH:
                    report.bytes_read = before + raw.tell()
                    yield Batch(b"\n".join(body), path, lines)
                    body, lines = [], []
        report.bytes_read = before + raw.tell()
        if body:
            yield Batch(b"\n".join(body), path, lines)


def post_events(client: httpx.Client, body: bytes, content_type: str, where: str
                ) -> httpx.Response:
    """POST a body to ``/v1/events``, waiting out 429/503 as their Retry-After says (the
    service kept nothing of a refused body), for up to MAX_WAIT_S."""
    deadline = time.monotonic() + MAX_WAIT_S
    while True:
        try:
            r = client.post("/v1/events", content=body, headers={"Content-Type": content_type})
        except httpx.TransportError as exc:
            raise ImportFailed(f"{where}: the service could not be reached: {exc}") from exc
        if r.status_code not in (429, 503) or time.monotonic() > deadline:
            return r
        try:
            pause = float(r.headers.get("Retry-After", "1"))
        except ValueError:
            pause = 1.0
        time.sleep(min(max(pause, 0.05), 30.0))


def post(client: httpx.Client, batch: Batch, report: Report) -> None:
    where = f"{batch.path}:{batch.lines[0]}"
    r = post_events(client, batch.body, "application/x-ndjson", where)
    if r.status_code != 202:
        raise ImportFailed(f"{where}: POST /v1/events answered {r.status_code}: {r.text[:300]}")
    answer = r.json()
    with report.lock:
        report.accepted += answer["accepted"]
        report.rejected += len(answer["rejected"])
        for reject in answer["rejected"][:max(0, 5 - len(report.reasons))]:
            line = batch.lines[reject["index"]]
            report.reasons.append(f"{batch.path}:{line}: "
                                  f"{_LINE_PREFIX.sub('', reject['reason'])}")


def run(url: str, paths: list[Path], key: str | None, progress: IO[str] = sys.stderr,
        out: IO[str] = sys.stdout) -> int:
    """0 when every event was accepted, 1 when some were refused (the rest still count),
    2 when the import could not finish (a file unreadable, the service unreachable)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    report = Report()
    total = sum(p.stat().st_size for p in paths if p.exists())
    started = time.monotonic()
    client = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=120,
                          limits=httpx.Limits(max_connections=SENDERS))
    in_flight: set[Future] = set()
    try:
        with client, ThreadPoolExecutor(SENDERS) as pool:
            for path in paths:
                for batch in batches(path, report):
                    if len(in_flight) >= SENDERS:
                        done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                        for fut in done:
                            fut.result()
                    in_flight.add(pool.submit(post, client, batch, report))
                    _progress(progress, report, total, started)
            for fut in in_flight:
                fut.result()
    except (OSError, EOFError, msgspec.DecodeError, ImportFailed) as exc:
        # EOFError: a gzip stream cut short; what was sent before it is stored (say so)
        print(f"\nsnakepit-perf: import events: {exc} (stopped; {report.accepted:,} events "
              f"were imported before)", file=sys.stderr)
        return 2
    _progress(progress, report, total, started, end="\n")
    print(f"imported {report.accepted:,} events from {len(paths)} file(s), "
          f"{report.rejected:,} rejected (kept with reasons: GET /v1/rejects)", file=out)
    for reason in report.reasons:
        print(f"  {reason}", file=out)
    return 1 if report.rejected else 0


def _progress(stream: IO[str], report: Report, total: int, started: float,
              end: str = "") -> None:
    elapsed = max(time.monotonic() - started, 1e-9)
    share = f"{report.bytes_read / total:.0%} " if total else ""
    stream.write(f"\r{share}{report.bytes_read / 1e6:,.1f} MB read, {report.accepted:,} events "
                 f"accepted ({report.accepted / elapsed:,.0f}/s), {report.rejected:,} rejected"
                 f"{end}")
    stream.flush()
