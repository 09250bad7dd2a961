"""V2 frames (``[size:int32][type:int32][data]``) and V1 responses (``[size:int32][data]``).

Encoding is a pair of pure functions; decoding is :class:`FrameReader`, a sans-I/O
buffer that is fed received bytes and hands back every complete frame.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ._buffer import ReceiveBuffer
from .constants import FrameType
from .errors import RemoteProtocolError

__all__ = [
    "Frame",
    "FrameReader",
    "ResponseReader",
    "encode_error",
    "encode_frame",
    "encode_response",
    "encode_v1_response",
]

_SIZE_TYPE = struct.Struct(">lL")
_SIZE = struct.Struct(">l")
_unpack_size = _SIZE.unpack_from
_unpack_size_type = _SIZE_TYPE.unpack_from

#: frames bigger than this are refused by readers unless told otherwise
DEFAULT_MAX_FRAME_SIZE = 64 * 1024 * 1024


class Frame(NamedTuple):
    """One decoded V2 frame."""

    type: int
    data: bytes


def encode_frame(frame_type: int, data: bytes) -> bytes:
    """The bytes of one V2 frame."""
    return _SIZE_TYPE.pack(len(data) + 4, frame_type) + data


def encode_response(data: bytes) -> bytes:
    """A V2 response frame (``OK``, ``CLOSE_WAIT``, ``_heartbeat_``, IDENTIFY's JSON)."""
    return _SIZE_TYPE.pack(len(data) + 4, FrameType.RESPONSE) + data


def encode_error(data: bytes) -> bytes:
    """A V2 error frame, ``data`` being e.g. ``b"E_INVALID invalid command FOO"``."""
    return _SIZE_TYPE.pack(len(data) + 4, FrameType.ERROR) + data


def encode_v1_response(data: bytes) -> bytes:
    """An nsqlookupd (V1) response: a size and the data, no frame type."""
    return _SIZE.pack(len(data)) + data


class _SizePrefixedReader(ReceiveBuffer):
    """Splits a stream into ``[size:int32][data]`` chunks."""

    __slots__ = ("max_size",)

    def __init__(self, max_size: int) -> None:
        super().__init__(4)
        self.max_size = max_size

    def _next_chunk(self) -> bytes | None:
        """The next complete chunk only, leaving later bytes unparsed."""
        if not self._available():
            return None
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < 4:
            self._consumed(pos, 4)
            return None
        (size,) = _unpack_size(buf, pos)
        if size < 0 or size > self.max_size:
            raise RemoteProtocolError(f"frame size {size} out of range (max {self.max_size})")
        if len(buf) - pos - 4 < size:
            self._consumed(pos, size + 4)
            return None
        self._consumed(pos + 4 + size, 4)
        return buf[pos + 4 : pos + 4 + size]

    def _chunks(self) -> list[bytes]:
        """Every complete size-prefixed chunk currently buffered."""
        out: list[bytes] = []
        if not self._available():
            return out
        buf = self._buf
        pos = self._pos
        end = len(buf)
        max_size = self.max_size
        need = 4
        while end - pos >= 4:
            (size,) = _unpack_size(buf, pos)
            if size < 0 or size > max_size:
                raise RemoteProtocolError(f"frame size {size} out of range (max {max_size})")
            if end - pos - 4 < size:
                need = size + 4
                break
            out.append(buf[pos + 4 : pos + 4 + size])
            pos += 4 + size
        self._consumed(pos, need)
        return out


class FrameReader(_SizePrefixedReader):
    """Decodes V2 frames from a byte stream (the client side of nsqd)."""

    __slots__ = ()

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        super().__init__(max_size)

    def frames(self) -> list[Frame]:
        """Every complete frame buffered so far, in order.

        Raises:
            RemoteProtocolError: a frame too small to hold its type, or too large.
        """
        out = []
        for chunk in self._chunks():
            if len(chunk) < 4:
                raise RemoteProtocolError(f"frame of {len(chunk)} bytes has no type")
            (frame_type,) = struct.unpack_from(">L", chunk, 0)
            out.append(Frame(frame_type, chunk[4:]))
        return out


    def next_frame(self) -> Frame | None:
        """Only the next complete frame (None if incomplete); later bytes stay buffered,
        so a caller can :meth:`take_buffered` them at a transport upgrade."""
        chunk = self._next_chunk()
        if chunk is None:
            return None
        if len(chunk) < 4:
            raise RemoteProtocolError(f"frame of {len(chunk)} bytes has no type")
        (frame_type,) = struct.unpack_from(">L", chunk, 0)
        return Frame(frame_type, chunk[4:])


class ResponseReader(_SizePrefixedReader):
    """Decodes nsqlookupd V1 responses (``[size][data]``)."""

    __slots__ = ()

    def __init__(self, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        super().__init__(max_size)

    def responses(self) -> list[bytes]:
        """Every complete response buffered so far, in order."""
        return self._chunks()
