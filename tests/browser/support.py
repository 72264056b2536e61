"""The dashboard under test: a real ``snakepit-perf run`` with API keys (``running``), and a
signed-in Chromium page that records console errors (``Page``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.auth import hash_key
from harness.procs import EXE, free_port, up, wait_for

USERS = {"alice": ("viewer", "spk_test_alice"), "bob": ("viewer", "spk_test_bob"),
         "ops": ("operator", "spk_test_ops")}


@dataclass
class Server:
    url: str
    started: float  # time.monotonic() when the process was started
    log: Path

    def api(self, user: str = "ops") -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {USERS[user][1]}"})


@contextmanager
def running(data: Path, args: list[str], keys: dict[str, tuple[str, str]] | None = None
            ) -> Iterator[Server]:
    """``snakepit-perf run`` as a real process, until the block ends."""
    port = free_port()
    env = {**os.environ, "SNAKEPIT_PERF_DATA_DIR": str(data)}
    if keys:
        env["SNAKEPIT_PERF_API_KEYS"] = ",".join(f"{name}:{role}:{hash_key(key)}"
                                                 for name, (role, key) in keys.items())
    log = data / "run.log"
    started = time.monotonic()
    proc = subprocess.Popen([EXE, "run", "--port", str(port), *args], env=env,
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: up(port), 60, "snakepit-perf run to answer /health", interval=0.1,
                 procs=((proc, log),))
        yield Server(url, started, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def wait_js(page, expression: str, timeout: float = 30_000, arg=None) -> None:
    """Poll a JavaScript expression (or function of ``arg``) until it is truthy.

    ``page.evaluate`` goes through the DevTools protocol, which the dashboard's strict
    Content-Security-Policy allows; Playwright's ``wait_for_function`` compiles its predicate
    inside the page, which that policy (no ``unsafe-eval``) rightly refuses."""
    deadline = time.monotonic() + timeout / 1000
    while not (page.evaluate(expression) if arg is None else page.evaluate(expression, arg)):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} ms waiting for {expression[:80]}")
        time.sleep(0.01)


class Page:
    """A signed-in page that records console errors and uncaught exceptions."""

    def __init__(self, browser, server: Server, user: str | None) -> None:
        self.context = browser.new_context(viewport={"width": 1440, "height": 900},
                                           accept_downloads=True)
        if user is not None:
            self.context.add_init_script(
                f"localStorage.setItem('snakepit-perf.key', '{USERS[user][1]}')")
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.server = server

    def open(self, fragment: str = "view=overview") -> None:
        """Open a view and wait until every panel of it is drawn."""
        if self.page.url.startswith(self.server.url):  # a hash change: the same document
            self.page.evaluate("document.body.dataset.ready = ''")
        self.page.goto(f"{self.server.url}/#{fragment}")
        self.wait_drawn()

    def wait_drawn(self, timeout: float = 20_000) -> None:
        wait_js(self.page, "document.body.dataset.ready || document.body.dataset.error", timeout)
        error = self.page.evaluate("document.body.dataset.error || ''")
        assert not error, error

    def redrawn(self, action) -> None:
        """Do something that re-renders the view (a click), and wait until it is drawn."""
        self.page.evaluate("document.body.dataset.ready = ''")
        action()
        self.wait_drawn()

    def goto_hash(self, fragment: str) -> None:
        """Change the view in place (as a click on a link would)."""
        self.page.evaluate("document.body.dataset.ready = ''")
        self.page.evaluate(f"location.hash = {fragment!r}")
        self.wait_drawn()
