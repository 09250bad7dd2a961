"""The daemon's deferred loop: releases channels' deferred messages when they come due.

Each channel's :class:`~nsqd.deferred_store.DeferredStore` tells the loop (through the
wake callback it is given) when a message becomes its earliest, or when it has buckets to
load; the loop then serves that channel until its store is empty and idle. Two tasks:

* :meth:`DeferredLoop.run` sleeps until the earliest due time of every watched store
  (at least ``TICK``, at most ``IDLE``) and releases what is due;
* :meth:`DeferredLoop.run_loader` loads spilled messages ahead of their time, the file
  reads in a worker thread.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import trio

from .deferred_store import DeferredStore

__all__ = ["IDLE", "LOAD_IDLE", "TICK", "DeferredChannel", "DeferredLoop"]

logger = logging.getLogger(__name__)

#: the release loop's shortest and longest sleep (release granularity / idle re-check)
TICK = 0.005
IDLE = 0.5
#: how often the loader looks for deferred buckets coming within the horizon
LOAD_IDLE = 0.1


class DeferredChannel(Protocol):
    """What the loop asks of a channel (:class:`~nsqd.channel.Channel`)."""

    @property
    def deferred(self) -> DeferredStore: ...

    @property
    def deleted(self) -> bool: ...

    def process_deferred(self, now: float) -> int:
        """Release the deferred messages due at ``now``; return how many."""


class DeferredLoop:
    """Serves the deferred stores of every channel of one nsqd; run both tasks."""

    def __init__(self) -> None:
        self._channels: dict[int, DeferredChannel] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._wake_at = math.inf

    def __len__(self) -> int:
        """Channels served now."""
        return len(self._channels)

    def watch(self, channel: DeferredChannel) -> None:
        """Serve ``channel``'s deferred store from now on (until it is deleted)."""
        store = channel.deferred
        store.set_wake(lambda _store, due: self._wake(channel, due))
        if store or store.has_work():
            self._wake(channel, -math.inf)

    def _wake(self, channel: DeferredChannel, due: float) -> None:
        self._channels[id(channel)] = channel
        channel.deferred.watched = True
        if due < self._wake_at:
            self._wake_at = due
            self._lot.unpark_all()

    async def run_loader(self) -> None:
        """Load spilled deferred messages ahead of their time (file reads in a thread)."""
        watched = self._channels
        while True:
            busy = False
            for channel in list(watched.values()):
                store = channel.deferred
                if not channel.deleted and store.has_work() and await store.advance_async():
                    busy = True
            if busy:
                await trio.lowlevel.checkpoint()
            else:
                await trio.sleep(LOAD_IDLE)

    async def run(self) -> None:
        """Release deferred messages when due."""
        watched = self._channels
        while True:
            now = trio.current_time()
            wake_at = now + IDLE
            for key, channel in list(watched.items()):
                store = channel.deferred
                if channel.deleted:
                    del watched[key]
                    store.watched = False
                    continue
                due = store.next_due()
                if due is not None and due <= now:
                    channel.process_deferred(now)
                    due = store.next_due()
                if due is not None:
                    wake_at = min(wake_at, due)
                elif not store and not store.has_work():
                    del watched[key]
                    store.watched = False
            wake_at = max(wake_at, now + TICK)
            self._wake_at = wake_at
            with trio.move_on_at(wake_at):
                await self._lot.park()
            self._wake_at = math.inf
