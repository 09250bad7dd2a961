"""One HTTP/1.1 server connection: httptools parser callbacks, request queue, socket I/O.

The state here is shared by both ways :mod:`internal.http` serves a connection:
the epoll reactor (plain TCP on Linux) and one task per connection (TLS, other
platforms, and while a handler awaits).
"""

from __future__ import annotations

import collections
import socket
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools
import trio

from internal._httpmsg import Request

RECV_SIZE = 65536
CLOSE = "Connection: close\r\n"
KEEP_ALIVE = "Connection: keep-alive\r\n"
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}


class _Abort(Exception):
    """Raised from a parser callback to stop parsing (the reason is in ``conn.error``)."""


class SocketIO:
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


class StreamIO:
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


async def linger(io: SocketIO | StreamIO) -> None:
    """Half-close and drain briefly so the client reads our error before a RST."""
    if not isinstance(io, SocketIO):
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


class Conn:
    """Parser callbacks and state of one connection.

    Complete requests collect in :attr:`ready` as ``(request, connection)``,
    where ``connection`` is the ``Connection:`` line to answer with, or None
    when the response must close the connection.
    """

    __slots__ = (
        "active", "body", "body_size", "busy", "closing", "continue_sent", "error",
        "expect_continue", "header_bytes", "headers", "idle_sweeps", "in_headers",
        "linger", "max_body", "max_header", "out", "parser", "ready", "remote", "scope",
        "sock", "url",
    )

    def __init__(self, remote: str, max_body: int, max_header: int,
                 sock: socket.socket | None = None) -> None:
        self.remote = remote
        self.max_body = max_body
        self.max_header = max_header
        #: The plain socket while the reactor owns the connection (None for TLS).
        self.sock = sock
        self.parser: Any = httptools.HttpRequestParser(self)
        self.ready: collections.deque[tuple[Request, str | None]] = collections.deque()
        self.error: tuple[int, str] | None = None
        #: Cancel scope of the task serving the connection (None under the reactor).
        self.scope: trio.CancelScope | None = None
        self.active = True
        self.busy = False
        self.idle_sweeps = 0
        #: Set once a response ends the connection; ``linger`` to drain it first.
        self.closing = False
        self.linger = False
        #: Unsent output waiting for the socket to become writable (reactor).
        self.out: memoryview | None = None
        self.in_headers = False
        self.header_bytes = 0
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.expect_continue = False
        self.continue_sent = False

    def feed(self, data: bytes) -> None:
        """Parse received bytes; complete requests go to :attr:`ready`, faults to :attr:`error`.

        An upgrade request (``Connection: Upgrade``) is answered and the connection closed.
        """
        self.active = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closing = True  # answer what we have, then close
        except httptools.HttpParserError:
            if self.error is None:
                self.error = (400, "BAD_REQUEST")
        if self.in_headers and self.error is None:
            self.header_bytes += len(data)
            if self.header_bytes > self.max_header:
                self.error = (431, "HEADERS_TOO_BIG")

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
            connection = KEEP_ALIVE
        else:
            connection = ""
        self.ready.append((request, connection))
        self.expect_continue = False
