"""Produce events to Kafka in batches: one JSON array of up to ``batch_size`` events per message.

Batching at the producer is what makes the stream fast (one message per event costs ~50x more
downstream). Messages are keyed by pool, so a pool's events stay in one partition and in order.
The local buffer is bounded: when the broker cannot keep up, ``send`` raises
:class:`ProducerBufferFull` instead of growing without limit.

>>> p = EventProducer("127.0.0.1:1", batch_size=2)  # doctest: +SKIP
>>> p.send({"type": "request", "time": 1.8e9, "pool": "a", "command": "c",
...         "duration_us": 5, "status": "ok"})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
from confluent_kafka import KafkaError, Message, Producer

_encode = msgspec.json.Encoder().encode


class ProducerBufferFull(RuntimeError):
    """The bounded local buffer is full: the broker is slow or unreachable."""


class EventProducer:
    def __init__(self, bootstrap: str, topic: str = "snakepit.events", batch_size: int = 500,
                 max_span_s: float = 1.0, compression: str = "lz4",
                 max_buffered_messages: int = 10_000,
                 on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
                 **config: Any) -> None:
        self.topic = topic
        self.batch_size = batch_size
        self.max_span_s = max_span_s
        self._first_time: dict[str, float] = {}
        self.delivered = 0
        self.failed = 0
        self.last_error: KafkaError | None = None
        self._on_delivery = on_delivery
        self._batches: dict[str, list[bytes]] = {}
        self.max_buffered_messages = max_buffered_messages
        self._producer = Producer({
            "bootstrap.servers": bootstrap, "compression.type": compression,
            "linger.ms": 5, "enable.idempotence": True,
            "queue.buffering.max.messages": max_buffered_messages, **config,
        })

    def send(self, event: Any) -> None:
        """Queue one event (a struct or a dict); a batch is produced once it is full or spans
        ``max_span_s`` of event time (long spans would make the stream look late downstream)."""
        is_dict = isinstance(event, dict)
        key = (event.get("pool") if is_dict else getattr(event, "pool", None)) or ""
        t = event.get("time") if is_dict else getattr(event, "time", None)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = []
            self._first_time[key] = t if isinstance(t, float | int) else 0.0
        elif isinstance(t, float | int) and t - self._first_time[key] > self.max_span_s:
            self._produce(key, self._batches.pop(key))
            batch = self._batches[key] = []
            self._first_time[key] = t
        batch.append(_encode(event))
        if len(batch) >= self.batch_size:
            self._produce(key, self._batches.pop(key))

    def send_many(self, events: Any) -> None:
        for event in events:
            self.send(event)

    def flush(self, timeout: float = 30.0) -> int:
        """Produce partial batches and wait for delivery; returns messages still undelivered."""
        for key, batch in list(self._batches.items()):
            self._produce(key, batch)
        self._batches.clear()
        return self._producer.flush(timeout)

    def _produce(self, key: str, batch: list[bytes]) -> None:
        value = b"[" + b",".join(batch) + b"]"
        try:
            self._producer.produce(self.topic, value, key=key.encode(), on_delivery=self._delivered)
        except BufferError as exc:
            self._producer.poll(1.0)  # give delivery reports a chance, then try once more
            try:
                self._producer.produce(self.topic, value, key=key.encode(),
                                       on_delivery=self._delivered)
            except BufferError:
                raise ProducerBufferFull(
                    f"the local buffer of {self.max_buffered_messages} messages is full "
                    f"({len(self._producer)} waiting, with requests in flight): the broker "
                    f"is slow or unreachable; call flush() or raise max_buffered_messages"
                ) from exc
        self._producer.poll(0)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1
            self.last_error = err
        if self._on_delivery is not None:
            self._on_delivery(err, msg)
