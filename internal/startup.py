"""How the daemons report a failed start: one ``FATAL:`` line per cause, naming what
failed (``listen (127.0.0.1:4150) failed - Address already in use``), never a bare
exception group; then exit status 1."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio

__all__ = ["failure_messages", "listen_failed", "run_daemon"]


def listen_failed(address: str, exc: OSError | ValueError) -> OSError:
    """The error of binding ``address`` (or of parsing it: ValueError), as NSQ words it:
    ``listen (ADDR) failed - why``."""
    if isinstance(exc, ValueError):
        return OSError(errno.EINVAL, f"listen ({address}) failed - {exc}")
    reason = os.strerror(exc.errno) if isinstance(exc.errno, int) and exc.errno > 0 \
        else (exc.strerror or str(exc))
    return OSError(exc.errno, f"listen ({address}) failed - {reason}")


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for sub in exc.exceptions:
            out.extend(_leaves(sub))
        return out
    return [exc]


def failure_messages(exc: BaseException) -> list[tuple[str, BaseException | None]]:
    """One ``(message, traceback source)`` per cause of a failed start: our own errors
    (OSError with a message, RuntimeError) speak for themselves; anything else is a bug
    and keeps its traceback."""
    out: list[tuple[str, BaseException | None]] = []
    for leaf in _leaves(exc):
        if isinstance(leaf, OSError):
            text = leaf.strerror if leaf.strerror and len(leaf.args) == 2 else str(leaf)
            if leaf.filename is not None:
                text = f"{leaf.filename}: {leaf.strerror}"
            out.append((text, None))
        elif isinstance(leaf, RuntimeError) and type(leaf) is RuntimeError:
            out.append((str(leaf), None))
        else:
            out.append((f"unexpected error - {type(leaf).__name__}: {leaf}", leaf))
    return out


def run_daemon(logger: logging.Logger, main: Callable[..., Awaitable[Any]], *args: Any) -> int:
    """``trio.run(main, *args)``; a failure is logged as FATAL lines and gives status 1."""
    try:
        trio.run(main, *args)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # every cause is named below
        if isinstance(exc, BaseExceptionGroup) and all(
                isinstance(e, KeyboardInterrupt) for e in _leaves(exc)):
            raise
        for text, source in failure_messages(exc):
            logger.critical("%s", text, exc_info=source)
        return 1
    return 0
