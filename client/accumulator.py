"""Auto-batching for the producer: messages to one topic are coalesced into MPUBs.

Group commit: a batch is sent as soon as nothing else is being sent for its topic (so
a lone message goes out at once), when it is full, or ``flush_interval`` after it was
opened. While an MPUB is on its way, new messages gather in the next batch, which goes
out when that MPUB is answered: batches grow with the load and latency stays low.

Each message gets a :class:`PublishReceipt`; every receipt of a batch completes when
nsqd answers its MPUB. If nsqd refuses a batch because of one bad body, the messages
are sent again one by one so each receipt reports its own outcome.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, final

import trio
from trio.lowlevel import ParkingLot

from .errors import BadBodyError, BadMessageError, NSQError, PublishError
from .protocol import commands

__all__ = ["Accumulator", "PublishReceipt"]

_MPUB_OVERHEAD: Final = 4  # each body carries its size


def clone_error(exc: NSQError) -> NSQError:
    """A copy to raise in one more task (one exception object raised by many tasks
    would collect all their tracebacks)."""
    new = copy.copy(exc)
    new.__cause__ = exc.__cause__
    new.__traceback__ = None
    return new


@final
class _Batch:
    __slots__ = ("cancelled", "deadline", "done", "error", "errors", "finished", "nbytes", "receipts",
                 "scheduled", "sent", "topic")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.receipts: list[PublishReceipt] = []
        self.nbytes = 0
        self.scheduled = False  # a send task exists; messages may join until it runs
        self.sent = False  # the send task took the messages
        self.finished = False  # the outcome is known (done is set)
        self.error: NSQError | None = None  # the whole batch failed
        self.errors: dict[int, NSQError] | None = None  # per message (by id()), when sent one by one
        self.cancelled: set[int] | None = None  # withdrawn messages (by id())
        self.deadline = math.inf  # when it must be scheduled even if not full
        self.done = trio.Event()


@final
class PublishReceipt:
    """The pending acknowledgement of one message queued by :meth:`Producer.send`.

    ``await receipt`` (or ``await receipt.wait()``) returns once nsqd acknowledged the
    message, or raises why it was not published.
    """

    __slots__ = ("_batch", "body", "done", "error")

    def __init__(self, batch: _Batch, body: bytes) -> None:
        self._batch = batch
        self.body = body
        #: True once the outcome is known
        self.done = False
        #: why the message was not published (None while pending or when published)
        self.error: NSQError | None = None

    @property
    def topic(self) -> str:
        """The topic the message goes to."""
        return self._batch.topic

    @property
    def cancelled(self) -> bool:
        """True if the message was withdrawn with :meth:`cancel`."""
        cancelled = self._batch.cancelled
        return cancelled is not None and id(self) in cancelled

    def cancel(self) -> bool:
        """Withdraw the message if its batch has not been sent yet.

        Returns:
            True if withdrawn (it will not be published).
        """
        batch = self._batch
        if self.cancelled:
            return True
        if batch.sent:
            return False
        if batch.cancelled is None:
            batch.cancelled = set()
        batch.cancelled.add(id(self))
        batch.nbytes -= len(self.body) + _MPUB_OVERHEAD
        self.error = PublishError("the message was withdrawn before it was sent")
        return True

    async def wait(self) -> None:
        """Wait for the acknowledgement.

        Raises:
            NSQError: the message was not published (a copy of the batch's error).

        Cancellation: cancelling the wait does not withdraw the message.
        """
        if not self.done:
            await self._batch.done.wait()
        else:
            await trio.lowlevel.checkpoint()
        error = self.error
        if error is not None:
            raise clone_error(error)

    def __await__(self) -> Generator[Any, None, None]:
        return self.wait().__await__()


@final
class Accumulator:
    """Per-topic batches, their group-commit scheduling and the pending-message bound.

    Args:
        execute: sends one command and waits for nsqd's answer (with the producer's
            retries); raises NSQError when it fails for good.
        batch_size: messages per MPUB at most.
        batch_bytes: body bytes per MPUB at most.
        flush_interval: longest wait of a non-full batch (0: never wait).
        max_pending: queued-but-unacknowledged messages above which adders wait.
    """

    def __init__(
        self,
        execute: Callable[[bytes], Awaitable[None]],
        *,
        batch_size: int,
        batch_bytes: int,
        flush_interval: float,
        max_pending: int,
    ) -> None:
        self._execute = execute
        self.batch_size = batch_size
        self.batch_bytes = batch_bytes
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._nursery: trio.Nursery | None = None
        self._open: dict[str, _Batch] = {}
        self._sending: dict[str, int] = {}
        self.pending = 0  # messages added and not yet answered
        self._tasks = 0
        self._capacity_lot = ParkingLot()
        self._timer_lot = ParkingLot()
        self._timer_idle = False
        self._idle_lot = ParkingLot()
        self.filled = False
        self.published = 0
        self.failed = 0
        self.batches_sent = 0

    def start(self, nursery: trio.Nursery) -> None:
        """Run send tasks and the flush timer in ``nursery``."""
        self._nursery = nursery
        if self.flush_interval > 0:
            nursery.start_soon(self._timer)

    @property
    def open_batches(self) -> int:
        """Batches still accepting messages."""
        return len(self._open)

    def add(self, topic: str, body: bytes) -> PublishReceipt:
        """Queue ``body``; never blocks.

        Returns:
            The receipt. :attr:`filled` tells whether this message filled its batch
            (which is then scheduled; a caller in a loop should let it run).
        """
        batch = self._open.get(topic)
        if batch is None:
            batch = self._open[topic] = _Batch(topic)
        receipt = PublishReceipt(batch, body)
        receipts = batch.receipts
        receipts.append(receipt)
        nbytes = batch.nbytes = batch.nbytes + len(body) + _MPUB_OVERHEAD
        self.pending += 1
        if len(receipts) >= self.batch_size or nbytes >= self.batch_bytes:
            self._close(batch)
            self._schedule(batch)
            self.filled = True
            return receipt
        self.filled = False
        if not batch.scheduled:
            if not self.flush_interval or not self._sending.get(topic):
                self._schedule(batch)
            elif batch.deadline == math.inf:
                batch.deadline = trio.current_time() + self.flush_interval
                if self._timer_idle:
                    self._timer_lot.unpark_all()
        return receipt

    async def wait_capacity(self) -> None:
        """Wait while ``max_pending`` messages are queued and unanswered.

        Cancellation: only the wait is cancelled.
        """
        while self.pending >= self.max_pending:
            await self._capacity_lot.park()

    def flush_all(self) -> None:
        """Send every open batch now (used when closing)."""
        for batch in list(self._open.values()):
            self._close(batch)
            self._schedule(batch)

    async def wait_idle(self) -> None:
        """Wait until every scheduled batch has been answered.

        Cancellation: only the wait is cancelled; the batches are still sent.
        """
        while self._tasks:
            await self._idle_lot.park()

    def _close(self, batch: _Batch) -> None:
        if self._open.get(batch.topic) is batch:
            del self._open[batch.topic]

    def _schedule(self, batch: _Batch) -> None:
        if batch.scheduled:
            return
        batch.scheduled = True
        self._sending[batch.topic] = self._sending.get(batch.topic, 0) + 1
        self._tasks += 1
        assert self._nursery is not None
        self._nursery.start_soon(self._send, batch)

    async def _timer(self) -> None:
        """Schedule open batches whose flush deadline passed (one task for all)."""
        while True:
            deadline = math.inf
            for batch in self._open.values():
                if not batch.scheduled and batch.deadline < deadline:
                    deadline = batch.deadline
            if deadline == math.inf:
                self._timer_idle = True
                try:
                    await self._timer_lot.park()
                finally:
                    self._timer_idle = False
                continue
            await trio.sleep_until(deadline)
            now = trio.current_time()
            for batch in list(self._open.values()):
                if not batch.scheduled and batch.deadline <= now:
                    self._schedule(batch)

    async def _send(self, batch: _Batch) -> None:
        topic = batch.topic
        try:
            self._close(batch)  # messages added before this task ran are in it
            batch.sent = True
            cancelled = batch.cancelled
            live = batch.receipts if cancelled is None else [r for r in batch.receipts if id(r) not in cancelled]
            if live:
                try:
                    if len(live) == 1:
                        await self._execute(commands.pub(topic, live[0].body))
                    else:
                        await self._execute(commands.mpub(topic, [r.body for r in live]))
                    self.batches_sent += 1
                except (BadMessageError, BadBodyError):
                    if len(live) == 1:
                        raise
                    async with trio.open_nursery() as nursery:
                        for receipt in live:
                            nursery.start_soon(self._send_one, topic, receipt)
        except NSQError as exc:
            batch.error = exc
        finally:
            self._finish(batch)

    async def _send_one(self, topic: str, receipt: PublishReceipt) -> None:
        try:
            await self._execute(commands.pub(topic, receipt.body))
        except NSQError as exc:
            batch = receipt._batch
            if batch.errors is None:
                batch.errors = {}
            batch.errors[id(receipt)] = exc

    def _finish(self, batch: _Batch) -> None:
        topic = batch.topic
        receipts = batch.receipts
        cancelled = batch.cancelled
        live = len(receipts) - (len(cancelled) if cancelled else 0)
        error = batch.error
        if error is not None:
            self.failed += live
            for receipt in receipts:
                receipt.done = True
                if receipt.error is None:  # withdrawn ones keep their own error
                    receipt.error = error
        elif batch.errors is not None:
            errors = batch.errors
            self.failed += len(errors)
            self.published += live - len(errors)
            for receipt in receipts:
                receipt.done = True
                if receipt.error is None:
                    receipt.error = errors.get(id(receipt))
        else:
            self.published += live
            for receipt in receipts:
                receipt.done = True
        self.pending -= len(receipts)
        batch.finished = True
        batch.done.set()
        if self._capacity_lot and self.pending < self.max_pending:
            self._capacity_lot.unpark_all()
        self._sending[topic] -= 1
        if not self._sending[topic]:
            del self._sending[topic]
        waiting = self._open.get(topic)
        if waiting is not None:
            self._schedule(waiting)
        self._tasks -= 1
        if not self._tasks and self._idle_lot:
            self._idle_lot.unpark_all()
