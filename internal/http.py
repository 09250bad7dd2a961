"""A small, fast HTTP/1.1 server on Trio + httptools, after NSQ's ``http_api``.

Usage::

    router = Router()
    router.add("GET", "/ping", ping)          # async def ping(req) -> Response
    bound = await nursery.start(serve_http, router, "127.0.0.1", 0)

Handlers raise :class:`HTTPError` for NSQ's ``{"message": ...}`` errors; any
other exception is logged and answered with 500 ``INTERNAL_ERROR``. The
server supports keep-alive, pipelining (responses batched into one write),
chunked request bodies, ``Expect: 100-continue``, body and header size
limits, and closes idle keep-alive connections.

Plain TCP connections bypass Trio's stream wrappers: the server calls the
non-blocking socket's ``recv``/``send`` directly and only awaits readiness
when the kernel has nothing (PERF.md rule 6). TLS connections go through
:class:`trio.SSLStream`.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import time
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools
import trio

from internal._httpmsg import (
    V1_HEADER,
    Handler,
    HTTPError,
    Request,
    Response,
    error_response,
    http_date,
    json_response,
    render,
    text,
)
from internal._router import Router
from internal.netaddr import join_host_port

__all__ = [
    "HTTPError",
    "Handler",
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

RECV_SIZE = 65536
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE = "Connection: close\r\n"
_KEEP_ALIVE = "Connection: keep-alive\r\n"
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
_ACCEPT_RETRY = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS))


class _Abort(Exception):
    """Raised from a parser callback to stop parsing (the reason is in ``conn.error``)."""


class _SocketIO:
    """Direct non-blocking socket I/O; waits for readiness only when needed."""

    __slots__ = ("need_wait", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.need_wait = True

    async def recv(self) -> bytes:
        sock = self.sock
        if self.need_wait:
            await trio.lowlevel.wait_readable(sock)
        else:
            await trio.lowlevel.checkpoint()  # never starve other tasks
        while True:
            try:
                data = sock.recv(RECV_SIZE)
                break
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
        # A full buffer means more may be queued already: try again at once.
        self.need_wait = len(data) < RECV_SIZE
        return data

    async def send(self, data: bytes) -> None:
        sock = self.sock
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            await trio.lowlevel.wait_writable(sock)
            try:
                sent = sock.send(view)
            except BlockingIOError:
                continue
            view = view[sent:]

    async def close(self) -> None:
        trio.lowlevel.notify_closing(self.sock)
        self.sock.close()


class _StreamIO:
    """I/O through a Trio stream (used for TLS)."""

    __slots__ = ("stream",)

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def recv(self) -> bytes:
        return bytes(await self.stream.receive_some(RECV_SIZE))

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)


class _Conn:
    """Per-connection parser callbacks and state."""

    __slots__ = (
        "active", "body", "body_size", "busy", "continue_sent", "error", "expect_continue",
        "header_bytes", "headers", "idle_sweeps", "in_headers", "max_body", "parser",
        "ready", "remote", "scope", "url",
    )

    def __init__(self, remote: str, max_body: int) -> None:
        self.remote = remote
        self.max_body = max_body
        self.parser: Any = None
        self.ready: list[tuple[Request, str | None]] = []
        self.error: tuple[int, str] | None = None
        self.scope: trio.CancelScope | None = None
        self.active = True
        self.busy = False
        self.idle_sweeps = 0
        self.in_headers = False
        self.header_bytes = 0
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.expect_continue = False
        self.continue_sent = False

    # httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self.in_headers = True
        self.url = b""
        self.headers = {}
        self.body = []
        self.body_size = 0
        self.expect_continue = False
        self.continue_sent = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        prev = self.headers.get(key)
        self.headers[key] = val if prev is None else f"{prev}, {val}"

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.header_bytes = 0
        headers = self.headers
        length = headers.get("content-length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_body:
            self.error = (413, "BODY_TOO_BIG")
            raise _Abort
        expect = headers.get("expect")
        if expect is not None and expect.lower() == "100-continue":
            self.expect_continue = length not in (None, "0") or "transfer-encoding" in headers

    def on_body(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.body_size > self.max_body:
            self.error = (413, "BODY_TOO_BIG")
            raise _Abort
        self.body.append(data)

    def on_message_complete(self) -> None:
        parser = self.parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        url = self.url
        if url[:1] != b"/" and url != b"*":
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                self.error = (400, "INVALID_REQUEST")
                raise _Abort from None
            url = parsed.path or b"/"
            if parsed.query:
                url = url + b"?" + parsed.query
        raw_path, _, raw_query = url.decode("utf-8", "replace").partition("?")
        path = unquote(raw_path) if "%" in raw_path else raw_path
        query = parse_qs(raw_query, keep_blank_values=True) if raw_query else {}
        body = self.body
        headers = self.headers
        request = Request(method, path, query, headers,
                          body[0] if len(body) == 1 else b"".join(body),
                          self.remote, {}, raw_query)
        if not parser.should_keep_alive():
            connection: str | None = None
        elif "connection" in headers and parser.get_http_version() == "1.0":
            connection = _KEEP_ALIVE
        else:
            connection = ""
        self.ready.append((request, connection))
        self.expect_continue = False


class _Server:
    def __init__(self, handler: Handler | Router, name: str, max_body_size: int,
                 max_header_size: int, idle_timeout: float | None,
                 ssl_context: ssl.SSLContext | None) -> None:
        self.router = handler if isinstance(handler, Router) else None
        self.handler = handler
        self.name = name
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.idle_timeout = idle_timeout
        self.ssl_context = ssl_context
        self.conns: set[_Conn] = set()

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
            sock.setblocking(False)
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                remote = join_host_port(addr[0], addr[1])
            else:
                remote = "@"
            nursery.start_soon(self.serve_connection, sock, remote)
            await trio.lowlevel.checkpoint()

    async def reap_idle(self, timeout: float) -> None:
        """Close connections idle (not receiving, not handling) for ``timeout`` to 1.5×."""
        while True:
            await trio.sleep(timeout / 2)
            for conn in list(self.conns):
                if conn.busy:
                    continue
                if conn.active:
                    conn.active = False
                    conn.idle_sweeps = 0
                else:
                    conn.idle_sweeps += 1
                    if conn.idle_sweeps >= 2 and conn.scope is not None:
                        conn.scope.cancel()

    async def serve_connection(self, sock: socket.socket, remote: str) -> None:
        io: _SocketIO | _StreamIO
        if self.ssl_context is not None:
            stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
            io = _StreamIO(trio.SSLStream(stream, self.ssl_context, server_side=True))
        else:
            io = _SocketIO(sock)
        conn = _Conn(remote, self.max_body_size)
        conn.parser = httptools.HttpRequestParser(conn)
        self.conns.add(conn)
        try:
            with trio.CancelScope() as conn.scope:
                await self._conn_loop(io, conn)
            if conn.scope.cancelled_caught:
                logger.debug("%s: closing idle connection from %s", self.name, remote)
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            logger.debug("%s: connection from %s: %s", self.name, remote, exc)
        except Exception:
            logger.exception("%s: unexpected error on connection from %s", self.name, remote)
        finally:
            self.conns.discard(conn)
            await io.close()

    async def _conn_loop(self, io: _SocketIO | _StreamIO, conn: _Conn) -> None:
        parser = conn.parser
        ready = conn.ready
        max_header = self.max_header_size
        while True:
            data = await io.recv()
            if not data:
                return
            conn.active = True
            upgraded = False
            try:
                parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                upgraded = True  # answer what we have, then close
            except httptools.HttpParserError:
                if conn.error is None:
                    conn.error = (400, "BAD_REQUEST")
            if conn.in_headers and conn.error is None:
                conn.header_bytes += len(data)
                if conn.header_bytes > max_header:
                    conn.error = (431, "HEADERS_TOO_BIG")
            out: list[bytes] = []
            close = upgraded
            if ready:
                conn.busy = True
                date = http_date()
                for request, connection in ready:
                    if connection is None:
                        close = True
                        out.append(await self._respond(request, date, _CLOSE))
                        break
                    out.append(await self._respond(request, date, connection))
                ready.clear()
                conn.busy = False
            linger = False
            if not close and conn.error is not None:
                status, message = conn.error
                out.append(render(error_response(status, message), http_date(), _CLOSE, False))
                close = linger = True
            elif not close and conn.expect_continue and not conn.continue_sent:
                conn.continue_sent = True
                out.append(_CONTINUE)
            if out:
                await io.send(out[0] if len(out) == 1 else b"".join(out))
            if close:
                if linger:
                    await self._linger(io)
                return

    async def _respond(self, request: Request, date: str, connection: str) -> bytes:
        debug = logger.isEnabledFor(logging.DEBUG)
        start = time.perf_counter() if debug else 0.0
        try:
            router = self.router
            if router is not None:
                handler, params = router.lookup(request.method, request.path)
                if params:
                    request.params = params
            else:
                handler = self.handler
            response = await handler(request)
            if not isinstance(response, Response):
                raise TypeError(f"handler returned {type(response).__name__}, not Response")
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, exc.headers)
        except Exception:
            logger.exception("%s: error in handler for %s %s", self.name,
                             request.method, request.path)
            response = error_response(500, "INTERNAL_ERROR")
        try:
            data = render(response, date, connection, request.method == "HEAD")
        except (ValueError, TypeError, UnicodeEncodeError):
            logger.exception("%s: invalid response for %s %s", self.name,
                             request.method, request.path)
            response = error_response(500, "INTERNAL_ERROR")
            data = render(response, date, connection, request.method == "HEAD")
        if debug:
            logger.debug("%s: %d %s %s (%s) %.3fms", self.name, response.status,
                         request.method, request.path, request.remote_addr,
                         (time.perf_counter() - start) * 1000)
        return data

    async def _linger(self, io: _SocketIO | _StreamIO) -> None:
        """Half-close and drain briefly so the client reads our error before a RST."""
        if not isinstance(io, _SocketIO):
            return
        try:
            io.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        drained = 0
        with trio.move_on_after(0.5):
            while drained < 1 << 20:
                data = await io.recv()
                if not data:
                    break
                drained += len(data)


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
    max_header_size: int = 1 << 20,
    idle_timeout: float | None = 120.0,
    ssl_context: ssl.SSLContext | None = None,
    sock: socket.socket | None = None,
    backlog: int = socket.SOMAXCONN,
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP until cancelled.

    Each connection runs in its own task in a nursery owned by this call;
    cancelling the caller's scope closes the listener and every connection.

    Args:
        handler: A :class:`Router` or a single ``async def handler(request)``.
        host: Interface to bind: ``""`` (all, dual-stack), ``"0.0.0.0"``,
            ``"127.0.0.1"``, ``"::1"`` / ``"[::1]"`` or a host name.
        port: TCP port; 0 picks a free one.
        name: Log label (``"HTTP"``, ``"HTTPS"``) as in NSQ's
            ``"HTTP: listening on 127.0.0.1:4151"``.
        max_body_size: Larger request bodies get 413 ``BODY_TOO_BIG`` and the
            connection is closed.
        max_header_size: Larger request heads get 431 and a close.
        idle_timeout: Close keep-alive connections without traffic for this
            many seconds (closed within 1–1.5× of it); None disables.
        ssl_context: Serve TLS with this server-side context.
        sock: An already bound, listening socket (e.g. ``AF_UNIX``) to serve
            on instead of binding ``host``/``port``.
        backlog: ``listen()`` backlog.
        task_status: Started with the bound ``(host, port)`` (``(path, -1)``
            for a Unix socket).

    Raises:
        OSError: If binding fails (raised from ``nursery.start``).
    """
    server = _Server(handler, name, max_body_size, max_header_size, idle_timeout, ssl_context)
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
            if idle_timeout is not None:
                nursery.start_soon(server.reap_idle, idle_timeout)
            task_status.started(bound)
            await server.accept_loop(listener, nursery)
    finally:
        logger.info("%s: closing %s", name, shown)
        trio.lowlevel.notify_closing(listener)
        listener.close()
