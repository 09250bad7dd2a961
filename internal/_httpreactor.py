"""Serve plain HTTP connections from one task over a private epoll set (Linux).

A task per connection costs a scheduler round trip and two epoll registrations per
request. Here one task waits for the epoll file descriptor to become readable, then
reads, parses and answers every connection that has data — several requests per
wakeup, no task switch between them, each connection's responses joined into one send.
Small answers are sent together once every connection of the wakeup is served: the
kernel's work of sending (each send on loopback delivers to and wakes the client)
then runs back to back instead of between the parsing of the requests (~5% less CPU
per request for small requests from a few clients).
While requests keep arriving it polls the set again instead of parking, letting the
other tasks run every couple of milliseconds.

A handler that awaits must not stall the other connections: the connection is then
*detached* (taken out of the epoll set) and finished by a task of its own, which
hands it back once the responses are sent. Lingering closes go to a task as well.
A handler that returns a :class:`~internal._httpmsg.Later` needs no task: the
connection stays in the set, unread, and is answered from the callback that resolves
it (durable mode's fsync: one callback per request, no task, no epoll change).
"""

from __future__ import annotations

import select
import time
from typing import TYPE_CHECKING

import trio

from internal._httpconn import RECV_SIZE, Conn, SocketIO, linger
from internal._httpmsg import Later

if TYPE_CHECKING:
    from collections.abc import Awaitable

    from internal.http import _Server

#: connections served per wakeup at most: the rest wait for the next one, other tasks
#: run in between (the set is level-triggered, nothing is lost)
MAX_EVENTS = 256
#: serving for this long (seconds) without a pause lets the other tasks run
YIELD_AFTER = 0.002
#: answers up to this size (bytes) wait for the end of the wakeup's batch to be sent
DEFER_MAX = 16384
_IN = select.EPOLLIN if hasattr(select, "EPOLLIN") else 1
_OUT = select.EPOLLOUT if hasattr(select, "EPOLLOUT") else 4


class Reactor:
    """The epoll set of a server's plain connections, and the task that serves it."""

    def __init__(self, server: _Server, nursery: trio.Nursery) -> None:
        self.server = server
        self.nursery = nursery
        self.epoll = select.epoll()
        self.attached: dict[int, Conn] = {}
        #: connections waiting for a Later that had input meanwhile: out of the set
        self.parked: set[Conn] = set()
        self.closed = False
        #: answers to send once the connections of the current wakeup are served
        self.sends: list[tuple[Conn, bytes]] | None = None

    def attach(self, conn: Conn) -> None:
        """Take (or take back) ``conn``; the reactor reads it from now on."""
        assert conn.sock is not None
        fd = conn.sock.fileno()
        self.epoll.register(fd, _IN)
        self.attached[fd] = conn

    def detach(self, conn: Conn) -> None:
        assert conn.sock is not None
        fd = conn.sock.fileno()
        del self.attached[fd]
        self.epoll.unregister(fd)

    def close(self, conn: Conn) -> None:
        """Close an attached (or parked) connection now."""
        if conn.sock is not None and self.attached.get(conn.sock.fileno()) is conn:
            self.detach(conn)
        self.parked.discard(conn)
        self._discard(conn)

    def _discard(self, conn: Conn) -> None:
        self.server.conns.discard(conn)
        sock = conn.sock
        if sock is not None:
            trio.lowlevel.notify_closing(sock)
            sock.close()

    async def run(self) -> None:
        """Serve attached connections until cancelled; then close them all."""
        epoll = self.epoll
        attached = self.attached
        # Clients that got their answers have often sent the next request by the time
        # a batch is done: polling again before parking saves a scheduler round trip
        # per batch. Other tasks still run every YIELD_AFTER seconds at least.
        clock = time.perf_counter
        since = clock()
        try:
            while True:
                ready = epoll.poll(0, MAX_EVENTS)
                if not ready:
                    await trio.lowlevel.wait_readable(epoll)
                    since = clock()
                    continue
                if clock() - since >= YIELD_AFTER:
                    await trio.lowlevel.checkpoint()
                    since = clock()
                    continue  # poll again: what was ready may have changed meanwhile
                sends = self.sends = []
                for fd, events in ready:
                    conn = attached.get(fd)
                    if conn is None:
                        continue
                    try:
                        if conn.held is not None:  # input while a Later is pending
                            self.detach(conn)
                            self.parked.add(conn)
                        elif events & _OUT:
                            self._flush(conn)
                        else:
                            try:
                                data = conn.sock.recv(RECV_SIZE)  # type: ignore[union-attr]
                            except BlockingIOError:
                                continue
                            if data:
                                conn.feed(data)
                                self._answer(conn)
                            else:
                                self.close(conn)
                    except Exception as exc:
                        self.server.connection_failed(conn.remote, exc)
                        self.close(conn)
                self.sends = None
                for conn, data in sends:
                    try:
                        if conn.sock is not None and attached.get(conn.sock.fileno()) is conn:
                            self._send(conn, data)
                    except Exception as exc:
                        self.server.connection_failed(conn.remote, exc)
                        self.close(conn)
        finally:
            self.closed = True
            for conn in [*attached.values(), *self.parked]:
                self.close(conn)
            self.parked.clear()
            trio.lowlevel.notify_closing(epoll)
            epoll.close()

    def _answer(self, conn: Conn, out: list[bytes] | None = None) -> None:
        """Answer what is ready and send it (after ``out``), batch after batch, until the
        socket is full, a handler awaits (then a task takes over), one returns a
        :class:`Later` (then its resolution goes on) or nothing is left."""
        server = self.server
        while True:
            if out is None:
                out = []
            pending = server.answer_ready(conn, out)
            if isinstance(pending, Later):
                conn.busy = True  # not timed, as any running handler
                conn.held = out
                pending.then(lambda data: self._resolved(conn, data))
                return
            if pending is not None:
                self.detach(conn)
                conn.busy = True  # the sweep leaves it to the task from now on
                self.nursery.start_soon(self._answer_later, conn, out, pending)
                return
            if conn.error is not None or conn.expect_continue:
                server.finish(conn, out)  # a parse error's answer, or 100 Continue
            if out:
                data = out[0] if len(out) == 1 else b"".join(out)
                sends = self.sends
                if (sends is not None and not conn.closing and not conn.ready
                        and len(data) <= DEFER_MAX):
                    sends.append((conn, data))  # sent at the end of the batch (see run)
                    return
                if not self._send(conn, data):
                    return
            if conn.closing:
                self._end(conn)
                return
            if not conn.ready:
                return
            out = None

    def _send(self, conn: Conn, data: bytes) -> bool:
        """Send ``data``; False if the socket took only part of it (the rest goes out
        when it becomes writable; no reading until then)."""
        sock = conn.sock
        assert sock is not None
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            conn.out = memoryview(data)[sent:]
            self.epoll.modify(sock.fileno(), _OUT)
            return False
        return True

    def _resolved(self, conn: Conn, data: bytes) -> None:
        """A Later response is here: send it with the answers before it, go on."""
        out, conn.held = conn.held, None
        conn.busy = False
        if out is None or self.closed or conn not in self.server.conns:
            return  # closed meanwhile
        out.append(data)
        conn.batched += len(data)
        try:
            if conn in self.parked:
                self.parked.discard(conn)
                self.attach(conn)
            self._answer(conn, out)
        except Exception as exc:
            self.server.connection_failed(conn.remote, exc)
            self.close(conn)

    def _flush(self, conn: Conn) -> None:
        sock = conn.sock
        view = conn.out
        assert sock is not None and view is not None
        try:
            sent = sock.send(view)
        except BlockingIOError:
            return
        view = view[sent:]
        if view:
            conn.out = view
            return
        conn.out = None
        if conn.closing:
            self._end(conn)
            return
        self.epoll.modify(sock.fileno(), _IN)
        if conn.ready or conn.error is not None:
            self._answer(conn)  # what waited for this batch to go out

    def _end(self, conn: Conn) -> None:
        if conn.linger:
            self.detach(conn)
            conn.busy = True  # the linger task owns it now, not the idle reaper
            self.nursery.start_soon(self._linger, conn)
        else:
            self.close(conn)

    async def _linger(self, conn: Conn) -> None:
        assert conn.sock is not None
        try:
            await linger(SocketIO(conn.sock))
        except Exception as exc:
            self.server.connection_failed(conn.remote, exc)
        finally:
            self._discard(conn)

    async def _answer_later(self, conn: Conn, out: list[bytes],
                            pending: Awaitable[bytes]) -> None:
        """Finish a detached connection's answers in this task, then hand it back."""
        assert conn.sock is not None
        io = SocketIO(conn.sock)
        keep = False
        try:
            with trio.CancelScope() as conn.scope:  # the idle reaper may cancel it
                await self.server.answer(io, conn, out, pending)
                if conn.linger:
                    await linger(io)
                keep = not conn.closing
        except Exception as exc:
            self.server.connection_failed(conn.remote, exc)
        finally:
            conn.scope = None
            self._hand_back(conn, keep and not self.closed)

    def _hand_back(self, conn: Conn, keep: bool) -> None:
        if keep:
            try:
                self.attach(conn)
                return
            except (OSError, ValueError) as exc:  # closed meanwhile
                self.server.connection_failed(conn.remote, exc)
        self._discard(conn)
