"""The seams of the queue framework: what sources, handlers, pushers and services implement.

These mirror go-zero's ``core/queue`` contracts, translated to Trio:

* A :class:`QueueProducer` (go-zero's ``Producer``; named apart from
  :class:`client.Producer`, which publishes to nsqd) is a *source*. The queue calls
  :meth:`QueueProducer.produce` in a loop from one task per producer; it returns an item,
  or :data:`NOTHING` when nothing is available right now (go-zero's ``(value, false)``).
  :class:`~client.queue.NSQSource` implements it over a :class:`client.Consumer`.
* A :class:`QueueConsumer` (go-zero's ``Consumer``) is a *handler*. Each consumer instance
  is driven by one task, so :meth:`QueueConsumer.consume` and
  :meth:`QueueConsumer.on_event` are never called concurrently on the same instance.
* A producer may tell the queue that it paused or resumed (for example, a source whose
  upstream is throttling) through the :class:`ProduceListener` the queue registers with
  :meth:`QueueProducer.add_listener`. When every producer is paused the queue notifies its
  own :class:`Listener` objects with ``on_pause()``; when one resumes, with ``on_resume()``.
* A :class:`Pusher` is a *sink* (go-zero's ``Pusher``): one named destination that
  accepts items. An NSQ publisher adapter implements this.
* A :class:`Service` is anything with ``run()`` / ``stop()``; a :class:`~client.queue.Queue`
  is one, and so is a :class:`~client.queue.ServiceGroup`.

All callbacks run in the Trio thread of the queue; none of them may block the thread.
Producers and consumers that hold resources (a connection) may also define
``async aclose()``: the queue awaits it when the task owning the object ends.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Final, Literal, Protocol, TypeAlias, TypeVar

__all__ = [
    "NOTHING",
    "ConsumerFactory",
    "Listener",
    "Nothing",
    "ProduceListener",
    "ProducerFactory",
    "Pusher",
    "QueueConsumer",
    "QueueProducer",
    "Service",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
T_contra = TypeVar("T_contra", contravariant=True)


class Nothing(enum.Enum):
    """Type of the :data:`NOTHING` sentinel (an enum, so type checkers can narrow it)."""

    NOTHING = "NOTHING"

    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Final = Nothing.NOTHING
"""Returned by :meth:`QueueProducer.produce` to mean "no item right now"; the queue backs off."""


class ProduceListener(Protocol):
    """Handed to each producer by the queue; the producer reports its own state through it.

    Calls are idempotent: reporting "paused" twice counts once.
    """

    def on_producer_pause(self) -> None:
        """Report that this producer has stopped yielding items until further notice."""

    def on_producer_resume(self) -> None:
        """Report that this producer yields items again."""


class Listener(Protocol):
    """Notified by the queue when all of its producers are paused, and when one resumes."""

    def on_pause(self) -> None:
        """Called once when the last active producer pauses."""

    def on_resume(self) -> None:
        """Called once when a producer becomes active while the queue is paused."""


class QueueProducer(Protocol[T_co]):
    """A source of items, polled by one queue task."""

    def add_listener(self, listener: ProduceListener) -> None:
        """Register the queue's listener; called once, before the first ``produce()``."""

    async def produce(self) -> T_co | Literal[Nothing.NOTHING]:
        """Return the next item, or :data:`NOTHING` if none is available now.

        Must be cancel-safe: :meth:`~client.queue.Queue.stop` cancels a pending call,
        and an item must not be lost (taken from the source but not returned) when that
        happens. Exceptions are logged and counted; the queue backs off and calls again.
        """
        ...


class QueueConsumer(Protocol[T_contra]):
    """A handler of items; one instance is never entered by two calls at once."""

    async def consume(self, item: T_contra) -> None:
        """Handle one item. Exceptions are logged and counted; the item is not retried."""

    async def on_event(self, event: object) -> None:
        """Handle an event sent with :meth:`~client.queue.Queue.broadcast`."""


ProducerFactory: TypeAlias = Callable[[], "Awaitable[QueueProducer[T]] | QueueProducer[T]"]
"""Builds one producer (sync or async). Exceptions are retried with backoff."""

ConsumerFactory: TypeAlias = Callable[[], "Awaitable[QueueConsumer[T]] | QueueConsumer[T]"]
"""Builds one consumer (sync or async). Exceptions are retried with backoff."""


class Pusher(Protocol[T_contra]):
    """A named sink for items (one nsqd, one topic, ...)."""

    @property
    def name(self) -> str:
        """A human-readable name, used in logs and error reports."""
        ...

    async def push(self, item: T_contra) -> None:
        """Deliver one item; raise on failure."""


class Service(Protocol):
    """Something that runs until told to stop."""

    async def run(self) -> None:
        """Run until :meth:`stop` is called (or the work ends), then return."""

    def stop(self) -> None:
        """Ask :meth:`run` to finish; returns at once."""
