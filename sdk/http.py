"""Send events to a snakepit-perf API over HTTP in NDJSON batches."""

from __future__ import annotations

import time
from typing import Any

import httpx
import msgspec

_encode = msgspec.json.Encoder().encode


class HttpSender:
    def __init__(self, url: str, batch_size: int = 500, timeout: float = 30.0,
                 max_wait_s: float = 300.0) -> None:
        self.url = url.rstrip("/") + "/v1/events"
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s  # how long a batch is retried on 429/503
        self.retries = 0
        self.accepted = 0
        self.rejected = 0
        self._batch: list[bytes] = []
        self._client = httpx.Client(timeout=timeout)

    def send(self, event: Any) -> None:
        self._batch.append(_encode(event))
        if len(self._batch) >= self.batch_size:
            self._post()

    def send_many(self, events: Any) -> None:
        for event in events:
            self.send(event)

    def flush(self, timeout: float = 30.0) -> int:
        if self._batch:
            self._post()
        return 0

    def _post(self) -> None:
        """POST one batch; on 429 or 503 wait ``Retry-After`` and send it again (the server kept
        nothing of a refused batch), for up to ``max_wait_s``."""
        body, self._batch = b"\n".join(self._batch), []
        deadline = time.monotonic() + self.max_wait_s
        while True:
            r = self._client.post(self.url, content=body,
                                  headers={"Content-Type": "application/x-ndjson"})
            if r.status_code not in (429, 503) or time.monotonic() > deadline:
                break
            self.retries += 1
            try:
                wait = float(r.headers.get("Retry-After", "1"))
            except ValueError:
                wait = 1.0
            time.sleep(min(max(wait, 0.05), 30.0))
        r.raise_for_status()
        result = r.json()
        self.accepted += result["accepted"]
        self.rejected += len(result["rejected"])

    def close(self) -> None:
        self.flush()
        self._client.close()
