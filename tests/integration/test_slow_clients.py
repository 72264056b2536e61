"""Slow clients cannot hold the real `run`: 200 slowloris connections sending their headers a
byte at a time are closed after the head timeout (also on a kept-alive connection), a body that
stops arriving gets a 408, and normal requests are answered meanwhile."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import pytest

from harness.procs import free_port, start_run

HEAD_S, BODY_S = 2.0, 2.0


@pytest.fixture
def run(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SNAKEPIT_PERF_API_HEAD_TIMEOUT_S", str(HEAD_S))
    monkeypatch.setenv("SNAKEPIT_PERF_API_BODY_IDLE_S", str(BODY_S))
    port = free_port()
    proc = start_run(tmp_path / "data", port, tmp_path / "run.log")
    yield port
    proc.terminate()
    proc.wait(30)


def closed_by_server(s: socket.socket) -> bool:
    """True once the server closed the connection (a read sees EOF or a reset)."""
    try:
        s.setblocking(False)
        return s.recv(4096) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_slowloris_connections_are_closed_and_others_still_served(run):
    port = run
    held = []
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
        held.append(s)
    started = time.monotonic()
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    open_ = list(held)
    while open_ and time.monotonic() - started < HEAD_S + 8:
        for s in list(open_):
            try:
                s.send(b"X")  # one more header byte, as slowloris does
            except OSError:
                open_.remove(s)
                continue
            if closed_by_server(s):
                open_.remove(s)
            s.setblocking(True)
        time.sleep(0.3)
    elapsed = time.monotonic() - started
    assert not open_, f"{len(open_)} slow connections still open after {elapsed:.1f} s"
    assert elapsed >= HEAD_S - 0.5, "closed by the head timeout, not at once"
    assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    for s in held:
        s.close()


def test_a_kept_alive_connection_must_send_its_next_head_in_time(run):
    s = socket.create_connection(("127.0.0.1", run))
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert b" 200 " in s.recv(4096)
    s.sendall(b"GET /health HTTP/1.1\r\n")  # the next head, never finished
    deadline = time.monotonic() + HEAD_S + 6
    while not closed_by_server(s):
        assert time.monotonic() < deadline, "the kept-alive slow head was never cut off"
        s.setblocking(True)
        s.sendall(b"X")
        time.sleep(0.3)
    s.close()


def test_a_body_that_stops_arriving_gets_a_408(run):
    s = socket.create_connection(("127.0.0.1", run))
    s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 1000\r\n\r\n[{\"type\":")
    s.settimeout(BODY_S + 10)
    started = time.monotonic()
    answer = b""
    while chunk := s.recv(65536):  # until the server closes the connection
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"no part of the body arrived" in answer
    assert BODY_S - 0.5 <= time.monotonic() - started <= BODY_S + 5
    s.close()
