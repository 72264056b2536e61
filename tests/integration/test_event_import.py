"""``snakepit-perf import events`` (the real CLI) into a real ``run``: NDJSON, gzip NDJSON and a
JSON array, bad lines among good ones, a gzip cut short."""

from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path

import httpx
import msgspec
import orjson

from harness.data import T0, requests
from harness.procs import EXE, recording, wait_for


def _import(url: str, *files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "import", "events", *map(str, files), "--url", url],
                          capture_output=True, text=True, timeout=300)


def _stored(url: str, start: float, end: float) -> float:
    r = httpx.get(f"{url}/v1/query", params={"metric": "requests_total", "stat": "count",
                                             "from": int(start), "to": int(end) + 1}).json()
    return sum(p[1] for s in r["series"] for p in s["points"] if p[1] is not None)


def test_files_of_every_kind_are_imported_and_bad_lines_named_by_file_and_line(tmp_path: Path):
    events = requests(24_000, 1200, start=T0)
    plain, zipped, array = events[:12_000], events[12_000:18_000], events[18_000:]
    lines = [msgspec.json.encode(e) for e in plain]
    lines.insert(7_000, b'{"type": "request", "time": "yesterday"}')  # file line 7,001
    lines.insert(100, b"not json at all")  # file line 101
    ndjson = tmp_path / "a.ndjson"
    ndjson.write_bytes(b"\n".join(lines) + b"\n\n")
    gz = tmp_path / "b.ndjson.gz"
    gz.write_bytes(gzip.compress(b"\n".join(msgspec.json.encode(e) for e in zipped)))
    arr = tmp_path / "c.json"
    arr.write_bytes(orjson.dumps([orjson.loads(msgspec.json.encode(e)) for e in array]))
    with recording(tmp_path) as url:
        done = _import(url, ndjson, gz, arr)
        assert done.returncode == 1, done.stderr  # some lines refused, the rest imported
        assert "imported 24,000 events from 3 file(s), 2 rejected" in done.stdout
        assert f"{ndjson}:101: invalid JSON" in done.stdout
        assert f"{ndjson}:7002: " in done.stdout  # the insert at 100 moved it down a line
        assert "events accepted" in done.stderr  # the progress line
        wait_for(lambda: _stored(url, T0, T0 + 1200) == 24_000, 60, "the import to be stored")
        rejects = httpx.get(f"{url}/v1/rejects").json()
        assert sorted(r["raw"] for r in rejects) == sorted(
            ['{"type": "request", "time": "yesterday"}', "not json at all"])


def test_a_gzip_cut_short_is_an_error_not_a_silent_partial_import(tmp_path: Path):
    whole = gzip.compress(b"\n".join(msgspec.json.encode(e) for e in requests(20_000, 100)))
    cut = tmp_path / "cut.ndjson.gz"
    cut.write_bytes(whole[:len(whole) // 2])
    with recording(tmp_path) as url:
        t = time.monotonic()
        done = _import(url, cut)
        assert done.returncode == 2 and "import events" in done.stderr, done.stderr
        assert time.monotonic() - t < 60
        missing = _import(url, tmp_path / "nope.ndjson")
        assert missing.returncode == 2 and "nope.ndjson" in missing.stderr
