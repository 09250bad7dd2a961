"""The NSQ message wire format carried in a V2 message frame.

``[timestamp:int64 ns][attempts:uint16][id:16 bytes][body]``
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from .constants import MESSAGE_HEADER_SIZE, MSG_ID_LENGTH, FrameType
from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "MESSAGE_FRAME_HEAD",
    "MESSAGE_FRAME_OVERHEAD",
    "RawMessage",
    "decode_message",
    "encode_message",
    "encode_message_frame",
]

_HEADER = struct.Struct(">qH")
_FRAME_HEADER = struct.Struct(">lLqH")
_FRAME_OVERHEAD = 4 + MESSAGE_HEADER_SIZE  # frame type word + message header

#: A message frame up to its body: ``pack(MESSAGE_FRAME_OVERHEAD + len(body),
#: FrameType.MESSAGE, timestamp, attempts, msg_id)``, unchecked (for a server's
#: delivery loop, whose IDs are its own and attempts kept within uint16).
MESSAGE_FRAME_HEAD = struct.Struct(">lLqH16s")
MESSAGE_FRAME_OVERHEAD = _FRAME_OVERHEAD


class RawMessage(NamedTuple):
    """A decoded message: what travels, nothing about who holds it."""

    id: bytes
    timestamp: int
    attempts: int
    body: bytes


def _check_id(msg_id: bytes) -> None:
    if len(msg_id) != MSG_ID_LENGTH:
        raise LocalProtocolError(f"message id must be {MSG_ID_LENGTH} bytes, got {len(msg_id)}")


def _header_error(timestamp: int, attempts: int) -> LocalProtocolError:
    return LocalProtocolError(
        f"cannot encode message header: timestamp {timestamp} must fit an int64, "
        f"attempts {attempts} a uint16 (and the frame size an int32)"
    )


def encode_message(msg_id: bytes, timestamp: int, attempts: int, body: bytes) -> bytes:
    """The message bytes (a message frame's data).

    Raises:
        LocalProtocolError: an id that is not 16 bytes, a timestamp outside int64 or
            attempts outside uint16 (any of which would corrupt the stream).
    """
    _check_id(msg_id)
    try:
        header = _HEADER.pack(timestamp, attempts)
    except struct.error:
        raise _header_error(timestamp, attempts) from None
    return header + msg_id + body


def encode_message_frame(msg_id: bytes, timestamp: int, attempts: int, body: bytes) -> bytes:
    """A whole V2 message frame, size and type included (the hot delivery path).

    Raises:
        LocalProtocolError: as :func:`encode_message`.
    """
    _check_id(msg_id)
    try:
        header = _FRAME_HEADER.pack(
            len(body) + _FRAME_OVERHEAD, FrameType.MESSAGE, timestamp, attempts
        )
    except struct.error:
        raise _header_error(timestamp, attempts) from None
    return header + msg_id + body


def decode_message(data: bytes) -> RawMessage:
    """Decode a message frame's data.

    Raises:
        RemoteProtocolError: fewer bytes than a message header.
    """
    if len(data) < MESSAGE_HEADER_SIZE:
        raise RemoteProtocolError(f"message of {len(data)} bytes is shorter than its header")
    timestamp, attempts = _HEADER.unpack_from(data, 0)
    return RawMessage(data[10 : 10 + MSG_ID_LENGTH], timestamp, attempts, data[MESSAGE_HEADER_SIZE:])
