"""One HTTP/1.1 server connection: httptools parser callbacks, request queue, socket I/O.

The state here is shared by both ways :mod:`internal.http` serves a connection:
the epoll reactor (plain TCP on Linux) and one task per connection (TLS, other
platforms, and while a handler awaits).
"""

from __future__ import annotations

import collections
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import httptools
import trio

from internal._httpmsg import Request

RECV_SIZE = 65536
CLOSE = "Connection: close\r\n"
KEEP_ALIVE = "Connection: keep-alive\r\n"
_METHODS = {m.encode(): m for m in ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH")}
#: the lowercased names of common headers, as sent (a fixed table: it never grows)
_HEADER_NAMES = {raw: raw.decode().lower() for name in (
    "Host", "Content-Length", "Content-Type", "Connection", "User-Agent", "Accept",
    "Accept-Encoding", "Authorization", "Expect", "Transfer-Encoding")
    for raw in (name.encode(), name.lower().encode())}


@dataclass(slots=True)
class Limits:
    """What one connection may cost: sizes, and how long each phase of a request may take.

    Timeouts are seconds (None: no limit) and are enforced by the server's sweep
    (:meth:`Conn.overdue`), not by a timer per request.

    Attributes:
        max_body: Largest request body; larger ones get 413 ``BODY_TOO_BIG``.
        max_header: Largest request line + headers; larger ones get 431.
        header_timeout: From a request's first byte (for a new connection: from
            accept) until its headers are complete.
        body_timeout: From the end of the headers until the body is complete; also
            the time a response may take to be sent (a client that does not read).
        idle_timeout: A keep-alive connection between requests.
        path_body: Body limits by request path (``b"/pub"``), overriding ``max_body``,
            with the 413 message to answer: ``{b"/pub": (1048576, "MSG_TOO_BIG")}``.
    """

    max_body: int = 5 * 1024 * 1024
    max_header: int = 1 << 20
    header_timeout: float | None = None
    body_timeout: float | None = None
    idle_timeout: float | None = None
    path_body: Mapping[bytes, tuple[int, str]] = field(default_factory=dict)
    #: the smallest of the body limits (set from the others), and its number of digits
    min_body: int = field(init=False, default=0)
    min_digits: int = field(init=False, default=1)

    def __post_init__(self) -> None:
        self.min_body = min([self.max_body, *(size for size, _ in self.path_body.values())])
        self.min_digits = len(str(max(self.min_body, 0)))


#: phases of a connection, as :meth:`Conn.overdue` sees them
_HEAD, _BODY, _IDLE, _SEND = range(4)
_PHASE_NAMES = ("header", "body", "idle", "send")
_UNSEEN = (-1, 0)


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
    """Half-close and drain briefly so the client reads our error before a RST.

    Never raises but :class:`trio.Cancelled`: the peer may reset the connection meanwhile.
    """
    if not isinstance(io, SocketIO):
        return
    drained = 0
    try:
        io.sock.shutdown(socket.SHUT_WR)
        with trio.move_on_after(0.5):
            while drained < 1 << 20:
                data = await io.recv()
                if not data:
                    break
                drained += len(data)
    except OSError:
        pass


class Conn:
    """Parser callbacks and state of one connection.

    Complete requests collect in :attr:`ready` as ``(request, connection)``,
    where ``connection`` is the ``Connection:`` line to answer with, or None
    when the response must close the connection.
    """

    __slots__ = (
        "batched", "body", "body_message", "body_size", "busy", "closing", "continue_sent",
        "error", "expect_continue", "header_bytes", "headers", "held", "in_body", "in_headers",
        "limits", "linger", "max_body", "out", "parser", "ready", "remote", "requests",
        "scope", "seen", "seen_at", "sending", "sock", "target", "url",
    )

    def __init__(self, remote: str, limits: Limits, sock: socket.socket | None = None) -> None:
        self.remote = remote
        self.limits = limits
        #: the body limit of the current request, and its 413 message
        self.max_body = limits.max_body
        self.body_message = "BODY_TOO_BIG"
        #: The plain socket while the reactor owns the connection (None for TLS).
        self.sock = sock
        self.parser: Any = httptools.HttpRequestParser(self)
        self.ready: collections.deque[tuple[Request, str | None]] = collections.deque()
        self.error: tuple[int, str] | None = None
        #: Cancel scope of the task serving the connection (None under the reactor).
        self.scope: trio.CancelScope | None = None
        #: a handler is running (or a task lingers): the sweep leaves it alone
        self.busy = False
        #: a task is sending responses (the send timeout applies even while busy)
        self.sending = False
        #: requests begun so far; with the phase, what the sweep saw last and since when
        self.requests = 0
        self.seen = _UNSEEN
        self.seen_at = 0.0
        #: Set once a response ends the connection; ``linger`` to drain it first.
        self.closing = False
        self.linger = False
        #: Unsent output waiting for the socket to become writable (reactor).
        self.out: memoryview | None = None
        #: Answers held back until a pending Later response resolves (reactor).
        self.held: list[bytes] | None = None
        #: bytes of responses in the batch being built (see ``internal.http.BATCH_BYTES``)
        self.batched = 0
        self.in_headers = False
        self.in_body = False
        self.header_bytes = 0
        self.url = b""
        #: the last request target parsed: ``(url, path, query, query string)``
        self.target: tuple[bytes, str, dict[str, list[str]], str] = (b"", "", {}, "")
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_size = 0
        self.expect_continue = False
        self.continue_sent = False

    def feed(self, data: bytes) -> None:
        """Parse received bytes; complete requests go to :attr:`ready`, faults to :attr:`error`.

        An upgrade request (``Connection: Upgrade``) is answered and the connection closed.
        """
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.closing = True  # answer what we have, then close
        except httptools.HttpParserError:
            if self.error is None:
                self.error = (400, "BAD_REQUEST")
        if self.in_headers and self.error is None:
            self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_header:
                self.error = (431, "HEADERS_TOO_BIG")

    def overdue(self, now: float) -> str | None:
        """The phase (``"header"``, ``"body"``, ``"idle"``, ``"send"``) that has lasted
        longer than its limit, else None; called by the server's periodic sweep.

        A phase is timed from the first sweep that sees it, so a limit ``T`` ends the
        connection between ``T`` and ``T`` + the sweep interval. A running handler is
        not timed.
        """
        if self.sending or self.out is not None:
            phase = _SEND
        elif self.busy:
            self.seen = _UNSEEN
            return None
        elif self.in_headers:
            phase = _HEAD
        elif self.in_body:
            phase = _BODY
        elif self.requests == 0:
            # a new connection: its first request's head is timed from accept on
            return self._timed((_HEAD, 1), now, self.limits.header_timeout)
        else:
            phase = _IDLE
        limits = self.limits
        limit = (limits.header_timeout, limits.body_timeout, limits.idle_timeout,
                 limits.body_timeout)[phase]
        return self._timed((phase, self.requests), now, limit)

    def _timed(self, seen: tuple[int, int], now: float, limit: float | None) -> str | None:
        if seen != self.seen:
            self.seen = seen
            self.seen_at = now
            return None
        if limit is not None and now - self.seen_at >= limit:
            return _PHASE_NAMES[seen[0]]
        return None

    # httptools callbacks -----------------------------------------------------

    def on_message_begin(self) -> None:
        self.requests += 1
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
        key = _HEADER_NAMES.get(name) or name.decode("latin-1").lower()
        val = value.decode("latin-1")
        headers = self.headers
        if key in headers:
            headers[key] = f"{headers[key]}, {val}"
        else:
            headers[key] = val

    def on_headers_complete(self) -> None:
        self.in_headers = False
        self.in_body = True
        self.header_bytes = 0
        headers = self.headers
        limits = self.limits
        length = headers.get("content-length")
        if length is None:
            if "transfer-encoding" in headers:  # chunked: on_body counts it against this
                self.max_body, self.body_message = self._body_limit()
        else:
            # a Content-Length body cannot grow past its length: only that is checked
            # (fewer digits than the smallest limit: under every limit)
            self.max_body = limits.max_body
            if (len(length) >= limits.min_digits and length.strip().isdigit()
                    and int(length) > limits.min_body):
                limit, message = self._body_limit()
                if int(length) > limit:
                    self.error = (413, message)
                    raise _Abort
                self.max_body = limit
        expect = headers.get("expect")
        if expect is not None and expect.lower() == "100-continue":
            self.expect_continue = length not in (None, "0") or "transfer-encoding" in headers

    def _body_limit(self) -> tuple[int, str]:
        limits = self.limits
        if limits.path_body:
            found = limits.path_body.get(self.url.partition(b"?")[0])
            if found is not None:
                return found
        return limits.max_body, "BODY_TOO_BIG"

    def on_body(self, data: bytes) -> None:
        self.body_size += len(data)
        if self.body_size > self.max_body:
            self.error = (413, self.body_message)
            raise _Abort
        self.body.append(data)

    def on_message_complete(self) -> None:
        self.in_body = False
        parser = self.parser
        raw_method = parser.get_method()
        method = _METHODS.get(raw_method) or raw_method.decode("latin-1")
        url = self.url
        target = self.target
        if url == target[0]:  # a keep-alive client asking for the same again
            _, path, query, raw_query = target
        else:
            path, query, raw_query = self._parse_target(url)
            self.target = (url, path, query, raw_query)
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

    def _parse_target(self, url: bytes) -> tuple[str, dict[str, list[str]], str]:
        """The decoded path, query arguments and query string of a request target."""
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
        return path, _parse_query(raw_query) if raw_query else {}, raw_query


def _parse_query(raw: str) -> dict[str, list[str]]:
    """``parse_qs(raw, keep_blank_values=True)``; one ``name=value`` without escapes
    (``?topic=t``, the usual /pub) taken apart directly."""
    if "&" in raw or "%" in raw or "+" in raw:
        return parse_qs(raw, keep_blank_values=True)
    name, _, value = raw.partition("=")
    return {name: [value]}
