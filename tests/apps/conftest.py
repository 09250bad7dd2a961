"""Fixtures of the tools' tests: each tool runs as a real subprocess (``python -m
apps.<tool>``) against in-process nsqd/nsqlookupd on 127.0.0.1 port 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from client import Consumer
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60.0


def tcp(server: Any) -> str:
    return "%s:%d" % server.tcp_address


def http(server: Any) -> str:
    return "%s:%d" % server.http_address


async def consume(server: Any, topic: str, count: int, channel: str = "check",
                  timeout: float = TIMEOUT) -> list[bytes]:
    """Receive (and FIN) ``count`` message bodies of ``topic`` from ``server``."""
    got: list[bytes] = []
    if count == 0:
        return got
    async with Consumer(topic, channel, nsqd_tcp_addresses=[tcp(server)], max_in_flight=500) as consumer:
        with trio.fail_after(timeout):
            async for message in consumer:
                got.append(message.body)
                await message.finish()
                if len(got) == count:
                    break
    return got


class Tool:
    """A running tool: stdout collected (or read line by line), stderr collected."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.stdout = bytearray()
        self.stderr = bytearray()
        self._changed = trio.Event()

    async def _collect(self, stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        async for chunk in stream:
            into.extend(chunk)
            self._changed.set()
            self._changed = trio.Event()
        self._changed.set()

    async def wait_output(self, predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        """Wait until ``predicate()`` holds (checked whenever output arrives)."""
        with trio.fail_after(timeout):
            while not predicate():
                if self.process.returncode is not None:
                    await trio.sleep(0.05)  # let the collectors take the last output
                    if predicate():
                        return
                    raise AssertionError(f"tool exited {self.process.returncode}: {self.stderr.decode()}")
                with trio.move_on_after(0.2):
                    await self._changed.wait()

    def lines(self) -> list[bytes]:
        return bytes(self.stdout).splitlines()

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float = TIMEOUT) -> int:
        with trio.fail_after(timeout):
            code = await self.process.wait()
        await trio.sleep(0.05)  # the collectors reach EOF
        return code


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


async def run_tool(tool: Callable[..., Any], name: str, *args: str, stdin: bytes | None = b"",
                   timeout: float = TIMEOUT) -> tuple[int, bytes, str]:
    """Run a tool to its end: ``(exit status, stdout, stderr)``."""
    running = await tool(name, *args, stdin=stdin)
    code = await running.wait(timeout)
    return code, bytes(running.stdout), running.stderr.decode()


@pytest.fixture
async def lookupd(nursery: trio.Nursery) -> NSQLookupd:
    """An in-process nsqlookupd; ``.tcp`` / ``.http`` are its ``host:port``."""
    server: NSQLookupd = await nursery.start(NSQLookupd(LookupdOptions(
        tcp_address="127.0.0.1:0", http_address="127.0.0.1:0", broadcast_address="127.0.0.1")).run)
    assert server.real_tcp_addr is not None and server.real_http_addr is not None
    server.tcp = "%s:%d" % server.real_tcp_addr  # type: ignore[attr-defined]
    server.http = "%s:%d" % server.real_http_addr  # type: ignore[attr-defined]
    return server

