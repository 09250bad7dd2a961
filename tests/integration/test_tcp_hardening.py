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


# ------------------------------------------------------------------ slow clients
async def _trickle(conn: RawConn, data: bytes, interval: float) -> None:
    """Send ``data`` a byte at a time until nsqd closes the connection."""
    try:
        for i in range(len(data)):
            await conn.send(data[i:i + 1])
            await trio.sleep(interval)
    except trio.BrokenResourceError:
        pass


async def _eof(conn: RawConn, timeout: float = 10) -> bytes:
    """Everything nsqd sends until it closes (heartbeats are not answered)."""
    got = b""
    with trio.fail_after(timeout):
        while chunk := await conn.stream.receive_some(65536):
            got += chunk
    return got


@pytest.mark.parametrize("identify", [{}, {"heartbeat_interval": -1}])
async def test_trickled_command_times_out(start_nsqd, identify):
    # every byte arrives well within the timeout, the command as a whole does not
    server = await start_nsqd(client_timeout=1.0, http_address="")
    conn = await RawConn.open(server.tcp_address)
    await conn.identify(**identify)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_trickle, conn, commands.pub("t", b"x" * 40), 0.1)
        assert b"E_" not in await _eof(conn)  # closed without an error frame, as NSQ
        nursery.cancel_scope.cancel()
    elapsed = trio.current_time() - t0
    assert 0.9 < elapsed < 3.5, elapsed
    assert "t" not in server.nsqd.topics


async def test_slow_but_complete_commands_stay_connected(start_nsqd):
    server = await start_nsqd(client_timeout=1.0, http_address="")
    conn = await RawConn.open(server.tcp_address)
    await conn.identify()
    # each PUB trickles in within the timeout; together they take 3 timeouts
    for _ in range(6):
        with trio.fail_after(5):
            await _trickle(conn, commands.pub("slow", b"ab"), 0.03)
        assert await conn.response() == b"OK"
    assert server.nsqd.topics["slow"].message_count == 6


async def test_max_connections(start_nsqd, caplog):
    server = await start_nsqd(max_connections=3, http_address="")
    conns = [await RawConn.open(server.tcp_address) for _ in range(3)]
    for i, conn in enumerate(conns):
        await conn.pub("limited", b"%d" % i)
    refused = [await RawConn.open(server.tcp_address) for _ in range(5)]
    for conn in refused:
        assert await conn.closed()
    # one log line for the burst, not one per connection
    lines = [r for r in caplog.records if "--max-connections" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    # the clients already connected are unaffected; a freed slot is usable again
    await conns[0].pub("limited", b"again")
    await conns[0].aclose()
    with trio.fail_after(10):
        while server.nsqd.tcp_connections >= 3:
            await trio.sleep(0.01)
    again = await RawConn.open(server.tcp_address)
    await again.pub("limited", b"freed")
