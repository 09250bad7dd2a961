"""Pure constructors for the bytes of every client command (go-nsq's command.go, as bytes).

V2 (nsqd): IDENTIFY, AUTH, SUB, RDY, FIN, REQ, TOUCH, CLS, NOP, PUB, MPUB, DPUB.
V1 (nsqlookupd): IDENTIFY (shared), REGISTER, UNREGISTER, PING.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from itertools import chain
from typing import Any

from .constants import MSG_ID_LENGTH
from .errors import LocalProtocolError
from .names import is_valid_channel_name, is_valid_topic_name

__all__ = [
    "auth",
    "cls",
    "dpub",
    "fin",
    "identify",
    "mpub",
    "mpub_body",
    "nop",
    "ping",
    "pub",
    "rdy",
    "register",
    "req",
    "sub",
    "touch",
    "unregister",
]

_pack_size = struct.Struct(">l").pack


def _topic(name: str) -> bytes:
    if not is_valid_topic_name(name):
        raise LocalProtocolError(f"invalid topic name {name!r}")
    return name.encode("ascii")


def _channel(name: str) -> bytes:
    if not is_valid_channel_name(name):
        raise LocalProtocolError(f"invalid channel name {name!r}")
    return name.encode("ascii")


def _msg_id(msg_id: bytes) -> bytes:
    if len(msg_id) != MSG_ID_LENGTH:
        raise LocalProtocolError(f"message id must be {MSG_ID_LENGTH} bytes, got {len(msg_id)}")
    return msg_id


def _with_body(line: bytes, body: bytes) -> bytes:
    return line + _pack_size(len(body)) + body


def identify(data: Mapping[str, Any]) -> bytes:
    """``IDENTIFY`` with a JSON body (both V1 and V2)."""
    return _with_body(b"IDENTIFY\n", json.dumps(data, separators=(",", ":")).encode())


def auth(secret: bytes | str) -> bytes:
    """``AUTH`` with the secret as body."""
    return _with_body(b"AUTH\n", secret.encode() if isinstance(secret, str) else secret)


def sub(topic: str, channel: str) -> bytes:
    """``SUB <topic> <channel>``."""
    return b"SUB " + _topic(topic) + b" " + _channel(channel) + b"\n"


def rdy(count: int) -> bytes:
    """``RDY <count>``."""
    if count < 0:
        raise LocalProtocolError(f"RDY count must be >= 0, got {count}")
    return b"RDY %d\n" % count


def fin(msg_id: bytes) -> bytes:
    """``FIN <id>``: the message is done."""
    return b"FIN " + _msg_id(msg_id) + b"\n"


def req(msg_id: bytes, delay_ms: int = 0) -> bytes:
    """``REQ <id> <delay ms>``: put the message back, delivered again after the delay."""
    return b"REQ " + _msg_id(msg_id) + b" %d\n" % max(0, int(delay_ms))


def touch(msg_id: bytes) -> bytes:
    """``TOUCH <id>``: reset the message's in-flight timeout."""
    return b"TOUCH " + _msg_id(msg_id) + b"\n"


def cls() -> bytes:
    """``CLS``: start closing; nsqd answers ``CLOSE_WAIT``."""
    return b"CLS\n"


def nop() -> bytes:
    """``NOP``: the answer to a heartbeat."""
    return b"NOP\n"


def pub(topic: str, body: bytes) -> bytes:
    """``PUB <topic>`` with one message body."""
    return _with_body(b"PUB " + _topic(topic) + b"\n", body)


def mpub(topic: str, bodies: Iterable[bytes]) -> bytes:
    """``MPUB <topic>`` with ``[count][size][body]...``."""
    parts = []
    count = 0
    for body in bodies:
        parts.append(_pack_size(len(body)))
        parts.append(body)
        count += 1
    if count == 0:
        raise LocalProtocolError("MPUB needs at least one message")
    payload = _pack_size(count) + b"".join(parts)
    return _with_body(b"MPUB " + _topic(topic) + b"\n", payload)


def mpub_body(bodies: Sequence[bytes]) -> bytes:
    """MPUB's body alone, ``[count][size][body]...`` (``mpub`` = the line + its size + this).

    Built in one join over C iterators: no Python-level work per message.
    """
    if not bodies:
        raise LocalProtocolError("MPUB needs at least one message")
    sizes = map(_pack_size, map(len, bodies))
    return _pack_size(len(bodies)) + b"".join(chain.from_iterable(zip(sizes, bodies, strict=True)))


def dpub(topic: str, delay_ms: int, body: bytes) -> bytes:
    """``DPUB <topic> <delay ms>`` with one message body."""
    if delay_ms < 0:
        raise LocalProtocolError(f"DPUB delay must be >= 0, got {delay_ms}")
    return _with_body(b"DPUB " + _topic(topic) + b" %d\n" % int(delay_ms), body)


def register(topic: str, channel: str | None = None) -> bytes:
    """nsqlookupd ``REGISTER <topic> [<channel>]``."""
    line = b"REGISTER " + _topic(topic)
    if channel:
        line += b" " + _channel(channel)
    return line + b"\n"


def unregister(topic: str, channel: str | None = None) -> bytes:
    """nsqlookupd ``UNREGISTER <topic> [<channel>]``."""
    line = b"UNREGISTER " + _topic(topic)
    if channel:
        line += b" " + _channel(channel)
    return line + b"\n"


def ping() -> bytes:
    """nsqlookupd ``PING``."""
    return b"PING\n"
