"""A ``/metrics`` page read as Prometheus reads it: by prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[str, float]:
    """Every sample of an exposition, keyed ``name{label="value",...}`` (labels sorted), or
    ``name`` for a sample without labels. A page the parser refuses raises."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
