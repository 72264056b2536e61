"""A background thread that runs one check at a fixed interval (the deploy and recommendation
judges): an error is logged and the next round still runs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    def __init__(self, name: str, every_s: float, check: Callable[[], object]) -> None:
        self.name, self.every_s, self.check = name, every_s, check
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.check()
            except Exception:  # keep checking in the next rounds
                log.exception(self.name)
