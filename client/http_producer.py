"""Publishing through nsqd's HTTP API (``/pub``, ``/mpub``, ``/pub?defer=``).

Useful where a long-lived TCP connection is not (serverless jobs, scripts). Errors
keep nsqd's message (``{"message": "MSG_TOO_BIG"}``) and map to the same exception
classes as the TCP producer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Final, final

import httpx

from .errors import (
    BadBodyError,
    BadMessageError,
    BadTopicError,
    InvalidError,
    NotConnectedError,
    PublishError,
    PublishFailedError,
    PublishTimeoutError,
    ServerError,
)
from .protocol import commands, is_valid_topic_name

__all__ = ["HTTPProducer", "error_for_http"]

logger = logging.getLogger(__name__)

#: nsqd's HTTP error messages → (wire code, exception class)
_HTTP_ERRORS: Final[dict[str, tuple[str, type[ServerError]]]] = {
    "INVALID_TOPIC": ("E_BAD_TOPIC", BadTopicError),
    "MISSING_ARG_TOPIC": ("E_BAD_TOPIC", BadTopicError),
    "MSG_TOO_BIG": ("E_BAD_MESSAGE", BadMessageError),
    "MSG_EMPTY": ("E_BAD_MESSAGE", BadMessageError),
    "BAD_MESSAGE": ("E_BAD_MESSAGE", BadMessageError),
    "BODY_TOO_BIG": ("E_BAD_BODY", BadBodyError),
    "BAD_BODY": ("E_BAD_BODY", BadBodyError),
    "INVALID_DEFER": ("E_INVALID", InvalidError),
    "INVALID_REQUEST": ("E_INVALID", InvalidError),
    "EXITING": ("E_PUB_FAILED", PublishFailedError),
    "INTERNAL_ERROR": ("E_PUB_FAILED", PublishFailedError),
}


def error_for_http(response: httpx.Response) -> ServerError:
    """The exception for a non-200 nsqd HTTP answer, carrying nsqd's message."""
    try:
        payload = response.json()
        message = str(payload.get("message", "")) if isinstance(payload, dict) else str(payload)
    except ValueError:
        message = response.text.strip()
    message = message or response.reason_phrase
    code, cls = _HTTP_ERRORS.get(message, (f"E_HTTP_{response.status_code}", ServerError))
    return cls(code, message, status_code=response.status_code)


@final
class HTTPProducer:
    """Publishes through nsqd's HTTP API.

    Args:
        base_urls: one nsqd HTTP address or several (``http://host:port``; a bare
            ``host:port`` works too). On a transport error the next one is tried.
        client: an httpx client to use (left open); by default one is created and
            closed with the producer.
        timeout: seconds for one HTTP request.
    """

    def __init__(
        self,
        base_urls: str | Sequence[str],
        *,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("at least one nsqd HTTP address is needed")
        self._urls = [(u if "://" in u else f"http://{u}").rstrip("/") for u in urls]
        self._client = client
        self._own_client = client is None
        self._index = 0
        self.timeout = timeout
        self._closed = False

    async def __aenter__(self) -> HTTPProducer:
        if self._closed:
            raise RuntimeError("an HTTPProducer cannot be reopened once closed")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this producer created it.

        Cancellation: the client is closed forcefully.
        """
        self._closed = True
        if self._own_client and self._client is not None:
            await self._client.aclose()

    async def publish(self, topic: str, body: bytes) -> None:
        """``POST /pub?topic=``: publish one message.

        Raises:
            BadTopicError, BadMessageError, ...: nsqd refused it (see
                :func:`error_for_http`).
            PublishTimeoutError: the request timed out (it may have been published).
            NotConnectedError: no nsqd could be reached.

        Cancellation: cancels the request; nsqd may or may not have the message.
        """
        await self._post("/pub", {"topic": topic}, body)

    async def multi_publish(self, topic: str, bodies: Iterable[bytes]) -> None:
        """``POST /mpub?topic=&binary=true``: publish several messages at once.

        Raises:
            ValueError: ``bodies`` is empty.
            Others: as :meth:`publish`.

        Cancellation: as :meth:`publish` (all or none of the messages may be published).
        """
        body_list = list(bodies)
        if not body_list:
            raise ValueError("multi_publish needs at least one message")
        command = commands.mpub(topic, body_list) if is_valid_topic_name(topic) else None
        if command is None:
            raise BadTopicError("E_BAD_TOPIC", "INVALID_TOPIC", status_code=400)
        # the binary /mpub body is the TCP MPUB body: skip "MPUB <topic>\n" and its size
        payload = command[command.index(b"\n") + 5 :]
        await self._post("/mpub", {"topic": topic, "binary": "true"}, payload)

    async def deferred_publish(self, topic: str, body: bytes, delay: float) -> None:
        """``POST /pub?topic=&defer=<ms>``: publish one message delivered after ``delay`` s.

        Raises:
            ValueError: negative delay.
            Others: as :meth:`publish`.

        Cancellation: as :meth:`publish`.
        """
        if delay < 0:
            raise ValueError("delay must be >= 0")
        await self._post("/pub", {"topic": topic, "defer": str(round(delay * 1000))}, body)

    async def _post(self, path: str, params: dict[str, str], content: bytes) -> None:
        if self._client is None or self._closed:
            raise PublishError("use the HTTPProducer as 'async with HTTPProducer(...)' (or it is closed)")
        last: Exception | None = None
        n = len(self._urls)
        for step in range(n):
            index = (self._index + step) % n
            url = self._urls[index] + path
            try:
                response = await self._client.post(url, params=params, content=content, timeout=self.timeout)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                logger.warning("POST %s: cannot connect (%r); trying the next nsqd", url, exc)
                last = exc
                continue
            except httpx.TimeoutException as exc:
                raise PublishTimeoutError(f"POST {url} timed out") from exc
            except httpx.TransportError as exc:
                logger.warning("POST %s failed (%r); trying the next nsqd", url, exc)
                last = exc
                continue
            self._index = index
            if response.status_code != 200:
                raise error_for_http(response)
            return
        raise NotConnectedError(f"no nsqd HTTP endpoint reachable among {self._urls}: {last!r}") from last
