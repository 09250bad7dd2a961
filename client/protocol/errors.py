"""Codec errors.

``ProtocolError`` is abstract; ``LocalProtocolError`` means *we* were asked to encode
something illegal, ``RemoteProtocolError`` means the peer sent bytes that break the
protocol (h11's split).
"""

from __future__ import annotations

__all__ = [
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
]


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
