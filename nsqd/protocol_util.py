"""The shapes protocol V2's commands are made of: outcomes, the command table's row, parsers.

A command is a pure *check* (state, parameters, sizes; no side effects) and a *run*
that does the work and returns what the read loop does next: send a response (bytes),
send nothing (None), send an error (a :class:`~nsqd.errors.ClientError` value), await
I/O (:class:`AwaitIO`) or upgrade the stream (:class:`StartUpgrade`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from client.protocol import Command, encode_error

from .client_v2 import ClientV2, State
from .errors import (
    ClientError,
    FatalClientError,
    body_too_big,
    invalid_body_size,
    invalid_msg_id,
)

if TYPE_CHECKING:
    from .nsqd import NSQD
    from .transport import UpgradePlan

__all__ = ["AwaitIO", "Check", "CommandSpec", "Outcome", "Reply", "Run", "StartUpgrade",
           "base10", "body_error", "msg_id_error", "report"]

logger = logging.getLogger("nsqd.protocol_v2")

#: what a command answers without waiting: a response, nothing, or an error frame
Reply = bytes | ClientError | None


@dataclass(frozen=True, slots=True)
class AwaitIO:
    """The command needs I/O first (the auth server): the loop awaits ``fn()`` in order
    (later commands wait) and handles its result as the command's reply."""

    fn: Callable[[], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class StartUpgrade:
    """IDENTIFY negotiated TLS/snappy/deflate: send the plan's response, then upgrade."""

    plan: UpgradePlan


#: what running a command returns to the read loop
Outcome = Reply | AwaitIO | StartUpgrade
Check = Callable[["NSQD", ClientV2, Command], "ClientError | None"]
Run = Callable[["NSQD", ClientV2, Command], Outcome]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """One row of protocol V2's command table.

    Attributes:
        states: the client states the command is allowed in (None: any).
        check: the pure checks, in NSQ's order; a body-carrying command is also checked
            before its body arrived (``body`` and ``bad_body_size`` None), which must
            then judge its line alone.
        run: does the command (only after ``check`` passed).
        body_limit: for a command with a body, the option bounding the body's size.
    """

    states: frozenset[State] | None
    check: Check
    run: Run
    body_limit: str | None = None


#: Python refuses to parse longer decimal numbers (and NSQ's uint64 cannot hold them)
_MAX_DIGITS = 4300


def base10(param: bytes) -> int | None:
    """NSQ's ByteToBase10: digits only, no sign (None if not a number)."""
    return int(param) if param.isdigit() and len(param) <= _MAX_DIGITS else None


def msg_id_error(param: bytes) -> ClientError | None:
    """A FIN/REQ/TOUCH message ID must be 16 bytes."""
    return None if len(param) == 16 else invalid_msg_id()


def body_error(cmd: Command, max_body_size: int) -> ClientError | None:
    """IDENTIFY/AUTH/MPUB's body size (None also while the body has not arrived)."""
    body = cmd.body
    if body is None:
        size = cmd.bad_body_size
        if size is None:
            return None
        if size > max_body_size:
            return body_too_big(cmd.name, size, max_body_size)
        return invalid_body_size(cmd.name, size)
    if len(body) > max_body_size:
        return body_too_big(cmd.name, len(body), max_body_size)
    return None


def report(client: ClientV2, err: ClientError) -> bool:
    """Log and send a command's error frame; return whether it closes the connection."""
    closing = isinstance(err, FatalClientError)
    ctx = f" - {err.parent}" if err.parent else ""
    logger.log(logging.INFO if closing else logging.DEBUG, "[%s] - %s%s", client, err, ctx)
    client.send(encode_error(err.wire()))
    return closing
