"""Silences and acknowledgements, Alertmanager-style, kept with the alert state.

A silence mutes notifications (not detection) of the alerts whose labels match all of its
matchers until it expires; an acknowledgement records who took an alert, until it resolves.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Silence:
    matchers: dict[str, str]  # label -> value; a trailing * matches a prefix
    starts_at: float
    ends_at: float
    comment: str = ""
    created_by: str = ""
    id: str = field(default_factory=lambda: secrets.token_hex(6))

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        return all(labels.get(k, "").startswith(v[:-1]) if v.endswith("*") else labels.get(k) == v
                   for k, v in self.matchers.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def note_labels(note: dict[str, Any]) -> dict[str, str]:
    """The labels a silence matches on: the alert's labels plus its name."""
    return {"alertname": note["alertname"], **note["labels"]}
