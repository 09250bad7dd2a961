"""Exceptions raised by the NSQ client.

Catch broadly or narrowly; the tree is::

    NSQError
    ├── NSQConnectionError (also a builtin ConnectionError)
    │   ├── NotConnectedError       dial failed / no usable nsqd
    │   ├── ConnectionClosedError   the connection ended while a command was pending
    │   └── IdentifyError           the IDENTIFY/AUTH handshake failed
    ├── ServerError(code, desc)     an ``E_*`` error frame (or HTTP error) from nsqd
    │   ├── InvalidError            E_INVALID
    │   ├── BadBodyError            E_BAD_BODY
    │   ├── BadTopicError           E_BAD_TOPIC
    │   ├── BadChannelError         E_BAD_CHANNEL
    │   ├── BadMessageError         E_BAD_MESSAGE
    │   ├── PublishFailedError      E_PUB_FAILED, E_MPUB_FAILED, E_DPUB_FAILED
    │   ├── SubscribeFailedError    E_SUB_FAILED
    │   ├── IdentifyFailedError     E_IDENTIFY_FAILED
    │   ├── FinishFailedError       E_FIN_FAILED
    │   ├── RequeueFailedError      E_REQ_FAILED
    │   ├── TouchFailedError        E_TOUCH_FAILED
    │   ├── BadProtocolError        E_BAD_PROTOCOL
    │   └── AuthError               E_AUTH_ERROR
    │       ├── AuthDisabledError   E_AUTH_DISABLED
    │       ├── AuthFailedError     E_AUTH_FAILED
    │       ├── AuthFirstError      E_AUTH_FIRST
    │       └── UnauthorizedError   E_UNAUTHORIZED
    ├── HTTPAPIError(status)        an HTTP API request failed (no answer, non-200, bad body)
    │   └── LookupdError            nsqlookupd could not be queried or was not understood
    └── PublishError                a publish could not be completed
        └── PublishTimeoutError     ... within its deadline (also a builtin TimeoutError)

Every class carries two policy attributes: ``fatal`` (nsqd closes the connection after
sending this error) and ``retriable`` (trying again, possibly on another nsqd, may
succeed). :func:`for_code` maps a wire code to its class through a table built by
reflection over the :class:`ServerError` subclasses.

None of these derive from ``BaseException`` directly, and none wrap ``trio.Cancelled``.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator
from typing import ClassVar

__all__ = [
    "AuthDisabledError",
    "AuthError",
    "AuthFailedError",
    "AuthFirstError",
    "BadBodyError",
    "BadChannelError",
    "BadMessageError",
    "BadProtocolError",
    "BadTopicError",
    "ConnectionClosedError",
    "FinishFailedError",
    "HTTPAPIError",
    "IdentifyError",
    "IdentifyFailedError",
    "InvalidError",
    "LookupdError",
    "NSQConnectionError",
    "NSQError",
    "NotConnectedError",
    "PublishError",
    "PublishFailedError",
    "PublishTimeoutError",
    "RequeueFailedError",
    "ServerError",
    "SubscribeFailedError",
    "TouchFailedError",
    "UnauthorizedError",
    "for_code",
]


class NSQError(Exception):
    """Root of every exception the client raises on purpose."""

    fatal: ClassVar[bool] = False
    retriable: ClassVar[bool] = False


class NSQConnectionError(NSQError, builtins.ConnectionError):
    """The TCP connection to nsqd could not be used."""

    fatal = True
    retriable = True


class NotConnectedError(NSQConnectionError):
    """No connection: dialing failed or timed out, or none is available."""


class ConnectionClosedError(NSQConnectionError):
    """The connection closed (by either side, or by an I/O error or timeout)."""


class IdentifyError(NSQConnectionError):
    """The IDENTIFY (or AUTH) handshake was refused or its answer was unusable."""

    retriable = False


class ServerError(NSQError):
    """nsqd answered a command with an error.

    Attributes:
        code: the wire code, e.g. ``"E_BAD_TOPIC"``.
        desc: nsqd's description (the rest of the error frame).
        status_code: the HTTP status, for errors from the HTTP API.
    """

    codes: ClassVar[tuple[str, ...]] = ()
    fatal = True

    def __init__(self, code: str, desc: str = "", *, status_code: int | None = None) -> None:
        super().__init__(f"{code} {desc}" if desc else code)
        self.code = code
        self.desc = desc
        self.status_code = status_code

    @classmethod
    def from_frame(cls, data: bytes) -> ServerError:
        """Build the right subclass from an error frame's data (``b"E_X description"``)."""
        text = data.decode("utf-8", "replace")
        code, _, desc = text.partition(" ")
        return for_code(code)(code, desc)


class InvalidError(ServerError):
    """E_INVALID: a malformed command or one not allowed in the connection's state."""

    codes = ("E_INVALID",)


class BadBodyError(ServerError):
    """E_BAD_BODY: a command body nsqd could not read (size, count, JSON)."""

    codes = ("E_BAD_BODY",)


class BadTopicError(ServerError):
    """E_BAD_TOPIC: the topic name is not valid."""

    codes = ("E_BAD_TOPIC",)


class BadChannelError(ServerError):
    """E_BAD_CHANNEL: the channel name is not valid."""

    codes = ("E_BAD_CHANNEL",)


class BadMessageError(ServerError):
    """E_BAD_MESSAGE: a message body is empty or larger than nsqd's max-msg-size."""

    codes = ("E_BAD_MESSAGE",)


class PublishFailedError(ServerError):
    """E_PUB_FAILED / E_MPUB_FAILED / E_DPUB_FAILED: nsqd could not store the message.

    Usually nsqd is exiting; another nsqd may accept the message.
    """

    codes = ("E_PUB_FAILED", "E_MPUB_FAILED", "E_DPUB_FAILED")
    retriable = True


class SubscribeFailedError(ServerError):
    """E_SUB_FAILED: the topic or channel is exiting or was deleted."""

    codes = ("E_SUB_FAILED",)
    retriable = True


class IdentifyFailedError(ServerError):
    """E_IDENTIFY_FAILED: nsqd refused the negotiated features."""

    codes = ("E_IDENTIFY_FAILED",)


class FinishFailedError(ServerError):
    """E_FIN_FAILED: the message was not in flight for this client (e.g. timed out)."""

    codes = ("E_FIN_FAILED",)
    fatal = False


class RequeueFailedError(ServerError):
    """E_REQ_FAILED: the message was not in flight for this client."""

    codes = ("E_REQ_FAILED",)
    fatal = False


class TouchFailedError(ServerError):
    """E_TOUCH_FAILED: the message was not in flight for this client."""

    codes = ("E_TOUCH_FAILED",)
    fatal = False


class BadProtocolError(ServerError):
    """E_BAD_PROTOCOL: the server did not accept the protocol magic."""

    codes = ("E_BAD_PROTOCOL",)


class AuthError(ServerError):
    """E_AUTH_ERROR and the base of every authorization failure."""

    codes = ("E_AUTH_ERROR",)


class AuthDisabledError(AuthError):
    """E_AUTH_DISABLED: AUTH sent to an nsqd without an auth server."""

    codes = ("E_AUTH_DISABLED",)


class AuthFailedError(AuthError):
    """E_AUTH_FAILED: the secret was refused."""

    codes = ("E_AUTH_FAILED",)


class AuthFirstError(AuthError):
    """E_AUTH_FIRST: a command was sent before AUTH on an nsqd that requires it."""

    codes = ("E_AUTH_FIRST",)


class UnauthorizedError(AuthError):
    """E_UNAUTHORIZED: the identity may not use this topic/channel."""

    codes = ("E_UNAUTHORIZED",)


class HTTPAPIError(NSQError):
    """A request to an NSQ daemon's HTTP API failed: no answer, a status other than
    200, or a body that is not what the endpoint answers.

    ``str()`` reads as Go NSQ's text for the same failure (see :mod:`client.httpapi`).

    Attributes:
        status: the HTTP status when the daemon answered, else 0.
    """

    retriable = True

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


class LookupdError(HTTPAPIError):
    """nsqlookupd could not be queried, or answered something unusable."""


class PublishError(NSQError):
    """A publish could not be completed (the producer is closed, or retries ran out)."""


class PublishTimeoutError(PublishError, builtins.TimeoutError):
    """A publish did not complete within its deadline.

    The message may or may not have reached nsqd: it had possibly been written before
    the deadline passed.
    """

    retriable = True


def _iter_subclasses(cls: type[ServerError]) -> Iterator[type[ServerError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _iter_subclasses(sub)


_BY_CODE: dict[str, type[ServerError]] = {
    code: sub for sub in _iter_subclasses(ServerError) for code in sub.codes
}


def for_code(code: str) -> type[ServerError]:
    """The exception class for an ``E_*`` code; plain :class:`ServerError` when unknown."""
    return _BY_CODE.get(code, ServerError)
