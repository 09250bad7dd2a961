"""Consuming: :class:`Consumer` subscribes a channel on every nsqd producing a topic.

::

    async with Consumer("events", "archive", lookupd_http_addresses=["http://127.0.0.1:4161"],
                        max_in_flight=200) as consumer:
        async for message in consumer:
            await message.finish()

or, with bounded handler concurrency (return → FIN, raise → REQ with backoff)::

    async with Consumer("events", "archive", nsqd_tcp_addresses=["127.0.0.1:4150"]) as consumer:
        await consumer.run(handler)          # until consumer.stop() / close()

The engines: :mod:`client.flow` (RDY distribution, backoff), :mod:`client.discovery`
(static and nsqlookupd-discovered nsqd, reconnects), :mod:`client.subscription` (one
subscribed connection and the answers to its messages).
"""

from __future__ import annotations

import inspect
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Final, final

import httpx
import trio
from trio.lowlevel import ParkingLot, checkpoint_if_cancelled

from ._lifecycle import State as _State
from .config import DEFAULT_CONFIG, ClientConfig
from .connection import OpenStream
from .discovery import Discovery
from .errors import BadChannelError, BadTopicError, ConnectionClosedError
from .flow import FlowControl
from .message import Message
from .protocol import is_valid_channel_name, is_valid_topic_name
from .subscription import ConsumerLink, Counters, Subscription

__all__ = ["Consumer", "ConsumerStatistics", "Handler"]

logger = logging.getLogger(__name__)

Handler = Callable[[Message], Awaitable[object]]
GiveUpHook = Callable[[Message], "Awaitable[object] | object"]
RequeuePolicy = Callable[[Message], float]

#: hand out at most this many buffered messages between two yields to the scheduler
_YIELD_EVERY: Final = 32


@dataclass(frozen=True, slots=True)
class ConsumerStatistics:
    """A snapshot of a consumer's counters."""

    messages_received: int
    messages_finished: int
    messages_requeued: int
    messages_given_up: int
    responses_dropped: int
    connections: int
    in_flight: int
    buffered: int
    total_rdy: int
    max_in_flight: int
    backoff_level: int


@final
class Consumer:
    """Receives messages of ``topic`` through ``channel`` from one or more nsqd.

    Args:
        topic: the topic to subscribe to.
        channel: the channel (consumers sharing a channel share its messages).
        nsqd_tcp_addresses: nsqd to connect to directly (``"host:port"``); they are
            reconnected when they drop.
        lookupd_http_addresses: nsqlookupd to poll for the nsqd producing ``topic``.
        max_in_flight: messages in flight across all connections (default: config's).
        config: connection, flow-control and backoff settings.
        concurrency: handler tasks of :meth:`run` (default: ``max_in_flight``).
        max_attempts: messages delivered more often are given up (default: config's;
            0 never gives up): finished and passed to ``on_give_up``.
        on_give_up: called (sync or async) with each message given up.
        auto_touch: :meth:`run` touches messages every half ``msg_timeout`` while the
            handler works on them.
        requeue_delay: seconds before redelivery of a message requeued without an
            explicit delay (default: ``default_requeue_delay * attempts``, capped).
        close_timeout: seconds a graceful close waits for in-flight messages.
        open_stream: opens the TCP streams (a seam for tests and custom transports).
        http_client: httpx client for nsqlookupd (default: one owned by the consumer).
        rng: randomness for RDY redistribution and jitter (seed it in tests).
    """

    def __init__(
        self,
        topic: str,
        channel: str,
        *,
        nsqd_tcp_addresses: Sequence[str] | None = None,
        lookupd_http_addresses: Sequence[str] | None = None,
        max_in_flight: int | None = None,
        config: ClientConfig | None = None,
        concurrency: int | None = None,
        max_attempts: int | None = None,
        on_give_up: GiveUpHook | None = None,
        auto_touch: bool = False,
        requeue_delay: RequeuePolicy | None = None,
        close_timeout: float = 30.0,
        open_stream: OpenStream | None = None,
        http_client: httpx.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not is_valid_topic_name(topic):
            raise BadTopicError("E_BAD_TOPIC", f"topic name {topic!r} is not valid")
        if not is_valid_channel_name(channel):
            raise BadChannelError("E_BAD_CHANNEL", f"channel name {channel!r} is not valid")
        nsqd_addresses = list(nsqd_tcp_addresses or ())
        lookupd_addresses = list(lookupd_http_addresses or ())
        if not nsqd_addresses and not lookupd_addresses:
            raise ValueError("give nsqd_tcp_addresses and/or lookupd_http_addresses")
        self.topic = topic
        self.channel = channel
        self.config = config = config or DEFAULT_CONFIG
        if config.heartbeat_interval is None:
            raise ValueError("nsqd refuses SUB with heartbeats disabled")
        mif = config.max_in_flight if max_in_flight is None else max_in_flight
        if mif < 0:
            raise ValueError("max_in_flight must be >= 0")
        self.concurrency = concurrency if concurrency is not None else max(1, mif)
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.max_attempts = config.max_attempts if max_attempts is None else max_attempts
        self.auto_touch = auto_touch
        self.close_timeout = close_timeout
        self._on_give_up = on_give_up
        self._requeue_policy = requeue_delay
        self._open_stream = open_stream
        self._own_http_client = http_client is None and bool(lookupd_addresses)
        rng = rng or random.Random()
        self.flow = FlowControl(config, mif, rng)
        self.counters = Counters()
        self._link = ConsumerLink(
            self.counters, self.flow, deliver=self._deliver, requeue_delay=self._requeue_delay,
            new_subscription=self._new_subscription, on_subscribed=self._subscribed, on_lost=self._lost)
        self._discovery = Discovery(
            self._link, topic, channel, config,
            nsqd_addresses=nsqd_addresses, lookupd_addresses=lookupd_addresses,
            http_client=http_client,
            rng=rng, retire_timeout=close_timeout,
        )
        self._state = _State.UNOPENED
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._buffer: deque[Message] = deque()
        self._ready_lot = ParkingLot()
        self._conn_lot = ParkingLot()
        self._closed = trio.Event()
        self._since_yield = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Consumer:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("a Consumer cannot be reopened once it has been used")
        cm = trio.open_nursery()
        nursery = await cm.__aenter__()
        self._nursery, self._nursery_cm = nursery, cm
        self._state = _State.OPENED
        self._link.accepting = True
        try:
            await nursery.start(self.flow.start)
            if self._own_http_client:
                self._discovery.http_client = httpx.AsyncClient()
            self._discovery.start(nursery)
        except BaseException:
            nursery.cancel_scope.cancel()
            await cm.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.close()
        finally:
            assert self._nursery is not None and self._nursery_cm is not None
            self._nursery.cancel_scope.cancel()
            try:
                await self._nursery_cm.__aexit__(None, None, None)
            finally:
                client = self._discovery.http_client
                if self._own_http_client and client is not None:
                    with trio.CancelScope(shield=True):
                        await client.aclose()

    def stop(self) -> None:
        """Begin a graceful close in the background (safe to call from a handler)."""
        if self._state is _State.OPENED:
            assert self._nursery is not None
            self._begin_close()
            self._nursery.start_soon(self._finish_close)

    async def close(self) -> None:
        """Close gracefully and wait until done.

        Sends CLS on every connection, hands no more messages out (buffered ones are
        requeued at once, unprocessed), waits up to ``close_timeout`` for messages
        already handed out to be answered, then closes the connections. Messages still
        unanswered then are redelivered by nsqd after their timeout: nothing is lost.

        Do not await this from a handler (it would wait for that handler); use
        :meth:`stop`.

        Cancellation: aborts the wait; connections are then dropped.
        """
        if self._state is _State.UNOPENED:
            raise RuntimeError("the consumer was never opened")
        if self._state is _State.OPENED:
            self._begin_close()
            await self._finish_close()
        else:
            await self._closed.wait()

    def _begin_close(self) -> None:
        self._state = _State.CLOSING
        self._link.accepting = False
        self.flow.stopping = True
        self._ready_lot.unpark_all()
        self._conn_lot.unpark_all()
        for sub in self._discovery.stop():
            sub.send_cls()
        # CLS is queued first, so nsqd will not send these back to this connection
        buffer = self._buffer
        while buffer:
            self._requeue_now(buffer.popleft())

    async def _finish_close(self) -> None:
        try:
            subs = self._discovery.subscriptions()
            with trio.move_on_after(self.close_timeout):
                async with trio.open_nursery() as nursery:
                    for sub in subs:
                        nursery.start_soon(sub.drain, self.close_timeout)
            for sub in subs:
                if sub.in_flight > 0:
                    logger.warning("(%s) closing with %d message(s) unanswered", sub.address, sub.in_flight)
            with trio.move_on_after(self.close_timeout):
                async with trio.open_nursery() as nursery:
                    for sub in subs:
                        nursery.start_soon(sub.conn.aclose, self.config.write_timeout + self.config.read_timeout)
        finally:
            self._state = _State.CLOSED
            self._closed.set()
            self._conn_lot.unpark_all()

    @staticmethod
    def _requeue_now(msg: Message) -> None:
        """Give an unprocessed message straight back (no delay, no backoff)."""
        if not msg.has_responded:
            msg.claim().requeue(msg, 0.0, backoff=False)

    # ------------------------------------------------------------------ owner interface
    # What the consumer's Subscriptions and its Discovery call, through ``self._link``.

    def _deliver(self, message: Message) -> None:
        """Buffer a received message (bounded by max_in_flight through RDY)."""
        self._buffer.append(message)
        if self._ready_lot:
            self._ready_lot.unpark()

    def _requeue_delay(self, message: Message) -> float:
        """Seconds before redelivery of a message requeued without an explicit delay."""
        if self._requeue_policy is not None:
            return self._requeue_policy(message)
        return min(self.config.default_requeue_delay * message.attempts, self.config.max_requeue_delay)

    def _new_subscription(self, address: str) -> Subscription:
        """A fresh subscription (Discovery connects and serves it)."""
        return Subscription(self._link, address, self.config, self._open_stream)

    def _subscribed(self, sub: Subscription) -> None:
        """A connection subscribed: give it RDY."""
        if sub.max_rdy < self.flow.max_in_flight:
            logger.warning("(%s) max RDY count %d < consumer max in flight %d, truncation possible",
                           sub.address, sub.max_rdy, self.flow.max_in_flight)
        self.flow.add(sub)
        self._conn_lot.unpark_all()

    def _lost(self, sub: Subscription) -> None:
        """A connection ended: its RDY goes to the others."""
        self.flow.remove(sub)
        self._conn_lot.unpark_all()

    # ------------------------------------------------------------------ consuming

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> Message:
        """The next message; the iteration ends when the consumer closes.

        Cancellation: a cancelled wait takes no message.
        """
        buffer = self._buffer
        self._since_yield += 1
        if buffer and self._link.accepting and self._since_yield < _YIELD_EVERY:
            # fast path (no scheduling): buffered messages were delivered already
            await checkpoint_if_cancelled()
            msg = buffer.popleft()
            if not (self.max_attempts and msg.attempts > self.max_attempts):
                return msg
            await self._give_up(msg)
        msg_or_none = await self._next_message()
        if msg_or_none is None:
            raise StopAsyncIteration
        return msg_or_none

    async def _next_message(self) -> Message | None:
        buffer = self._buffer
        if self._since_yield >= _YIELD_EVERY or not buffer:
            # let the writer flush answers (nsqd refills the RDY window sooner) and the
            # readers take in more, instead of stop-and-go once per buffer
            self._since_yield = 0
            await trio.lowlevel.checkpoint()
        else:
            await checkpoint_if_cancelled()
        while True:
            if not self._link.accepting:
                return None
            if buffer:
                msg = buffer.popleft()
                if self.max_attempts and msg.attempts > self.max_attempts:
                    await self._give_up(msg)
                    continue
                return msg
            await self._ready_lot.park()

    async def _give_up(self, msg: Message) -> None:
        self.counters.given_up += 1
        logger.warning("msg %s attempted %d times, giving up", msg.id.decode("ascii", "replace"), msg.attempts)
        try:
            if self._on_give_up is not None:
                result = self._on_give_up(msg)
                if inspect.isawaitable(result):
                    await result
        except Exception:
            logger.exception("on_give_up hook failed for message %s", msg.id)
        finally:
            if not msg.has_responded:
                msg.claim().finish(msg)

    async def run(self, handler: Handler, *, concurrency: int | None = None) -> None:
        """Process messages with ``handler`` until the consumer closes.

        ``concurrency`` tasks (default: the constructor's) each take a message, await
        ``handler(message)``, then FIN it if the handler returned, or REQ it with
        backoff if it raised. A handler may answer the message itself.

        Returns once the consumer is closing and every handler has returned.

        Cancellation: handlers are cancelled; their messages are requeued at once.
        """
        count = concurrency or self.concurrency
        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(self._worker, handler)

    async def _worker(self, handler: Handler) -> None:
        while True:
            msg = await self._next_message()
            if msg is None:
                return
            try:
                error = await (self._handle_touching(handler, msg) if self.auto_touch else self._handle(handler, msg))
            except BaseException:
                self._requeue_now(msg)  # cancelled: give it back now
                raise
            if msg.has_responded:
                continue
            if error is None:
                await msg.finish()
            else:
                logger.warning("handler failed for message %s: %r", msg.id.decode("ascii", "replace"), error)
                await msg.requeue(backoff=True)

    @staticmethod
    async def _handle(handler: Handler, msg: Message) -> Exception | None:
        try:
            await handler(msg)
        except Exception as exc:
            return exc
        return None

    async def _handle_touching(self, handler: Handler, msg: Message) -> Exception | None:
        responder = msg.responder
        assert isinstance(responder, Subscription)
        identify = responder.conn.identify
        interval = (identify.msg_timeout if identify else 60.0) / 2
        error: Exception | None = None

        async def call(scope: trio.CancelScope) -> None:
            nonlocal error
            try:
                await handler(msg)
            except Exception as exc:
                error = exc
            finally:
                scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call, nursery.cancel_scope)
            while True:
                await trio.sleep(interval)
                await msg.touch()
        return error

    # ------------------------------------------------------------------ control & stats

    def change_max_in_flight(self, max_in_flight: int) -> None:
        """Change the in-flight limit at runtime (0 pauses delivery)."""
        self.flow.set_max_in_flight(max_in_flight)

    async def wait_connected(self, count: int = 1) -> None:
        """Wait until at least ``count`` connections are subscribed.

        Raises:
            ConnectionClosedError: the consumer closed first.

        Cancellation: only the wait is cancelled.
        """
        while self.connection_count < count:
            if self._state in (_State.CLOSING, _State.CLOSED):
                raise ConnectionClosedError("the consumer is closing")
            await self._conn_lot.park()

    @property
    def connection_count(self) -> int:
        """Subscribed connections right now."""
        return len(self.flow.conns)

    @property
    def buffered(self) -> int:
        """Messages received and not handed out yet (the next ones come without waiting)."""
        return len(self._buffer)

    @property
    def addresses(self) -> list[str]:
        """nsqd addresses with a subscribed connection."""
        return [c.address for c in self.flow.conns]

    def statistics(self) -> ConsumerStatistics:
        """Counters since the consumer was opened, and its current flow state."""
        conns = self.flow.conns
        counters = self.counters
        return ConsumerStatistics(
            messages_received=counters.received,
            messages_finished=counters.finished,
            messages_requeued=counters.requeued,
            messages_given_up=counters.given_up,
            responses_dropped=counters.dropped,
            connections=len(conns),
            in_flight=sum(c.in_flight for c in conns if isinstance(c, Subscription)),
            buffered=len(self._buffer),
            total_rdy=self.flow.total_rdy,
            max_in_flight=self.flow.max_in_flight,
            backoff_level=self.flow.backoff_level,
        )
