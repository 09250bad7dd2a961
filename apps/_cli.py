"""Command-line plumbing of the tools: Go-style flags, one-line errors, signals.

A tool declares its flags as an options dataclass (see :mod:`internal.options`), calls
:func:`parse`, checks the combination (raising :class:`UsageError`), then hands its
``async`` main to :func:`run`. Whatever goes wrong ends as one line on stderr:
exit status 2 for bad usage, 1 for a failure at run time, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn, TypeVar

import trio

from client.errors import NSQError
from internal.logs import setup_logging
from internal.options import resolve

__all__ = ["ToolError", "UsageError", "fail", "parse", "run", "start", "watch_signals"]

T = TypeVar("T")

logger = logging.getLogger("apps")


class UsageError(Exception):
    """A bad flag value or combination (exit status 2)."""


class ToolError(Exception):
    """A failure at run time (exit status 1)."""


def parse(options_cls: type[T], argv: Sequence[str] | None, prog: str,
          description: str) -> tuple[T, set[str]]:
    """Parse Go-style flags into ``options_cls``.

    Returns:
        ``(options, explicit)``: the options and the names of the fields given on the
        command line (to tell a default from an explicit value).
    """
    options, namespace = resolve(options_cls, argv, prog=prog, description=description,
                                 brief_errors=True)
    explicit = set(vars(namespace)) - {"config", "version"}
    return options, explicit


def fail(prog: str, message: str, code: int) -> NoReturn:
    """Print ``prog: error: message`` on stderr and exit with ``code``."""
    sys.stderr.write(f"{prog}: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for sub in exc.exceptions for leaf in _leaves(sub)]
    return [exc]


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def run(prog: str, main: Callable[..., Awaitable[int | None]], *args: Any,
        log_level: str = "info", client_log_level: int = logging.WARNING,
        log_prefix: str | None = None) -> NoReturn:
    """Run ``main(*args)`` under Trio and exit with its status.

    Logging goes to stderr in NSQ's format with the prefix ``[prog]`` (or ``log_prefix``);
    the client library logs only from ``client_log_level`` up (unless ``log_level`` is
    debug). Exceptions become one line on stderr: :class:`UsageError` exits 2;
    :class:`ToolError`, NSQ and OS errors exit 1 (anything else too, named by its type);
    Ctrl-C before the tool handles signals exits 130.
    """
    setup_logging(f"[{prog}] " if log_prefix is None else log_prefix, log_level)
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("client").setLevel(client_log_level)
    try:
        code = trio.run(main, *args)
    except BaseException as exc:  # every failure becomes one line
        leaves = [leaf for leaf in _leaves(exc) if not isinstance(leaf, trio.Cancelled)]
        if any(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            sys.exit(130)
        if any(isinstance(leaf, SystemExit) for leaf in leaves):
            raise
        first = leaves[0] if leaves else exc
        if isinstance(first, UsageError):
            fail(prog, _describe(first), 2)
        if isinstance(first, (ToolError, OSError, NSQError)):
            fail(prog, _describe(first), 1)
        logger.debug("unexpected failure", exc_info=first)  # --log-level debug shows where
        fail(prog, f"{type(first).__name__}: {_describe(first)}", 1)
    sys.exit(code or 0)


def start(prog: str, check: Callable[[], object], main: Callable[..., Awaitable[int | None]],
          *args: Any, **run_options: Any) -> NoReturn:
    """``check()`` the options (a :class:`UsageError` exits 2 at once), then :func:`run`."""
    try:
        check()
    except UsageError as exc:
        fail(prog, str(exc), 2)
    run(prog, main, *args, **run_options)


async def watch_signals(on_signal: Callable[[int], object],
                        signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM), *,
                        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Call ``on_signal(signum)`` for each of ``signals`` received, until cancelled.

    Start it with ``nursery.start`` so the signals are caught from then on. A second
    SIGINT/SIGTERM while the first is being handled raises KeyboardInterrupt (exit 130).
    """
    stopping = False
    with trio.open_signal_receiver(*signals) as received:
        task_status.started()
        async for signum in received:
            if signum in (signal.SIGINT, signal.SIGTERM):
                if stopping:
                    raise KeyboardInterrupt
                stopping = True
                logger.info("received signal %s, exiting", signal.Signals(signum).name)
            on_signal(signum)
