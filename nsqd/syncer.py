"""Group commit: one fsync cycle for every store written since the previous one.

Stores (disk queues, deferred stores) append to user-space buffers synchronously on the
hot path and ask the :class:`Syncer` for a sync. The syncer's task then runs *cycles*:

1. in the event loop, every requested store writes its buffers to the OS — data first
   (segments, deferred buckets), then acknowledgement logs, so an ack never reaches the
   file system before the copy it retires;
2. while the loop runs on, the data files are fsync'ed (native AIO, else a worker
   thread: :mod:`nsqd.fsyncs`), then the ack logs, then each store's post-sync jobs run
   in a thread (metadata files written atomically, consumed files unlinked);
3. back in the loop, every store is told the outcome and every waiter of the cycle wakes;
   callbacks registered on the cycle (an HTTP response waiting for it) run once the
   next cycle's fsyncs are under way.

The syncer yields once before a cycle starts, so that publishers whose data arrived with
the previous fsync's completion (or with the write that woke the syncer) are in it. After
a cycle it also waits a little (no longer than that cycle's fsync took) for as many
durable writes as the cycle covered plus those made meanwhile: publishers that wait for
each OK are back within a round trip, and all of them share the next fsync rather than
two halves taking turns.

A publisher in durable mode takes a :meth:`token` before publishing and awaits
:meth:`wait` after: that returns at once when nothing durable was written, otherwise when
a cycle that started after the write has completed (or registers a callback with
:meth:`SyncCycle.call_when_done` instead). Concurrent publishers thus share fsyncs;
while one cycle runs, the next one collects the writes that arrive meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from operator import methodcaller
from typing import Protocol

import trio

from .backend import BackendError
from .fsyncs import Fsyncer, SyncJob

__all__ = ["SyncCycle", "SyncJob", "Syncable", "Syncer"]

logger = logging.getLogger(__name__)

#: pause after a failed cycle before retrying the stores that failed
RETRY_DELAY = 0.1
#: bounds of the wait for the publishers a cycle answered (see :meth:`Syncer._gather`)
GATHER_MIN = 0.0002
GATHER_MAX = 0.005

#: called with the cycle's error (None: durable) when the cycle ends
CycleCallback = Callable[[BaseException | None], None]


class Syncable(Protocol):
    """A store the syncer can sync."""

    def flush_data(self) -> list[int]:
        """Write buffered data to the OS; return the fds to fsync (raise OSError)."""

    def flush_acks(self) -> list[int]:
        """Write buffered acknowledgement logs; return their fds (raise OSError)."""

    def sync_jobs(self) -> list[SyncJob]:
        """Work for the thread once everything is fsync'ed (meta files, unlinks)."""

    def sync_done(self, ok: bool) -> None:
        """The cycle ended (in the event loop)."""


class SyncCycle:
    """One group-commit cycle: writers it covers wait for :attr:`done` (see :meth:`Syncer.wait_cycle`)."""

    __slots__ = ("callbacks", "done", "error", "gen")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.error: BaseException | None = None
        self.gen = -1  # write_gen when the cycle took its stores: it covers writes up to it
        self.callbacks: list[CycleCallback] = []

    def call_when_done(self, fn: CycleCallback) -> None:
        """Call ``fn(error)`` in the event loop once the cycle ended (``error`` None: the
        writes it covers are durable); no task, no await. At once if it has ended."""
        if self.done.is_set():
            fn(self.error)
        else:
            self.callbacks.append(fn)


_DATA: Callable[[Syncable], list[int]] = methodcaller("flush_data")
_ACKS: Callable[[Syncable], list[int]] = methodcaller("flush_acks")


def _flush(stores: list[Syncable], step: Callable[[Syncable], list[int]], fds: list[int],
           failed: list[Syncable]) -> OSError | None:
    """Run ``step`` on each store, collecting fds; the failing stores go to ``failed``."""
    error: OSError | None = None
    for store in stores:
        try:
            fds.extend(step(store))
        except OSError as exc:
            error = exc
            failed.append(store)
    return error


def _notify(cycle: SyncCycle) -> None:
    callbacks, cycle.callbacks = cycle.callbacks, []
    for fn in callbacks:
        try:
            fn(cycle.error)
        except Exception:
            logger.exception("sync cycle callback failed")


class Syncer:
    """Runs sync cycles for the stores of one nsqd (see the module docstring)."""

    def __init__(self, *, sync_timeout: float) -> None:
        self.sync_timeout = sync_timeout
        #: durable writes so far; a waiter compares it with its token
        self.write_gen = 0
        self.cycles = 0
        self._requested: dict[int, Syncable] = {}
        self._active: dict[int, Syncable] = {}
        self._lot = trio.lowlevel.ParkingLot()
        self._parked = False
        self._next = SyncCycle()
        self._running: SyncCycle | None = None
        self._synced_gen = 0  # writes up to this gen are on stable storage
        self._fsyncer = Fsyncer()
        self._taken_gen = 0  # write_gen when the last cycle took its stores
        #: while gathering: the durable writes since the last cycle that end the wait
        self._target = 0

    # ------------------------------------------------------------------ stores
    def request(self, store: Syncable) -> None:
        """Sync ``store`` in the next cycle (NSQ's --sync-every reached, acks to log...)."""
        self._requested[id(store)] = store
        if self._parked and not self._target:
            self._lot.unpark_all()

    def durable_write(self, store: Syncable) -> None:
        """``store`` buffered data that a publisher will wait for (group commit)."""
        self.write_gen += 1
        self._requested[id(store)] = store
        if self._parked and self.write_gen - self._taken_gen >= self._target:
            self._lot.unpark_all()

    def active(self, store: Syncable) -> None:
        """``store`` changed: sync it at the next --sync-timeout tick at the latest."""
        self._active[id(store)] = store

    def forget(self, store: Syncable) -> None:
        """``store`` was closed or deleted: never sync it again."""
        self._requested.pop(id(store), None)
        self._active.pop(id(store), None)

    # ------------------------------------------------------------------ publishers
    def token(self) -> int:
        """Take before publishing; pass to :meth:`wait` after."""
        return self.write_gen

    def pending(self, token: int) -> bool:
        """Were durable writes made since ``token`` was taken?"""
        return self.write_gen != token

    async def wait(self, token: int) -> None:
        """Return once every durable write made since ``token`` is on stable storage.

        Raises:
            BackendError: the cycle covering those writes failed (disk full, I/O error).

        Cancelling the wait does not undo the write; it may still become durable.
        """
        cycle = self.covering_cycle(token)
        if cycle is not None:
            await self.wait_cycle(cycle)

    def covering_cycle(self, token: int) -> SyncCycle | None:
        """The cycle that makes the writes made since ``token`` durable; None if there are
        none or they already are.

        Take it right after the writes, then :meth:`wait_cycle` for it, possibly from
        another task. Writes made by now are covered by the running cycle if it started
        after them, else by the next one.
        """
        gen = self.write_gen
        if gen == token or self._synced_gen >= gen:
            return None
        running = self._running
        if running is not None and running.gen >= gen:
            return running
        if self._parked and not self._target:
            self._lot.unpark_all()
        return self._next

    @staticmethod
    async def wait_cycle(cycle: SyncCycle) -> None:
        """Wait for ``cycle`` (from :meth:`covering_cycle`) to end.

        Raises:
            BackendError: the cycle failed.
        """
        await cycle.done.wait()
        if cycle.error is not None:
            raise BackendError(f"sync failed - {cycle.error}") from cycle.error

    # ------------------------------------------------------------------ task
    async def run(self) -> None:
        """Run cycles until cancelled (started in the daemon's nursery)."""
        next_tick = trio.current_time() + self.sync_timeout
        ended: SyncCycle | None = None  # its callbacks run once the next cycle started
        target, gather_until = 0, 0.0
        try:
            while True:
                if target > self.write_gen - self._taken_gen:
                    if ended is not None:
                        _notify(ended)
                        ended = None
                    await self._gather(target, gather_until)
                target = 0
                if not self._requested:
                    if ended is not None:
                        _notify(ended)
                        ended = None
                    await self._park(next_tick)
                if trio.current_time() >= next_tick:
                    self._requested.update(self._active)
                    self._active.clear()
                    next_tick = trio.current_time() + self.sync_timeout
                if not self._requested:
                    continue
                # writers woken with the fsync's end (or with the write that woke the
                # syncer) write first: the cycle has them
                await trio.lowlevel.checkpoint()
                taken = self._taken_gen
                started = trio.current_time()
                failed, ended = await self._cycle(ended)
                if failed:
                    _notify(ended)
                    ended = None
                    await trio.sleep(RETRY_DELAY)
                    continue
                # the publishers this cycle answered and those that wrote meanwhile
                # are likely to write again soon: the next cycle waits for them a little
                now = trio.current_time()
                target = self.write_gen - taken
                gather_until = now + min(max(now - started, GATHER_MIN), GATHER_MAX)
        finally:
            if ended is not None:
                _notify(ended)

    async def _gather(self, target: int, deadline: float) -> None:
        """Wait until ``target`` durable writes were made since the last cycle took its
        stores, or ``deadline``: a closed-loop publisher answered by a cycle is back with
        its next message within a round trip, and then shares the next fsync instead of
        leaving every other one to the half of the publishers that was waiting already."""
        self._target = target
        try:
            while self.write_gen - self._taken_gen < target:
                if not await self._park(deadline):
                    return
        finally:
            self._target = 0

    async def _park(self, deadline: float) -> bool:
        """Sleep until woken (True) or ``deadline`` (False)."""
        with trio.move_on_at(deadline) as cs:
            self._parked = True
            try:
                await self._lot.park()
            finally:
                self._parked = False
        return not cs.cancelled_caught

    async def cycle(self) -> bool:
        """Run one cycle over the requested stores; return whether some store failed."""
        failed, cycle = await self._cycle(None)
        _notify(cycle)
        return failed

    async def _cycle(self, ended: SyncCycle | None) -> tuple[bool, SyncCycle]:
        """A cycle; ``ended``'s callbacks run once its fsyncs are under way."""
        stores = list(self._requested.values())
        self._requested.clear()
        cycle = self._next
        self._next = SyncCycle()
        cycle.gen = self._taken_gen = self.write_gen
        self._running = cycle
        error: BaseException | None = None
        failed: list[Syncable] = []
        data_fds: list[int] = []
        ack_fds: list[int] = []
        jobs: list[SyncJob] = []
        try:
            error = _flush(stores, _DATA, data_fds, failed)
            ok_stores = [s for s in stores if s not in failed]
            if error is None:
                # acks only once all data reached the OS: a requeued copy precedes its ack
                error = _flush(ok_stores, _ACKS, ack_fds, failed)
            if error is None:
                for store in ok_stores:
                    jobs.extend(store.sync_jobs())
            flight = self._fsyncer.start(data_fds, ack_fds, jobs)
            if ended is not None:
                _notify(ended)
            await flight.wait()
        except OSError as exc:
            error = exc
            failed = stores
        finally:
            self._running = None
            self.cycles += 1
            if error is None:
                self._synced_gen = max(self._synced_gen, cycle.gen)
            for store in stores:
                store.sync_done(store not in failed)
            if error is not None:
                logger.error("failed to sync %d store(s) - %s", len(failed), error)
                # retry them all: stores that succeeded may still hold unwritten acks
                for store in stores:
                    self._requested[id(store)] = store
            cycle.error = error
            cycle.done.set()
        return error is not None, cycle

    def close(self) -> None:
        """Wake every waiter with an error (the daemon is exiting)."""
        cycle = self._next
        if not cycle.done.is_set():
            cycle.error = BackendError("exiting")
            cycle.done.set()
            _notify(cycle)
        self._fsyncer.close()
