"""Locust, seen from snakepit-perf: ``import snakepit_perf.locust_plugin`` in a locustfile.

With ``--snakepit-perf-url URL`` (or ``SNAKEPIT_PERF_URL``) the plugin

- opens a benchmark run when the test starts, labelled with the scenario (``--snakepit-perf-
  scenario``, default the locustfile's name), users, spawn rate, host and the git sha and branch
  CI sets (``GITHUB_SHA``/``GITHUB_REF_NAME``, ``CI_COMMIT_SHA``/``CI_COMMIT_REF_NAME``,
  ``GIT_COMMIT``/``GIT_BRANCH``), and finishes it when the test stops, once the server's last
  windows are stored;
- streams every request Locust records as a ``client`` event (client-observed latency, status,
  bytes) once a second, so the run shows the client's view beside the server's.

Under ``snakepit-perf bench run`` (which sets ``SNAKEPIT_PERF_RUN``) the run is bench run's: the
plugin only streams, tagged with that run. Without a URL it does nothing. Records the service
cannot take yet are kept and sent again (at most ``MAX_BUFFER``; beyond that the oldest are
dropped and counted in the log).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import gevent
import httpx
import orjson
import requests
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner

from snakepit_perf import bench_run

log = logging.getLogger("snakepit_perf.locust")
FLUSH_S = 1.0
BATCH = 2000
MAX_BUFFER = 200_000
_CI_SHA = ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT")
_CI_BRANCH = ("GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "GIT_BRANCH")


def _first(names: tuple[str, ...]) -> str | None:
    return next((os.environ[n] for n in names if os.environ.get(n)), None)


class Reporter:
    """One Locust process's link to snakepit-perf: the run it feeds and the records not sent."""

    def __init__(self, url: str, scenario: str, run_id: str | None, key: str | None) -> None:
        self.url = url.rstrip("/")
        self.scenario = scenario
        self.run_id = run_id
        self.own_run = run_id is None
        self.session = requests.Session()
        if key:
            self.session.headers["Authorization"] = f"Bearer {key}"
        self.buffer: list[dict[str, Any]] = []
        self.dropped = 0
        self.started = time.time()
        self.flusher: gevent.Greenlet | None = None

    def record(self, request_type: str, name: str, response_time: float,
               response_length: int | None = None, exception: BaseException | None = None,
               start_time: float | None = None, response: Any = None, **_: Any) -> None:
        end = (start_time + response_time / 1000) if start_time else time.time()
        event: dict[str, Any] = {
            "type": "client", "tool": "locust", "time": end, "name": str(name)[:128],
            "method": str(request_type)[:128], "duration_us": max(0, round(response_time * 1000)),
            "status": "error" if exception else "ok", "scenario": self.scenario[:128]}
        if self.run_id:
            event["run_id"] = self.run_id
        code = getattr(response, "status_code", None)
        if isinstance(code, int) and 0 <= code <= 999:
            event["status_code"] = code
        if response_length:
            event["bytes"] = int(response_length)
        if exception is not None:
            event["error"] = str(exception)[:1000]
        self.buffer.append(event)
        if len(self.buffer) > MAX_BUFFER:
            over = len(self.buffer) - MAX_BUFFER
            del self.buffer[:over]
            self.dropped += over

    def flush(self) -> None:
        while self.buffer:
            batch = self.buffer[:BATCH]
            try:
                r = self.session.post(f"{self.url}/v1/events", data=orjson.dumps(batch),
                                      headers={"Content-Type": "application/json"}, timeout=30)
            except requests.RequestException as exc:
                log.warning("snakepit-perf: client records not sent yet (%s); kept", exc)
                return
            if r.status_code in (429, 503) or r.status_code >= 500:
                log.warning("snakepit-perf: %s answered %s; records kept", self.url, r.status_code)
                return
            del self.buffer[:len(batch)]
            if r.status_code >= 400:
                log.error("snakepit-perf: %d client records refused: %s", len(batch), r.text[:300])
            elif r.json().get("rejected"):
                log.error("snakepit-perf: refused: %s", r.json()["rejected"][:3])

    def _loop(self) -> None:
        while True:
            gevent.sleep(FLUSH_S)
            self.flush()

    def start(self, environment: Environment) -> None:
        self.started = time.time()
        if self.own_run:
            opts = environment.parsed_options
            labels = {"tool": "locust", "host": environment.host or ""}
            if opts is not None:
                labels.update(users=str(opts.num_users), spawn_rate=f"{opts.spawn_rate:g}")
            for key, names in (("git_sha", _CI_SHA), ("branch", _CI_BRANCH)):
                if _first(names):
                    labels[key] = _first(names)
            r = self.session.post(f"{self.url}/v1/benchmarks", json={
                "scenario": self.scenario, "labels": labels,
                "fingerprint": bench_run.fingerprint()}, timeout=30)
            r.raise_for_status()
            self.run_id = r.json()["id"]
            log.warning("snakepit-perf: benchmark run %s (%s) started", self.run_id,
                        self.scenario)
        self.flusher = gevent.spawn(self._loop)

    def stop(self) -> None:
        if self.flusher is not None:
            self.flusher.kill()
        self.flush()
        if self.dropped:
            log.error("snakepit-perf: %d client records dropped (service unreachable)",
                      self.dropped)
        if not self.own_run or self.run_id is None:
            return
        ranges = [[self.started, time.time()]]
        with httpx.Client(base_url=self.url, headers=dict(self.session.headers),
                          timeout=60) as c:
            bench_run.settle(c, ranges, [])
            done = c.post(f"/v1/benchmarks/{self.run_id}/finish", json={"trials": ranges})
        if done.status_code == 200:
            overall = done.json()["results"]["overall"]
            log.warning("snakepit-perf: benchmark run %s finished: %.0f requests",
                        self.run_id, overall["requests"])
        else:
            log.error("snakepit-perf: finishing run %s: %s", self.run_id, done.text[:300])


_reporter: Reporter | None = None


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("snakepit-perf")
    group.add_argument("--snakepit-perf-url", env_var="SNAKEPIT_PERF_URL", default="",
                       help="snakepit-perf API: open a benchmark run, stream client records")
    group.add_argument("--snakepit-perf-scenario", env_var="SNAKEPIT_PERF_SCENARIO",
                       default="", help="the run's scenario (default: the locustfile's name)")


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    global _reporter
    opts = environment.parsed_options
    url = getattr(opts, "snakepit_perf_url", "") or os.environ.get("SNAKEPIT_PERF_URL", "")
    if not url:
        return
    scenario = (getattr(opts, "snakepit_perf_scenario", "")
                or os.environ.get("SNAKEPIT_PERF_SCENARIO", "")
                or Path(getattr(opts, "locustfile", None) or "locust").stem)
    # A distributed test's workers stream untagged records; the master owns the run.
    run_id = os.environ.get("SNAKEPIT_PERF_RUN") or None
    _reporter = Reporter(url, scenario, run_id, os.environ.get("SNAKEPIT_PERF_KEY"))
    if isinstance(environment.runner, WorkerRunner):
        _reporter.own_run = False
    _reporter.start(environment)


@events.request.add_listener
def _on_request(**kwargs: Any) -> None:
    if _reporter is not None:
        _reporter.record(**kwargs)


@events.test_stop.add_listener
def _on_stop(environment: Environment, **_: Any) -> None:
    global _reporter
    if _reporter is not None:
        _reporter.stop()
        _reporter = None
