"""fsync a set of files while the event loop keeps running: one sync cycle's disk work.

:meth:`Fsyncer.start` starts the fsyncs of a cycle and returns a :class:`Flight` whose
:meth:`Flight.wait` returns once they (then the ack logs', then the post-sync jobs) are
done. On Linux the fsyncs go through native AIO (``IOCB_CMD_FSYNC``, kernel 4.18+), the
completion signalled on an eventfd the loop waits on: no worker thread, so no thread
hand-off nor GIL contention per cycle. Elsewhere, or when the kernel refuses AIO, one
worker thread runs them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import struct
from collections.abc import Callable

import outcome
import trio

__all__ = ["Flight", "Fsyncer", "SyncJob"]

logger = logging.getLogger(__name__)

#: what runs in a worker thread after the fsyncs: no event-loop state may be touched
SyncJob = Callable[[], None]

# io_setup, io_destroy, io_getevents, io_submit by architecture
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB = struct.Struct("<QIiHhIQQqQII")  # struct iocb (little-endian), 64 bytes
_EVENT = struct.Struct("<QQqq")  # struct io_event
_IOCB_CMD_FSYNC = 2
_IOCB_FLAG_RESFD = 1
#: fsyncs submitted at once (the context's capacity); more go in rounds
_MAX_OPS = 256


def _fsync_all(data_fds: list[int], ack_fds: list[int], jobs: list[SyncJob]) -> None:
    for fd in data_fds:
        os.fsync(fd)
    for fd in ack_fds:
        os.fsync(fd)
    for job in jobs:
        job()


def _run_jobs(jobs: list[SyncJob]) -> None:
    for job in jobs:
        job()


class _Aio:
    """A native AIO context whose completions are counted on an eventfd."""

    def __init__(self) -> None:
        nums = _SYSCALLS.get(platform.machine())
        if nums is None or not hasattr(os, "eventfd"):
            raise OSError("no native AIO here")
        setup, self._destroy, self._getevents, self._submit = nums
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        ctx = ctypes.c_ulong(0)
        if self._syscall(ctypes.c_long(setup), ctypes.c_long(_MAX_OPS),
                         ctypes.byref(ctx)) < 0:
            raise OSError(ctypes.get_errno(), "io_setup failed")
        self.ctx = ctx.value
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._iocbs = ctypes.create_string_buffer(_IOCB.size * _MAX_OPS)
        base = ctypes.addressof(self._iocbs)
        self._ptrs = (ctypes.c_void_p * _MAX_OPS)(
            *(base + i * _IOCB.size for i in range(_MAX_OPS)))
        self._events = ctypes.create_string_buffer(_EVENT.size * _MAX_OPS)

    def close(self) -> None:
        """Release the context (waits for fsyncs still running) and the eventfd."""
        self._syscall(ctypes.c_long(self._destroy), ctypes.c_ulong(self.ctx))
        try:
            trio.lowlevel.notify_closing(self.efd)
        except RuntimeError:  # outside the event loop: nobody can be waiting
            pass
        os.close(self.efd)

    def submit(self, fds: list[int]) -> int:
        """Start fsyncs of up to :data:`_MAX_OPS` of ``fds``; return how many started."""
        n = min(len(fds), _MAX_OPS)
        buf = self._iocbs
        efd = self.efd
        for i in range(n):
            _IOCB.pack_into(buf, i * _IOCB.size, i, 0, 0, _IOCB_CMD_FSYNC, 0, fds[i],
                            0, 0, 0, 0, _IOCB_FLAG_RESFD, efd)
        got = self._syscall(ctypes.c_long(self._submit), ctypes.c_ulong(self.ctx),
                            ctypes.c_long(n), self._ptrs)
        if got < 0:
            raise OSError(ctypes.get_errno(), "io_submit failed")
        return int(got)

    def reap(self, n: int) -> tuple[int, OSError | None]:
        """Collect finished fsyncs without blocking: (how many, the first error)."""
        got = self._syscall(ctypes.c_long(self._getevents), ctypes.c_ulong(self.ctx),
                            ctypes.c_long(0), ctypes.c_long(n), self._events,
                            ctypes.c_void_p(0))
        if got < 0:
            raise OSError(ctypes.get_errno(), "io_getevents failed")
        error = None
        for i in range(got):
            res = _EVENT.unpack_from(self._events, i * _EVENT.size)[2]
            if res < 0 and error is None:
                error = OSError(-res, os.strerror(-res))
        return int(got), error

    async def finish(self, n: int) -> OSError | None:
        """Wait for ``n`` submitted fsyncs to end; return the first failure."""
        error: OSError | None = None
        while n:
            await trio.lowlevel.wait_readable(self.efd)
            try:
                os.eventfd_read(self.efd)
            except BlockingIOError:
                continue
            got, err = self.reap(n)
            n -= got
            error = error or err
        return error

    async def fsync(self, fds: list[int], started: int = 0) -> None:
        """fsync every fd in ``fds`` (concurrently), the first ``started`` of which are
        submitted already; raise the first failure."""
        error = await self.finish(started)
        fds = fds[started:]
        while fds:
            n = self.submit(fds)
            fds = fds[n:]
            error = await self.finish(n) or error
        if error is not None:
            raise error


class Flight:
    """One cycle's fsyncs under way (from :func:`start_fsyncs`)."""

    __slots__ = ("_ack_fds", "_aio", "_data_fds", "_done", "_jobs", "_result", "_started")

    def __init__(self, aio: _Aio | None, data_fds: list[int], ack_fds: list[int], jobs: list[SyncJob]) -> None:
        self._aio = aio
        self._data_fds = data_fds
        self._ack_fds = ack_fds
        self._jobs = jobs
        self._done: trio.Event | None = None
        self._result: outcome.Outcome[None] | None = None
        self._started = 0  # data fsyncs submitted to native AIO

    async def wait(self) -> None:
        """Return once everything is synced and the jobs ran (not cancellable).

        Raises:
            OSError: an fsync or a job failed.
        """
        with trio.CancelScope(shield=True):
            if self._done is not None:  # a worker thread has it all
                await self._done.wait()
                assert self._result is not None
                self._result.unwrap()
                return
            aio = self._aio
            assert aio is not None
            await aio.fsync(self._data_fds, self._started)
            if self._ack_fds:
                await aio.fsync(self._ack_fds)
            if self._jobs:
                await trio.to_thread.run_sync(_run_jobs, self._jobs)


class Fsyncer:
    """Starts cycles' fsyncs: native AIO when the kernel has it, else a worker thread."""

    def __init__(self) -> None:
        self._aio: _Aio | None = None
        self._tried = False

    def start(self, data_fds: list[int], ack_fds: list[int], jobs: list[SyncJob]) -> Flight:
        """Start fsync'ing ``data_fds`` now; then (in :meth:`Flight.wait`) ``ack_fds``,
        then the ``jobs`` (in a thread: they write and rename files)."""
        if not self._tried:
            self._tried = True
            try:
                self._aio = _Aio()
            except (OSError, AttributeError) as exc:
                logger.info("fsyncs in a worker thread (native AIO unavailable - %s)", exc)
        aio = self._aio
        if aio is not None:
            flight = Flight(aio, data_fds, ack_fds, jobs)
            try:
                flight._started = aio.submit(data_fds) if data_fds else 0
                return flight
            except OSError:
                pass  # nothing started: the thread's way
        flight = Flight(None, data_fds, ack_fds, jobs)
        token = trio.lowlevel.current_trio_token()
        done = flight._done = trio.Event()

        def deliver(result: outcome.Outcome[None]) -> None:
            def finish() -> None:
                flight._result = result
                done.set()
            token.run_sync_soon(finish)

        trio.lowlevel.start_thread_soon(lambda: _fsync_all(data_fds, ack_fds, jobs), deliver)
        return flight

    def close(self) -> None:
        """Release the AIO context (the next :meth:`start` makes a new one)."""
        aio, self._aio = self._aio, None
        self._tried = False
        if aio is not None:
            aio.close()
