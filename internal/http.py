"""A small, fast HTTP/1.1 server on Trio + httptools, after NSQ's ``http_api``.

Usage::

    router = Router()
    router.add("GET", "/ping", ping)          # async def ping(req) -> Response
    router.add("POST", "/pub", pub)           # or def pub(req) -> Response
    bound = await nursery.start(serve_http, router, "127.0.0.1", 0)

A handler returns a :class:`Response` or an awaitable of one: a plain ``def``
handler is answered inline, an ``async def`` one (or a plain one returning a
coroutine for its slow path) in a task of its own. Handlers raise :class:`HTTPError`
for NSQ's ``{"message": ...}`` errors; any other exception is logged and answered with 500 ``INTERNAL_ERROR``. The
server supports keep-alive, pipelining (responses batched into one write),
chunked request bodies, ``Expect: 100-continue``, body and header size
limits (a body is refused on its headers), header, body, send and idle timeouts,
and a cap on open connections. No error on one connection reaches the others.

Plain TCP connections bypass Trio's stream wrappers: on Linux one reactor task
serves all of them from a private epoll set (``internal._httpreactor``), calling
the non-blocking socket's ``recv``/``send`` directly and awaiting readiness only on
EAGAIN: Trio's per-call stream wrappers were about half the CPU of a small request.
TLS connections, and every connection elsewhere, get a task each
(:class:`trio.SSLStream` for TLS).
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import ssl
from collections.abc import Awaitable, Mapping
from typing import Any

import trio

from internal._httpconn import CLOSE, Conn, Limits, SocketIO, StreamIO, linger
from internal._httpmsg import (
    JSON_CONTENT_TYPE,
    V1_HEADER,
    Handler,
    HTTPError,
    Later,
    Request,
    Response,
    error_response,
    http_date,
    json_response,
    render,
    text,
)
from internal._httpreactor import Reactor
from internal._router import Router
from internal.connlimit import ConnectionLimit
from internal.netaddr import join_host_port

__all__ = [
    "HTTPError",
    "Handler",
    "JSON_CONTENT_TYPE",
    "Later",
    "Request",
    "Response",
    "Router",
    "V1_HEADER",
    "error_response",
    "json_response",
    "serve_http",
    "text",
]

logger = logging.getLogger(__name__)

_DEBUG = logging.DEBUG
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_ACCEPT_RETRY = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS))
#: Responses written in one go at most (roughly): pipelined requests beyond it wait.
BATCH_BYTES = 1 << 18
#: Serve plain TCP connections from one epoll reactor task (Linux); tests switch it off.
USE_REACTOR = hasattr(select, "epoll")


class _Server:
    def __init__(self, handler: Handler | Router, name: str, limits: Limits,
                 max_connections: int, ssl_context: ssl.SSLContext | None) -> None:
        self.router = handler if isinstance(handler, Router) else None
        self.handler = handler
        self.name = name
        self.limits = limits
        self.limit = ConnectionLimit(name, max_connections, logger)
        self.ssl_context = ssl_context
        #: every open connection, from accept until its socket is closed
        self.conns: set[Conn] = set()
        self.reactor: Reactor | None = None

    async def accept_loop(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        while True:
            try:
                sock, addr = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY:
                    logger.error("%s: accept() failure - %s", self.name, exc)
                    await trio.sleep(0.1)
                    continue
                if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue
                raise
            if not self.limit.admit(len(self.conns)):
                sock.close()
            else:
                try:
                    self.accepted(sock, addr, nursery)
                except OSError as exc:  # e.g. reset before we got to it
                    logger.debug("%s: dropping new connection - %s", self.name, exc)
                    sock.close()
            await trio.lowlevel.checkpoint()

    def accepted(self, sock: socket.socket, addr: Any, nursery: trio.Nursery) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            remote = join_host_port(addr[0], addr[1])
        else:
            remote = "@"
        if self.reactor is not None:
            conn = Conn(remote, self.limits, sock)
            self.reactor.attach(conn)
            self.conns.add(conn)
        else:
            conn = Conn(remote, self.limits)
            self.conns.add(conn)
            nursery.start_soon(self.serve_connection, sock, conn)

    async def sweep(self, interval: float) -> None:
        """Every ``interval``, close connections that spent too long in one phase."""
        while True:
            await trio.sleep(interval)
            now = trio.current_time()
            for conn in list(self.conns):
                phase = conn.overdue(now)
                if phase is None:
                    continue
                logger.debug("%s: closing connection from %s: %s timeout", self.name,
                             conn.remote, phase)
                if conn.scope is not None:
                    conn.scope.cancel()
                elif self.reactor is not None:
                    self.reactor.close(conn)

    # ------------------------------------------------------------------ answering

    def respond(self, request: Request, date: str, connection: str) -> bytes | Awaitable[bytes]:
        """Run the handler; the rendered response, or an awaitable of it if the handler awaits."""
        try:
            router = self.router
            if router is not None:
                handler, params = router.lookup(request.method, request.path)
                if params:
                    request.params = params
            else:
                handler = self.handler
            result = handler(request)
        except HTTPError as exc:
            return self._render(request, error_response(exc.status, exc.message, exc.headers),
                                date, connection)
        except Exception:
            return self._render(request, self._internal_error(request), date, connection)
        if isinstance(result, Response):
            cache = result.rendered  # a shared response (OK): rendered once per Date
            if cache is not None and request.method != "HEAD":
                data = cache.get((date, connection))
                if data is not None and not logger.isEnabledFor(_DEBUG):
                    return data
            return self._render(request, result, date, connection)
        if isinstance(result, Later):
            rendered: Later[bytes] = Later()
            result.then(lambda response: rendered.resolve(
                self._render(request, response, date, connection)))
            return rendered
        return self._respond_later(request, result, date, connection)

    async def _respond_later(self, request: Request, result: Awaitable[object], date: str,
                             connection: str) -> bytes:
        try:
            response = await result
            if not isinstance(response, Response):
                raise TypeError(f"handler returned {type(response).__name__}, not Response")
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:
            response = self._internal_error(request)
        return self._render(request, response, date, connection)

    def _internal_error(self, request: Request) -> Response:
        logger.exception("%s: error in handler for %s %s", self.name,
                         request.method, request.path)
        return error_response(500, "INTERNAL_ERROR")

    def _render(self, request: Request, response: Response, date: str, connection: str) -> bytes:
        head_only = request.method == "HEAD"
        try:
            data = render(response, date, connection, head_only)
        except (ValueError, TypeError, UnicodeEncodeError):
            logger.exception("%s: invalid response for %s %s", self.name,
                             request.method, request.path)
            data = render(error_response(500, "INTERNAL_ERROR"), date, connection, head_only)
        if logger.isEnabledFor(_DEBUG):
            logger.debug("%s: %s %s %s (%s)", self.name, data[9:12].decode(),
                         request.method, request.path, request.remote_addr)
        return data

    def answer_ready(self, conn: Conn, out: list[bytes]) -> Awaitable[bytes] | None:
        """Answer ``conn.ready`` in order into ``out``, up to the first handler that awaits.

        Returns that handler's pending response (to be appended once awaited), or None
        when every ready request is answered, or when ``out`` has reached
        :data:`BATCH_BYTES` (the rest stays ready until this is sent: pipelined requests
        for large responses cannot pile up answers in memory). A response that ends the
        connection sets ``conn.closing`` and drops any requests after it.
        """
        ready = conn.ready
        if not ready:
            return None
        size = conn.batched if out else 0
        if size >= BATCH_BYTES:
            return None
        date = http_date()
        while ready:
            request, connection = ready.popleft()
            if connection is None:
                conn.closing = True
                ready.clear()
                connection = CLOSE
            result = self.respond(request, date, connection)
            if not isinstance(result, bytes):
                conn.batched = size
                return result
            out.append(result)
            size += len(result)
            if size >= BATCH_BYTES:
                break
        conn.batched = size
        return None

    def finish(self, conn: Conn, out: list[bytes]) -> None:
        """After the answers: a parse error's response (then close) or ``100 Continue``.

        Nothing while requests before it still wait for their answers.
        """
        if conn.closing or conn.ready:
            return
        if conn.error is not None:
            status, message = conn.error
            out.append(render(error_response(status, message), http_date(), CLOSE, False))
            conn.closing = conn.linger = True
        elif conn.expect_continue and not conn.continue_sent:
            conn.continue_sent = True
            out.append(_CONTINUE)

    async def answer(self, io: SocketIO | StreamIO, conn: Conn, out: list[bytes],
                     pending: Awaitable[bytes] | None) -> None:
        """Answer what is ready, awaiting handlers as needed, and send it in one write;
        again until nothing is ready (each write at most about :data:`BATCH_BYTES`)."""
        while True:
            conn.busy = True
            try:
                while pending is not None:
                    response = await pending
                    out.append(response)
                    conn.batched += len(response)
                    pending = self.answer_ready(conn, out)
            finally:
                conn.busy = False
            self.finish(conn, out)
            if out:
                conn.sending = True
                await io.send(out[0] if len(out) == 1 else b"".join(out))
                conn.sending = False
            if not conn.ready or conn.closing:
                return
            out = []
            pending = self.answer_ready(conn, out)

    # ------------------------------------------------------------------ one task per connection

    def connection_failed(self, remote: str, exc: Exception) -> None:
        """Log why serving a connection ended early (I/O errors are routine: debug)."""
        if isinstance(exc, (OSError, trio.BrokenResourceError, trio.ClosedResourceError)):
            logger.debug("%s: connection from %s: %s", self.name, remote, exc)
        else:
            logger.error("%s: unexpected error on connection from %s", self.name, remote,
                         exc_info=exc)

    async def serve_connection(self, sock: socket.socket, conn: Conn) -> None:
        io: SocketIO | StreamIO = SocketIO(sock)
        try:
            with trio.CancelScope() as conn.scope:
                if self.ssl_context is not None:
                    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
                    io = StreamIO(trio.SSLStream(stream, self.ssl_context, server_side=True))
                await self._conn_loop(io, conn)
        except Exception as exc:
            self.connection_failed(conn.remote, exc)
        finally:
            self.conns.discard(conn)
            await io.close()

    async def _conn_loop(self, io: SocketIO | StreamIO, conn: Conn) -> None:
        while not conn.closing:
            data = await io.recv()
            if not data:
                return
            conn.feed(data)
            out: list[bytes] = []
            await self.answer(io, conn, out, self.answer_ready(conn, out))
        if conn.linger:
            await linger(io)


async def _listen(host: str, port: int, backlog: int) -> socket.socket:
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    candidates: list[tuple[socket.AddressFamily, str]]
    if host == "":
        candidates = [(socket.AF_INET6, "::"), (socket.AF_INET, "0.0.0.0")]
    else:
        infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                              flags=socket.AI_PASSIVE)
        candidates = [(family, str(addr[0])) for family, _, _, _, addr in infos]
    last_error: OSError | None = None
    for family, address in candidates:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if host == "" else 1)
            sock.bind((address, port))
            sock.listen(backlog)
            sock.setblocking(False)
            return sock
        except OSError as exc:
            sock.close()
            last_error = exc
    assert last_error is not None
    raise last_error


async def serve_http(
    handler: Handler | Router,
    host: str,
    port: int,
    *,
    name: str = "HTTP",
    max_body_size: int = 5 * 1024 * 1024,
    body_limits: Mapping[str, tuple[int, str]] | None = None,
    max_header_size: int = 1 << 20,
    header_timeout: float | None = 10.0,
    body_timeout: float | None = 60.0,
    idle_timeout: float | None = 120.0,
    max_connections: int = 10000,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    backlog: int = socket.SOMAXCONN,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP until cancelled.

    Each connection runs in its own task in a nursery owned by this call;
    cancelling the caller's scope closes the listener and every connection.

    A timeout (None disables it) closes the connection without a response. Timeouts
    are checked by a sweep over the connections every second (more often for
    timeouts under 4 s), so a connection may outlive one by up to that interval.

    Args:
        handler: A :class:`Router` or a single ``async def handler(request)``.
        host: Interface to bind: ``""`` (all, dual-stack), ``"0.0.0.0"``,
            ``"127.0.0.1"``, ``"::1"`` / ``"[::1]"`` or a host name.
        port: TCP port; 0 picks a free one.
        name: Log label (``"HTTP"``, ``"HTTPS"``) as in NSQ's
            ``"HTTP: listening on 127.0.0.1:4151"``.
        max_body_size: Larger request bodies get 413 ``BODY_TOO_BIG`` and the
            connection is closed: on the headers when ``Content-Length`` says so,
            else (chunked) as soon as the body crosses the limit.
        body_limits: Other limits for some paths, with their 413 message, e.g.
            ``{"/pub": (1048576, "MSG_TOO_BIG")}``.
        max_header_size: Larger request heads get 431 and a close.
        header_timeout: Seconds from a request's first byte (a new connection's:
            from accept) to the end of its headers; then the connection is closed.
        body_timeout: Seconds for a request body to arrive after its headers, and
            for a response to be sent.
        idle_timeout: Close keep-alive connections without a request for this
            many seconds.
        max_connections: Open connections at most (0: no limit); further ones are
            closed at once (logged at most every 10 s).
        ssl_context: Serve TLS with this server-side context.
        sock: An already bound, listening socket (e.g. ``AF_UNIX``) to serve
            on instead of binding ``host``/``port``.
        backlog: ``listen()`` backlog.
        task_status: Started with the bound ``(host, port)`` (``(path, -1)``
            for a Unix socket).

    Raises:
        OSError: If binding fails (raised from ``nursery.start``).
    """
    limits = Limits(max_body_size, max_header_size, header_timeout, body_timeout, idle_timeout,
                    {path.encode(): limit for path, limit in (body_limits or {}).items()})
    server = _Server(handler, name, limits, max_connections, ssl_context)
    timeouts = [t for t in (header_timeout, body_timeout, idle_timeout) if t is not None]
    listener = sock if sock is not None else await _listen(host, port, backlog)
    listener.setblocking(False)
    sockname = listener.getsockname()
    if isinstance(sockname, tuple):
        bound = (sockname[0], sockname[1])
        shown = join_host_port(*bound)
    else:
        bound = (str(sockname), -1)
        shown = str(sockname)
    try:
        logger.info("%s: listening on %s", name, shown)
        async with trio.open_nursery() as nursery:
            if timeouts:
                nursery.start_soon(server.sweep, min(1.0, min(timeouts) / 4))
            if USE_REACTOR and ssl_context is None:
                server.reactor = Reactor(server, nursery)
                nursery.start_soon(server.reactor.run)
            task_status.started(bound)
            await server.accept_loop(listener, nursery)
    finally:
        logger.info("%s: closing %s", name, shown)
        trio.lowlevel.notify_closing(listener)
        listener.close()
