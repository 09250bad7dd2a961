"""Auto-batching for the producer: messages to one topic are coalesced into MPUBs.

Group commit: a batch is sent as soon as nothing else is being sent for its topic (so
a lone message goes out at once), when it is full, or ``flush_interval`` after it was
opened. While an MPUB is on its way, new messages gather in the next batch, which goes
out when that MPUB is answered: batches grow with the load and latency stays low.

A batch is a list of bodies plus the tasks awaiting its answer; every waiter is woken
directly when nsqd answers its MPUB (no per-message future: a message is its index,
and :class:`PublishReceipt` is made only for :meth:`Producer.send`). If nsqd refuses a
batch because of one bad body, the messages are sent again one by one so each receipt
reports its own outcome.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Final, final

import trio
from trio.lowlevel import (
    Abort,
    ParkingLot,
    Task,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

from .errors import BadBodyError, BadMessageError, NSQError, PublishError
from .protocol import commands

__all__ = ["Accumulator", "PublishReceipt"]

_MPUB_OVERHEAD: Final = 4  # each body carries its size
_INF: Final = math.inf
_pack_size = commands._pack_size


def clone_error(exc: NSQError) -> NSQError:
    """A copy to raise in one more task (one exception object raised by many tasks
    would collect all their tracebacks)."""
    new = copy.copy(exc)
    new.__cause__ = exc.__cause__
    new.__traceback__ = None
    return new


@final
class _Batch:
    """Messages for one MPUB, and the tasks waiting for its answer.

    A message is its index in ``bodies``: nothing is allocated per message beyond the
    list slot (a :class:`PublishReceipt` is only made for :meth:`Producer.send`), and
    one answer wakes every waiter directly, without an Event per message.
    """

    __slots__ = ("cancelled", "deadline", "error", "errors", "finished", "nbytes", "bodies",
                 "scheduled", "sent", "topic", "waiters")

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.bodies: list[bytes] = []
        self.nbytes = 0
        self.scheduled = False  # a send task exists; messages may join until it runs
        self.sent = False  # the send task took the messages
        self.finished = False  # the outcome is known
        self.error: NSQError | None = None  # the whole batch failed
        self.errors: dict[int, NSQError] | None = None  # per message index (sent one by one)
        self.cancelled: dict[int, NSQError] | None = None  # withdrawn message indexes
        self.deadline = _INF  # when it must be scheduled even if not full
        self.waiters: list[Task] = []

    def withdraw(self, index: int) -> bool:
        """Take message ``index`` out if the batch has not been sent yet."""
        cancelled = self.cancelled
        if cancelled is not None and index in cancelled:
            return True
        if self.sent:
            return False
        if cancelled is None:
            cancelled = self.cancelled = {}
        cancelled[index] = PublishError("the message was withdrawn before it was sent")
        self.nbytes -= len(self.bodies[index]) + _MPUB_OVERHEAD
        return True

    def error_of(self, index: int) -> NSQError | None:
        """Why message ``index`` was not published (None: published, or still pending)."""
        cancelled = self.cancelled
        if cancelled is not None and index in cancelled:
            return cancelled[index]
        if self.error is not None:
            return self.error
        errors = self.errors
        return None if errors is None else errors.get(index)

    async def wait(self) -> None:
        """Wait for the answer (a checkpoint either way).

        Cancellation: only the wait is cancelled.
        """
        if self.finished:
            await trio.lowlevel.checkpoint()
            return
        task = current_task()
        waiters = self.waiters
        waiters.append(task)

        def abort(_: object) -> Abort:
            waiters.remove(task)
            return Abort.SUCCEEDED

        await wait_task_rescheduled(abort)

    def wake(self) -> None:
        self.finished = True
        waiters = self.waiters
        if waiters:
            for task in waiters:
                reschedule(task)
            waiters.clear()


@final
class PublishReceipt:
    """The pending acknowledgement of one message queued by :meth:`Producer.send`.

    ``await receipt`` (or ``await receipt.wait()``) returns once nsqd acknowledged the
    message, or raises why it was not published.
    """

    __slots__ = ("_batch", "_index")

    def __init__(self, batch: _Batch, index: int) -> None:
        self._batch = batch
        self._index = index

    @property
    def body(self) -> bytes:
        """The message body."""
        return self._batch.bodies[self._index]

    @property
    def topic(self) -> str:
        """The topic the message goes to."""
        return self._batch.topic

    @property
    def done(self) -> bool:
        """True once the outcome is known."""
        batch = self._batch
        if batch.finished:
            return True
        cancelled = batch.cancelled
        return cancelled is not None and self._index in cancelled

    @property
    def error(self) -> NSQError | None:
        """Why the message was not published (None while pending or when published)."""
        batch = self._batch
        if batch.cancelled is None and batch.error is None and batch.errors is None:
            return None
        if not batch.finished:
            return batch.cancelled.get(self._index) if batch.cancelled is not None else None
        return batch.error_of(self._index)

    @property
    def cancelled(self) -> bool:
        """True if the message was withdrawn with :meth:`cancel`."""
        cancelled = self._batch.cancelled
        return cancelled is not None and self._index in cancelled

    def cancel(self) -> bool:
        """Withdraw the message if its batch has not been sent yet.

        Returns:
            True if withdrawn (it will not be published).
        """
        return self._batch.withdraw(self._index)

    async def wait(self) -> None:
        """Wait for the acknowledgement.

        Raises:
            NSQError: the message was not published (a copy of the batch's error).

        Cancellation: cancelling the wait does not withdraw the message.
        """
        batch = self._batch
        cancelled = batch.cancelled
        if cancelled is None or self._index not in cancelled:
            await batch.wait()
        else:
            await trio.lowlevel.checkpoint()
        if batch.error is not None or batch.errors is not None or batch.cancelled is not None:
            error = batch.error_of(self._index)
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
        self._lines: dict[str, bytes] = {}  # "MPUB <topic>\n" per topic
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

    def add(self, topic: str, body: bytes) -> _Batch:
        """Queue ``body``; never blocks.

        Returns:
            The batch it joined; the message is ``len(batch.bodies) - 1`` in it until
            the next call. :attr:`filled` tells whether this message filled its batch
            (which is then scheduled; a caller in a loop should let it run).
        """
        batch = self._open.get(topic)
        if batch is None:
            batch = self._open[topic] = _Batch(topic)
        bodies = batch.bodies
        bodies.append(body)
        nbytes = batch.nbytes = batch.nbytes + len(body) + _MPUB_OVERHEAD
        self.pending += 1
        if len(bodies) >= self.batch_size or nbytes >= self.batch_bytes:
            self._close(batch)
            self._schedule(batch)
            self.filled = True
            return batch
        self.filled = False
        if not batch.scheduled:
            if not self.flush_interval or not self._sending.get(topic):
                self._schedule(batch)
            elif batch.deadline == _INF:
                batch.deadline = trio.current_time() + self.flush_interval
                if self._timer_idle:
                    self._timer_lot.unpark_all()
        return batch

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
            deadline = _INF
            for batch in self._open.values():
                if not batch.scheduled and batch.deadline < deadline:
                    deadline = batch.deadline
            if deadline == _INF:
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
            bodies = batch.bodies
            live = range(len(bodies)) if cancelled is None else [i for i in range(len(bodies))
                                                                 if i not in cancelled]
            if live:
                try:
                    if len(live) == 1:
                        await self._execute(commands.pub(topic, bodies[live[0]]))
                    else:
                        body = commands.mpub_body(bodies if cancelled is None else [bodies[i] for i in live])
                        await self._execute(self._mpub_line(topic) + _pack_size(len(body)) + body)
                    self.batches_sent += 1
                except (BadMessageError, BadBodyError):
                    if len(live) == 1:
                        raise
                    async with trio.open_nursery() as nursery:
                        for index in live:
                            nursery.start_soon(self._send_one, batch, index)
        except NSQError as exc:
            batch.error = exc
        finally:
            self._finish(batch)

    def _mpub_line(self, topic: str) -> bytes:
        line = self._lines.get(topic)
        if line is None:
            # the line of a valid MPUB (so the name is validated as commands.mpub does)
            line = commands.mpub(topic, [b""]).partition(b"\n")[0] + b"\n"
            if len(self._lines) < 1000:
                self._lines[topic] = line
        return line

    async def _send_one(self, batch: _Batch, index: int) -> None:
        try:
            await self._execute(commands.pub(batch.topic, batch.bodies[index]))
        except NSQError as exc:
            if batch.errors is None:
                batch.errors = {}
            batch.errors[index] = exc

    def _finish(self, batch: _Batch) -> None:
        topic = batch.topic
        count = len(batch.bodies)
        cancelled = batch.cancelled
        live = count - (len(cancelled) if cancelled else 0)
        if batch.error is not None:
            self.failed += live
        elif batch.errors is not None:
            self.failed += len(batch.errors)
            self.published += live - len(batch.errors)
        else:
            self.published += live
        self.pending -= count
        batch.wake()
        if self._capacity_lot and self.pending < self.max_pending:
            self._capacity_lot.unpark_all()
        sending = self._sending
        left = sending[topic] - 1
        if left:
            sending[topic] = left
        else:
            del sending[topic]
        waiting = self._open.get(topic)
        if waiting is not None:
            self._schedule(waiting)
        self._tasks -= 1
        if not self._tasks and self._idle_lot:
            self._idle_lot.unpark_all()
