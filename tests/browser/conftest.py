"""Browser tests: the dashboard in Debian's Chromium (headless) driven by Playwright, against
``snakepit-perf run --simulate`` started as a real process with API keys."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from harness.procs import wait_for
from tests.browser.support import USERS, Page, Server, running

CHROMIUM = "/usr/bin/chromium"
# As root in a sandbox without a network: no sandbox, no GPU, none of Chromium's own traffic.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    # An error burst in pool default that began 5 minutes ago: an alert is firing at start.
    args = ["--simulate", "40", "--incident", "error_burst:default:-300:1200"]
    with running(tmp_path_factory.mktemp("dashboard"), args, USERS) as s:
        # The backfill is stored in time order over ~10-20 s; tests that compare a past range
        # across two queries need all of it, or the second query may see more than the first.
        wait_for(lambda: _backfilled(s), 90, "the simulated backfill to be stored", interval=0.5)
        yield s


def _backfilled(s: Server) -> bool:
    """Stored rollups reach the last minute: the backfill (which ends at start) is all in."""
    now = int(time.time())
    with s.api() as api:
        r = api.get("/v1/query", params={"metric": "requests_total", "stat": "count",
                                         "from": now - 120, "to": now, "step": "10s"}).json()
    return any(t >= now - 60 for series in r["series"] for t, _ in series["points"])


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: `make test` installs Debian's chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def pages(browser, server):
    opened: list[Page] = []

    def open_page(user: str | None = "ops") -> Page:
        p = Page(browser, server, user)
        opened.append(p)
        return p

    yield open_page
    for p in opened:
        p.context.close()
