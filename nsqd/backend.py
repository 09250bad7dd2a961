"""Where a topic's or channel's messages go once its memory queue is full.

A message here is the tuple ``(id, body, timestamp_ns, attempts)``: tuples of bytes and
ints are untracked by the garbage collector, which keeps deep backlogs cheap: with an
object per message, every full collection would walk the whole backlog.

Backends are synchronous: reads and writes are small and buffered, so the hot path never
awaits per message. ``Backend`` is what topics and channels ask of their store: the
disk queue (:class:`~nsqd.diskqueue.DiskQueue`) or, for ephemeral ones, :class:`DummyBackend`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

__all__ = ["Backend", "BackendError", "DummyBackend", "Msg"]

#: (id, body, timestamp_ns, attempts)
Msg = tuple[bytes, bytes, int, int]


class BackendError(Exception):
    """A backend could not store a message (disk full, I/O error...)."""


class Backend(Protocol):
    """The overflow store of one topic or channel."""

    @property
    def write_through(self) -> bool:
        """Every message goes through here (no memory queue in front of it)."""

    @property
    def ack_mode(self) -> bool:
        """Read messages are kept until :meth:`ack` (replayed after a crash)."""

    def put(self, msgs: Iterable[Msg]) -> None:
        """Append messages in order; raise :class:`BackendError` if nothing could be stored."""

    def read(self, n: int) -> list[Msg]:
        """Remove and return up to ``n`` messages, oldest first."""

    def depth(self) -> int:
        """Messages stored (not counting those read and awaiting :meth:`ack`)."""

    def ack(self, msg_id: bytes) -> None:
        """A message read from here is done with (FIN'd, or requeued as a new copy).

        Only acknowledging backends (the disk queue with ``--sync-every=1``) keep read
        messages until then, to replay them after a crash; others ignore it.
        """

    def empty(self) -> None:
        """Drop every stored message."""

    def close(self) -> None:
        """Release resources, keeping what is stored."""

    def delete(self) -> None:
        """Release resources and remove what is stored."""


class DummyBackend:
    """Discards overflow, as NSQ does for ``#ephemeral`` topics and channels."""

    __slots__ = ("dropped",)

    write_through = False
    ack_mode = False

    def __init__(self) -> None:
        self.dropped = 0

    def put(self, msgs: Iterable[Msg]) -> None:
        for _ in msgs:
            self.dropped += 1

    def read(self, n: int) -> list[Msg]:
        return []

    def depth(self) -> int:
        return 0

    def ack(self, msg_id: bytes) -> None:
        pass

    def empty(self) -> None:
        pass

    def close(self) -> None:
        pass

    def delete(self) -> None:
        pass
