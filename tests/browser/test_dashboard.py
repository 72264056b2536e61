"""The dashboard in a real browser: views, live latency, drill-down, per-user layouts, exports.

Screenshots of every view (1440x900) go to test-output/dashboard/.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
import time

import httpx
import msgspec
import pytest

from harness.data import requests
from tests.browser.support import USERS, Page, Server, running, wait_js

VIEWS = ["overview", "pools", "workers", "sessions", "python", "resources", "correlations",
         "requests", "benchmarks", "recommendations"]


@pytest.fixture(scope="module")
def shots(output_dir):
    d = output_dir / "dashboard"
    d.mkdir(exist_ok=True)
    return d


def panel_data(page: Page) -> list[dict]:
    return page.page.evaluate("""() => [...document.querySelectorAll('.panel')]
        .filter((e) => e.spec && !e.live)
        .map((e) => ({spec: e.spec, chart: !!e.__chart,
                      x: e.__chart ? [...e.__chart.data[0]] : [],
                      ys: e.__chart ? e.__chart.data.slice(1).map((y) => [...y]) : [],
                      empty: e.querySelector('.empty') ? e.querySelector('.empty').textContent : ''}))""")


def test_the_main_job_shows_a_populated_dashboard_within_10_s(browser, tmp_path, shots):
    """Exactly the README's `make run ARGS="--simulate"`: no keys, the default rate."""
    with running(tmp_path, ["--simulate"]) as server:
        page = Page(browser, server, user=None)
        try:
            ready = _populated(page, server)
        finally:
            page.context.close()
    print(f"\n`snakepit-perf run --simulate` start to populated overview: {ready:.1f} s")
    (shots / "startup.txt").write_text(f"start to populated overview: {ready:.2f} s\n")
    assert ready <= 10, f"took {ready:.1f} s"


def _populated(page: Page, server: Server) -> float:
    page.open()
    # The page refreshes itself; wait (at most until 10 s after start) for tiles and charts.
    populated = """() => [...document.querySelectorAll('.panel')].filter((e) => e.spec)
        .every((e) => e.__chart && e.__chart.data[0].length > 5)
        && document.querySelector('[data-tile="p99"] .value').textContent.endsWith('s')"""
    left = max(10 - (time.monotonic() - server.started), 0.1)
    wait_js(page.page, populated, left * 1000)
    ready = time.monotonic() - server.started
    panels = panel_data(page)
    assert panels and all(p["chart"] and len(p["x"]) > 5 for p in panels)
    assert page.errors == []
    return ready


@pytest.mark.parametrize("view", VIEWS)
def test_every_view_loads_without_console_errors(pages, view, shots):
    page = pages()
    page.open(f"view={view}&range=15m")
    page.page.wait_for_timeout(300)  # let charts finish painting before the screenshot
    page.page.screenshot(path=str(shots / f"{view}.png"))
    assert page.errors == []
    assert "Could not query" not in page.page.inner_text("main")
    assert page.page.locator("main .panel").count() >= 1


def test_charts_show_what_the_query_api_returns(pages, server: Server):
    to = int(time.time() - 30) // 60 * 60
    frm = to - 600
    page = pages()
    page.open(f"view=overview&from={frm}&to={to}")
    step = int(page.page.evaluate("document.body.dataset.step"))
    checked = 0
    with server.api() as api:
        for p in panel_data(page):
            spec = p["spec"]
            results = [api.get("/v1/query", params={
                "metric": spec["metric"], "stat": stat, "from": frm, "to": to, "step": f"{step}s",
                "group_by": spec["group_by"] or None, "where": spec["where"]}).json()
                for stat in spec["stats"]]
            times = sorted({t for r in results for s in r["series"] for t, _ in s["points"]})
            expected = [[dict(s["points"]).get(t) for t in times]
                        for r in results for s in r["series"]]
            assert p["x"] == times, spec["title"]
            assert p["ys"] == expected, spec["title"]
            checked += len(expected)
    assert checked >= 10


def test_live_mode_shows_a_burst_within_a_second(pages, server: Server, shots):
    page = pages()
    page.open("view=overview&live=1")
    wait_js(page.page, "Number(document.body.dataset.liveTotal || 0) > 0", 10_000)
    latencies = []
    with server.api() as api:
        for i in range(20):
            pool = f"burst{i}"
            now = time.time()
            events = [{"type": "request", "time": now, "pool": pool, "command": "predict",
                       "duration_us": 1000 + j, "status": "ok"} for j in range(25)]
            t0 = time.monotonic()
            assert api.post("/v1/events", json=events).status_code == 202
            wait_js(page.page, """(pool) => [...document.querySelectorAll('.u-legend .u-label')]
                     .some((e) => e.textContent === 'pool=' + pool)""", 5_000, arg=pool)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.2)
    page.page.screenshot(path=str(shots / "overview-live.png"))
    p95 = statistics.quantiles(latencies, n=20)[-1]
    report = (f"live event-to-screen over {len(latencies)} bursts: p50 "
              f"{statistics.median(latencies) * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms, "
              f"max {max(latencies) * 1000:.0f} ms")
    print("\n" + report)
    (shots / "live-latency.txt").write_text(report + "\n")
    assert page.errors == []
    assert p95 <= 1.0, report


def test_drill_down_from_pool_to_worker_to_its_requests(pages, server: Server):
    to = int(time.time() - 30) // 10 * 10
    page = pages()
    page.open(f"view=pools&from={to - 900}&to={to}")  # a fixed range: no refresh under our feet
    pool = page.page.locator("table.data tr.link").first.locator("td").first.inner_text()
    page.page.evaluate("document.body.dataset.ready = ''")
    page.page.locator("table.data tr.link").first.click()
    page.wait_drawn()
    assert "view=workers" in page.page.url and f"where=pool%3A{pool}" in page.page.url
    row = page.page.locator("table.data tr.link").first
    worker = row.locator("td").first.inner_text()
    page.page.evaluate("document.body.dataset.ready = ''")
    row.click()
    page.wait_drawn()
    assert "view=requests" in page.page.url
    shown = page.page.locator("table.data tr").all()[1:]
    assert shown, "the worker's requests are listed"
    cells = [[td.inner_text() for td in r.locator("td").all()] for r in shown]
    assert {(c[1], c[2]) for c in cells} == {(pool, worker)}
    frm, to = (int(page.page.evaluate(f"document.body.dataset.{k}")) for k in ("from", "to"))
    with server.api() as api:
        listed = api.get("/v1/requests", params={"from": frm, "to": to, "limit": 200,
                                                 "where": [f"pool:{pool}", f"worker_id:{worker}"]}
                         ).json()["requests"]
    assert sorted(c[9] for c in cells) == sorted(x["trace_id"] for x in listed)
    assert page.errors == []


def test_a_click_on_a_chart_point_lists_the_requests_behind_it(pages):
    page = pages()
    page.open("view=overview&range=15m")
    over = page.page.locator(".panel .u-over").nth(1)  # latency percentiles
    box = over.bounding_box()
    page.page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8)
    page.page.evaluate("document.body.dataset.ready = ''")
    page.page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.8)
    page.wait_drawn()
    assert "view=requests" in page.page.url
    frm, to = (int(page.page.evaluate(f"document.body.dataset.{k}")) for k in ("from", "to"))
    assert 0 < to - frm <= 60
    assert page.page.locator("table.data tr").count() > 1


def titles(page: Page) -> list[str]:
    return page.page.locator("main .panel h3 .title").all_inner_texts()


def test_a_saved_layout_comes_back_for_its_user_and_not_for_another(pages, server: Server, shots):
    alice = pages("alice")
    alice.open("view=overview&range=15m")
    before = titles(alice)
    alice.redrawn(lambda: alice.page.click("#edit"))
    alice.redrawn(lambda: alice.page.locator("main .panel").filter(has_text=before[0]).get_by_role(
        "button", name="remove panel").click())
    alice.page.select_option("select[name=metric]", "queue_wait_seconds")
    alice.page.select_option("select[name=stat]", "p99")
    alice.page.fill("input[name=title]", "Queue wait P99")
    alice.redrawn(lambda: alice.page.click("button[name=add]"))
    alice.page.click("#save")
    alice.page.fill("#save-title", "Alice's latency")
    alice.page.evaluate("document.body.dataset.ready = ''")
    alice.page.click("#save-submit")
    alice.page.wait_for_url("**dash=*")
    alice.wait_drawn()
    dash_url = alice.page.url
    expected = [*before[1:], "Queue wait P99"]
    alice.page.reload()
    alice.wait_drawn()
    assert titles(alice) == expected
    alice.page.screenshot(path=str(shots / "saved-dashboard.png"))
    with server.api("alice") as api:
        assert [d["title"] for d in api.get("/v1/dashboards").json()] == ["Alice's latency"]

    bob = pages("bob")
    bob.page.goto(dash_url)
    bob.wait_drawn()
    assert titles(bob) == []
    assert "does not exist" in bob.page.inner_text("main")
    assert bob.page.locator("#layouts option").all_inner_texts() == ["Saved dashboards…"]
    assert alice.errors == [] and bob.errors == []


def test_exports_download_and_parse(pages, tmp_path):
    page = pages("ops")
    page.open("view=pools&range=15m")
    panel = page.page.locator("main .panel").filter(has=page.page.locator(".u-over")).first
    points = page.page.evaluate("""() => [...document.querySelectorAll('.panel')]
        .find((e) => e.__chart).__chart.data[0].length""")
    with page.page.expect_download() as d:
        panel.get_by_role("button", name="download this panel's data as CSV").click()
    rows = list(csv.reader(io.StringIO(d.value.path().read_text())))
    assert rows[0][0] == "time" and len(rows[0]) >= 2 and len(rows) == points + 1
    float(next(v for v in rows[1][1:] if v))  # numbers, not formatted text
    with page.page.expect_download() as d:
        panel.get_by_role("button", name="download this panel as a PNG image").click()
    png = d.value.path().read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    with page.page.expect_download() as d:
        page.page.click("#export")
    exported = json.loads(d.value.path().read_text())
    assert [p["title"] for p in exported["panels"]] == titles(page)
    path = tmp_path / "view.json"
    path.write_text(json.dumps({**exported, "title": "Imported pools"}))
    page.page.evaluate("document.body.dataset.ready = ''")
    page.page.set_input_files("#import", str(path))
    page.page.wait_for_url("**dash=*")
    page.wait_drawn()
    assert titles(page) == [p["title"] for p in exported["panels"]]
    assert "Imported pools" in page.page.locator("#layouts").inner_text()
    assert page.errors == []


def test_without_a_key_the_page_asks_for_one(pages, shots):
    page = pages(user=None)
    page.page.goto(f"{page.server.url}/")
    page.page.wait_for_selector("#login[open]")
    page.page.screenshot(path=str(shots / "sign-in.png"))
    page.page.fill("#key", "spk_wrong")
    page.page.click("#login-submit")
    wait_js(page.page, "document.getElementById('login-error').textContent.length > 0")
    page.page.fill("#key", "spk_test_alice")
    page.page.click("#login-submit")
    page.wait_drawn()
    assert page.page.inner_text("#user").startswith("alice (viewer)")
    assert all("401" in e for e in page.errors), page.errors


def test_an_open_alert_is_shown_and_can_be_acknowledged_and_silenced(pages, server: Server, shots):
    page = pages("ops")
    page.open("view=overview&range=15m")
    page.page.wait_for_selector(".alerts li", timeout=30_000)  # the page refreshes itself
    error_alert = page.page.locator(".alerts li").filter(has_text="error ratio rose in pool default")
    assert error_alert.count() == 1
    assert page.page.inner_text('[data-tile="alerts"] .value') != "0"
    page.page.screenshot(path=str(shots / "overview-alert.png"))
    page.page.evaluate("document.body.dataset.ready = ''")
    error_alert.get_by_role("button", name="Acknowledge").click()
    page.wait_drawn()
    assert "acknowledged by ops" in error_alert.inner_text()
    page.page.evaluate("document.body.dataset.ready = ''")
    error_alert.get_by_role("button", name="Silence 1h").click()
    page.wait_drawn()
    assert "silenced" in error_alert.inner_text()
    with server.api() as api:
        (silence,) = api.get("/v1/silences").json()
        assert silence["matchers"] == {"pool": "default", "signal": "error_ratio"}
        assert silence["created_by"] == "ops"
    viewer = pages("alice")
    viewer.open("view=overview&range=15m")
    assert viewer.page.locator(".alerts li button").count() == 0, "viewers cannot act"
    assert page.errors == [] and viewer.errors == []


def test_workers_sort_panels_resize_and_reorder_and_a_drag_zooms(pages):
    page = pages()
    page.open("view=workers&range=15m")
    page.page.click("table.data th[data-key=p99]")
    p99 = page.page.locator("table.data tr.link td:nth-child(6)").all_inner_texts()

    def seconds(text: str) -> float | None:
        if text == "–":  # a worker with no request in the range (just spawned)
            return None
        value, unit = text.split()
        return float(value) * {"µs": 1e-6, "ms": 1e-3, "s": 1.0}[unit]

    shown = [seconds(t) for t in p99]
    known = [s for s in shown if s is not None]
    assert known and shown == sorted(known, reverse=True) + [None] * (len(shown) - len(known)), \
        "slowest first, workers without a value last"
    page.open("view=overview&range=15m")
    before = titles(page)

    redrawn = page.redrawn

    def panel(title: str):
        return page.page.locator("main .panel").filter(has_text=title)

    redrawn(lambda: page.page.click("#edit"))
    width = panel(before[0]).bounding_box()["width"]
    redrawn(lambda: panel(before[0]).get_by_role("button", name="wider").click())
    assert panel(before[0]).bounding_box()["width"] > width
    redrawn(lambda: panel(before[0]).get_by_role("button", name="move right").click())
    assert titles(page)[:2] == [before[1], before[0]]
    redrawn(lambda: page.page.click("#edit"))  # done editing
    over = page.page.locator(".panel .u-over").first
    box = over.bounding_box()
    y = box["y"] + box["height"] / 2
    page.page.mouse.move(box["x"] + box["width"] * 0.3, y)
    page.page.mouse.down()
    page.page.mouse.move(box["x"] + box["width"] * 0.6, y, steps=5)
    redrawn(lambda: page.page.mouse.up())
    assert "from=" in page.page.url
    frm, to = (int(page.page.evaluate(f"document.body.dataset.{k}")) for k in ("from", "to"))
    assert 0 < to - frm < 900 * 0.5, "zoomed into about a third of the 15 minutes"
    assert page.errors == []


def test_the_page_runs_under_a_strict_content_security_policy(pages, server: Server):
    page = pages()
    response = page.page.goto(f"{server.url}/#view=overview")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp
    page.wait_drawn()
    assert not [e for e in page.errors if "Content Security Policy" in e], page.errors


def test_series_folded_by_the_series_limit_are_warned_in_a_banner(browser, tmp_path, monkeypatch,
                                                                 pages):
    """No banner on a healthy service; after a producer sent unbounded labels, one that says
    which family overflowed."""
    healthy = pages()
    healthy.open()
    healthy.wait_drawn()
    assert healthy.page.is_hidden("#warnings")
    monkeypatch.setenv("SNAKEPIT_PERF_LIMITS_MAX_SERIES_PER_FAMILY", "100")
    with running(tmp_path, []) as server:
        events = requests(3_000, 60, start=time.time() - 600)
        for i, e in enumerate(events):
            e.command = f"cmd-{i}"  # every request its own series
        r = httpx.post(f"{server.url}/v1/events", content=msgspec.json.encode(events),
                       headers={"Content-Type": "application/json"}, timeout=30)
        assert r.status_code == 202, r.text
        page = Page(browser, server, user=None)
        try:
            page.open()
            page.page.wait_for_selector("#warnings:not([hidden])")
            text = page.page.inner_text("#warnings")
            assert text.startswith("request: ") and "folded into __other__" in text
            assert page.errors == []
        finally:
            page.context.close()


def _pct(v: float | None, metric: str) -> str:
    """The view's formatting of a change (benchmarks.js ``change``)."""
    if v is None:
        return "–"
    return f"{v * 100:.2f} pp" if metric == "error_rate" else f"{'+' if v >= 0 else ''}{v * 100:.1f}%"


def test_benchmarks_view_shows_history_change_points_and_the_comparison(pages, server: Server,
                                                                        shots):
    """12 runs of a scenario at yesterday's 16:00 (the simulator's flat load), the last 6 with
    the default pool 3x slower: the view's history, change point and comparison are the API's."""
    from simulator.model import Incident, Simulation

    peak = (int(time.time()) // 86400 - 1) * 86400 + 16 * 3600
    with server.api() as api:
        ids, starts, want = [], [peak + i * 70 for i in range(12)], {}
        for i, start in enumerate(starts):  # all sent, then waited for together (one flush)
            slow = [Incident("latency_regression", "default", start, start + 60)] if i >= 6 \
                else []
            events = list(Simulation(40, start, 60, seed=50 + i, incidents=slow).events())
            want[start] = sum(1 for e in events if type(e).__name__ == "Request")
            assert api.post("/v1/events", content=msgspec.json.encode(events), headers={
                "Content-Type": "application/json"}).status_code == 202

        def stored(start: int) -> bool:
            q = {"metric": "requests_total", "stat": "count", "from": start, "to": start + 60}
            return sum(p[1] for s in api.get("/v1/query", params=q).json()["series"]
                       for p in s["points"]) == want[start]

        wait_js_free(lambda: all(stored(start) for start in starts))
        for i, start in enumerate(starts):
            r = api.post("/v1/benchmarks", json={
                "scenario": "nightly", "labels": {"branch": "main", "sha": f"c0ffee{i:02d}"},
                "from": start, "to": start + 60})
            assert r.status_code == 201, r.text
            ids.append(r.json()["id"])
        cps = api.get("/v1/regressions", params={"scenario": "nightly"}).json()
        assert api.post(f"/v1/benchmarks/{ids[0]}/pin").status_code == 200  # the baseline
        runs = {r["id"]: r for r in api.get("/v1/benchmarks",
                                            params={"scenario": "nightly"}).json()}
        report = api.get(f"/v1/benchmarks/{ids[-1]}/compare").json()
    assert [c["index"] for c in cps] == [6]
    page = pages()
    page.open("view=benchmarks&scenario=nightly")
    wait_js(page.page, "() => { const h = document.getElementById('bench-history'); "
                       "return h && h.__chart; }")
    assert page.errors == []
    chart = page.page.evaluate("""() => { const h = document.getElementById('bench-history');
        return {x: [...h.__chart.data[0]], y: [...h.__chart.data[1]], cps: h.changePoints}; }""")
    ordered = sorted(runs.values(), key=lambda r: r["started"])
    assert chart["x"] == [r["started"] for r in ordered]
    assert chart["y"] == [r["results"]["overall"]["p99"] for r in ordered]
    assert chart["cps"] == cps
    # The comparison of the newest run (3x slower) against the pinned first one.
    assert report["verdict"] == "regression" and report["baseline"] == [ids[0]]
    verdict = page.page.inner_text("#bench-compare p.verdict")
    assert verdict.startswith("regression")
    rows = page.page.evaluate("""() => [...document.querySelectorAll('#bench-compare tr')]
        .slice(1).map((tr) => [...tr.children].map((td) => td.textContent))""")
    shown = {(r[0], r[1]): r for r in rows}
    for d in report["differences"]:
        if d["slice"] == "overall" or d["verdict"] in ("regression", "improvement"):
            row = shown[(d["slice"], d["metric"])]
            assert row[4] == _pct(d["change"], d["metric"]) and row[8] == d["verdict"], row
    assert len(shown) == sum(1 for d in report["differences"] if d["slice"] == "overall"
                             or d["verdict"] in ("regression", "improvement"))
    cause = page.page.inner_text("#bench-compare .root-cause")
    culprit = ", ".join(f"{c['dimension']}={c['value']}" for c in report["root_cause"]["culprit"])
    assert f"Where: {culprit}" in cause and "pool=default" in culprit
    # last: a full-page shot resizes the window, and a resize renders the view again
    page.page.screenshot(path=str(shots / "benchmarks.png"), full_page=True)


def wait_js_free(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_judged_deploy_is_listed_with_the_apis_verdict_and_opens_its_comparison(
        browser, tmp_path, shots):
    """A deploy followed by a 3x slower pool default, on a service judging deploys over 2
    minutes either side: the Deploys table shows the API's verdict, and a click on it shows the
    after run against the before run."""
    from simulator.model import Incident, Simulation

    config = tmp_path / "deploys.toml"
    config.write_text("[deploys]\nbefore_s = 120\nsettle_s = 0\nafter_s = 120\n"
                      "lateness_s = 5\ncheck_every_s = 1\n")
    (tmp_path / "data").mkdir()
    with running(tmp_path / "data", ["--config", str(config)], USERS) as server:
        deployed = time.time() - 400
        events = list(Simulation(40, deployed - 120, 240, seed=5, incidents=[
            Incident("latency_regression", "default", deployed, deployed + 120)]).events())
        want = sum(1 for e in events if type(e).__name__ == "Request")
        with server.api() as api:
            assert api.post("/v1/events", content=msgspec.json.encode(events), headers={
                "Content-Type": "application/json"}).status_code == 202
            q = {"metric": "requests_total", "stat": "count", "from": int(deployed - 120),
                 "to": int(deployed + 121)}
            wait_js_free(lambda: sum(p[1] for s in api.get("/v1/query", params=q).json()[
                "series"] for p in s["points"]) == want)
            assert api.post("/v1/annotations", json={
                "type": "annotation", "kind": "deploy", "title": "deploy v2.0.0",
                "time": deployed, "tags": {"version": "v2.0.0"}}).status_code == 201
            wait_js_free(lambda: api.get("/v1/deploys").json() != [])
            verdict = api.get("/v1/deploys").json()[0]
            marks = api.get("/v1/annotations", params={"from": int(deployed - 60),
                                                       "to": int(deployed + 60)}).json()
        assert verdict["status"] == "regressed" and "pool=default" in verdict["summary"]
        assert [m["verdict"] for m in marks] == ["regressed"]  # what the chart marker says
        page = Page(browser, server, "ops")
        try:
            page.open("view=benchmarks")
            assert page.errors == []
            rows = page.page.evaluate("""() => [...document.querySelectorAll('#deploys tr')]
                .slice(1).map((tr) => [...tr.children].map((td) => td.textContent))""")
            assert len(rows) == 1 and rows[0][1:5] == ["v2.0.0", "all", "regressed",
                                                      verdict["summary"]], rows
            page.redrawn(lambda: page.page.click("#deploys tr.link"))
            shown = page.page.inner_text("#bench-compare p.verdict")
            assert shown.startswith("regression"), shown
            assert verdict["run"] in page.page.inner_text("#bench-compare h3")
            page.page.screenshot(path=str(shots / "deploys.png"), full_page=True)
        finally:
            page.context.close()


def test_a_recommendation_is_shown_as_the_api_gives_it_and_marked_applied(browser, tmp_path,
                                                                          shots):
    """A pool of 4 workers 96 % busy for the last 9 minutes: the Recommendations view lists the
    API's pool_too_small finding, shows its config snippet, and "Mark applied" records it."""
    from harness.data import MIX, mean_ms
    from simulator.model import PoolSpec, Simulation, daily_shape

    config = tmp_path / "recommend.toml"
    config.write_text("[recommend]\nlookback_hours = 1\npeak_minutes = 5\n")
    (tmp_path / "data").mkdir()
    with running(tmp_path / "data", ["--config", str(config)], USERS) as server:
        start = time.time() - 560
        rate = 0.96 * 4 / (mean_ms(MIX) / 1000) / daily_shape(start)
        spec = PoolSpec("default", pool_size=4, commands=list(MIX), crash_rate_per_hour=0,
                        error_rate=0)
        events = list(Simulation(rate, start, 540, seed=3, pools=[spec]).events())
        with server.api() as api:
            for i in range(0, len(events), 5000):
                assert api.post("/v1/events", content=msgspec.json.encode(events[i:i + 5000]),
                                headers={"Content-Type": "application/json"}).status_code == 202
            want = sum(1 for e in events if type(e).__name__ == "Request")
            q = {"metric": "requests_total", "stat": "count", "from": int(start) - 10,
                 "to": int(time.time()) + 10}
            wait_js_free(lambda: sum(p[1] for s in api.get("/v1/query", params=q).json()[
                "series"] for p in s["points"]) == want)  # every window stored: it holds still
            (rec,) = api.get("/v1/recommendations").json()
        assert rec["kind"] == "pool_too_small" and rec["proposed"] > 4
        page = Page(browser, server, "ops")
        try:
            page.open("view=recommendations")
            assert page.errors == []
            rows = page.page.evaluate("""() => [...document.querySelectorAll('#recommendations tr')]
                .slice(1).map((tr) => [...tr.children].map((td) => td.textContent))""")
            assert rows == [[rec["priority"], "default", "pool_too_small",
                             f"pool_size: 4 → {rec['proposed']}", rec["summary"],
                             f"{rec['confidence'] * 100:.0f}%", "open"]], rows
            page.redrawn(lambda: page.page.click("#recommendations tr.link"))
            assert page.page.inner_text("#recommendation pre.snippet") == rec["snippet"]
            page.page.screenshot(path=str(shots / "recommendation.png"), full_page=True)
            page.redrawn(lambda: page.page.click("#recommendation button[data-action=applied]"))
            state = page.page.inner_text("#recommendations tr.link td:last-child")
            assert state == "applied", state
            with server.api("alice") as api:
                (after,) = api.get("/v1/recommendations").json()
                assert after["state"] == "applied" and after["applied"]["to"] == str(
                    rec["proposed"])
                assert api.post(f"/v1/recommendations/{rec['id']}/dismiss",
                                json={}).status_code == 403  # a viewer may not act
        finally:
            page.context.close()


def test_the_resources_view_shows_per_core_cpu_from_collect(pages, server: Server, shots):
    """`snakepit-perf collect` (psutil) feeds the real run; the chart has one line per core."""
    import os
    import subprocess

    import psutil

    from harness.procs import EXE

    env = {**os.environ, "SNAKEPIT_PERF_KEY": USERS["ops"][1]}
    out = subprocess.run([EXE, "collect", "--url", server.url, "--interval", "1", "--count", "3"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    cores = psutil.cpu_count()
    page = pages()
    page.open("view=resources&range=15m")
    legend = """(n) => [...document.querySelectorAll('.panel')]
        .filter((e) => e.spec && e.spec.metric === 'cpu_core_percent')
        .some((e) => e.__chart && e.__chart.series.length - 1 === n)"""
    wait_js(page.page, legend, 60_000, arg=cores)  # the collected minute must be stored first
    (panel,) = [p for p in panel_data(page) if p["spec"]["metric"] == "cpu_core_percent"]
    values = [v for ys in panel["ys"] for v in ys if v is not None]
    assert len(panel["ys"]) == cores and values and all(0 <= v <= 100 for v in values)
    page.page.screenshot(path=str(shots / "resources-per-core.png"))
    assert page.errors == []
