"""Where a topic's or channel's messages go once its memory queue is full.

A message here is the plain tuple ``(id, body, timestamp_ns, attempts)``: tuples of
bytes and ints are untracked by the garbage collector, which keeps deep backlogs cheap:
with an object per message, every full collection would walk the whole backlog. A topic
also queues deferred messages (DPUB while no channel takes them): a :class:`DueMsg`,
told from a plain message by its type.

Backends are synchronous: reads and writes are small and buffered, so the hot path never
awaits per message. ``Backend`` is what topics and channels ask of their store: the
disk queue (:class:`~nsqd.diskqueue.DiskQueue`) or, for ephemeral ones, :class:`DummyBackend`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple, Protocol, TypeVar

__all__ = ["Backend", "BackendError", "DueMsg", "DummyBackend", "Entry", "Msg"]

#: (id, body, timestamp_ns, attempts)
Msg = tuple[bytes, bytes, int, int]


class DueMsg(NamedTuple):
    """A deferred message waiting in a topic, delivered to its channels at ``due``."""

    msg_id: bytes
    body: bytes
    timestamp: int
    attempts: int
    #: monotonic delivery time
    due: float

    def msg(self) -> Msg:
        """The message without its due time."""
        return (self.msg_id, self.body, self.timestamp, self.attempts)


#: what a topic queues: a message, or a deferred one
Entry = Msg | DueMsg

#: what a backend holds: :data:`Msg` for a channel's, :data:`Entry` for a topic's
E = TypeVar("E")


class BackendError(Exception):
    """A backend could not store a message (disk full, I/O error...)."""


class Backend(Protocol[E]):
    """The overflow store of one topic or channel, holding entries of type ``E``."""

    @property
    def write_through(self) -> bool:
        """Every message goes through here (no memory queue in front of it)."""

    @property
    def ack_mode(self) -> bool:
        """Read messages are kept until :meth:`ack` (replayed after a crash)."""

    def put(self, msgs: Iterable[E]) -> None:
        """Append messages in order; raise :class:`BackendError` if nothing could be stored."""

    def read(self, n: int) -> list[E]:
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

    def put(self, msgs: Iterable[Entry]) -> None:
        for _ in msgs:
            self.dropped += 1

    def read(self, n: int) -> list[Entry]:
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
