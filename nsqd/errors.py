"""nsqd's error types: what goes on the wire (code + description) and what stays in logs."""

from __future__ import annotations

__all__ = ["ChannelError", "ClientError", "FatalClientError", "TopicError"]


class ClientError(Exception):
    """An error answered with an error frame ``<code> <desc>``; the connection stays open."""

    def __init__(self, code: str, desc: str, parent: BaseException | None = None) -> None:
        super().__init__(f"{code} {desc}")
        self.code = code
        self.desc = desc
        self.parent = parent

    def wire(self) -> bytes:
        """The error frame's data."""
        return f"{self.code} {self.desc}".encode()


class FatalClientError(ClientError):
    """An error after which nsqd closes the connection."""


class ChannelError(Exception):
    """A channel operation refused (NSQ's ``ID not in flight``, ``exiting``...)."""


class TopicError(Exception):
    """A topic operation refused (``channel does not exist``, ``exiting``...)."""
