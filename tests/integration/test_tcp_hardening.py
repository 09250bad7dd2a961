"""Hostile TCP clients against an nsqd subprocess: nsqd's memory stays flat.

Oversized size headers are refused before the body is read; the daemon's RSS is read
from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from client.protocol import FrameType, commands
from durability_helpers import Daemon
from helpers import RawConn

MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    d = await Daemon(tmp_path).start()
    yield d
    try:
        await d.stop()
    finally:
        d.kill()
        Daemon.started.remove(d)


async def _refused(daemon: Daemon, line: bytes, size: int, expected: bytes,
                   identify: bool = True) -> None:
    """Send ``line`` + a size header + 1 MiB of the body; the error must come anyway."""
    conn = await RawConn.open(daemon.tcp)
    if identify:
        await conn.identify(heartbeat_interval=-1)
    await conn.send(line + struct.pack(">l", size))

    async def body_start() -> None:
        try:
            await conn.send(b"x" * MB)
        except trio.BrokenResourceError:
            pass  # nsqd closed the connection without reading it

    async with trio.open_nursery() as nursery:
        nursery.start_soon(body_start)
        ftype, data = await conn.frame(timeout=20)
    assert (ftype, data) == (FrameType.ERROR, expected)
    assert await conn.closed(timeout=20)
    await conn.aclose()


@pytest.mark.parametrize("line, size, expected", [
    (b"PUB t\n", 100 * MB, b"E_BAD_MESSAGE PUB message too big 104857600 > 1048576"),
    (b"PUB t\n", 4 * MB, b"E_BAD_MESSAGE PUB message too big 4194304 > 1048576"),
    (b"DPUB t 10\n", 4 * MB, b"E_BAD_MESSAGE DPUB message too big 4194304 > 1048576"),
    (b"MPUB t\n", 100 * MB, b"E_BAD_BODY MPUB body too big 104857600 > 5242880"),
    (b"IDENTIFY\n", 100 * MB, b"E_BAD_BODY IDENTIFY body too big 104857600 > 5242880"),
    (b"AUTH\n", 100 * MB, b"E_BAD_BODY AUTH body too big 104857600 > 5242880"),
])
async def test_oversized_body_refused_on_its_size_header(daemon, line, size, expected):
    await _refused(daemon, line, size, expected, identify=not line.startswith(b"IDENTIFY"))


async def test_fifty_oversized_publishers_leave_rss_flat(daemon):
    # warm up: one refused publisher, so allocator start-up costs are not counted
    await _refused(daemon, b"PUB t\n", 4 * MB, b"E_BAD_MESSAGE PUB message too big 4194304 > 1048576")
    before = rss_mb(daemon.pid)
    peak = before

    async def one(size: int) -> None:
        await _refused(daemon, b"PUB t\n", size,
                       b"E_BAD_MESSAGE PUB message too big %d > 1048576" % size)

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mb(daemon.pid))
            await trio.sleep(0.01)

    async with trio.open_nursery() as outer:
        outer.start_soon(watch)
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(one, (100 if i % 2 else 4) * MB)
        outer.cancel_scope.cancel()
    after = rss_mb(daemon.pid)
    # before the fix each connection buffered up to 4 MiB (50 → ~200 MiB)
    assert peak - before < 25, (before, peak, after)
    assert after - before < 25, (before, peak, after)
    # nsqd is still healthy
    conn = await RawConn.open(daemon.tcp)
    await conn.pub("t", b"fine")
    await conn.aclose()
