"""Small pieces shared by the protocol V2 command handlers: NSQ's errors and parsers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from client.protocol import Command

from .errors import FatalClientError

if TYPE_CHECKING:
    from .transport import UpgradePlan

__all__ = ["AwaitIO", "NeedBody", "StartUpgrade", "bad_size", "base10", "fatal", "go_quote",
           "msg_id_param", "sized_body", "unauthorized"]


class NeedBody(Exception):
    """A body-carrying command checked before its body arrived: parameters are fine."""


class AwaitIO(Exception):
    """A command needs I/O (the auth server): the loop awaits ``fn()`` in order.

    With ``retry`` the command's handler runs again afterwards and answers; without,
    ``fn()``'s result is the answer.
    """

    def __init__(self, fn: Any, retry: bool) -> None:
        self.fn = fn
        self.retry = retry


class StartUpgrade(Exception):
    """IDENTIFY negotiated TLS/snappy/deflate: send the response, then upgrade."""

    def __init__(self, plan: UpgradePlan) -> None:
        self.plan = plan


def fatal(code: str, desc: str) -> FatalClientError:
    """An error that closes the connection after it is sent."""
    return FatalClientError(code, desc)


def msg_id_param(param: bytes) -> bytes:
    """A FIN/REQ/TOUCH message ID parameter (16 bytes) or E_INVALID."""
    if len(param) != 16:
        raise fatal("E_INVALID", "invalid message ID")
    return param


#: Python refuses to parse longer decimal numbers (and NSQ's uint64 cannot hold them)
_MAX_DIGITS = 4300


def base10(param: bytes) -> int | None:
    """NSQ's ByteToBase10: digits only, no sign (None if not a number)."""
    return int(param) if param.isdigit() and len(param) <= _MAX_DIGITS else None


def sized_body(cmd: Command, name: str, max_body_size: int) -> bytes:
    """The body of IDENTIFY/AUTH/MPUB, or NSQ's E_BAD_BODY for a refused size."""
    body = cmd.body
    if body is None:
        size = bad_size(cmd)
        if size > max_body_size:
            raise fatal("E_BAD_BODY", f"{name} body too big {size} > {max_body_size}")
        raise fatal("E_BAD_BODY", f"{name} invalid body size {size}")
    if len(body) > max_body_size:
        raise fatal("E_BAD_BODY", f"{name} body too big {len(body)} > {max_body_size}")
    return body


def bad_size(cmd: Command) -> int:
    """The refused body size of a body-less command, or :class:`NeedBody` if none yet."""
    if cmd.bad_body_size is None:
        raise NeedBody()
    return cmd.bad_body_size


def go_quote(s: str) -> str:
    """Go's %q for the ASCII names we quote."""
    return json.dumps(s)


def unauthorized(name: str, topic: str, channel: str) -> FatalClientError:
    """NSQ's E_UNAUTHORIZED for a command on a topic/channel the secret does not grant."""
    return fatal("E_UNAUTHORIZED", f"AUTH failed for {name} on {go_quote(topic)} {go_quote(channel)}")
