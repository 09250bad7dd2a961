"""Publishing: :class:`Producer` over TCP (pipelined, optionally auto-batched, with
failover across nsqd) and :class:`HTTPProducer` over nsqd's HTTP API.

::

    async with Producer(["127.0.0.1:4150", "127.0.0.1:4250"], batch=True) as producer:
        await producer.publish("events", b"hello")
        await producer.multi_publish("events", [b"a", b"b"])
        await producer.deferred_publish("events", b"later", delay=30.0)

Delivery is at-least-once: a publish whose connection drops before nsqd's answer
arrives is sent again (on the next nsqd), so nsqd may hold it twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import Final, final

import trio
from trio.lowlevel import (
    Abort,
    ParkingLot,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    wait_task_rescheduled,
)

from ._lifecycle import State as _State
from .accumulator import Accumulator, PublishReceipt, clone_error
from .config import DEFAULT_CONFIG, ClientConfig
from .connection import Connection, OpenStream
from .errors import (
    BadTopicError,
    ConnectionClosedError,
    NotConnectedError,
    NSQError,
    PublishError,
    PublishTimeoutError,
    ServerError,
)
from .http_producer import HTTPProducer
from .protocol import commands, is_valid_topic_name

__all__ = ["HTTPProducer", "Producer", "ProducerStatistics", "PublishReceipt"]

logger = logging.getLogger(__name__)

_RETRY_DELAY_MIN: Final = 0.05
_RETRY_DELAY_MAX: Final = 1.0


@dataclass(frozen=True, slots=True)
class ProducerStatistics:
    """A snapshot of a producer's counters."""

    messages_published: int
    publish_errors: int
    retries: int
    connects: int
    address: str | None
    batches_sent: int
    open_batches: int
    pending_messages: int
    in_progress: int


@final
class Producer:
    """Publishes to nsqd over TCP.

    One connection is used at a time; many publishes share it (pipelined: each awaits
    its own answer, matched in order). When it fails, the next address is tried. With
    ``batch=True``, concurrent :meth:`publish` calls to the same topic are coalesced
    into MPUBs (see :mod:`client.accumulator`), and each caller still gets its own
    acknowledgement or exception. :meth:`send` queues into the same batches without
    waiting, for the highest throughput from a single task.

    Args:
        addresses: nsqd TCP addresses (``"host:port"``), tried in order on failure.
        config: connection settings (timeouts, IDENTIFY fields).
        batch: coalesce :meth:`publish` calls into MPUBs.
        batch_size: messages per MPUB at most; a full batch is sent at once.
        batch_bytes: body bytes per MPUB at most (keep it under nsqd's max-body-size).
        flush_interval: longest wait of a non-full batch while an earlier batch of the
            same topic is still awaiting its answer (a batch goes out at once when
            nothing is being sent; 0 disables waiting).
        max_pending: batched messages queued and unacknowledged above which
            :meth:`send` waits (backpressure).
        timeout: seconds one publish may take in total, reconnects and retries
            included, before :class:`PublishTimeoutError`.
        open_stream: opens the TCP stream (a seam for tests and custom transports).
    """

    def __init__(
        self,
        addresses: Sequence[str] | str,
        *,
        config: ClientConfig | None = None,
        batch: bool = False,
        batch_size: int = 200,
        batch_bytes: int = 1024 * 1024,
        flush_interval: float = 0.005,
        max_pending: int = 2_000,
        timeout: float = 10.0,
        open_stream: OpenStream | None = None,
    ) -> None:
        self._addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self._addresses:
            raise ValueError("at least one nsqd address is needed")
        if batch_size < 1 or batch_bytes < 1 or max_pending < 1 or flush_interval < 0 or timeout <= 0:
            raise ValueError("batch_size, batch_bytes, max_pending and timeout must be > 0, "
                             "flush_interval >= 0")
        self.config = config or DEFAULT_CONFIG
        self.batch = batch
        self.timeout = timeout
        self._open_stream = open_stream
        self._accumulator = Accumulator(
            self._execute, batch_size=batch_size, batch_bytes=batch_bytes,
            flush_interval=flush_interval, max_pending=max_pending,
        )
        self._state = _State.UNOPENED
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: AbstractAsyncContextManager[trio.Nursery] | None = None
        self._conn: Connection | None = None
        self._index = 0
        self._connect_lock = trio.Lock()
        self._valid_topics: set[str] = set()
        self._in_progress = 0
        self._idle_lot = ParkingLot()
        self._published = 0
        self._errors = 0
        self._retries = 0
        self._connects = 0

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Producer:
        if self._state is not _State.UNOPENED:
            raise RuntimeError("a Producer cannot be reopened once it has been used")
        cm = trio.open_nursery()
        self._nursery = await cm.__aenter__()
        self._nursery_cm = cm
        self._accumulator.start(self._nursery)
        self._state = _State.OPENED
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        finally:
            assert self._nursery is not None and self._nursery_cm is not None
            self._nursery.cancel_scope.cancel()
            await self._nursery_cm.__aexit__(None, None, None)

    async def aclose(self) -> None:
        """Stop accepting publishes, send every queued batch, wait for all answers, close.

        Cancellation: cancelling drops the remaining work; publishes still waiting then
        fail.
        """
        if self._state in (_State.CLOSING, _State.CLOSED):
            return
        self._state = _State.CLOSING
        self._accumulator.flush_all()
        await self._accumulator.wait_idle()
        while self._in_progress:
            await self._idle_lot.park()
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()
        self._state = _State.CLOSED

    def _check_open(self) -> None:
        if self._state is not _State.OPENED:
            if self._state is _State.UNOPENED:
                raise RuntimeError("use the Producer as 'async with Producer(...) as producer'")
            raise PublishError("the producer is closed")

    def _check_topic(self, topic: str) -> None:
        if topic not in self._valid_topics:
            if not is_valid_topic_name(topic):
                raise BadTopicError("E_BAD_TOPIC", f"topic name {topic!r} is not valid")
            self._valid_topics.add(topic)

    def statistics(self) -> ProducerStatistics:
        """Counters since the producer was opened."""
        conn = self._conn
        acc = self._accumulator
        return ProducerStatistics(
            messages_published=self._published + acc.published,
            publish_errors=self._errors + acc.failed,
            retries=self._retries,
            connects=self._connects,
            address=conn.address if conn is not None and conn.is_connected else None,
            batches_sent=acc.batches_sent,
            open_batches=acc.open_batches,
            pending_messages=acc.pending,
            in_progress=self._in_progress,
        )

    # ------------------------------------------------------------------ public API

    async def connect(self) -> None:
        """Connect now rather than on the first publish (go-nsq's ``Ping``).

        Raises:
            NotConnectedError: no nsqd could be reached (each address tried once).
            IdentifyError: every nsqd refused the handshake for good.
            PublishError: the producer is closed.
        """
        self._check_open()
        await self._connection()

    async def publish(self, topic: str, body: bytes) -> None:
        """Publish one message and wait for nsqd's acknowledgement.

        Raises:
            BadTopicError: the topic name is not valid.
            ServerError: nsqd refused the message (e.g. BadMessageError when too big).
            PublishTimeoutError: no acknowledgement within ``timeout`` (the message may
                have been published).
            IdentifyError: every nsqd refused the handshake for good (TLS certificate
                not trusted, AUTH secret refused...).
            PublishError: the producer is closed.

        Cancellation: with ``batch=True``, a message whose batch has not been sent yet
            is withdrawn; otherwise, once written it may be published anyway.
        """
        await checkpoint_if_cancelled()  # a pending cancel must not even queue it
        if not self.batch:
            self._check_topic(topic)
            await self._publish_command(commands.pub(topic, body), 1)
            return
        if topic not in self._valid_topics:
            self._check_topic(topic)
        if self._state is not _State.OPENED:
            self._check_open()
        # no receipt: wait on the batch itself, knowing our index in it
        batch = self._accumulator.add(topic, body)
        index = len(batch.bodies) - 1
        # Batch.wait() inlined: one coroutine frame less to resume per message
        task = current_task()
        waiters = batch.waiters
        waiters.append(task)

        def abort(_: object) -> Abort:
            waiters.remove(task)
            return Abort.SUCCEEDED

        self._in_progress += 1
        try:
            await wait_task_rescheduled(abort)
        except BaseException:
            batch.withdraw(index)
            raise
        finally:
            self._in_progress -= 1
            if not self._in_progress and self._idle_lot:
                self._idle_lot.unpark_all()
        if batch.error is not None or batch.errors is not None or batch.cancelled is not None:
            error = batch.error_of(index)
            if error is not None:
                raise clone_error(error)

    async def send(self, topic: str, body: bytes) -> PublishReceipt:
        """Queue one message for the next MPUB of its topic, without awaiting the ack.

        Always batched (whatever ``batch`` says). Waits only while ``max_pending``
        messages are unacknowledged. ``await`` the returned receipt for the outcome;
        :meth:`aclose` (leaving ``async with``) sends every queued message first.

        Raises:
            BadTopicError: the topic name is not valid.
            PublishError: the producer is closed.

        Cancellation: if cancelled, the message was not queued. Cancelling a wait on
            the receipt does not withdraw the message (``receipt.cancel()`` does, until
            its batch is sent).
        """
        await checkpoint_if_cancelled()
        try:
            receipt = self.send_nowait(topic, body)
        except trio.WouldBlock:
            await self._accumulator.wait_capacity()
            receipt = self.send_nowait(topic, body)
        if self._accumulator.filled:
            await cancel_shielded_checkpoint()  # let the full batch's sender run
        return receipt

    def send_nowait(self, topic: str, body: bytes) -> PublishReceipt:
        """:meth:`send` without waiting: the fastest way to queue from one task.

        Batches go out only when the calling task yields (e.g. awaits a receipt, or
        :meth:`send` when this raises ``WouldBlock``).

        Raises:
            trio.WouldBlock: ``max_pending`` messages are unacknowledged.
            BadTopicError: the topic name is not valid.
            PublishError: the producer is closed.
        """
        if topic not in self._valid_topics:
            self._check_topic(topic)
        if self._state is not _State.OPENED:
            self._check_open()
        accumulator = self._accumulator
        if accumulator.pending >= accumulator.max_pending:
            raise trio.WouldBlock
        batch = accumulator.add(topic, body)
        return PublishReceipt(batch, len(batch.bodies) - 1)

    async def multi_publish(self, topic: str, bodies: Iterable[bytes]) -> None:
        """Publish several messages in one MPUB (all or none are accepted).

        Raises:
            ValueError: ``bodies`` is empty.
            BadTopicError / ServerError / PublishTimeoutError / PublishError: as
                :meth:`publish`.

        Cancellation: as :meth:`publish` without batching.
        """
        await checkpoint_if_cancelled()
        self._check_topic(topic)
        body_list = list(bodies)
        if not body_list:
            raise ValueError("multi_publish needs at least one message")
        await self._publish_command(commands.mpub(topic, body_list), len(body_list))

    async def deferred_publish(self, topic: str, body: bytes, delay: float) -> None:
        """Publish one message that nsqd delivers after ``delay`` seconds (DPUB).

        Raises:
            ValueError: negative delay.
            BadTopicError / ServerError / PublishTimeoutError / PublishError: as
                :meth:`publish` (InvalidError when the delay exceeds nsqd's maximum).

        Cancellation: as :meth:`publish` without batching.
        """
        await checkpoint_if_cancelled()
        self._check_topic(topic)
        if delay < 0:
            raise ValueError("delay must be >= 0")
        await self._publish_command(commands.dpub(topic, round(delay * 1000), body), 1)

    # ------------------------------------------------------------------ sending

    def _exit(self) -> None:
        self._in_progress -= 1
        if not self._in_progress and self._idle_lot:
            self._idle_lot.unpark_all()

    async def _publish_command(self, command: bytes, count: int) -> None:
        self._check_open()
        self._in_progress += 1
        try:
            await self._execute(command)
            self._published += count
        except NSQError:
            self._errors += 1
            raise
        finally:
            self._exit()

    async def _execute(self, command: bytes) -> None:
        """Send ``command`` until some nsqd acknowledges it, or the deadline passes."""
        delay = _RETRY_DELAY_MIN
        last: BaseException | None = None
        with trio.move_on_after(self.timeout):
            while True:
                try:
                    conn = await self._connection()
                except NotConnectedError as exc:
                    last = exc
                    await trio.sleep(delay)
                    delay = min(delay * 2, _RETRY_DELAY_MAX)
                    continue
                try:
                    await conn.request(command)
                    return
                except ServerError as exc:
                    if not exc.retriable:
                        raise
                    last = exc
                except ConnectionClosedError as exc:
                    last = exc
                self._retries += 1
                self._rotate(conn)
        raise PublishTimeoutError(f"no acknowledgement within {self.timeout}s: {last}") from last

    def _rotate(self, conn: Connection) -> None:
        """Move away from a connection that failed: the next dial starts after it."""
        if self._conn is conn:
            self._conn = None
            self._index = (self._addresses.index(conn.address) + 1) % len(self._addresses)
            logger.warning("(%s) connection failed (%s); failing over", conn.address, conn.error)
        if not conn.closed:
            conn.close()

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is not None and conn.is_connected:
            return conn
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and conn.is_connected:
                return conn
            nursery = self._nursery
            if nursery is None or self._state is _State.CLOSED:
                raise PublishError("the producer is closed")
            n = len(self._addresses)
            last: BaseException | None = None
            refused = 0  # handshakes refused for good (TLS certificate, AUTH secret...)
            for step in range(n):
                index = (self._index + step) % n
                conn = Connection(self._addresses[index], self.config, open_stream=self._open_stream)
                try:
                    await nursery.start(self._serve, conn)
                except NSQError as exc:
                    logger.debug("(%s) connect failed: %s", conn.address, exc)
                    last = exc
                    refused += not exc.retriable
                    continue
                self._index = index
                self._conn = conn
                self._connects += 1
                logger.info("(%s) connected to nsqd", conn.address)
                return conn
            if refused == n and last is not None:
                raise last  # retrying cannot help: report it at once
            raise NotConnectedError(f"no nsqd reachable among {self._addresses}: {last}") from last

    async def _serve(self, conn: Connection, *, task_status: trio.TaskStatus[Connection]) -> None:
        await conn.run(task_status=task_status)
        if self._conn is conn:
            self._conn = None
        if conn.error is not None:
            logger.info("(%s) connection ended: %s", conn.address, conn.error)
