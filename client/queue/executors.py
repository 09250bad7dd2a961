"""Batching executors, after go-zero's ``core/executors``, on Trio.

Items are added to a buffer; a background flush task hands the whole buffer to an async
``execute(items)`` callback when a size condition is met or the flush interval has
elapsed since the first item entered the empty buffer:

* :class:`ChunkExecutor` flushes when the accumulated byte size reaches ``chunk_size_bytes``
  (or ``max_items`` items are buffered), or on the interval.
* :class:`BulkExecutor` flushes when ``bulk_size`` items are buffered, or on the interval.
* :class:`PeriodicalExecutor` flushes on the interval only; a buffer of ``max_items`` waits
  for the next tick.

Executions never overlap and keep the order of ``add()`` calls. While one batch executes
and the next buffer is full, :meth:`add` waits, so at most two batches are held in memory.
Exceptions from ``execute`` are logged and counted, never raised.

Each executor is an async context manager that owns its flush task::

    async with BulkExecutor(write_rows, bulk_size=500) as executor:
        await executor.add(row)

Leaving the block refuses further adds, finishes a running execution and flushes the
rest, even when the block raised.
"""

from __future__ import annotations

import abc
import enum
import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Generic, TypeAlias, TypeVar, final

import trio

__all__ = [
    "BulkExecutor",
    "ChunkExecutor",
    "Execute",
    "ExecutorStatistics",
    "PeriodicalExecutor",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

Execute: TypeAlias = Callable[[list[T]], Awaitable[None]]
"""The flush callback: receives one batch, in insertion order."""

DEFAULT_FLUSH_INTERVAL: Final = 1.0
DEFAULT_CHUNK_SIZE: Final = 1024 * 1024
DEFAULT_CHUNK_MAX_ITEMS: Final = 10_000
DEFAULT_BULK_SIZE: Final = 1000
DEFAULT_PERIODICAL_MAX_ITEMS: Final = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorStatistics:
    """A snapshot of an executor's counters.

    ``executed`` counts items handed to ``execute`` (``batches`` calls, of which
    ``failures`` raised); ``buffered``/``buffered_bytes`` describe the pending buffer.
    """

    added: int
    executed: int
    batches: int
    failures: int
    buffered: int
    buffered_bytes: int


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


class _BatchExecutor(abc.ABC, Generic[T]):
    """Shared machinery; subclasses define when a buffer is ready and when it is full."""

    def __init__(self, execute: Execute[T], *, flush_interval: float) -> None:
        if not flush_interval > 0:
            raise ValueError(f"flush interval must be > 0, got {flush_interval!r}")
        self._execute = execute
        self._interval = flush_interval
        self._buffer: list[T] = []
        self._bytes = 0
        self._deadline = math.inf
        self._wake = trio.lowlevel.ParkingLot()
        self._room = trio.lowlevel.ParkingLot()
        self._exec_lock = trio.Lock()
        self._state = _State.NEW
        self._stack: AsyncExitStack | None = None
        self._added = 0
        self._executed = 0
        self._batches = 0
        self._failures = 0

    # -- policy hooks -----------------------------------------------------------------

    @abc.abstractmethod
    def _ready(self) -> bool:
        """True when the buffer should be flushed now, without waiting for the interval."""

    def _full(self) -> bool:
        """True when :meth:`add` must wait for the buffer to be taken."""
        return self._ready()

    # -- public surface ---------------------------------------------------------------

    async def __aenter__(self) -> _BatchExecutor[T]:
        if self._state is not _State.NEW:
            raise RuntimeError("an executor can be entered only once")
        stack = AsyncExitStack()
        nursery = await stack.enter_async_context(trio.open_nursery())
        nursery.start_soon(self._flusher)
        self._stack = stack
        self._state = _State.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._state = _State.CLOSED
        self._wake.unpark_all()
        self._room.unpark_all()
        if self._stack is not None:
            # The flush task finishes a running execution, then sees CLOSED and returns.
            await self._stack.aclose()
        await self._flush_once()

    async def flush(self) -> None:
        """Execute everything buffered now; returns when that execution has finished.

        Waits for a running execution first. Items added before the call are executed by
        the time it returns.
        """
        await self._flush_once()

    def statistics(self) -> ExecutorStatistics:
        """Return a snapshot of the counters."""
        return ExecutorStatistics(
            added=self._added,
            executed=self._executed,
            batches=self._batches,
            failures=self._failures,
            buffered=len(self._buffer),
            buffered_bytes=self._bytes,
        )

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state is _State.OPEN:
            return
        if self._state is _State.NEW:
            raise RuntimeError("use the executor as 'async with executor:' before adding")
        raise trio.ClosedResourceError("executor is closed")

    async def _add(self, item: T, size: int) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        while self._full():
            await self._room.park()
            self._check_open()
        if not self._buffer:
            self._deadline = trio.current_time() + self._interval
            self._wake.unpark_all()
        self._buffer.append(item)
        self._bytes += size
        self._added += 1
        if self._ready():
            self._wake.unpark_all()

    def _take(self) -> list[T]:
        batch = self._buffer
        self._buffer = []
        self._bytes = 0
        self._deadline = math.inf
        self._room.unpark_all()
        return batch

    async def _flush_once(self) -> None:
        async with self._exec_lock:
            batch = self._take()
            if not batch:
                return
            try:
                await self._execute(batch)
            except Exception:
                self._failures += 1
                logger.exception("EXECUTOR: execute failed on a batch of %d items", len(batch))
            finally:
                self._batches += 1
                self._executed += len(batch)

    async def _flusher(self) -> None:
        while self._state is _State.OPEN:
            if self._buffer and (self._ready() or trio.current_time() >= self._deadline):
                await self._flush_once()
                continue
            with trio.move_on_at(self._deadline):
                await self._wake.park()


@final
class ChunkExecutor(_BatchExecutor[T]):
    """Flush by accumulated size: ``chunk_size_bytes`` or ``max_items``, or by interval.

    Args:
        execute: Called with each batch.
        chunk_size_bytes: Flush once the sizes given to :meth:`add` sum to this.
        flush_interval: Longest wait, in seconds, between an item's arrival in an empty
            buffer and its flush.
        max_items: Flush (and bound the buffer) at this many items, whatever their size.
    """

    def __init__(
        self,
        execute: Execute[T],
        *,
        chunk_size_bytes: int = DEFAULT_CHUNK_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        max_items: int = DEFAULT_CHUNK_MAX_ITEMS,
    ) -> None:
        if chunk_size_bytes < 1:
            raise ValueError(f"chunk_size_bytes must be >= 1, got {chunk_size_bytes!r}")
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items!r}")
        super().__init__(execute, flush_interval=flush_interval)
        self._chunk_size = chunk_size_bytes
        self._max_items = max_items

    async def __aenter__(self) -> ChunkExecutor[T]:
        await super().__aenter__()
        return self

    def _ready(self) -> bool:
        return self._bytes >= self._chunk_size or len(self._buffer) >= self._max_items

    async def add(self, item: T, size: int) -> None:
        """Buffer ``item`` weighing ``size`` bytes, waiting while the buffer is full.

        Raises:
            ValueError: If ``size`` is negative.
            trio.ClosedResourceError: If the executor was closed.
            RuntimeError: If the executor was not entered yet.
        """
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size!r}")
        await self._add(item, size)


@final
class BulkExecutor(_BatchExecutor[T]):
    """Flush every ``bulk_size`` items, or by interval.

    Args:
        execute: Called with each batch.
        bulk_size: Flush once this many items are buffered (also the buffer bound).
        flush_interval: Longest wait, in seconds, between an item's arrival in an empty
            buffer and its flush.
    """

    def __init__(
        self,
        execute: Execute[T],
        *,
        bulk_size: int = DEFAULT_BULK_SIZE,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if bulk_size < 1:
            raise ValueError(f"bulk_size must be >= 1, got {bulk_size!r}")
        super().__init__(execute, flush_interval=flush_interval)
        self._bulk_size = bulk_size

    async def __aenter__(self) -> BulkExecutor[T]:
        await super().__aenter__()
        return self

    def _ready(self) -> bool:
        return len(self._buffer) >= self._bulk_size

    async def add(self, item: T) -> None:
        """Buffer ``item``, waiting while the buffer is full.

        Raises:
            trio.ClosedResourceError: If the executor was closed.
            RuntimeError: If the executor was not entered yet.
        """
        await self._add(item, 0)


@final
class PeriodicalExecutor(_BatchExecutor[T]):
    """Flush on the interval only; at ``max_items`` buffered, :meth:`add` waits for it.

    Args:
        execute: Called with each batch.
        interval: Seconds between an item's arrival in an empty buffer and its flush.
        max_items: Buffer bound.
    """

    def __init__(
        self,
        execute: Execute[T],
        *,
        interval: float = DEFAULT_FLUSH_INTERVAL,
        max_items: int = DEFAULT_PERIODICAL_MAX_ITEMS,
    ) -> None:
        if max_items < 1:
            raise ValueError(f"max_items must be >= 1, got {max_items!r}")
        super().__init__(execute, flush_interval=interval)
        self._max_items = max_items

    async def __aenter__(self) -> PeriodicalExecutor[T]:
        await super().__aenter__()
        return self

    def _ready(self) -> bool:
        return False

    def _full(self) -> bool:
        return len(self._buffer) >= self._max_items

    async def add(self, item: T) -> None:
        """Buffer ``item``, waiting for the next flush while ``max_items`` are buffered.

        Raises:
            trio.ClosedResourceError: If the executor was closed.
            RuntimeError: If the executor was not entered yet.
        """
        await self._add(item, 0)
