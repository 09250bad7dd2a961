"""A raw-socket HTTP/1.1 test client that can send arbitrary (pipelined) bytes."""

from __future__ import annotations

from dataclasses import dataclass, field

import httptools
import pytest
import trio

from internal import http as ihttp
from internal.http import serve_http


@dataclass
class Reply:
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Collector:
    def __init__(self) -> None:
        self.done: list[Reply] = []
        self.current = Reply()
        self.parser = httptools.HttpResponseParser(self)

    def on_message_begin(self) -> None:
        self.current = Reply()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.decode().lower()] = value.decode()

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, data: bytes) -> None:
        self.current.body += data

    def on_message_complete(self) -> None:
        self.done.append(self.current)


class RawClient:
    """Connects to the server under test and parses its responses."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.collector = _Collector()
        self.raw = b""

    @classmethod
    async def connect(cls, addr: tuple[str, int], *, rcvbuf: int = 0) -> RawClient:
        """Connect; ``rcvbuf`` shrinks the receive buffer (set before the handshake)."""
        family = trio.socket.AF_INET6 if ":" in addr[0] else trio.socket.AF_INET
        sock = trio.socket.socket(family)
        if rcvbuf:
            sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, rcvbuf)
        await sock.connect(addr)
        return cls(sock)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            sent = await self.sock.send(view)
            view = view[sent:]

    async def responses(self, count: int, timeout: float = 5.0) -> list[Reply]:
        """Read until ``count`` responses have arrived (in order)."""
        with trio.fail_after(timeout):
            while len(self.collector.done) < count:
                data = await self.sock.recv(65536)
                if not data:
                    raise EOFError(f"closed after {len(self.collector.done)} responses")
                self.raw += data
                self.collector.parser.feed_data(data)
        replies = self.collector.done[:count]
        del self.collector.done[:count]
        return replies

    async def response(self, timeout: float = 5.0) -> Reply:
        return (await self.responses(1, timeout))[0]

    async def read_raw(self, size: int, timeout: float = 5.0) -> bytes:
        with trio.fail_after(timeout):
            data = b""
            while len(data) < size:
                chunk = await self.sock.recv(size - len(data))
                if not chunk:
                    break
                data += chunk
            return data

    async def at_eof(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (after any pending data)."""
        with trio.fail_after(timeout):
            while True:
                try:
                    data = await self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                if not data:
                    return True
                self.collector.parser.feed_data(data)

    def close(self) -> None:
        self.sock.close()


def get(path: str, *extra: str, body: bytes = b"", method: str = "GET") -> bytes:
    """Build one HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *extra]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture(params=["reactor", "tasks"])
def serving_mode(request, monkeypatch):
    """Run a test against the epoll reactor and against one task per connection."""
    if request.param == "reactor" and not ihttp.USE_REACTOR:
        pytest.skip("no epoll on this platform")
    monkeypatch.setattr(ihttp, "USE_REACTOR", request.param == "reactor")
    return request.param


async def start_server(nursery: trio.Nursery, handler, **kwargs) -> tuple[str, int]:
    """``serve_http(handler, ...)`` on 127.0.0.1 (or ``host=``) port 0; the bound address."""
    kwargs.setdefault("host", "127.0.0.1")
    return await nursery.start(
        lambda task_status: serve_http(handler, kwargs.pop("host"), 0,
                                       task_status=task_status, **kwargs))
