"""Silences, acknowledgements and the HTTP outputs (a real HTTP receiver on loopback)."""

from __future__ import annotations

import hmac
import http.server
import threading
from datetime import UTC, datetime

import orjson
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.services import Services
from harness.data import T0 as T
from harness.data import minutes
from models.outputs import AlertmanagerOutput, WebhookOutput, signature
from models.runner import AlertRunner
from runners.embedded import EmbeddedRunner
from store.sqlite import SQLiteStore


class Recorder:
    """An output that keeps what it was sent."""

    def __init__(self) -> None:
        self.notes: list[dict] = []
        self.firing: list[list[dict]] = []

    def send(self, notes, firing) -> None:
        self.notes += notes
        self.firing.append(firing)


def incident(runner: AlertRunner, pool: str = "gpu") -> list[dict]:
    runner.evaluate(minutes(range(0, 60), pool))
    return runner.evaluate(minutes(range(60, 64), pool, p99_s=0.5))


def test_a_silence_mutes_notifications_not_detection_and_survives_a_restart(tmp_path):
    store = SQLiteStore(tmp_path / "a.sqlite3")
    out = Recorder()
    clock = [float(T)]
    runner = AlertRunner(outputs=[out], store=store, clock=lambda: clock[0])
    s = runner.silence({"pool": "gp*", "signal": "p99_s"}, T + 3600, "deploying", "ops")
    notes = incident(runner)
    assert [n["status"] for n in notes] == ["firing"] and notes[0]["silenced"]
    assert out.notes == [] and out.firing[-1] == []
    assert runner.alerts("firing")[0]["silenced"] is True
    restarted = AlertRunner(store=store, clock=lambda: clock[0])
    assert [x.id for x in restarted.silences()] == [s.id]
    clock[0] = T + 7200  # the silence has expired: the still-firing alert is sent again
    runner.evaluate(minutes(range(64, 65), p99_s=0.5))
    assert [n["labels"]["pool"] for n in out.firing[-1]] == ["gpu"]
    assert runner.silences() == [] and len(runner.silences(include_expired=True)) == 1
    store.close()


def test_acknowledged_until_resolved():
    runner = AlertRunner(clock=lambda: T)
    fingerprint = incident(runner)[0]["fingerprint"]
    assert runner.acknowledge("nope", "ops") is None
    acked = runner.acknowledge(fingerprint, "ops", "on it")
    assert acked["acknowledged"] == {"by": "ops", "at": T, "comment": "on it"}
    runner.evaluate(minutes(range(64, 75)))
    assert runner.alerts("firing") == []
    assert runner.engine.acks == {}


@pytest.fixture
def api(tmp_path):
    store = SQLiteStore(tmp_path / "b.sqlite3")
    alerts = AlertRunner(store=store)
    runner = EmbeddedRunner(store)
    app = create_app(Services(store=store, sink=runner, engine=runner.engine, alerts=alerts))
    with TestClient(app) as client:
        yield client, alerts
    store.close()


def test_silence_and_ack_over_the_api(api):
    client, alerts = api
    incident(alerts)
    firing = client.get("/v1/alerts").json()
    assert len(firing) == 1 and firing[0]["acknowledged"] is None
    fp = firing[0]["fingerprint"]
    acked = client.post(f"/v1/alerts/{fp}/ack", json={"comment": "looking"}).json()
    assert acked["acknowledged"]["by"] == "local"
    assert client.post("/v1/alerts/unknown/ack", json={}).status_code == 404
    created = client.post("/v1/silences", json={"matchers": {"pool": "gpu"}, "duration": "2h",
                                                 "comment": "maintenance"})
    assert created.status_code == 201 and created.json()["active"]
    sid = created.json()["id"]
    assert client.get("/v1/alerts").json()[0]["silenced"] is True
    assert [x["id"] for x in client.get("/v1/silences").json()] == [sid]
    bad = client.post("/v1/silences", json={"matchers": {"pool": "gpu"}})
    assert bad.status_code == 422
    past = client.post("/v1/silences", json={"matchers": {"pool": "gpu"}, "ends_at": "1000"})
    assert past.status_code == 400 and past.json()["param"] == "ends_at"
    assert client.delete(f"/v1/silences/{sid}").json()["active"] is False
    assert client.get("/v1/silences").json() == []
    assert client.get("/v1/alerts").json()[0]["silenced"] is False


class _Receiver(http.server.BaseHTTPRequestHandler):
    got: list[tuple[dict, bytes]] = []
    fail_first = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.fail_first:
            _Receiver.fail_first -= 1
            self.send_response(503)
        else:
            _Receiver.got.append((dict(self.headers), body))
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    _Receiver.got, _Receiver.fail_first = [], 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Receiver
    server.shutdown()


def test_webhooks_are_signed_and_retried(receiver):
    url, rec = receiver
    rec.fail_first = 2  # the receiver is down for two attempts
    hook = WebhookOutput(f"{url}/hook", "s3cret", clock=lambda: T)
    hook.delivery.backoff_s = 0.01
    runner = AlertRunner(outputs=[hook])
    notes = incident(runner)
    assert hook.delivery.drain()
    assert hook.delivery.delivered == 1 and hook.delivery.failed == 0
    headers, body = rec.got[0]
    assert orjson.loads(body)["fingerprint"] == notes[0]["fingerprint"]
    assert headers["X-Snakepit-Timestamp"] == str(T)
    expected = signature("s3cret", str(T), body)
    assert hmac.compare_digest(headers["X-Snakepit-Signature"], expected)
    assert signature("other", str(T), body) != expected


def test_alertmanager_payload_resends_firing_and_ends_resolved(receiver):
    url, rec = receiver
    am = AlertmanagerOutput(url, clock=lambda: T + 64 * 60)
    runner = AlertRunner(outputs=[am])
    incident(runner)
    runner.evaluate(minutes(range(64, 66), p99_s=0.5))  # still firing: sent again each minute
    runner.evaluate(minutes(range(66, 80)))  # recovers
    assert am.delivery.drain()
    posts = [orjson.loads(b) for _, b in rec.got]
    assert all(p[0]["labels"]["alertname"] == "snakepit_p99_s_anomaly" for p in posts)
    assert len([p for p in posts if p[0]["endsAt"] > p[0]["startsAt"]]) >= 3
    last = posts[-1][0]
    assert last["labels"]["pool"] == "gpu" and "recovery" in last["annotations"]
    resolved_at = runner.alerts("resolved")[0]["at"]
    assert last["endsAt"] == datetime.fromtimestamp(resolved_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_pool_specific_rule_wins_and_a_static_threshold_fires_without_a_baseline(tmp_path):
    from models.alerts import AlertEngine, rule_from_dict

    slo = rule_from_dict({"signal": "p99_s", "pool": "gpu", "static_above": 0.05,
                          "for_minutes": 3, "severity": "critical"})
    engine = AlertEngine(overrides=(slo, rule_from_dict({"signal": "p99_s", "pool": "g*"})))
    assert engine.rule_for("gpu", "p99_s") is slo, "an exact pool beats a prefix"
    assert engine.rule_for("gx", "p99_s").pool == "g*"
    assert engine.rule_for("cpu", "p99_s").pool == ""
    runner = AlertRunner(engine)
    notes = runner.evaluate(minutes(range(0, 5)))  # cold: no baseline yet, but above the SLO
    assert [(n["status"], n["severity"], n["at"]) for n in notes] == [
        ("firing", "critical", T + 3 * 60)]
    assert runner.evaluate(minutes(range(0, 5), pool="cpu")) == []


def test_rules_from_a_file_and_their_errors(tmp_path):
    from snakepit_perf.alerting import load_rules
    from snakepit_perf.config import ConfigError

    path = tmp_path / "rules.toml"
    path.write_text('[[rule]]\nsignal = "error_ratio"\npool = "batch"\nmin_abs = 0.2\n')
    (rule,) = load_rules(str(path))
    assert rule.pool == "batch" and rule.min_abs == 0.2 and rule.severity == "critical"
    path.write_text('[[rule]]\nsignal = "p99"\n')
    with pytest.raises(ConfigError, match="is not one of"):
        load_rules(str(path))
    path.write_text('[[rule]]\nsignal = "p99_s"\nthreshold = 1\n')
    with pytest.raises(ConfigError, match="unknown rule field"):
        load_rules(str(path))
    path.write_text('[[rule]]\nsignal = "p99_s"\nprobability = 0.99\n')
    assert load_rules(str(path))[0].probability == 0.99
    path.write_text('[[rule]]\nsignal = "p99_s"\nprobability = 99\n')
    with pytest.raises(ConfigError, match=r"within \[0, 1\]"):
        load_rules(str(path))


def test_rules_over_the_api_outlive_a_restart(api, tmp_path):
    client, alerts = api
    before = client.get("/v1/alerts/rules").json()
    assert {r["source"] for r in before} == {"default"}
    put = client.put("/v1/alerts/rules", json=[{"signal": "p99_s", "pool": "gpu",
                                                "static_above": 0.05}])
    assert put.status_code == 200
    assert [r for r in put.json() if r["source"] == "override"][0]["static_above"] == 0.05
    bad = client.put("/v1/alerts/rules", json=[{"signal": "nope"}])
    assert bad.status_code == 400 and "nope" in bad.json()["detail"]
    restarted = AlertRunner(store=alerts.store)
    assert [r.pool for r in restarted.engine.overrides] == ["gpu"]


def test_a_deploy_that_shifts_the_level_is_one_alert_that_rebaselines_sooner(tmp_path):
    from store.base import AnnotationRecord

    def shift(store) -> list[dict]:
        runner = AlertRunner(store=store, clock=lambda: T)
        runner.evaluate(minutes(range(0, 60)))
        return runner.evaluate(minutes(range(60, 180), p99_s=0.3))  # the new normal

    plain = shift(SQLiteStore(tmp_path / "plain.sqlite3"))
    deployed_store = SQLiteStore(tmp_path / "deploy.sqlite3")
    deployed_store.add_annotations([AnnotationRecord(T + 59 * 60, "deploy", "v2.1", pool="gpu")])
    deployed = shift(deployed_store)
    for notes in (plain, deployed):
        assert [n["status"] for n in notes] == ["firing", "resolved"], "one alert, no storm"
    duration = {name: notes[1]["at"] - notes[0]["at"]
                for name, notes in (("plain", plain), ("deployed", deployed))}
    assert duration["deployed"] <= 30 * 60 < duration["plain"]
    assert deployed[0]["context"]["after_deploy"] == "v2.1"
    assert plain[0]["context"]["after_deploy"] is None


def test_workers_share_one_checkpoint_each_keeping_its_own_pools(tmp_path):
    store = SQLiteStore(tmp_path / "w.sqlite3")
    out_a, out_b = Recorder(), Recorder()
    a = AlertRunner(outputs=[out_a], store=store, checkpoint="alerts:g", shared=True)
    b = AlertRunner(outputs=[out_b], store=store, checkpoint="alerts:g", shared=True)
    fired = {}
    for runner, pool in ((a, "gpu"), (b, "cpu")):
        (note,) = incident(runner, pool)
        fired[pool] = note
    assert {n["labels"]["pool"] for f in out_a.firing for n in f} == {"gpu"}
    # Both workers die; one new worker takes every partition and resumes both pools.
    c = AlertRunner(store=store, checkpoint="alerts:g", shared=True)
    assert {n["labels"]["pool"] for n in c.alerts("firing")} == {"gpu", "cpu"}
    still = c.evaluate(minutes(range(64, 66), "gpu", p99_s=0.5) +
                       minutes(range(64, 66), "cpu", p99_s=0.5))
    assert still == [], "no second page for incidents already firing"
    resolved = c.evaluate(minutes(range(66, 80), "gpu") + minutes(range(66, 80), "cpu"))
    assert {(n["labels"]["pool"], n["status"], n["incident_id"]) for n in resolved} == {
        (p, "resolved", fired[p]["incident_id"]) for p in ("gpu", "cpu")}
    store.close()


def test_a_long_firing_alert_is_repeated_and_a_flapping_one_resolves_late():
    out = Recorder()
    runner = AlertRunner(outputs=[out], repeat_s=30 * 60)
    (first,) = incident(runner)
    runner.evaluate(minutes(range(64, 100), p99_s=0.5))
    repeats = [n for n in out.notes if n.get("repeat")]
    assert [n["at"] - first["at"] for n in repeats] == [30 * 60]
    assert repeats[0]["fingerprint"] == first["fingerprint"]

    flappy = AlertRunner(clock=lambda: T)
    flappy.evaluate(minutes(range(0, 60)))
    m = 60
    for _ in range(3):  # three short bursts within the hour
        flappy.evaluate(minutes(range(m, m + 3), p99_s=0.5))
        flappy.evaluate(minutes(range(m + 3, m + 7)))
        m += 7
    notes = flappy.engine.history
    assert [n["status"] for n in notes] == ["firing", "resolved", "firing", "resolved", "firing"]
    assert notes[-1]["flapping"] is True
    # 4 + 4 good minutes: twice what resolved it before, still firing (it waits 3x 3 minutes)
    assert flappy.evaluate(minutes(range(m, m + 4))) == []
    assert [n["status"] for n in flappy.evaluate(minutes(range(m + 4, m + 5)))] == ["resolved"]


def test_a_throughput_drop_fires_a_below_rule():
    runner = AlertRunner(clock=lambda: T)
    runner.evaluate(minutes(range(0, 60)))  # ~20 req/s
    notes = runner.evaluate(minutes(range(60, 66), rate=2.0))
    assert [(n["status"], n["labels"]["signal"]) for n in notes] == [("firing", "rate")]
    assert notes[0]["context"]["observed"] == 2.0 and notes[0]["context"]["expected"] > 15
    assert [n["status"] for n in runner.evaluate(minutes(range(66, 75)))] == ["resolved"]


def test_the_distributed_api_lists_the_workers_alerts_read_only(tmp_path):
    from models.runner import StoredAlerts

    store = SQLiteStore(tmp_path / "d.sqlite3")
    worker = AlertRunner(store=store, checkpoint="alerts:g", shared=True, clock=lambda: T)
    (note,) = incident(worker)
    worker.silence({"pool": "cpu"}, T + 3600, "", "ops")
    runner = EmbeddedRunner(store)
    app = create_app(Services(store=store, sink=runner, mode="distributed",
                              alert_view=StoredAlerts(store, "alerts:g", max_age_s=0)))
    with TestClient(app) as client:
        (listed,) = client.get("/v1/alerts").json()
        assert listed["fingerprint"] == note["fingerprint"] and listed["status"] == "firing"
        assert len(client.get("/v1/silences", params={"expired": True}).json()) == 1
        assert client.get("/v1/alerts/rules").status_code == 200
        ack = client.post(f"/v1/alerts/{note['fingerprint']}/ack", json={})
        assert ack.status_code == 404 and "read-only" in ack.json()["detail"]
        worker.evaluate(minutes(range(64, 80)))  # the worker resolves it; the API follows
        assert client.get("/v1/alerts").json() == []
    store.close()
