"""HTTP request/response values, NSQ's V1 response helpers and serialisation."""

from __future__ import annotations

import email.utils
import http
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import trio

from .gojson import go_json

__all__ = [
    "HTTPError",
    "Handler",
    "Later",
    "Request",
    "Response",
    "V1_HEADER",
    "error_response",
    "json_response",
    "render",
    "text",
]

#: Header NSQ's ``http_api.V1`` decorator adds to every V1 API response.
V1_HEADER = ("X-NSQ-Content-Type", "nsq; version=1.0")

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"


@dataclass(slots=True)
class Request:
    """One parsed HTTP request.

    Attributes:
        method: Request method (``"GET"``).
        path: Percent-decoded path, without the query string.
        query: Query arguments, each name mapped to all its values in order (read
            only: the next request on the connection to the same target shares it).
        headers: Header values by lowercased name (repeated headers joined
            with ``", "``).
        body: The whole request body (de-chunked).
        remote_addr: Peer address as ``host:port`` (IPv6 hosts bracketed).
        params: Values of the route's ``:name`` / ``*name`` segments.
        query_string: The raw query string (after ``?``).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    remote_addr: str = ""
    params: dict[str, str] = field(default_factory=dict)
    query_string: str = ""

    def arg(self, name: str, default: str | None = None) -> str | None:
        """Return the first value of query argument ``name``, or ``default``."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass(slots=True)
class Response:
    """An HTTP response produced by a handler.

    ``Content-Length``, ``Date`` and ``Connection`` are added by the server.
    An empty ``content_type`` omits the ``Content-Type`` header.

    ``rendered``: pass ``{}`` for a response object that answers many requests and is
    never changed (a shared ``OK``): its bytes are then made once per ``Date`` and
    ``Connection`` value and reused.
    """

    status: int = 200
    body: bytes = b""
    content_type: str = TEXT_CONTENT_TYPE
    headers: list[tuple[str, str]] = field(default_factory=list)
    rendered: dict[tuple[str, str], bytes] | None = field(default=None, compare=False,
                                                          repr=False)


T = TypeVar("T")


class Later(Generic[T]):
    """A result promised without a task: whoever has it calls :meth:`resolve` (in the
    event loop), and the callbacks given to :meth:`then` run there and then.

    A handler that returns a ``Later[Response]`` (durable mode's wait for an fsync) has
    its connection answered when it resolves, with no task per request; awaiting it
    works too (for a wrapper that awaits, and for connections served by a task).
    """

    __slots__ = ("_callbacks", "_result", "done")

    def __init__(self) -> None:
        self.done = False
        self._result: T | None = None
        self._callbacks: list[Callable[[T], None]] = []

    def resolve(self, result: T) -> None:
        """Set the result (once) and run the callbacks."""
        if self.done:
            raise RuntimeError("resolved twice")
        self.done = True
        self._result = result
        callbacks, self._callbacks = self._callbacks, []
        for fn in callbacks:
            fn(result)

    def then(self, fn: Callable[[T], None]) -> None:
        """Call ``fn(result)`` on :meth:`resolve` (at once if resolved)."""
        if self.done:
            fn(self._result)  # type: ignore[arg-type]
        else:
            self._callbacks.append(fn)

    def __await__(self) -> Generator[Any, None, T]:
        return self._wait().__await__()

    async def _wait(self) -> T:
        if not self.done:
            event = trio.Event()
            self.then(lambda _: event.set())
            await event.wait()
        return self._result  # type: ignore[return-value]


#: An HTTP handler: ``def handler(request) -> Response`` (answered inline),
#: ``async def`` / returning an awaitable of the response (answered in a task), or
#: returning a :class:`Later` response (answered when it resolves).
Handler = Callable[[Request], "Response | Awaitable[Response]"]


class HTTPError(Exception):
    """Raise from a handler to answer with NSQ's error shape.

    The body is ``{"message": "<message>"}`` (JSON) with the given status,
    like Go's ``http_api.Err{Code, Text}``.

    Args:
        status: HTTP status code.
        message: NSQ error text such as ``"MISSING_ARG_TOPIC"``.
        headers: Extra response headers (e.g. ``Allow`` for a 405).
    """

    def __init__(self, status: int, message: str,
                 headers: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = list(headers)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"


def text(body: str | bytes, status: int = 200, *, v1: bool = True) -> Response:
    """Build a ``text/plain`` response.

    Args:
        body: Response text (``str`` is UTF-8 encoded).
        status: HTTP status code.
        v1: Add NSQ's ``X-NSQ-Content-Type`` header, as handlers decorated
            with ``http_api.V1`` do; pass ``False`` for ``PlainText`` ones
            such as ``/ping``.
    """
    data = body.encode() if isinstance(body, str) else body
    return Response(status, data, TEXT_CONTENT_TYPE, [V1_HEADER] if v1 else [])


def json_response(obj: Any, status: int = 200) -> Response:
    """Build a JSON response (written as Go writes it) with NSQ's V1 headers."""
    return Response(status, go_json(obj), JSON_CONTENT_TYPE, [V1_HEADER])


def error_response(status: int, message: str,
                   headers: Iterable[tuple[str, str]] = ()) -> Response:
    """Build NSQ's error response ``{"message": message}``."""
    return Response(status, go_json({"message": message}), JSON_CONTENT_TYPE,
                    [V1_HEADER, *headers])


# --- serialisation -----------------------------------------------------------

_STATUS_LINES: dict[int, str] = {}
_date_cache: list[Any] = [0, ""]


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        if not 100 <= status <= 999:
            raise ValueError(f"invalid HTTP status {status}")
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {reason}\r\n"
    return line


def http_date() -> str:
    """Return the current ``Date`` header value, cached per second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = email.utils.formatdate(now, usegmt=True)
    date: str = _date_cache[1]
    return date


def render(resp: Response, date: str, connection: str, head_only: bool) -> bytes:
    """Serialise a response.

    Args:
        resp: The response.
        date: ``Date`` header value.
        connection: Complete ``Connection: ...\\r\\n`` line, or ``""``.
        head_only: Omit the body (HEAD request) but keep ``Content-Length``.

    Returns:
        Status line, headers and body as one ``bytes``.

    Raises:
        ValueError: For an invalid status or a header containing CR/LF.
        UnicodeEncodeError: For a header that is not latin-1.
    """
    cache = resp.rendered
    if cache is None or head_only:
        return _render(resp, date, connection, head_only)
    key = (date, connection)
    data = cache.get(key)
    if data is None:
        data = _render(resp, date, connection, False)
        if len(cache) >= 8:  # dates gone by
            cache.clear()
        cache[key] = data
    return data


def _render(resp: Response, date: str, connection: str, head_only: bool) -> bytes:
    status = resp.status
    body = resp.body
    head = _STATUS_LINES.get(status) or _status_line(status)
    head = f"{head}Date: {date}\r\n"
    if resp.content_type:
        head = f"{head}Content-Type: {resp.content_type}\r\n"
    if status >= 200 and status not in (204, 304):
        head = f"{head}Content-Length: {len(body)}\r\n"
    else:
        body = b""
    for name, value in resp.headers:
        if "\n" in value or "\r" in value or "\n" in name or "\r" in name:
            raise ValueError(f"invalid header {name!r}")
        head = f"{head}{name}: {value}\r\n"
    data = f"{head}{connection}\r\n".encode("latin-1")
    if body and not head_only:
        return data + body
    return data
