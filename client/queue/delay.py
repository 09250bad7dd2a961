"""DelayQueue: deliver a body after a delay, or at a time (go-queue's ``dq``), with NSQ's DPUB.

::

    async with Producer("127.0.0.1:4150") as producer:
        delays = DelayQueue(producer, "reminders")
        await delays.put(b"ping", 30.0)                  # delivered in 30 s
        await delays.put_at(b"pong", time.time() + 60)   # delivered in a minute

Consume the topic like any other (e.g. with :class:`~client.queue.NSQQueue`).

nsqd keeps a deferred message in memory (or its durable deferred store) and refuses, as a
fatal protocol error that drops the connection, any delay above its
``--max-req-timeout`` (one hour by default). :class:`DelayQueue` checks ``max_delay``
before sending instead: set it to the nsqd value when that differs. Longer delays need
another store (or a consumer that re-defers messages not yet due). Delays are whole
milliseconds; a time in the past is delivered at once.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Final, Protocol, final

from ..errors import BadTopicError
from ..protocol import is_valid_topic_name

__all__ = ["DEFAULT_MAX_DELAY", "DeferredPublisher", "DelayQueue"]

DEFAULT_MAX_DELAY: Final = 3600.0
"""nsqd's default ``--max-req-timeout``, in seconds."""


class DeferredPublisher(Protocol):
    """What the delay queue publishes through: :class:`client.Producer` or
    :class:`client.HTTPProducer`."""

    async def deferred_publish(self, topic: str, body: bytes, delay: float) -> None: ...


@final
class DelayQueue:
    """Publish bodies to ``topic`` for delivery after a delay (DPUB).

    Args:
        producer: An opened :class:`client.Producer` or :class:`client.HTTPProducer`.
        topic: Where the bodies are delivered.
        max_delay: The longest delay accepted, in seconds: nsqd's ``--max-req-timeout``.
        clock: Wall-clock time in seconds since the epoch, for :meth:`put_at`.

    Raises:
        BadTopicError: If ``topic`` is not a valid topic name.
        ValueError: If ``max_delay`` is negative.
    """

    def __init__(
        self,
        producer: DeferredPublisher,
        topic: str,
        *,
        max_delay: float = DEFAULT_MAX_DELAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not is_valid_topic_name(topic):
            raise BadTopicError("E_BAD_TOPIC", f"topic name {topic!r} is not valid")
        if not max_delay >= 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay!r}")
        self._producer = producer
        self._topic = topic
        self._max_delay = max_delay
        self._clock = clock

    def __repr__(self) -> str:
        return f"<DelayQueue {self._topic}>"

    @property
    def name(self) -> str:
        """The topic."""
        return self._topic

    @property
    def max_delay(self) -> float:
        """The longest delay accepted, in seconds."""
        return self._max_delay

    async def put(self, body: bytes | str, delay: float) -> None:
        """Publish ``body`` (``str`` is UTF-8 encoded) for delivery in ``delay`` seconds.

        Returns once nsqd has accepted it.

        Raises:
            ValueError: If ``delay`` is negative or above ``max_delay``.
            client.NSQError: As the producer's ``deferred_publish``.
        """
        if not 0 <= delay <= self._max_delay:
            raise ValueError(
                f"delay must be within [0, {self._max_delay:g}] s (nsqd's --max-req-timeout), "
                f"got {delay!r}"
            )
        payload = body.encode() if isinstance(body, str) else body
        await self._producer.deferred_publish(self._topic, payload, delay)

    async def put_at(self, body: bytes | str, at: float | datetime.datetime) -> None:
        """Publish ``body`` for delivery at ``at``: epoch seconds or an aware datetime.

        A time in the past is delivered at once.

        Raises:
            ValueError: If ``at`` is more than ``max_delay`` ahead, or a naive datetime.
            client.NSQError: As the producer's ``deferred_publish``.
        """
        if isinstance(at, datetime.datetime):
            if at.tzinfo is None:
                raise ValueError("use an aware datetime (with tzinfo), not a naive one")
            when = at.timestamp()
        else:
            when = at
        await self.put(body, max(0.0, when - self._clock()))
