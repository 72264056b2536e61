"""Alerts in a real Alertmanager (Debian's prometheus-alertmanager, started here on loopback):
its API lists the alert while it fires, and no longer as active once it resolved."""

from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from harness.data import T0 as T
from harness.data import minutes
from harness.kafka import wait_for
from harness.procs import free_port
from models.outputs import AlertmanagerOutput
from models.runner import AlertRunner

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
CONFIG = """
route:
  receiver: nobody
  group_by: [pool]
receivers:
  - name: nobody
"""


@pytest.fixture
def alertmanager(tmp_path):
    assert shutil.which(ALERTMANAGER), \
        f"{ALERTMANAGER} is missing: `make test` installs Debian's prometheus-alertmanager"
    (tmp_path / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = open(tmp_path / "alertmanager.log", "wb")  # noqa: SIM115 (the child writes to it)
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={tmp_path / 'alertmanager.yml'}",
                             f"--storage.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()[-2000:]
        try:
            return httpx.get(f"{url}/-/ready", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(ready, 30, "Alertmanager to be ready")
    yield url
    proc.terminate()
    proc.wait(10)


def active(url: str) -> list[dict]:
    return [a for a in httpx.get(f"{url}/api/v2/alerts").json()
            if a["labels"].get("alertname", "").startswith("snakepit_")]


def test_alertmanager_lists_the_alert_while_it_fires_then_not_once_resolved(alertmanager):
    am = AlertmanagerOutput(alertmanager)
    runner = AlertRunner(outputs=[am])
    # Minutes ending just now, so the alert's times are real ones to Alertmanager.
    base = int(time.time()) // 60 * 60 - 90 * 60

    def shifted(rng: range, **over) -> list:
        return [(m - T + base, s) for m, s in minutes(rng, **over)]

    runner.evaluate(shifted(range(0, 60)))
    notes = runner.evaluate(shifted(range(60, 64), p99_s=0.5))
    assert [n["status"] for n in notes] == ["firing"]
    wait_for(lambda: active(alertmanager), 15, "the alert in Alertmanager")
    (alert,) = active(alertmanager)
    assert alert["labels"]["pool"] == "gpu" and alert["labels"]["signal"] == "p99_s"
    assert alert["status"]["state"] == "active"
    assert alert["annotations"]["incident_id"] == notes[0]["incident_id"]
    assert "pool_size" in alert["annotations"]["remediation"]
    groups = httpx.get(f"{alertmanager}/api/v2/alerts/groups").json()
    assert any(g["labels"] == {"pool": "gpu"} for g in groups)

    resolved = runner.evaluate(shifted(range(64, 80)))
    assert [n["status"] for n in resolved] == ["resolved"]
    wait_for(lambda: not active(alertmanager), 15, "Alertmanager to see it resolved")
    assert am.delivery.failed == 0
