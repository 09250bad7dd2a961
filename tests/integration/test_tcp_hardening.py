"""Hostile TCP clients against an nsqd subprocess: nsqd's memory stays flat.

Oversized size headers are refused before the body is read; the daemon's RSS is read
from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio
from durability_helpers import Daemon
from helpers import RawConn

from client.protocol import FrameType, commands, decode_message

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
        nursery.start_soon(_trickle, conn, commands.pub("t", b"x" * 100), 0.1)  # ~11 s
        assert b"E_" not in await _eof(conn)  # closed without an error frame, as NSQ
        nursery.cancel_scope.cancel()
    elapsed = trio.current_time() - t0
    assert 0.9 < elapsed < 6, elapsed
    assert "t" not in server.nsqd.topics


async def test_slow_but_complete_commands_stay_connected(start_nsqd):
    server = await start_nsqd(client_timeout=1.0, http_address="")
    conn = await RawConn.open(server.tcp_address)
    await conn.identify()
    # each PUB trickles in well within the timeout; together they take longer
    for _ in range(6):
        with trio.fail_after(5):
            await _trickle(conn, commands.pub("slow", b"ab"), 0.02)
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
    lines = [r for r in caplog.records if "max-connections" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    # the clients already connected are unaffected; a freed slot is usable again
    await conns[0].pub("limited", b"again")
    await conns[0].aclose()
    with trio.fail_after(10):
        while server.nsqd.tcp_limit.open >= 3:
            await trio.sleep(0.01)
    again = await RawConn.open(server.tcp_address)
    await again.pub("limited", b"freed")


# ------------------------------------------------------------------ consumers that do not read
@pytest.mark.slow
async def test_stuck_subscriber_gets_no_more_and_rss_stays_flat(tmp_path):
    """A subscriber with RDY 1000 that never reads its socket, next to a healthy one:
    the healthy one gets every message, nsqd's memory does not grow meanwhile."""
    d = await Daemon(tmp_path, "--mem-queue-size", "50", "--msg-timeout", "2s").start()
    try:
        await _stuck_subscriber_scenario(d)
    finally:
        await d.stop()
        d.kill()
        Daemon.started.remove(d)


async def _stuck_subscriber_scenario(d: Daemon) -> None:
    stuck = trio.socket.socket()
    stuck.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await stuck.connect(d.tcp)
    await stuck.send(b"  V2" + commands.sub("stuck", "ch") + commands.rdy(1000))

    healthy = await RawConn.open(d.tcp)
    await healthy.sub("stuck", "ch", rdy=0)  # ready after 8 s: a backlog on disk first
    got: set[bytes] = set()
    publisher = await RawConn.open(d.tcp)
    body = b"b" * 10_000
    total = 0
    samples: list[float] = []
    healthy_send = trio.Lock()  # FINs (consume task) and the RDY (main task) share a stream

    async def consume() -> None:
        while True:
            ftype, data = await healthy.frame(timeout=30)
            if ftype == FrameType.MESSAGE:
                msg = decode_message(data)
                got.add(msg.body[:12])
                async with healthy_send:
                    await healthy.send(commands.fin(msg.id))

    async def channel_stats() -> dict:
        async with httpx.AsyncClient() as http:
            url = f"http://{d.http[0]}:{d.http[1]}/stats?format=json&topic=stuck"
            stats = (await http.get(url)).json()
        (channel,) = stats["topics"][0]["channels"]
        return channel

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        t0 = trio.current_time()
        backlog = 0
        while trio.current_time() - t0 < 20:
            if not backlog and trio.current_time() - t0 > 8:
                backlog = (await channel_stats())["backend_depth"]
                async with healthy_send:
                    await healthy.send(commands.rdy(200))
            batch = [b"%012d" % (total + i) + body for i in range(20)]
            total += len(batch)
            await publisher.send(commands.mpub("stuck", batch))
            assert await publisher.response() == b"OK"
            samples.append(rss_mb(d.pid))
            await trio.sleep(0.05)
        with trio.fail_after(30):  # what the stuck one held times out to the healthy one
            while len(got) < total:
                await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert backlog > 1000  # the backlog went to disk meanwhile
    warm = samples[len(samples) // 6]  # after ~3 s
    assert max(samples) - warm < 10, (warm, max(samples), samples[-1])
    channel = await channel_stats()
    assert len(channel["clients"]) == 2  # the stuck subscriber stayed connected
    stuck.close()


async def _stuck_socket(address: tuple[str, int], setup: bytes) -> trio.socket.SocketType:
    """A connection with a tiny receive buffer that sends ``setup`` and never reads."""
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect(address)
    await sock.send(b"  V2" + setup)
    return sock


async def test_unread_output_is_bounded_in_bytes(start_nsqd):
    server = await start_nsqd(msg_timeout=1.0, http_address="")
    stuck = await _stuck_socket(server.tcp_address, commands.sub("bounded", "ch") + commands.rdy(1000))
    with trio.fail_after(10):
        while not server.nsqd.clients or next(iter(server.nsqd.clients.values())).ready_count != 1000:
            await trio.sleep(0.01)
    (stuck_client,) = server.nsqd.clients.values()
    publisher = await RawConn.open(server.tcp_address)
    body = b"b" * 10_000
    for i in range(10):
        await publisher.send(commands.mpub("bounded", [b"%04d" % (i * 50 + j) + body for j in range(50)]))
        assert await publisher.response() == b"OK"
    limit = stuck_client.output_limit
    assert limit == 4 * server.nsqd.options.max_output_buffer_size
    # nsqd holds at most its output limit (plus one message) for the stuck client
    assert stuck_client.out_bytes < limit + len(body) + 100
    assert stuck_client.in_flight < 1000
    healthy = await RawConn.open(server.tcp_address)
    await healthy.sub("bounded", "ch", rdy=100)
    got = set()
    with trio.fail_after(20):
        while len(got) < 500:
            msg = await healthy.message()
            got.add(msg.body[:4])
            await healthy.send(commands.fin(msg.id))
    # re-handed to the healthy one after its timeout, never again to the stuck one
    assert stuck_client.out_bytes < limit + len(body) + 100
    stuck.close()


async def test_responses_never_read_close_the_connection(start_nsqd):
    server = await start_nsqd(client_timeout=1.0, http_address="")
    stuck = await _stuck_socket(server.tcp_address, b"")
    pubs = commands.pub("unread", b"x") * 20_000

    async def flood() -> None:
        try:
            while True:
                await stuck.send(pubs)
        except OSError:
            pass  # closed by nsqd

    async with trio.open_nursery() as nursery:
        nursery.start_soon(flood)
        with trio.fail_after(30):
            while server.nsqd.tcp_limit.open:
                (client,) = server.nsqd.clients.values() or [None]
                if client is not None:
                    assert client.out_bytes <= client.reader_limit + len(pubs)
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    stuck.close()
    other = await RawConn.open(server.tcp_address)
    await other.pub("unread", b"fine")
