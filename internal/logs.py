"""Leveled logging in NSQ's format, after NSQ's ``internal/lg`` package.

Records look like Go's ``log`` output with ``Ldate|Ltime|Lmicroseconds``::

    [nsqd] 2024/01/02 15:04:05.123456 INFO: TOPIC(test): created

Only the daemons' ``__main__`` modules call :func:`setup_logging`; library
modules just use ``logging.getLogger(__name__)``.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

__all__ = [
    "LEVEL_NAMES",
    "NSQFormatter",
    "get_level",
    "level_name",
    "parse_level",
    "set_level",
    "setup_logging",
]

#: NSQ level names (``--log-level`` values) → stdlib levels.
LEVEL_NAMES: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}

# How Go's lg.LogLevel.String() spells each level in a log line.
_LINE_NAMES = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "FATAL",
}

# Chatty third-party loggers kept at WARNING unless we run at debug.
_NOISY_LOGGERS = ("httpx", "httpcore", "hpack")


def parse_level(name: str) -> int:
    """Convert an NSQ level name to a stdlib :mod:`logging` level.

    Args:
        name: One of ``debug``, ``info``, ``warn``, ``error``, ``fatal``
            (case-insensitive).

    Returns:
        The matching ``logging`` level number.

    Raises:
        ValueError: For any other name, with NSQ's message.
    """
    try:
        return LEVEL_NAMES[name.lower()]
    except (KeyError, AttributeError):
        raise ValueError(
            f"invalid log level '{name}' (debug, info, warn, error, fatal)"
        ) from None


def level_name(level: int) -> str:
    """Return the NSQ name (``"info"``, ``"warn"``, ...) of a stdlib level.

    Levels between NSQ's are reported as the next lower NSQ level.
    """
    best = "debug"
    for name, value in LEVEL_NAMES.items():
        if value <= level:
            best = name
    return best


class NSQFormatter(logging.Formatter):
    """Format records as ``<prefix>YYYY/MM/DD HH:MM:SS.micros LEVEL: message``.

    Args:
        prefix: Written verbatim at the start of every line, like Go's
            ``log.New(w, prefix, ...)``; NSQ's default is ``"[nsqd] "`` with a
            trailing space.
    """

    def __init__(self, prefix: str = "") -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        created = record.created
        stamp = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(created))
        micros = int(created * 1_000_000) % 1_000_000
        level = _LINE_NAMES.get(record.levelno) or level_name(record.levelno).upper()
        line = f"{self.prefix}{stamp}.{micros:06d} {level}: {record.getMessage()}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line = f"{line}\n{record.exc_text}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class _NSQHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marker subclass so :func:`setup_logging` can replace its own handler."""


def setup_logging(prefix: str, level: str | int, *, stream: TextIO | None = None) -> None:
    """Send all log records to stderr in NSQ's format.

    Calling it again replaces the handler installed by the previous call.

    Args:
        prefix: Line prefix, written verbatim (pass ``"[nsqd] "``).
        level: NSQ level name or stdlib level number.
        stream: Output stream; defaults to ``sys.stderr``.

    Raises:
        ValueError: If ``level`` is not a valid NSQ level name.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _NSQHandler):
            root.removeHandler(handler)
    handler = _NSQHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(NSQFormatter(prefix))
    root.addHandler(handler)
    set_level(level)


def set_level(level: str | int) -> None:
    """Change the effective log level at runtime (nsqd ``PUT /config/log_level``).

    Args:
        level: NSQ level name or stdlib level number.

    Raises:
        ValueError: If ``level`` is not a valid NSQ level name.
    """
    value = parse_level(level) if isinstance(level, str) else level
    logging.getLogger().setLevel(value)
    for name in _NOISY_LOGGERS:
        quiet = logging.NOTSET if value <= logging.DEBUG else max(value, logging.WARNING)
        logging.getLogger(name).setLevel(quiet)


def get_level() -> int:
    """Return the root logger's current stdlib level."""
    return logging.getLogger().level
