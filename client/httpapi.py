"""NSQ's HTTP API from the client side: ``GET`` and ``POST`` as Go NSQ's ``http_api``
client sends them (``Accept: application/vnd.nsq; version=1.0``), with its error texts.

A failure raises :class:`~client.errors.HTTPAPIError` (or the subclass the caller
names) whose ``str()`` is what Go NSQ shows for it, so tools that display these errors
(nsqadmin's warnings) read as Go's do:

* no answer: ``Get "http://h:4161/topics": dial tcp h:4161: connect: connection refused``,
  or ``... context deadline exceeded (Client.Timeout exceeded)`` after the timeout;
* another status than 200: ``got response 500 Internal Server Error "{...}"``;
* a body that is not JSON: ``invalid JSON from http://h:4161/topics - ...``.

Answers in the pre-1.0 ``{"status_code", "data"}`` envelope are unwrapped when the
daemon did not say it speaks V1 (no ``X-NSQ-Content-Type`` header).
Cancellation: every call cancels its HTTP request.
"""

from __future__ import annotations

import errno
import json
import logging
from typing import TypeAlias
from urllib.parse import quote

import httpx

from internal.gojson import JSON, loads

from .errors import HTTPAPIError

__all__ = ["JSON", "Timeout", "describe", "get_json", "post", "query_escape"]

logger = logging.getLogger(__name__)

#: seconds for the whole request, or an :class:`httpx.Timeout` (e.g. a shorter connect)
Timeout: TypeAlias = float | httpx.Timeout

_ACCEPT = {"Accept": "application/vnd.nsq; version=1.0"}

_GO_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connect: connection refused",
    errno.EHOSTUNREACH: "connect: no route to host",
    errno.ENETUNREACH: "connect: network is unreachable",
    errno.ECONNRESET: "read: connection reset by peer",
    errno.ETIMEDOUT: "i/o timeout",
}


def query_escape(value: str) -> str:
    """``value`` escaped for a query string as Go's ``url.QueryEscape`` does (``/`` too)."""
    return quote(value, safe="")


def _os_error(exc: BaseException | None, depth: int = 0) -> OSError | None:
    """The first ``OSError`` with an errno in an exception's causes and groups."""
    while exc is not None and depth < 20:
        if isinstance(exc, OSError) and exc.errno:
            return exc
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                found = _os_error(sub, depth + 1)
                if found is not None:
                    return found
        exc = exc.__cause__ or exc.__context__
        depth += 1
    return None


def describe(method: str, url: str, exc: Exception) -> str:
    """A transport failure as Go's ``net/http`` client words it, e.g.
    ``Get "http://h:4151/stats": dial tcp h:4151: connect: connection refused``."""
    verb = method.capitalize()
    if isinstance(exc, httpx.TimeoutException):
        return f'{verb} "{url}": context deadline exceeded (Client.Timeout exceeded)'
    if isinstance(exc, httpx.ConnectError):
        host = httpx.URL(url).netloc.decode()
        cause = _os_error(exc)
        if cause is not None:
            text = _GO_ERRNO_TEXT.get(cause.errno or 0) or (cause.strerror or str(cause)).lower()
            return f'{verb} "{url}": dial tcp {host}: {text}'
        return f'{verb} "{url}": dial tcp {host}: {exc}'
    return f'{verb} "{url}": {exc or type(exc).__name__}'


def _status_text(response: httpx.Response) -> str:
    return (f"got response {response.status_code} {response.reason_phrase} "
            f"{json.dumps(response.content.decode('utf-8', 'replace'))}")


async def _send(client: httpx.AsyncClient, method: str, url: str, timeout: Timeout | None,
                error: type[HTTPAPIError]) -> httpx.Response:
    try:
        response = await client.request(
            method, url, headers=_ACCEPT,
            timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout)
    except httpx.HTTPError as exc:
        raise error(describe(method, url, exc)) from None
    if response.status_code != 200:
        raise error(_status_text(response), response.status_code)
    return response


async def get_json(client: httpx.AsyncClient, url: str, *, timeout: Timeout | None = None,
                   error: type[HTTPAPIError] = HTTPAPIError) -> JSON:
    """GET ``url`` (Go's ``GETV1``) and decode its JSON answer.

    Args:
        client: the HTTP client to use.
        url: the full URL, query included (see :func:`query_escape`).
        timeout: overrides the client's timeouts when given.
        error: the exception class to raise.

    Returns:
        The decoded document (the envelope's ``data`` for a pre-1.0 daemon).

    Raises:
        HTTPAPIError: (``error``) no answer, a status other than 200, or not JSON.
    """
    logger.debug("querying %s", url)
    response = await _send(client, "GET", url, timeout, error)
    try:
        doc = loads(response.content)
    except ValueError as exc:
        raise error(f"invalid JSON from {url} - {exc}", response.status_code) from None
    if ("x-nsq-content-type" not in response.headers and isinstance(doc, dict)
            and "status_code" in doc and "data" in doc):
        doc = doc["data"]
    return doc


async def post(client: httpx.AsyncClient, url: str, *, timeout: Timeout | None = None,
               error: type[HTTPAPIError] = HTTPAPIError) -> None:
    """POST ``url`` with no body (Go's ``POSTV1``); the answer's body is ignored.

    Raises:
        HTTPAPIError: (``error``) no answer, or a status other than 200.
    """
    logger.debug("posting %s", url)
    await _send(client, "POST", url, timeout, error)
