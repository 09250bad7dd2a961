"""Fixtures of the tools' tests (helpers in apps_helpers)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from apps_helpers import ROOT, Tool

from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions


@pytest.fixture
async def tool(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Any]]:
    """``await tool("nsq_tail", *args, stdin=bytes|None)`` → a running :class:`Tool`."""
    started: list[Tool] = []

    async def start(name: str, *args: str, stdin: bytes | None = None) -> Tool:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", f"apps.{name}", *args], cwd=str(ROOT), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        running = Tool(process)
        assert process.stdout is not None and process.stderr is not None and process.stdin is not None
        nursery.start_soon(running._collect, process.stdout, running.stdout)
        nursery.start_soon(running._collect, process.stderr, running.stderr)

        async def feed(stream: trio.abc.SendStream, data: bytes) -> None:
            try:
                for i in range(0, len(data), 1 << 16):
                    await stream.send_all(data[i:i + (1 << 16)])
            except trio.BrokenResourceError:
                pass
            finally:
                await stream.aclose()

        if stdin is not None:
            nursery.start_soon(feed, process.stdin, stdin)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.process.returncode is None:
            running.process.kill()
            with trio.move_on_after(10):
                await running.process.wait()


@pytest.fixture
async def lookupd(nursery: trio.Nursery) -> NSQLookupd:
    """An in-process nsqlookupd; ``.tcp`` / ``.http`` are its ``host:port``."""
    server: NSQLookupd = await nursery.start(NSQLookupd(LookupdOptions(
        tcp_address="127.0.0.1:0", http_address="127.0.0.1:0", broadcast_address="127.0.0.1")).run)
    assert server.real_tcp_addr is not None and server.real_http_addr is not None
    server.tcp = "%s:%d" % server.real_tcp_addr  # type: ignore[attr-defined]
    server.http = "%s:%d" % server.real_http_addr  # type: ignore[attr-defined]
    return server

