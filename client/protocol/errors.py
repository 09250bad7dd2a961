"""Codec errors and the NSQ error codes that travel in error frames.

``ProtocolError`` is abstract; ``LocalProtocolError`` means *we* were asked to encode
something illegal, ``RemoteProtocolError`` means the peer sent bytes that break the
protocol (h11's split).
"""

from __future__ import annotations

__all__ = [
    "ErrorCode",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


class ErrorCode:
    """The ``E_*`` codes NSQ puts at the start of an error frame."""

    INVALID = "E_INVALID"
    BAD_BODY = "E_BAD_BODY"
    BAD_TOPIC = "E_BAD_TOPIC"
    BAD_CHANNEL = "E_BAD_CHANNEL"
    BAD_MESSAGE = "E_BAD_MESSAGE"
    PUB_FAILED = "E_PUB_FAILED"
    MPUB_FAILED = "E_MPUB_FAILED"
    DPUB_FAILED = "E_DPUB_FAILED"
    FIN_FAILED = "E_FIN_FAILED"
    REQ_FAILED = "E_REQ_FAILED"
    TOUCH_FAILED = "E_TOUCH_FAILED"
    AUTH_DISABLED = "E_AUTH_DISABLED"
    AUTH_FAILED = "E_AUTH_FAILED"
    AUTH_FIRST = "E_AUTH_FIRST"
    UNAUTHORIZED = "E_UNAUTHORIZED"
    BAD_PROTOCOL = "E_BAD_PROTOCOL"


class ProtocolError(Exception):
    """Bytes that cannot be turned into protocol events, or the reverse."""

    def __init__(self, message: str) -> None:
        if type(self) is ProtocolError:
            raise TypeError("ProtocolError is abstract; raise a subclass")
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We were asked to produce something the protocol does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow."""
