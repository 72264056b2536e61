"""Feed closed 1-minute rollups to the alert engine in minute order, keep what it says, and
send it to the outputs (Kafka, Alertmanager, webhooks) unless a silence mutes it."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import orjson

from models.alerts import AlertEngine, Rule
from models.outputs import Note, Output
from models.signals import Signals, minute_signals
from models.silences import Silence, note_labels
from store.base import Checkpoint, RollupStore
from streams.rollup import Rollup


class AlertRunner:
    """Thread-safe: the embedded flusher calls :meth:`consume`, the API reads and acts."""

    def __init__(self, engine: AlertEngine | None = None, outputs: Sequence[Output] = (),
                 store: RollupStore | None = None, checkpoint: str = "alerts",
                 clock: Callable[[], float] = time.time, keep_overrides: bool = False,
                 shared: bool = False, repeat_s: float = 4 * 3600) -> None:
        """With a ``store``, resumes from its checkpoint; rule overrides set over the API come
        back too unless ``keep_overrides`` (a configured rules file then wins).

        ``shared``: several workers, each scoring the pools of its partitions, keep one
        checkpoint; each rewrites only its own pools' part of it (see :meth:`_save`).
        ``repeat_s``: an alert still firing is notified again after this long (Alertmanager's
        repeat_interval), marked ``"repeat": true``."""
        self.engine = engine or AlertEngine()
        self.outputs = list(outputs)
        self._lock = threading.Lock()
        self.store = store
        self.checkpoint = checkpoint
        self.clock = clock
        self.shared = shared
        self.repeat_s = repeat_s
        self._sent: dict[str, float] = {}  # fingerprint -> event time of its last notification
        self.pools: set[str] = set()  # pools this runner has scored
        if store is not None:
            cp = store.load_checkpoint(checkpoint)
            if cp is not None:
                self.engine.restore(cp.state, keep_overrides=keep_overrides)

    def consume(self, rollups: list[Rollup]) -> list[Note]:
        """Evaluate closed 1-minute rollups (the engine's ``on_minutes`` hook)."""
        by_minute: dict[int, list[Rollup]] = defaultdict(list)
        for r in rollups:
            by_minute[r.bucket].append(r)
        return self.evaluate([(minute, {p: s for (_, p), s in minute_signals(rs).items()})
                              for minute, rs in sorted(by_minute.items())])

    def evaluate(self, minutes: list[tuple[int, dict[str, Signals]]]) -> list[Note]:
        """Score each minute's per-pool signals, in order; notify what is not silenced."""
        notes: list[Note] = []
        loud: list[Note] = []
        with self._lock:
            now = self.clock()
            for minute, by_pool in minutes:
                new = self.engine.observe(minute, by_pool, self._deploys(minute))
                self.pools.update(by_pool)
                for note in new:
                    note["silenced"] = self._silenced(note, now)
                    self._sent[note["fingerprint"]] = note["at"]
                notes += new
                loud += [n for n in new if not n["silenced"]]
                loud += self._repeats(self._loud_firing(now), minute + 60)
            if minutes:
                self._save()
            firing = self._loud_firing(now)
        for output in self.outputs:
            output.send(loud, firing)
        return notes

    def alerts(self, state: str = "firing") -> list[Note]:
        """``firing``: the latest notification of each alert firing now; ``resolved`` and
        ``all``: the notification history (newest first). Each says whether a silence mutes it
        now and who acknowledged it."""
        with self._lock:
            if state == "firing":
                notes = self._firing()
            else:
                notes = [n for n in reversed(self.engine.history)
                         if state == "all" or n["status"] == state]
            now = self.clock()
            return [{**n, "silenced": self._silenced(n, now),
                     "acknowledged": self.engine.acks.get(n["fingerprint"])
                     if n["status"] == "firing" else None} for n in notes]

    def acknowledge(self, fingerprint: str, by: str, comment: str = "") -> Note | None:
        """Mark a firing alert as taken; None if no alert with that fingerprint is firing."""
        with self._lock:
            if not any(n["fingerprint"] == fingerprint for n in self._firing()):
                return None
            self.engine.acks[fingerprint] = {"by": by, "at": self.clock(), "comment": comment}
            self._save()
        return next(n for n in self.alerts("firing") if n["fingerprint"] == fingerprint)

    def silence(self, matchers: dict[str, str], ends_at: float, comment: str, by: str,
                starts_at: float | None = None) -> Silence:
        s = Silence(matchers, self.clock() if starts_at is None else starts_at, ends_at,
                    comment, by)
        with self._lock:
            self.engine.silences.append(s)
            self._save()
        return s

    def silences(self, include_expired: bool = False) -> list[Silence]:
        now = self.clock()
        with self._lock:
            return [s for s in self.engine.silences if include_expired or s.ends_at > now]

    def expire(self, silence_id: str) -> Silence | None:
        with self._lock:
            for s in self.engine.silences:
                if s.id == silence_id:
                    s.ends_at = min(s.ends_at, self.clock())
                    self._save()
                    return s
        return None

    def rules(self) -> tuple[tuple[Rule, ...], tuple[Rule, ...]]:
        """The default rules and the overrides in force."""
        return self.engine.rules, self.engine.overrides

    def set_rules(self, overrides: tuple[Rule, ...]) -> None:
        """Replace the rule overrides (kept in the checkpoint, so they outlive a restart)."""
        with self._lock:
            self.engine.overrides = overrides
            self._save()

    def _loud_firing(self, now: float) -> list[Note]:
        """Alerts firing now that no silence mutes, of this runner's own pools (another worker
        owns, and resolves, the others)."""
        return [n for n in self._firing() if not self._silenced(n, now)
                and n["labels"]["pool"] in self.pools]

    def _repeats(self, firing: list[Note], at: int) -> list[Note]:
        """Copies of alerts firing for ``repeat_s`` since they were last notified."""
        out = []
        for note in firing:
            last = self._sent.get(note["fingerprint"], note["at"])
            if at - last >= self.repeat_s:
                out.append({**note, "at": at, "repeat": True})
                last = at
            self._sent[note["fingerprint"]] = last
        return out

    def _deploys(self, minute: int) -> dict[str, str]:
        """Pools with a deploy or config change annotated in the hour up to ``minute``."""
        if self.store is None:
            return {}
        return {a.pool: a.title for a in self.store.annotations(minute - 3600, minute + 60)
                if a.kind in ("deploy", "config_change")}

    def _firing(self) -> list[Note]:
        firing = {st.fingerprint for st in self.engine.states.values() if st.status == "firing"}
        latest: dict[str, Note] = {}
        for note in reversed(self.engine.history):
            if note["fingerprint"] in firing and note["status"] == "firing":
                latest.setdefault(note["fingerprint"], note)
        return list(latest.values())

    def _silenced(self, note: Note, now: float) -> bool:
        labels = note_labels(note)
        return any(s.active(now) and s.matches(labels) for s in self.engine.silences)

    def _save(self) -> None:
        if self.store is None:
            return
        state = self.engine.snapshot()
        if self.shared:
            cp = self.store.load_checkpoint(self.checkpoint)
            if cp is not None:
                state = merge_snapshots(cp.state, state, self.pools)
        self.store.write([], checkpoint=(self.checkpoint, Checkpoint(state)))


def merge_snapshots(stored: bytes, mine: bytes, pools: set[str]) -> bytes:
    """``stored`` with ``pools``' alert states, incidents and history replaced by ``mine``.

    Two workers saving at once may lose one of the two updates; the loser rewrites its pools a
    minute later, so a restart finds each pool's state at most a minute old."""
    old, new = orjson.loads(stored), orjson.loads(mine)
    new["states"] = [x for x in old["states"] if x["pool"] not in pools] + \
        [x for x in new["states"] if x["pool"] in pools]
    for key in ("incidents", "memory"):
        new[key] = {**{p: v for p, v in old[key].items() if p not in pools},
                    **{p: v for p, v in new[key].items() if p in pools}}
    history = [n for n in old["history"] if n["labels"]["pool"] not in pools] + \
        [n for n in new["history"] if n["labels"]["pool"] in pools]
    new["history"] = sorted(history, key=lambda n: n["at"])[-500:]
    return orjson.dumps(new)


class StoredAlerts:
    """A read-only view of the alert state workers checkpoint (for the distributed API): what
    fires, the history, silences and rules, as of the workers' last minute."""

    def __init__(self, store: RollupStore, checkpoint: str, max_age_s: float = 5.0) -> None:
        self.store, self.checkpoint, self.max_age_s = store, checkpoint, max_age_s
        self._view: AlertRunner | None = None
        self._loaded = 0.0

    def view(self) -> AlertRunner:
        """A runner restored from the latest checkpoint (re-read every ``max_age_s``)."""
        if self._view is None or time.monotonic() - self._loaded > self.max_age_s:
            self._view = AlertRunner(store=self.store, checkpoint=self.checkpoint)
            self._loaded = time.monotonic()
        return self._view
