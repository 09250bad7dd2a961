"""Message IDs: 16 hex characters of a 64-bit number that only grows.

The counter starts at ``(unix ms << 22) | (node_id << 12)`` when the daemon starts and
adds one per message, so IDs stay unique across restarts (4M IDs per ms of downtime)
and across nodes sharing a start millisecond. A batch of IDs costs one format of their
shared first 13 hex digits and one concatenation per ID (the last 3 digits come from a
table).
"""

from __future__ import annotations

import time

__all__ = ["IDGenerator"]

#: the last 3 hex digits of an ID, by its low 12 bits
_LOW: list[bytes] = [b"%03x" % i for i in range(4096)]


class IDGenerator:
    """Hands out message IDs (``bytes`` of length 16)."""

    __slots__ = ("_next",)

    def __init__(self, node_id: int, now_ms: int | None = None) -> None:
        if not 0 <= node_id < 1024:
            raise ValueError("--node-id must be [0,1024)")
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        self._next = (ms << 22) | (node_id << 12)

    def new_id(self) -> bytes:
        """One fresh ID."""
        n = self._next
        self._next = n + 1
        return b"%016x" % n

    def new_ids(self, count: int) -> list[bytes]:
        """``count`` fresh IDs, in order."""
        n = self._next
        end = n + count
        self._next = end
        low = n & 4095
        if low + count <= 4096:  # one 13-digit prefix for them all (the usual case)
            prefix = b"%013x" % (n >> 12)
            return [prefix + tail for tail in _LOW[low : low + count]]
        out: list[bytes] = []
        while n < end:
            low = n & 4095
            stop = min(4096, low + end - n)
            prefix = b"%013x" % (n >> 12)
            out += [prefix + tail for tail in _LOW[low:stop]]
            n += stop - low
        return out
