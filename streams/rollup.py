"""The shared vocabulary of what the engine emits and the stores keep: a series' ``Labels``,
a ``Rollup`` (one bucket of one series, or a late delta for it), a stored series
(``SeriesRef``) and a stored rollup read back (``StoredRollup``). The engine, the stores, the
runners and the queries all speak it; it imports nothing of ours but the aggregate."""

from __future__ import annotations

from dataclasses import dataclass, field

from streams.aggregate import Aggregate

Labels = tuple[str, ...]  # a series' label values, in its family's dimension order


def shard_key(shard: str, tag: str | None) -> str:
    """The shard a rollup is written under: a tagged late delta (tagged by the input unit it
    came from, e.g. a Kafka offset) is its own shard ``<shard>@<tag>``, so a replay rewrites it
    rather than adding it again; everything else is the writer's ``shard``."""
    return shard if tag is None else f"{shard}@{tag}"


@dataclass(slots=True)
class Rollup:
    """One closed (or, with ``late``, a delta for an already-closed) bucket of one series."""

    family: str
    labels: Labels
    resolution: int
    bucket: int  # epoch seconds of the bucket start
    agg: Aggregate
    late: bool = False
    tag: str | None = None  # for late deltas: the input unit they came from (e.g. an offset)
    _payload: bytes | None = field(default=None, repr=False, compare=False)

    def payload(self) -> bytes:
        """``agg.to_bytes()``, encoded once: the store and the rollups topic both send it, and
        a closed bucket's aggregate no longer changes."""
        if self._payload is None:
            self._payload = self.agg.to_bytes()
        return self._payload


@dataclass(frozen=True, slots=True)
class SeriesRef:
    family: str
    labels: Labels


@dataclass(slots=True)
class StoredRollup:
    series: SeriesRef
    resolution: int
    bucket: int
    agg: Aggregate
