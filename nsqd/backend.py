"""Where a topic's or channel's messages go once its memory queue is full.

A message here is the tuple ``(id, body, timestamp_ns, attempts)``: tuples of bytes and
ints are untracked by the garbage collector, which keeps deep backlogs cheap: with an
object per message, every full collection would walk the whole backlog.

Backends are synchronous: reads and writes are small and buffered, so the hot path never
awaits per message. ``Backend`` is the seam the disk queue plugs into.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Protocol

__all__ = ["Backend", "BackendError", "DummyBackend", "MemoryBackend", "Msg"]

#: (id, body, timestamp_ns, attempts)
Msg = tuple[bytes, bytes, int, int]


class BackendError(Exception):
    """A backend could not store a message (disk full, I/O error...)."""


class Backend(Protocol):
    """The overflow store of one topic or channel."""

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


class MemoryBackend:
    """An unbounded in-process overflow, used when no data path persistence applies."""

    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: collections.deque[Msg] = collections.deque()

    def put(self, msgs: Iterable[Msg]) -> None:
        self._queue.extend(msgs)

    def read(self, n: int) -> list[Msg]:
        q = self._queue
        k = min(n, len(q))
        popleft = q.popleft
        return [popleft() for _ in range(k)]

    def depth(self) -> int:
        return len(self._queue)

    def ack(self, msg_id: bytes) -> None:
        pass

    def empty(self) -> None:
        self._queue.clear()

    def close(self) -> None:
        pass

    def delete(self) -> None:
        self._queue.clear()


class DummyBackend:
    """Discards overflow, as NSQ does for ``#ephemeral`` topics and channels."""

    __slots__ = ("dropped",)

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
