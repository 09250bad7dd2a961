"""The receive buffer both readers share: linear in the bytes fed, even byte by byte."""

from __future__ import annotations

__all__ = ["ReceiveBuffer"]


class ReceiveBuffer:
    """Received bytes, joined only once enough have arrived for the next parse step.

    Subclasses parse ``self._buf`` from ``self._pos`` and set ``self._need`` to the
    number of bytes (counted from ``self._pos``) the next step requires.
    """

    __slots__ = ("_buf", "_need", "_pending", "_pending_len", "_pos")

    def __init__(self, need: int) -> None:
        self._buf = b""
        self._pos = 0
        self._pending: list[bytes | bytearray] = []
        self._pending_len = 0
        self._need = need

    def feed(self, data: bytes | bytearray) -> None:
        """Add received bytes (trio's memory and compressed streams give bytearray)."""
        if data:
            self._pending.append(data)
            self._pending_len += len(data)

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned by the reader."""
        return len(self._buf) - self._pos + self._pending_len

    def take_buffered(self) -> bytes:
        """Remove and return every byte not yet parsed (e.g. when the stream switches
        to TLS or compression mid-way and the rest must be read through the new layer)."""
        rest = self._buf[self._pos :] + b"".join(self._pending)
        self._buf = b""
        self._pos = 0
        self._pending.clear()
        self._pending_len = 0
        self._need = 1
        return rest

    def _available(self) -> bool:
        """Join pending pieces into ``_buf`` if the next step can run; False if not."""
        if len(self._buf) - self._pos + self._pending_len < self._need:
            return False
        if self._pending:
            rest = self._buf[self._pos :] if self._pos < len(self._buf) else b""
            joined = b"".join(self._pending)
            self._buf = rest + joined if rest else joined
            self._pos = 0
            self._pending.clear()
            self._pending_len = 0
        return True

    def _consumed(self, pos: int, need: int) -> None:
        """Record how far parsing got and what the next step needs."""
        self._need = need
        buf = self._buf
        if pos >= len(buf):
            self._buf = b""
        elif pos:
            # keep only the unparsed rest: a large received buffer is not held alive by
            # a few leftover bytes while a slow peer completes its next command
            self._buf = buf[pos:]
        self._pos = 0
