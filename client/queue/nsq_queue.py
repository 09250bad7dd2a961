"""NSQQueue: consume an NSQ channel through the queue framework, configured like go-queue's kq.

::

    async def handle(message: Message) -> None:
        await store(message.json())          # return: FIN; raise: REQ

    queue = NSQQueue("events", "archive", handle, nsqd_tcp_addresses=["127.0.0.1:4150"],
                     conns=2, processors=8, queue_capacity=200)
    group = ServiceGroup([queue])
    await group.run(signals=DEFAULT_STOP_SIGNALS)  # SIGTERM: graceful stop

The pieces, in kq's terms:

* ``conns`` :class:`client.Consumer` objects, each with its own connection to every nsqd.
  Their ``max_in_flight`` values add up to ``queue_capacity``, so nsqd never has more than
  ``queue_capacity`` messages in flight to this queue: that bounds its memory.
* ``consumers`` fetchers per connection: :class:`~client.queue.NSQSource` tasks moving
  received messages into the :class:`~client.queue.Queue`'s channel (at most 64 slots: the
  messages in it are in flight, so they count against ``queue_capacity`` already).
* ``processors`` handler tasks (:class:`~client.queue.NSQHandler`), shared by all
  connections: a message is FIN'd only after the handler returned; if it raised, the
  message is REQ'd (delay from ``requeue_delay``); after ``max_attempts`` deliveries it is
  given up (FIN'd and passed to ``on_give_up``).

:meth:`NSQQueue.stop` (graceful, as on SIGTERM):

1. every connection gets ``CLS``: nsqd sends no more (its RDY becomes 0); messages
   received but not started yet (buffered in the consumers or in the queue's channel) are
   REQ'd at once, without delay and unhandled, and so are messages still on the wire;
2. the processors finish the messages in progress, each answered FIN or REQ as usual;
3. once every message is answered, the connections close (answers are flushed first).

No message is lost (each one is FIN'd after its handler succeeded, or goes back to nsqd)
and a finished message is never handled again. Processors still busy ``drain_timeout``
seconds after the stop are cancelled and their messages REQ'd.

The in-flight bound holds per connection set: with several nsqd behind one consumer, RDY
moves between connections as they come and go, and a connection that just lost RDY may
briefly keep messages it already had (go-nsq behaves the same).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Final, final

import httpx
import trio

from ..config import ClientConfig
from ..connection import OpenStream
from ..consumer import Consumer, ConsumerStatistics, GiveUpHook
from ..errors import BadChannelError, BadTopicError
from ..message import Message
from ..protocol import is_valid_channel_name, is_valid_topic_name
from .interfaces import Listener
from .nsq_source import MessageHandler, NSQHandler, NSQSource
from .queue import Queue, QueueStatistics

__all__ = [
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_QUEUE_CAPACITY",
    "NSQQueue",
    "NSQQueueStatistics",
]

logger = logging.getLogger(__name__)

DEFAULT_QUEUE_CAPACITY: Final = 1000
DEFAULT_DRAIN_TIMEOUT: Final = 30.0
#: slots of the queue's channel between fetchers and processors; more buys no throughput
_CHANNEL_CAPACITY: Final = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class NSQQueueStatistics:
    """A snapshot of an :class:`NSQQueue`.

    ``handled`` messages made the handler return (and were FIN'd), ``failed`` made it raise
    (and were REQ'd); ``given_back`` were REQ'd unhandled when the queue stopped.
    ``in_flight`` counts messages received and not answered yet, over all connections; it
    stays within ``queue_capacity``. ``queue`` is the underlying
    :class:`~client.queue.Queue`'s snapshot (its ``consumed`` includes ``given_back``);
    ``connections`` has one entry per consumer (``conns``), with the messages received,
    finished, requeued and given up after ``max_attempts``.
    """

    handled: int
    failed: int
    given_back: int
    in_flight: int
    queue_capacity: int
    paused: bool
    queue: QueueStatistics | None
    connections: tuple[ConsumerStatistics, ...]


def _split(total: int, parts: int) -> list[int]:
    """``total`` as ``parts`` near-equal positive integers (the larger ones first)."""
    base, extra = divmod(total, parts)
    return [base + (1 if index < extra else 0) for index in range(parts)]


@final
class NSQQueue:
    """Consume ``topic``/``channel`` with ``processors`` concurrent calls of ``handler``.

    Args:
        topic: The topic to consume.
        channel: The channel (queues sharing a channel share its messages).
        handler: ``await handler(message)``; return → FIN, raise → REQ. It may also answer
            the message itself (``finish``/``requeue``/``touch``).
        nsqd_tcp_addresses: nsqd to connect to directly (``"host:port"``).
        lookupd_http_addresses: nsqlookupd to discover the nsqd producing ``topic``.
        conns: Consumers, each with one connection per nsqd (kq ``Conns``).
        consumers: Fetcher tasks per consumer (kq ``Consumers``).
        processors: Handler tasks, in total (kq ``Processors``).
        queue_capacity: Messages in flight at most, over all connections; this bounds
            memory. Must be at least ``conns``.
        max_attempts: Deliveries after which a message is given up (0: never).
        requeue_delay: Seconds before a failed message is redelivered: a number, a
            function of the message, or ``None`` for the config's policy
            (``default_requeue_delay * attempts``, capped at ``max_requeue_delay``).
        backoff: A failure also slows consumption down (go-nsq backoff: RDY 0 for a while).
        touch_interval: TOUCH each message this often while its handler runs (``None``:
            never); use it when handlers may outlast nsqd's message timeout.
        on_give_up: Called (sync or async) with each message given up.
        drain_timeout: Seconds a graceful stop waits for handlers before cancelling them.
        config: Connection, flow-control and backoff settings for the consumers.
        name: Used in logs and statistics (default ``"topic/channel"``).
        open_stream: Opens TCP streams (a seam for tests and custom transports).
        http_client: httpx client for nsqlookupd (default: one per consumer).
        rng: Randomness for RDY redistribution (seed it in tests).

    Raises:
        client.BadTopicError, client.BadChannelError: If a name is not valid.
        ValueError: If a count is out of range, no address was given, or ``config``
            disables heartbeats (nsqd refuses SUB without them).
    """

    def __init__(
        self,
        topic: str,
        channel: str,
        handler: MessageHandler,
        *,
        nsqd_tcp_addresses: Sequence[str] | None = None,
        lookupd_http_addresses: Sequence[str] | None = None,
        conns: int = 1,
        consumers: int = 1,
        processors: int = 8,
        queue_capacity: int = DEFAULT_QUEUE_CAPACITY,
        max_attempts: int = 5,
        requeue_delay: float | Callable[[Message], float] | None = None,
        backoff: bool = True,
        touch_interval: float | None = None,
        on_give_up: GiveUpHook | None = None,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        config: ClientConfig | None = None,
        name: str | None = None,
        open_stream: OpenStream | None = None,
        http_client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        for label, value in (("conns", conns), ("consumers", consumers), ("processors", processors)):
            if value < 1:
                raise ValueError(f"{label} must be >= 1, got {value!r}")
        if queue_capacity < conns:
            raise ValueError(f"queue_capacity ({queue_capacity!r}) must be >= conns ({conns!r})")
        if max_attempts < 0:
            raise ValueError(f"max_attempts must be >= 0, got {max_attempts!r}")
        if not drain_timeout > 0:
            raise ValueError(f"drain_timeout must be > 0, got {drain_timeout!r}")
        if not nsqd_tcp_addresses and not lookupd_http_addresses:
            raise ValueError("give nsqd_tcp_addresses and/or lookupd_http_addresses")
        # Checked here, not when run() builds the consumers.
        if not is_valid_topic_name(topic):
            raise BadTopicError("E_BAD_TOPIC", f"topic name {topic!r} is not valid")
        if not is_valid_channel_name(channel):
            raise BadChannelError("E_BAD_CHANNEL", f"channel name {channel!r} is not valid")
        if config is not None and config.heartbeat_interval is None:
            raise ValueError("nsqd refuses SUB with heartbeats disabled")
        if isinstance(requeue_delay, int | float):
            if requeue_delay < 0:
                raise ValueError(f"requeue_delay must be >= 0, got {requeue_delay!r}")
            fixed = float(requeue_delay)
            self._requeue_policy: Callable[[Message], float] | None = lambda _message: fixed
        else:
            self._requeue_policy = requeue_delay
        self.topic = topic
        self.channel = channel
        self._handler = handler
        self._nsqd = list(nsqd_tcp_addresses or ())
        self._lookupd = list(lookupd_http_addresses or ())
        self._conns = conns
        self._fetchers = consumers
        self._processors = processors
        self._capacity = queue_capacity
        self._shares = _split(queue_capacity, conns)
        self._max_attempts = max_attempts
        self._backoff = backoff
        if touch_interval is not None and not touch_interval > 0:
            raise ValueError(f"touch_interval must be > 0 or None, got {touch_interval!r}")
        self._touch_interval = touch_interval
        self._on_give_up = on_give_up
        self._drain_timeout = drain_timeout
        self._config = config
        self._name = name or f"{topic}/{channel}"
        self._open_stream = open_stream
        self._http_client = http_client
        self._rng = rng
        self._consumers: list[Consumer] = []
        self._sources: list[NSQSource] = []
        self._listeners: list[Listener] = []
        self._handlers: list[NSQHandler] = []
        self._queue: Queue[Message] | None = None
        self._queue_scope = trio.CancelScope()
        self._opened = trio.Event()
        self._started = False
        self._stopping = False
        self._stop_begun = False
        self._giving_back = False
        self._paused = False

    def __repr__(self) -> str:
        return f"<NSQQueue {self._name}>"

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._name

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused

    def add_listener(self, listener: Listener) -> None:
        """Be told (``on_pause``/``on_resume``) when the queue pauses and resumes.

        Must be called before :meth:`run`.
        """
        if self._started:
            raise RuntimeError("add listeners before run()")
        self._listeners.append(listener)

    # -- lifecycle --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, consume until :meth:`stop`, drain, close (see the module doc).

        Signals ``task_status.started()`` once the consumers are open and the queue's
        tasks are running (connections may still be in progress: see
        :meth:`wait_connected`). Cancelling this cancels the handlers (their messages are
        requeued at once) and drops the connections; nsqd redelivers what was unanswered.

        Raises:
            RuntimeError: If called more than once.
        """
        if self._started:
            raise RuntimeError("NSQQueue.run() may only be called once")
        self._started = True
        if self._stopping:
            task_status.started()
            return
        logger.info(
            "NSQQUEUE(%s): starting %d conns x %d fetchers, %d processors, capacity %d",
            self._name, self._conns, self._fetchers, self._processors, self._capacity,
        )
        async with AsyncExitStack() as stack:
            for share in self._shares:
                consumer = self._new_consumer(share)
                await stack.enter_async_context(consumer)
                self._consumers.append(consumer)
            queue: Queue[Message] = Queue(
                self._new_source,
                self._new_handler,
                producers=self._conns * self._fetchers,
                consumers=self._processors,
                capacity=min(self._capacity, _CHANNEL_CAPACITY),
                name=self._name,
            )
            for listener in self._listeners:
                queue.add_listener(listener)
            self._queue = queue
            self._opened.set()
            with self._queue_scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(queue.run)
                    if self._stopping:
                        self._begin_stop()
                    task_status.started()
            if self._queue_scope.cancelled_caught:
                logger.warning(
                    "NSQQUEUE(%s): handlers still busy %.1fs after stop were cancelled",
                    self._name, self._drain_timeout,
                )
            # Leaving the stack closes the consumers: answers are flushed, then the
            # connections end (at once if stop() already drained them).
        logger.info("NSQQUEUE(%s): stopped", self._name)

    def stop(self) -> None:
        """Stop gracefully (see the module doc); returns at once. Idempotent.

        Before :meth:`run`, makes it return without connecting.
        """
        if self._stopping:
            return
        self._stopping = True
        logger.info("NSQQUEUE(%s): stopping", self._name)
        if self._queue is not None:
            self._begin_stop()

    def _begin_stop(self) -> None:
        if self._stop_begun:
            return
        self._stop_begun = True
        # CLS first: nsqd stops sending and the consumers' buffers go back; the queue's
        # fetchers stop; its processors give back what they were handed but had not
        # started, and finish what they had.
        self._giving_back = True
        for consumer in self._consumers:
            consumer.stop()
        assert self._queue is not None
        self._queue.stop()
        self._queue_scope.deadline = trio.current_time() + self._drain_timeout

    async def wait_connected(self, count: int = 1) -> None:
        """Wait until every consumer has ``count`` subscribed connections.

        Raises:
            client.ConnectionClosedError: If the queue stopped first.
        """
        await self._opened.wait()
        for consumer in self._consumers:
            await consumer.wait_connected(count)

    # -- flow control -----------------------------------------------------------------

    def pause(self) -> None:
        """Stop receiving (RDY 0 on every connection); messages in hand are still handled.

        The queue's listeners are told once every fetcher has paused. Idempotent.
        """
        self._set_paused(True)

    def resume(self) -> None:
        """Receive again after :meth:`pause`. Idempotent."""
        self._set_paused(False)

    def _set_paused(self, paused: bool) -> None:
        if paused == self._paused:
            return
        self._paused = paused
        logger.info("NSQQUEUE(%s): %s", self._name, "paused" if paused else "resumed")
        for consumer, share in zip(self._consumers, self._shares, strict=False):
            consumer.change_max_in_flight(0 if paused else share)
        for source in self._sources:
            source.set_paused(paused)

    # -- statistics -------------------------------------------------------------------

    def statistics(self) -> NSQQueueStatistics:
        """Return a snapshot of the queue's and the consumers' counters."""
        connections = tuple(consumer.statistics() for consumer in self._consumers)
        queue = None if self._queue is None else self._queue.statistics()
        given_back = sum(handler.given_back for handler in self._handlers)
        return NSQQueueStatistics(
            handled=0 if queue is None else queue.consumed - given_back,
            failed=0 if queue is None else queue.failures,
            given_back=given_back,
            in_flight=sum(stats.in_flight for stats in connections),
            queue_capacity=self._capacity,
            paused=self._paused,
            queue=queue,
            connections=connections,
        )

    # -- factories --------------------------------------------------------------------

    def _new_consumer(self, share: int) -> Consumer:
        return Consumer(
            self.topic,
            self.channel,
            nsqd_tcp_addresses=self._nsqd,
            lookupd_http_addresses=self._lookupd,
            max_in_flight=0 if self._paused else share,
            config=self._config,
            concurrency=1,
            max_attempts=self._max_attempts,
            on_give_up=self._on_give_up,
            requeue_delay=self._requeue_policy,
            close_timeout=self._drain_timeout,
            open_stream=self._open_stream,
            http_client=self._http_client,
            rng=self._rng,
        )

    def _new_source(self) -> NSQSource:
        # Fetcher i reads consumer i % conns: every consumer gets `consumers` fetchers.
        source = NSQSource(self._consumers[len(self._sources) % self._conns])
        self._sources.append(source)
        source.set_paused(self._paused)
        return source

    def _new_handler(self) -> NSQHandler:
        handler = NSQHandler(
            self._handler,
            backoff=self._backoff,
            touch_interval=self._touch_interval,
            give_back=self._is_giving_back,
        )
        self._handlers.append(handler)
        return handler

    def _is_giving_back(self) -> bool:
        return self._giving_back
