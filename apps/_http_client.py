"""A lean HTTP/1.1 client for nsq_to_http: keep-alive connection pools on Trio streams,
responses parsed by httptools, one write per request.

Only what nsq_to_http needs: GET and POST with a small body, the status code as the
answer (the response body is read and discarded), ``http`` and ``https`` URLs.
"""

from __future__ import annotations

import ssl
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import trio

__all__ = ["HTTPClient", "HTTPClientError", "Target", "parse_url"]


class HTTPClientError(Exception):
    """The request failed in transport (connect, timeout, broken connection, bad answer)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed request URL."""

    scheme: str
    host: str
    port: int
    path: bytes  # path and query, as sent on the request line
    host_header: bytes


def parse_url(url: str) -> Target:
    """Parse an ``http(s)://host[:port]/path?query`` URL.

    Raises:
        ValueError: not an http(s) URL with a host.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme in {url!r}")
    if not parts.hostname:
        raise ValueError(f"no host in URL {url!r}")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise ValueError(f"invalid port in URL {url!r}") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return Target(parts.scheme, parts.hostname, port, path.encode("latin-1", "strict"),
                  parts.netloc.rpartition("@")[2].encode("idna"))


class _Response:
    """httptools callbacks for one response at a time."""

    __slots__ = ("complete", "headers_done", "keep_alive", "parser", "status")

    def __init__(self) -> None:
        self.complete = False
        self.headers_done = False
        self.keep_alive = False
        self.status = 0
        self.parser: httptools.HttpResponseParser | None = None

    def on_headers_complete(self) -> None:
        self.headers_done = True
        parser = self.parser
        assert parser is not None
        self.status = parser.get_status_code()
        # known only until the message completes (the parser resets then)
        self.keep_alive = parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.complete = True


class _Connection:
    __slots__ = ("key", "parser", "state", "stream")

    def __init__(self, key: tuple[str, str, int], stream: trio.abc.Stream) -> None:
        self.key = key
        self.stream = stream
        self.state = _Response()
        self.parser = httptools.HttpResponseParser(self.state)
        self.state.parser = self.parser


class HTTPClient:
    """Pooled keep-alive connections per ``(scheme, host, port)``.

    Args:
        connect_timeout: seconds to open a connection (TLS handshake included).
        request_timeout: seconds one whole request may take, connect included.
        max_idle: idle connections kept per destination.
    """

    def __init__(self, connect_timeout: float, request_timeout: float, max_idle: int = 128,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_idle = max_idle
        self._ssl_context = ssl_context
        self._idle: defaultdict[tuple[str, str, int], list[_Connection]] = defaultdict(list)

    async def aclose(self) -> None:
        """Close every idle connection."""
        idle = [conn for conns in self._idle.values() for conn in conns]
        self._idle.clear()
        for conn in idle:
            await trio.aclose_forcefully(conn.stream)

    async def request(self, method: bytes, target: Target, headers: bytes, body: bytes = b"") -> int:
        """Send one request and return the response's status code.

        ``headers`` are complete ``Name: value\\r\\n`` lines (Host and Content-Length
        are added).

        Raises:
            HTTPClientError: connect/transport failure or timeout.
        """
        head = b"%s %s HTTP/1.1\r\nHost: %s\r\n%sContent-Length: %d\r\n\r\n" % (
            method, target.path, target.host_header, headers, len(body))
        data = head + body if len(body) < 65536 else None
        try:
            with trio.fail_after(self.request_timeout):
                key = (target.scheme, target.host, target.port)
                idle = self._idle[key]
                while idle:  # a kept-alive connection may have been closed by the server
                    conn = idle.pop()
                    status = await self._exchange(conn, data, head, body, reused=True)
                    if status is not None:
                        return status
                conn = await self._connect(key)
                status = await self._exchange(conn, data, head, body, reused=False)
                assert status is not None
                return status
        except trio.TooSlowError:
            raise HTTPClientError(f"request timed out after {self.request_timeout}s") from None

    async def _connect(self, key: tuple[str, str, int]) -> _Connection:
        scheme, host, port = key
        try:
            with trio.fail_after(self.connect_timeout):
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
                if scheme == "https":
                    context = self._ssl_context or ssl.create_default_context()
                    tls = trio.SSLStream(stream, context, server_hostname=host, https_compatible=True)
                    await tls.do_handshake()
                    stream = tls
        except trio.TooSlowError:
            raise HTTPClientError(f"connect to {host}:{port} timed out") from None
        except (OSError, trio.BrokenResourceError) as exc:
            raise HTTPClientError(f"connect to {host}:{port} failed: {exc}") from None
        return _Connection(key, stream)

    async def _exchange(self, conn: _Connection, data: bytes | None, head: bytes, body: bytes,
                        reused: bool) -> int | None:
        """One request/response; None when a reused connection turned out closed."""
        stream = conn.stream
        state = conn.state
        received = False
        try:
            if data is not None:
                await stream.send_all(data)
            else:
                await stream.send_all(head)
                await stream.send_all(body)
            while not state.complete:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    if state.headers_done:
                        break  # a body delimited by the end of the connection
                    raise trio.BrokenResourceError("connection closed before the response")
                received = True
                conn.parser.feed_data(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                httptools.HttpParserError) as exc:
            await trio.aclose_forcefully(stream)
            if reused and not received:
                return None
            raise HTTPClientError(f"request failed: {exc!r}") from None
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        status = state.status
        if state.complete and state.keep_alive:
            state.complete = state.headers_done = False
            idle = self._idle[conn.key]
            if len(idle) < self.max_idle:
                idle.append(conn)
                return status
        await trio.aclose_forcefully(stream)
        return status
