"""One subscribed consumer connection: RDY state, in-flight count, message answers.

A :class:`Subscription` wraps a :class:`~client.connection.Connection` for a consumer.
It turns message frames into :class:`~client.message.Message` objects handed to its
:class:`ConsumerLink` (the consumer's side), answers them (it is their
:class:`~client.message.Responder`: FIN/REQ/TOUCH are queued on the connection and
batched by its writer), keeps the counters, feeds the flow-control signals, and
drives the CLS → CLOSE_WAIT → drain sequence of a graceful close.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import final

import trio
from trio.lowlevel import ParkingLot

from .config import ClientConfig
from .connection import Connection, OpenStream
from .errors import ConnectionClosedError, ServerError
from .flow import FlowControl, RdyConn
from .message import Message
from .protocol import commands, decode_message

__all__ = ["ConsumerLink", "Counters", "Subscription"]

logger = logging.getLogger(__name__)


@final
class Counters:
    """Mutable message counters shared by a consumer's subscriptions."""

    __slots__ = ("dropped", "finished", "given_up", "received", "requeued")

    def __init__(self) -> None:
        self.received = 0
        self.finished = 0
        self.requeued = 0
        self.given_up = 0
        self.dropped = 0  # answers that could not be sent (connection gone)


@final
class ConsumerLink:
    """What a consumer lends its subscriptions and its discovery: the shared counters
    and flow control, the ``accepting`` flag, and callbacks into the consumer. They hold
    this instead of the consumer, so none reaches into another's private state.

    Attributes:
        counters: message counters shared by the subscriptions.
        flow: the consumer's RDY flow control.
        accepting: False until the consumer is open and once it began closing; messages
            received then are handed straight back. Set by the consumer only.
        deliver: buffer a received message for hand-out.
        requeue_delay: seconds before redelivery of a message requeued without a delay.
        new_subscription: a fresh, unconnected subscription to an nsqd address.
        on_subscribed: a subscription is connected and subscribed (give it RDY).
        on_lost: a subscription's connection ended (its RDY goes to the others).
    """

    __slots__ = ("accepting", "counters", "deliver", "flow", "new_subscription", "on_lost",
                 "on_subscribed", "requeue_delay")

    def __init__(self, counters: Counters, flow: FlowControl, *,
                 deliver: Callable[[Message], None],
                 requeue_delay: Callable[[Message], float],
                 new_subscription: Callable[[str], Subscription],
                 on_subscribed: Callable[[Subscription], None],
                 on_lost: Callable[[Subscription], None]) -> None:
        self.counters = counters
        self.flow = flow
        self.accepting = False
        self.deliver = deliver
        self.requeue_delay = requeue_delay
        self.new_subscription = new_subscription
        self.on_subscribed = on_subscribed
        self.on_lost = on_lost


@final
class Subscription(RdyConn):
    """One nsqd connection subscribed to the consumer's topic/channel."""

    def __init__(self, owner: ConsumerLink, address: str, config: ClientConfig,
                 open_stream: OpenStream | None = None) -> None:
        super().__init__(address)
        self.owner = owner
        self.conn = Connection(
            address,
            config,
            on_message=self._on_frame,
            on_error=self._on_error,
            on_close_wait=self._on_close_wait,
            open_stream=open_stream,
        )
        self.in_flight = 0  # delivered by nsqd and not answered yet
        self.cls_sent = False
        self.lot = ParkingLot()  # woken when in_flight reaches 0, CLOSE_WAIT, or the end

    def __repr__(self) -> str:
        return f"<Subscription {self.address} rdy={self.rdy} in_flight={self.in_flight}>"

    @property
    def closing(self) -> bool:
        return self.cls_sent or not self.conn.is_connected

    def write_rdy(self, count: int) -> None:
        if self.conn.is_connected:
            self.conn.write(commands.rdy(count))

    # ------------------------------------------------------------------ receiving

    def _on_frame(self, conn: Connection, data: bytes) -> None:
        msg_id, timestamp, attempts, body = decode_message(data)
        owner = self.owner
        msg = Message(msg_id, body, timestamp, attempts, responder=self, address=self.address)
        self.in_flight += 1
        self.last_msg_time = conn.last_read
        owner.counters.received += 1
        if owner.accepting:
            owner.deliver(msg)
        else:
            # arrived after close began: hand it straight back, unprocessed
            msg.claim()
            self.requeue(msg, 0.0, backoff=False)

    def _on_error(self, conn: Connection, err: ServerError) -> None:
        logger.warning("(%s) error from nsqd: %s", self.address, err)

    def _on_close_wait(self, conn: Connection) -> None:
        self.lot.unpark_all()

    # ------------------------------------------------------------------ answering

    def _write(self, data: bytes) -> bool:
        """Queue ``data``; True when the write buffer is over its high-water mark."""
        try:
            return self.conn.write(data)
        except ConnectionClosedError:
            self.owner.counters.dropped += 1
            logger.debug("(%s) connection gone, response dropped", self.address)
            return False

    def _answered(self) -> None:
        self.in_flight -= 1
        if self.in_flight <= 0 and self.lot:
            self.lot.unpark_all()
        flow = self.owner.flow
        if flow.waiting and self.in_flight >= self.rdy:
            flow.answered_over_rdy()

    def finish(self, message: Message) -> bool:
        """Queue FIN (Responder protocol). True when the writer is behind."""
        full = self._write(commands.fin(message.id))
        self._answered()
        owner = self.owner
        owner.counters.finished += 1
        flow = owner.flow
        if flow.backoff_level or flow.backoff_until is not None:
            flow.on_success()
        return full

    def requeue(self, message: Message, delay: float | None, backoff: bool) -> bool:
        """Queue REQ (Responder protocol); ``backoff`` signals a failure to flow control."""
        if delay is None:
            delay = self.owner.requeue_delay(message)
        full = self._write(commands.req(message.id, round(delay * 1000)))
        self._answered()
        self.owner.counters.requeued += 1
        if backoff:
            self.owner.flow.on_failure()
        else:
            self.owner.flow.on_continue()
        return full

    def touch(self, message: Message) -> bool:
        """Queue TOUCH (Responder protocol)."""
        return self._write(commands.touch(message.id))

    async def wait_writable(self) -> None:
        """Wait while the connection's write buffer is over its high-water mark.

        Cancellation: only the wait is cancelled.
        """
        await self.conn.drain()

    # ------------------------------------------------------------------ closing

    def send_cls(self) -> None:
        """Ask nsqd to stop delivering (it answers CLOSE_WAIT); idempotent."""
        if self.conn.is_connected and not self.cls_sent:
            self.cls_sent = True
            self.conn.write(commands.cls())

    async def drain(self, timeout: float) -> None:
        """Send CLS, then wait (at most ``timeout`` s) for CLOSE_WAIT and every answer.

        Returns early if the connection ends.

        Cancellation: only the wait is cancelled (CLS was queued).
        """
        self.send_cls()
        conn = self.conn
        with trio.move_on_after(timeout):
            while not conn.closed and not (conn.close_wait.is_set() and self.in_flight <= 0):
                await self.lot.park()

    def ended(self) -> None:
        """The connection is over: wake whoever waits on this subscription."""
        self.lot.unpark_all()
