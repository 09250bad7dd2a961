"""Queue: producer tasks feed one bounded Trio memory channel drained by consumer tasks.

This is go-zero's ``core/queue.Queue`` on Trio. One nursery owns every task:

* ``producers`` tasks each build a :class:`~client.queue.QueueProducer` (retrying
  the factory with backoff) and call ``produce()`` in a loop, sending items into a
  memory channel of ``capacity`` slots. A full channel blocks them: that is the
  back-pressure from slow consumers.
* ``consumers`` tasks each build a :class:`~client.queue.QueueConsumer` and feed it
  items from the channel, plus the events sent with :meth:`Queue.broadcast`.
* :meth:`Queue.stop` interrupts the producers' pending ``produce()`` calls and sleeps; an
  item already produced is still sent (no produced item is lost). The last producer closes
  the channel, the consumers drain what is buffered, and :meth:`Queue.run` returns.

Per item the queue costs about 2-3 µs on the reference machine (``scripts/bench/
queue_overhead.py``): no cancel scope is entered per item, and consumers take buffered
items with ``receive_nowait()``, yielding only when the channel is empty.

Defaults differ from go-zero's ``NumCPU`` producers and ``2 * NumCPU`` consumers, because a
Trio queue runs on one thread: the counts are degrees of I/O concurrency, not CPU
parallelism. One producer is enough for one source; eight consumers overlap eight
handlers that await I/O.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, cast, final

import trio

from ._sync import Gate, Mailbox
from ._util import Backoff, LatencyWindow
from .interfaces import (
    NOTHING,
    ConsumerFactory,
    Listener,
    ProducerFactory,
    QueueConsumer,
    QueueProducer,
)

__all__ = [
    "DEFAULT_CAPACITY",
    "DEFAULT_CONSUMERS",
    "DEFAULT_PRODUCERS",
    "Queue",
    "QueueStatistics",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_PRODUCERS: Final = 1
DEFAULT_CONSUMERS: Final = 8
DEFAULT_CAPACITY: Final = 64
DEFAULT_EVENT_CAPACITY: Final = 16
DEFAULT_LATENCY_WINDOW: Final = 1024
DEFAULT_RETRY_BACKOFF: Final = Backoff(initial=0.5, maximum=30.0)
DEFAULT_IDLE_BACKOFF: Final = Backoff(initial=0.001, maximum=0.1)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatistics:
    """A snapshot of a queue's counters.

    ``produced`` items end up either ``consumed`` (``consume()`` returned) or in
    ``failures`` (it raised); after :meth:`Queue.run` returns, ``produced == consumed +
    failures``. Latency percentiles (seconds) cover the last ``samples`` ``consume()``
    calls, successful or not.
    """

    name: str
    produced: int
    consumed: int
    failures: int
    produce_errors: int
    event_errors: int
    factory_errors: int
    buffered: int
    capacity: int
    active_producers: int
    paused: bool
    p50: float
    p90: float
    p99: float
    samples: int


class _ProducerHandle:
    """The :class:`ProduceListener` given to one producer; tracks its pause state and
    reports changes through the callbacks its queue gave it."""

    __slots__ = ("_attached", "_detached", "_on_paused", "_on_resumed", "_paused")

    def __init__(self, on_paused: Callable[[], None], on_resumed: Callable[[], None],
                 detached: Callable[[], None]) -> None:
        self._on_paused = on_paused
        self._on_resumed = on_resumed
        self._detached = detached
        self._paused = False
        self._attached = True
        on_resumed()

    def on_producer_pause(self) -> None:
        if self._attached and not self._paused:
            self._paused = True
            self._on_paused()

    def on_producer_resume(self) -> None:
        if self._attached and self._paused:
            self._paused = False
            self._on_resumed()

    def detach(self) -> None:
        """Forget this producer (its task ended); shutdown does not notify listeners."""
        if self._attached:
            self._attached = False
            if not self._paused:
                self._detached()


async def _build(factory: Any) -> Any:
    result = factory()
    if inspect.isawaitable(result):
        result = await result
    return result


async def _aclose_quietly(obj: object, kind: str, name: str) -> None:
    """Await ``obj.aclose()`` if it has one (the optional lifecycle seam for adapters)."""
    aclose = getattr(obj, "aclose", None)
    if aclose is None:
        return
    try:
        await aclose()
    except Exception:
        logger.exception("QUEUE(%s): error closing %s %r", name, kind, obj)


@final
class Queue(Generic[T]):
    """Move items from producers to consumers through a bounded channel.

    Args:
        producer_factory: Builds one producer per producer task (sync or async).
        consumer_factory: Builds one consumer per consumer task (sync or async).
        producers: Number of producer tasks (default 1).
        consumers: Number of consumer tasks, i.e. concurrent ``consume()`` calls (default 8).
        capacity: Items the channel buffers between producers and consumers; ``0`` is a
            rendezvous (default 64).
        name: Used in logs and statistics.
        event_capacity: Events each consumer can have pending before
            :meth:`broadcast` blocks.
        retry_backoff: Delays between failed factory calls and after ``produce()`` raises.
        idle_backoff: Delays after consecutive :data:`NOTHING` results.
        latency_window: How many recent ``consume()`` durations the percentiles cover.

    Raises:
        ValueError: If a count or size is out of range.

    Objects built by the factories may define ``async aclose()``; the queue awaits it when
    the task that owns the object ends.
    """

    def __init__(
        self,
        producer_factory: ProducerFactory[T],
        consumer_factory: ConsumerFactory[T],
        *,
        producers: int = DEFAULT_PRODUCERS,
        consumers: int = DEFAULT_CONSUMERS,
        capacity: int = DEFAULT_CAPACITY,
        name: str = "queue",
        event_capacity: int = DEFAULT_EVENT_CAPACITY,
        retry_backoff: Backoff = DEFAULT_RETRY_BACKOFF,
        idle_backoff: Backoff = DEFAULT_IDLE_BACKOFF,
        latency_window: int = DEFAULT_LATENCY_WINDOW,
    ) -> None:
        if producers < 1:
            raise ValueError(f"producers must be >= 1, got {producers!r}")
        if consumers < 1:
            raise ValueError(f"consumers must be >= 1, got {consumers!r}")
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity!r}")
        self._producer_factory = producer_factory
        self._consumer_factory = consumer_factory
        self._producer_count = producers
        self._capacity = capacity
        self._name = name
        self._retry = retry_backoff
        self._idle = idle_backoff
        self._window = LatencyWindow(latency_window)
        self._mailboxes: list[Mailbox[object]] = [Mailbox(event_capacity) for _ in range(consumers)]
        self._listeners: list[Listener] = []
        # Cancel scopes of producer waits that stop() interrupts (at most one per producer).
        self._producer_scopes: set[trio.CancelScope] = set()
        # Cancel scopes of consumer factory-retry sleeps, woken when the channel may be drained.
        self._consumer_sleeps: set[trio.CancelScope] = set()
        self._recv: trio.MemoryReceiveChannel[T] | None = None
        self._started = False
        self._stopping = False
        self._producers_left = 0
        self._active = 0
        self._paused = False
        self._produced = 0
        self._consumed = 0
        self._failures = 0
        self._produce_errors = 0
        self._event_errors = 0
        self._factory_errors = 0

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._name

    @property
    def paused(self) -> bool:
        """True while every producer has reported itself paused."""
        return self._paused

    def add_listener(self, listener: Listener) -> None:
        """Register ``listener`` for queue-wide pause/resume notifications."""
        self._listeners.append(listener)

    async def broadcast(self, event: object) -> int:
        """Deliver ``event`` to every consumer's ``on_event()``.

        Events queue per consumer (up to ``event_capacity``; then this waits) and are
        handled between two ``consume()`` calls. Events sent before :meth:`run` are
        delivered once the consumers exist. Cancelling this may leave the event
        delivered to only some consumers.

        Returns:
            How many consumers the event was queued for (consumers that already shut
            down are skipped).
        """
        delivered = 0
        for mailbox in self._mailboxes:
            if await mailbox.put(event):
                delivered += 1
        return delivered

    def stop(self) -> None:
        """Stop producing, let consumers drain the buffer, then let :meth:`run` return.

        Returns at once; idempotent; may be called before :meth:`run`.
        """
        if self._stopping:
            return
        self._stopping = True
        logger.info("QUEUE(%s): stopping", self._name)
        for scope in list(self._producer_scopes):
            scope.cancel()

    def statistics(self) -> QueueStatistics:
        """Return a snapshot of the counters and latency percentiles."""
        p50, p90, p99 = self._window.percentiles(50, 90, 99)
        buffered = 0 if self._recv is None else self._recv.statistics().current_buffer_used
        return QueueStatistics(
            name=self._name,
            produced=self._produced,
            consumed=self._consumed,
            failures=self._failures,
            produce_errors=self._produce_errors,
            event_errors=self._event_errors,
            factory_errors=self._factory_errors,
            buffered=buffered,
            capacity=self._capacity,
            active_producers=self._active,
            paused=self._paused,
            p50=p50,
            p90=p90,
            p99=p99,
            samples=len(self._window),
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run producers and consumers until :meth:`stop` and a full drain.

        Signals ``task_status.started()`` once every task is spawned. Cancelling this
        aborts at once: items buffered or in a pending send are then dropped.

        Raises:
            RuntimeError: If called more than once.
        """
        if self._started:
            raise RuntimeError("Queue.run() may only be called once")
        self._started = True
        send, recv = trio.open_memory_channel[T](self._capacity)
        self._recv = recv
        self._producers_left = self._producer_count
        logger.info(
            "QUEUE(%s): starting %d producers, %d consumers, capacity %d",
            self._name,
            self._producer_count,
            len(self._mailboxes),
            self._capacity,
        )
        try:
            async with trio.open_nursery() as nursery:
                async with send, recv:
                    for index, mailbox in enumerate(self._mailboxes):
                        nursery.start_soon(self._consumer_task, index, recv.clone(), mailbox)
                    for index in range(self._producer_count):
                        nursery.start_soon(self._producer_task, index, send.clone())
                task_status.started()
        finally:
            for mailbox in self._mailboxes:
                mailbox.close()
        logger.info(
            "QUEUE(%s): stopped after %d produced, %d consumed, %d failed",
            self._name,
            self._produced,
            self._consumed,
            self._failures,
        )

    # -- pause bookkeeping (_ProducerHandle callbacks) ---------------------------------

    def _producer_paused(self) -> None:
        self._active -= 1
        if self._active == 0 and not self._paused:
            self._paused = True
            logger.info("QUEUE(%s): all producers paused", self._name)
            self._notify("on_pause")

    def _producer_resumed(self) -> None:
        self._active += 1
        if self._paused:
            self._paused = False
            logger.info("QUEUE(%s): resumed", self._name)
            self._notify("on_resume")

    def _producer_detached(self) -> None:
        self._active -= 1  # an active producer ended: no listener is told

    def _notify(self, method: str) -> None:
        for listener in list(self._listeners):
            try:
                getattr(listener, method)()
            except Exception:
                logger.exception(
                    "QUEUE(%s): listener %r failed in %s", self._name, listener, method
                )

    # -- producers --------------------------------------------------------------------

    @contextmanager
    def _stoppable(self) -> Iterator[trio.CancelScope]:
        """A cancel scope that :meth:`stop` cancels (already cancelled if stopping)."""
        scope = trio.CancelScope()
        if self._stopping:
            scope.cancel()
        self._producer_scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._producer_scopes.discard(scope)

    async def _producer_task(self, index: int, send: trio.MemorySendChannel[T]) -> None:
        try:
            async with send:
                producer = await self._create_producer(index)
                if producer is None:
                    return
                try:
                    handle = _ProducerHandle(self._producer_paused, self._producer_resumed,
                                             self._producer_detached)
                    try:
                        producer.add_listener(handle)
                        await self._produce_loop(producer, send)
                    finally:
                        handle.detach()
                finally:
                    await _aclose_quietly(producer, "producer", self._name)
        finally:
            self._producers_left -= 1
            if self._producers_left == 0:
                # The channel is closed now; consumers still retrying may give up.
                self._wake_consumer_sleeps()

    async def _create_producer(self, index: int) -> QueueProducer[T] | None:
        attempt = 0
        while not self._stopping:
            with self._stoppable():
                try:
                    return cast("QueueProducer[T]", await _build(self._producer_factory))
                except Exception:
                    self._factory_errors += 1
                    logger.exception("QUEUE(%s): error creating producer %d", self._name, index)
                await trio.sleep(self._retry.delay(attempt))
            attempt += 1
        return None

    async def _produce_loop(self, producer: QueueProducer[T], send: trio.MemorySendChannel[T]) -> None:
        # One stop scope for the whole loop: entering a CancelScope per item would cost
        # more than the hand-off itself. stop() may thus interrupt a blocking send; trio's
        # send is cancel-safe (a Cancelled send did not send), so the item is kept in
        # ``pending`` and sent after the scope, where stop() cannot interrupt it.
        pending: list[T] = []
        idle = 0
        errors = 0
        with self._stoppable():
            while not self._stopping:
                try:
                    item = await producer.produce()
                except Exception:
                    self._produce_errors += 1
                    logger.exception("QUEUE(%s): producer %r failed", self._name, producer)
                    await trio.sleep(self._retry.delay(errors))
                    errors += 1
                    continue
                errors = 0
                if item is NOTHING:
                    await trio.sleep(self._idle.delay(idle))
                    idle += 1
                    continue
                idle = 0
                try:
                    send.send_nowait(item)
                except trio.WouldBlock:
                    pending.append(item)
                    await send.send(item)
                    pending.clear()
                self._produced += 1
        # Only reached if the Cancelled (if any) came from stop(), not from outside.
        for item in pending:
            await send.send(item)
            self._produced += 1

    # -- consumers --------------------------------------------------------------------

    def _wake_consumer_sleeps(self) -> None:
        for scope in list(self._consumer_sleeps):
            scope.cancel()

    async def _consumer_task(
        self, index: int, recv: trio.MemoryReceiveChannel[T], mailbox: Mailbox[object]
    ) -> None:
        try:
            async with recv:
                consumer = await self._create_consumer(index, recv)
                if consumer is None:
                    logger.warning("QUEUE(%s): consumer %d never started", self._name, index)
                    return
                try:
                    await self._serve(consumer, recv, mailbox)
                finally:
                    await _aclose_quietly(consumer, "consumer", self._name)
        finally:
            mailbox.close()
            # This consumer saw the channel end: stragglers still retrying may give up.
            self._wake_consumer_sleeps()

    async def _create_consumer(
        self, index: int, recv: trio.MemoryReceiveChannel[T]
    ) -> QueueConsumer[T] | None:
        attempt = 0
        while True:
            try:
                return cast("QueueConsumer[T]", await _build(self._consumer_factory))
            except Exception:
                self._factory_errors += 1
                logger.exception("QUEUE(%s): error creating consumer %d", self._name, index)
            if _drained(recv):
                return None
            scope = trio.CancelScope()
            self._consumer_sleeps.add(scope)
            try:
                with scope:
                    await trio.sleep(self._retry.delay(attempt))
            finally:
                self._consumer_sleeps.discard(scope)
            if _drained(recv):
                return None
            attempt += 1

    async def _serve(
        self, consumer: QueueConsumer[T], recv: trio.MemoryReceiveChannel[T], mailbox: Mailbox[object]
    ) -> None:
        gate = Gate()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._event_loop, consumer, gate, mailbox)
            await self._consume_loop(consumer, gate, recv)
            # Refuse new events; the event task delivers those queued, then returns.
            mailbox.close()

    async def _consume_loop(
        self, consumer: QueueConsumer[T], gate: Gate, recv: trio.MemoryReceiveChannel[T]
    ) -> None:
        window = self._window
        now = trio.current_time
        consume = consumer.consume
        while True:
            # Fast path: take buffered items without a yield per item; the channel bound
            # limits how long a consumer whose consume() never yields keeps the thread.
            try:
                item = recv.receive_nowait()
            except trio.WouldBlock:
                try:
                    item = await recv.receive()
                except trio.EndOfChannel:
                    return
            except trio.EndOfChannel:
                return
            if not gate.try_acquire():
                await gate.acquire(priority=False)
            start = now()
            try:
                await consume(item)
            except Exception:
                self._failures += 1
                logger.exception("QUEUE(%s): error consuming %.200r", self._name, item)
            else:
                self._consumed += 1
            finally:
                gate.release()
            window.add(now() - start)

    async def _event_loop(
        self, consumer: QueueConsumer[T], gate: Gate, mailbox: Mailbox[object]
    ) -> None:
        while True:
            await mailbox.wait_nonempty()
            if not mailbox:
                return  # closed and empty
            await gate.acquire(priority=True)
            try:
                event = mailbox.pop_nowait()
                await self._deliver_event(consumer, event)
            finally:
                gate.release()

    async def _deliver_event(self, consumer: QueueConsumer[T], event: object) -> None:
        try:
            await consumer.on_event(event)
        except Exception:
            self._event_errors += 1
            logger.exception("QUEUE(%s): error handling event %.200r", self._name, event)


def _drained(recv: trio.MemoryReceiveChannel[Any]) -> bool:
    """True once every sender closed and nothing is buffered: no item is left to consume."""
    stats = recv.statistics()
    return stats.open_send_channels == 0 and stats.current_buffer_used == 0
