"""Helpers of the tools' tests: each tool runs as a real subprocess (``python -m
apps.<tool>``) against in-process nsqd/nsqlookupd on 127.0.0.1 port 0."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from client import Consumer

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


async def run_tool(tool: Callable[..., Any], name: str, *args: str, stdin: bytes | None = b"",
                   timeout: float = TIMEOUT) -> tuple[int, bytes, str]:
    """Run a tool to its end: ``(exit status, stdout, stderr)``."""
    running = await tool(name, *args, stdin=stdin)
    code = await running.wait(timeout)
    return code, bytes(running.stdout), running.stderr.decode()


