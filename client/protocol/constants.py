"""Wire constants of the NSQ TCP protocols (V2 for nsqd, V1 for nsqlookupd)."""

from __future__ import annotations

import enum

__all__ = [
    "CLOSE_WAIT",
    "FrameType",
    "HEARTBEAT",
    "MAGIC_V1",
    "MAGIC_V2",
    "MESSAGE_HEADER_SIZE",
    "MSG_ID_LENGTH",
    "OK",
]

MAGIC_V1 = b"  V1"
MAGIC_V2 = b"  V2"

OK = b"OK"
HEARTBEAT = b"_heartbeat_"
CLOSE_WAIT = b"CLOSE_WAIT"

MSG_ID_LENGTH = 16
#: timestamp (int64 ns) + attempts (uint16) + id (16 bytes)
MESSAGE_HEADER_SIZE = 8 + 2 + MSG_ID_LENGTH


class FrameType(enum.IntEnum):
    """The frame type word that follows a V2 frame's size."""

    RESPONSE = 0
    ERROR = 1
    MESSAGE = 2
