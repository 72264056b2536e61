"""Where alert notifications go besides Kafka: Alertmanager's v2 API and signed webhooks.

Each output gets, after every evaluated minute, the new notifications (firing and resolved)
and the alerts firing now. HTTP deliveries run on a background thread with bounded retries, so
a slow or absent receiver never holds up the stream; failures are logged and counted.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import orjson

log = logging.getLogger(__name__)
Note = dict[str, Any]


class Output(Protocol):
    def send(self, notes: list[Note], firing: list[Note]) -> None: ...


class Delivery:
    """A queue of HTTP posts sent by one thread, each retried with backoff before giving up."""

    def __init__(self, name: str, post: Callable[[bytes, dict[str, str]], None],
                 retries: int = 4, backoff_s: float = 0.5, max_queue: int = 1000) -> None:
        self.name, self.post, self.retries, self.backoff_s = name, post, retries, backoff_s
        self.delivered = self.failed = self.dropped = 0
        self._queue: queue.Queue[tuple[bytes, dict[str, str]] | None] = queue.Queue(max_queue)
        self._thread = threading.Thread(target=self._run, name=f"alerts-{name}", daemon=True)
        self._thread.start()

    def put(self, body: bytes, headers: dict[str, str]) -> None:
        try:
            self._queue.put_nowait((body, headers))
        except queue.Full:
            self.dropped += 1
            log.error("alert output %s: queue full, notification dropped", self.name)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was sent or given up on (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self._queue.unfinished_tasks

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                for attempt in range(self.retries + 1):
                    try:
                        self.post(*item)
                        self.delivered += 1
                        break
                    except Exception as exc:  # any failure of the receiver: retry, then count
                        if attempt == self.retries:
                            self.failed += 1
                            log.error("alert output %s: gave up after %d attempts: %s",
                                      self.name, attempt + 1, exc)
                        else:
                            time.sleep(self.backoff_s * 2 ** attempt)
            finally:
                self._queue.task_done()


def _http_post(url: str, timeout: float = 5.0) -> Callable[[bytes, dict[str, str]], None]:
    client = httpx.Client(timeout=timeout)

    def post(body: bytes, headers: dict[str, str]) -> None:
        r = client.post(url, content=body, headers={"Content-Type": "application/json", **headers})
        r.raise_for_status()

    return post


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerOutput:
    """Alertmanager's ``POST /api/v2/alerts``, as Prometheus drives it: every firing alert is
    re-sent each minute with ``endsAt`` a few minutes ahead (so Alertmanager resolves it by
    itself if this process dies), a resolved one once with ``endsAt`` = when it resolved."""

    RESEND_HORIZON_S = 300

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self.url = url.rstrip("/")
        self.clock = clock
        self.delivery = Delivery("alertmanager", _http_post(f"{self.url}/api/v2/alerts"))

    def send(self, notes: list[Note], firing: list[Note]) -> None:
        resolved = [n for n in notes if n["status"] == "resolved"]
        if not firing and not resolved:
            return
        now = self.clock()
        alerts = [self.alert(n, now + self.RESEND_HORIZON_S) for n in firing] + \
                 [self.alert(n, n["at"]) for n in resolved]
        self.delivery.put(orjson.dumps(alerts), {})

    @staticmethod
    def alert(note: Note, ends_at: float) -> dict[str, Any]:
        labels = {"alertname": note["alertname"], **note["labels"]}
        annotations = {"summary": note["summary"], "remediation": note["remediation"],
                       "incident_id": note["incident_id"] or "",
                       "observed": str(note["context"]["observed"]),
                       "expected": str(note["context"]["expected"])}
        if "recovery" in note:
            annotations["recovery"] = note["recovery"]
        return {"labels": labels, "annotations": annotations,
                "startsAt": _rfc3339(note["starts_at"]), "endsAt": _rfc3339(ends_at)}


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256 over ``<timestamp>.<body>``; the timestamp is signed too
    so a captured request cannot be replayed later as a new one."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookOutput:
    """Each notification POSTed as JSON with ``X-Snakepit-Timestamp`` and
    ``X-Snakepit-Signature`` headers a receiver checks with the shared secret."""

    def __init__(self, url: str, secret: str, clock: Callable[[], float] = time.time) -> None:
        self.secret, self.clock = secret, clock
        self.delivery = Delivery(f"webhook {url}", _http_post(url))

    def send(self, notes: list[Note], firing: list[Note]) -> None:
        for note in notes:
            body = orjson.dumps(note)
            ts = str(int(self.clock()))
            self.delivery.put(body, {"X-Snakepit-Timestamp": ts,
                                     "X-Snakepit-Signature": signature(self.secret, ts, body)})
