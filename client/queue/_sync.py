"""Trio primitives private to the queue: a turn gate and a bounded event mailbox."""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

import trio

__all__ = ["Gate", "Mailbox"]

T = TypeVar("T")


class Gate:
    """Mutual exclusion between a consumer's item loop and its event task.

    Unlike :class:`trio.Lock`, taking a free gate does not yield, so the item loop pays
    one attribute check per item. Priority waiters (events) go before ordinary ones, so a
    steady flow of items cannot starve events.
    """

    __slots__ = ("_lot", "busy", "priority_waiting")

    def __init__(self) -> None:
        self.busy = False
        self.priority_waiting = 0
        self._lot = trio.lowlevel.ParkingLot()

    def try_acquire(self) -> bool:
        """Take the gate if it is free and nobody with priority waits; never yields."""
        if self.busy or self.priority_waiting:
            return False
        self.busy = True
        return True

    async def acquire(self, *, priority: bool) -> None:
        """Wait for the gate and take it. Yields only if it has to wait."""
        if priority:
            self.priority_waiting += 1
        try:
            while self.busy or (not priority and self.priority_waiting):
                await self._lot.park()
        except BaseException:
            if priority:
                self.priority_waiting -= 1
                # Ordinary waiters may be parked only because of us.
                self._lot.unpark_all()
            raise
        if priority:
            self.priority_waiting -= 1
        self.busy = True

    def release(self) -> None:
        """Free the gate and wake every waiter (they re-check in priority order)."""
        self.busy = False
        if self._lot:
            self._lot.unpark_all()


class Mailbox(Generic[T]):
    """A bounded FIFO with blocking ``put`` and a non-consuming ``wait_nonempty``.

    The reader peeks readiness first and pops only once it is able to handle the item,
    so cancelling the reader at any await never loses an item.

    Args:
        capacity: Maximum number of queued items (at least 1).
    """

    __slots__ = ("_capacity", "_closed", "_items", "_readers", "_writers")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity!r}")
        self._capacity = capacity
        self._items: deque[T] = deque()
        self._closed = False
        self._readers = trio.lowlevel.ParkingLot()
        self._writers = trio.lowlevel.ParkingLot()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called; puts are then refused."""
        return self._closed

    async def put(self, item: T) -> bool:
        """Append ``item``, waiting while the mailbox is full.

        Returns:
            True if queued, False if the mailbox is (or became) closed.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._closed and len(self._items) >= self._capacity:
            await self._writers.park()
        if self._closed:
            return False
        self._items.append(item)
        self._readers.unpark_all()
        return True

    async def wait_nonempty(self) -> None:
        """Wait until an item is queued or the mailbox is closed (at once if either)."""
        while not self._items and not self._closed:
            await self._readers.park()

    def pop_nowait(self) -> T:
        """Remove and return the oldest item; raises :class:`trio.WouldBlock` if empty."""
        if not self._items:
            raise trio.WouldBlock
        item = self._items.popleft()
        self._writers.unpark()
        return item

    def close(self) -> None:
        """Refuse further puts; wake blocked writers and readers. Queued items stay poppable."""
        self._closed = True
        self._writers.unpark_all()
        self._readers.unpark_all()
