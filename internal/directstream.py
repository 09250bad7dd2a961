"""A Trio stream over a connected socket that calls ``read``/``write`` directly.

:class:`trio.SocketStream` passes every call through a conflict detector and a trip
through the scheduler, even when the kernel took all of the data at once: for a small
request/response exchange (a publisher waiting for each ``OK``) that doubles the
scheduler passes per request. Here readiness is awaited only when the socket would
block (EAGAIN), itself a trip through the scheduler; a read that found data waiting,
and every so many writes that never had to wait, still let the other tasks run
(without raising Cancelled once the data moved). Errors are Trio's:
:class:`trio.BrokenResourceError` for a broken connection,
:class:`trio.ClosedResourceError` once closed.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable

import trio

__all__ = ["DirectSocketStream"]

#: writes in a row that never waited, after which the writer lets others run anyway
_WRITES_PER_YIELD = 16
_DEFAULT_RECEIVE = 65536
#: the most read at once unless the last read filled its buffer
_SMALL_RECEIVE = 65536


class DirectSocketStream(trio.abc.HalfCloseableStream):
    """Wraps a :class:`trio.SocketStream` (whose options it keeps, e.g. TCP_NODELAY).

    The wrapped stream still owns the socket: :meth:`aclose` and :meth:`send_eof` go
    through it.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._fd = stream.socket.fileno()
        self._closed = False
        #: the last read filled its buffer: the next may take more at once
        self._full = False
        #: the last :meth:`receive_ready` found nothing to read
        self._empty = False
        self._writes = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        size = self._receive_size(max_bytes)
        await trio.lowlevel.checkpoint_if_cancelled()
        waited = False
        if self._empty:  # receive_ready just found nothing: no second look first
            self._empty = False
            await self._wait(trio.lowlevel.wait_readable)
            waited = True
        while True:
            data = self._read(size)
            if data is not None:
                break
            await self._wait(trio.lowlevel.wait_readable)
            waited = True
        if not waited:  # the data was there: others run first (what was read stays read)
            await trio.lowlevel.cancel_shielded_checkpoint()
        self._full = len(data) == size
        return data

    async def receive_ready(self, max_bytes: int | None = None) -> bytes | None:
        """What :meth:`receive_some` returns when data (or the end of the stream) is
        there already, else None at once: a caller can set up a timeout only to wait."""
        size = self._receive_size(max_bytes)
        await trio.lowlevel.checkpoint_if_cancelled()
        data = self._read(size)
        if data is None:
            self._empty = True
            return None
        await trio.lowlevel.cancel_shielded_checkpoint()  # others run first, as above
        self._full = len(data) == size
        return data

    def _receive_size(self, max_bytes: int | None) -> int:
        size = _DEFAULT_RECEIVE if max_bytes is None else max_bytes
        if size < 1:
            raise ValueError("max_bytes must be >= 1")
        if not self._full:
            # a buffer over the allocator's mmap threshold costs a map, page faults and
            # an unmap per read: large reads only once a read came back full
            size = min(size, _SMALL_RECEIVE)
        return size

    def _read(self, size: int) -> bytes | None:
        """One read: None when the socket has nothing now."""
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        try:
            return os.read(self._fd, size)
        except BlockingIOError:
            return None
        except OSError as exc:
            raise self._error(exc) from exc

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        view = memoryview(data)
        waited = False
        while True:
            if self._closed:
                raise trio.ClosedResourceError("the stream is closed")
            if not view:
                break
            try:
                sent = os.write(self._fd, view)
            except BlockingIOError:
                await self._wait(trio.lowlevel.wait_writable)
                waited = True
                continue
            except OSError as exc:
                raise self._error(exc) from exc
            view = view[sent:]
        if waited:
            self._writes = 0
            return
        self._writes += 1
        if self._writes >= _WRITES_PER_YIELD:
            self._writes = 0
            await trio.lowlevel.cancel_shielded_checkpoint()  # all sent: no Cancelled now

    def send_nowait(self, data: bytes) -> int:
        """Write what the socket takes now, without waiting: the bytes written (0 also
        on an error, which the next :meth:`send_all` of the rest then raises)."""
        if self._closed:
            return 0
        try:
            return os.write(self._fd, data)
        except OSError:
            return 0

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        self._closed = True
        await self.stream.aclose()

    async def _wait(self, wait: Callable[[int], Awaitable[None]]) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the stream is closed")
        try:
            await wait(self._fd)
        except OSError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> trio.ClosedResourceError | trio.BrokenResourceError:
        if self._closed or exc.errno == errno.EBADF:
            return trio.ClosedResourceError("the stream is closed")
        return trio.BrokenResourceError(f"socket connection broken: {exc}")
