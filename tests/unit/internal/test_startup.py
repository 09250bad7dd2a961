"""internal.startup: a failed start is one FATAL line per cause, never a bare group."""

from __future__ import annotations

import errno
import logging
from typing import Any

import trio
import trio.lowlevel

from internal.startup import failure_messages, listen_failed, run_daemon


def test_listen_failed_names_the_address() -> None:
    exc = listen_failed("127.0.0.1:4150", OSError(errno.EADDRINUSE, "[Errno 98] whatever"))
    assert exc.errno == errno.EADDRINUSE
    assert exc.strerror == "listen (127.0.0.1:4150) failed - Address already in use"


def test_nested_groups_are_flattened() -> None:
    group = ExceptionGroup("Exceptions from Trio nursery", [
        ExceptionGroup("inner", [listen_failed("h:1", OSError(errno.EACCES, "x"))]),
        RuntimeError("failed to load metadata - bad"),
        FileNotFoundError(errno.ENOENT, "No such file or directory", "/x/y"),
    ])
    texts = [t for t, _ in failure_messages(group)]
    assert texts == ["listen (h:1) failed - Permission denied",
                     "failed to load metadata - bad",
                     "/x/y: No such file or directory"]


def test_a_bug_keeps_its_traceback() -> None:
    exc = KeyError("k")
    ((text, source),) = failure_messages(ExceptionGroup("g", [exc]))
    assert text == "unexpected error - KeyError: 'k'" and source is exc


def test_run_daemon_logs_fatal_lines_and_returns_1(caplog: Any) -> None:
    async def failing() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep_forever)
            raise RuntimeError("failed to lock data-path: open /nope: No such file")

    async def fine() -> None:
        await trio.lowlevel.checkpoint()

    log = logging.getLogger("t")
    caplog.set_level(logging.INFO)
    assert run_daemon(log, failing) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.CRITICAL] == [
        "failed to lock data-path: open /nope: No such file"]
    assert "Trio nursery" not in caplog.text
    assert run_daemon(log, fine) == 0


def test_listen_failed_on_a_bad_address() -> None:
    exc = listen_failed("h:99999", ValueError("port out of range in address 'h:99999'"))
    assert exc.strerror == "listen (h:99999) failed - port out of range in address 'h:99999'"
