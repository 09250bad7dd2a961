"""Hostile HTTP clients against nsqd, nsqlookupd and nsqadmin as real processes: resets at
every stage, oversized bodies, connection floods. The daemon must keep answering /ping,
must not exit, and must not log a traceback."""

from __future__ import annotations

import re
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import tls_client_hello

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30
_LISTEN = re.compile(rb"HTTP: listening on (\S+):(\d+)")


@dataclass
class Daemon:
    process: trio.Process
    http: tuple[str, int]
    log: bytearray = field(default_factory=bytearray)
    grew: trio.Event = field(default_factory=trio.Event)

    async def wait_for(self, pattern: bytes) -> re.Match[bytes]:
        """The first match of ``pattern`` in the log, once it has been logged."""
        with trio.fail_after(TIMEOUT):
            while (found := re.search(pattern, self.log)) is None:
                await self.grew.wait()
        return found

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss(self) -> int:
        """Resident set size in bytes (Linux)."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = re.search(r"VmRSS:\s+(\d+) kB", status)
        assert kib is not None
        return int(kib.group(1)) * 1024


def _command(kind: str, tmp_path: Path) -> list[str]:
    cmd = [sys.executable, "-m", kind, "--http-address", "127.0.0.1:0"]
    if kind == "nsqd":
        return [*cmd, "--tcp-address", "127.0.0.1:0", "--data-path", str(tmp_path)]
    if kind == "nsqlookupd":
        return [*cmd, "--tcp-address", "127.0.0.1:0"]
    with socket.socket() as s:  # nsqadmin needs an nsqd address; nothing listens here
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    return [*cmd, f"--nsqd-http-address={dead}"]


@pytest.fixture
async def spawn(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    daemons: list[Daemon] = []

    async def drain(daemon: Daemon, stream: trio.abc.ReceiveStream) -> None:
        while chunk := await stream.receive_some(65536):
            daemon.log += chunk
            daemon.grew.set()
            daemon.grew = trio.Event()

    async def start(kind: str, *args: str) -> Daemon:
        process = await trio.lowlevel.open_process(
            [*_command(kind, tmp_path), *args], cwd=str(ROOT), stderr=subprocess.PIPE)
        assert process.stderr is not None
        seen = b""
        with trio.fail_after(TIMEOUT):
            while (found := _LISTEN.search(seen)) is None:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, f"{kind} exited: {seen.decode(errors='replace')}"
                seen += chunk
        daemon = Daemon(process, (found.group(1).decode(), int(found.group(2))), bytearray(seen))
        daemons.append(daemon)
        nursery.start_soon(drain, daemon, process.stderr)
        return daemon

    yield start
    for daemon in daemons:
        if daemon.process.returncode is None:
            daemon.process.kill()
        with trio.move_on_after(10):
            await daemon.process.wait()


# ---------------------------------------------------------------------------- raw clients
async def connect(daemon: Daemon, *, rcvbuf: int = 0) -> trio.socket.SocketType:
    sock = trio.socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    await sock.connect(daemon.http)
    return sock


def reset(sock: trio.socket.SocketType) -> None:
    """Close with SO_LINGER 0: a RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def send_all(sock: trio.socket.SocketType, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[await sock.send(view):]


async def read_head(sock: trio.socket.SocketType) -> bytes:
    data = b""
    with trio.fail_after(TIMEOUT):
        while b"\r\n\r\n" not in data:
            chunk = await sock.recv(65536)
            assert chunk, data
            data += chunk
    return data


async def closed(sock: trio.socket.SocketType) -> bool:
    """True once the daemon closes ``sock`` (whatever it sent first is discarded)."""
    with trio.fail_after(TIMEOUT):
        while True:
            try:
                if not await sock.recv(65536):
                    return True
            except ConnectionResetError:
                return True


async def assert_serving(daemon: Daemon) -> None:
    sock = await connect(daemon)
    await send_all(sock, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await read_head(sock)
    assert head.startswith(b"HTTP/1.1 200"), head
    sock.close()
    assert daemon.alive()


#: a request whose many pipelined answers add up to megabytes, per daemon
_LARGE = {
    "nsqd": b"POST /pub?topic=flood HTTP/1.1\r\nContent-Length: 1\r\n\r\nx" * 40000,
    "nsqlookupd": b"GET /info HTTP/1.1\r\n\r\n" * 40000,
    "nsqadmin": b"GET /static/nsqadmin.js HTTP/1.1\r\n\r\n" * 1000,
}


# ---------------------------------------------------------------------------- tests
@pytest.mark.parametrize("kind", ["nsqd", "nsqlookupd", "nsqadmin"])
async def test_daemon_survives_resets_at_every_stage(spawn: Callable[..., Any], kind: str) -> None:
    daemon = await spawn(kind)
    errors = {
        "bad request": (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        "long header": (b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"a" * 4096, b"431"),
        "TLS ClientHello": (tls_client_hello(), b"400"),
    }
    for name, (payload, status) in errors.items():
        for _ in range(2):
            sock = await connect(daemon)
            await send_all(sock, payload)
            assert (await read_head(sock)).startswith(b"HTTP/1.1 " + status), name
            reset(sock)  # while the daemon drains the connection before closing it
            await assert_serving(daemon)
    for partial in (b"GET /pi", b"POST /topic/create HTTP/1.1\r\nContent-Length: 50\r\n\r\nab"):
        sock = await connect(daemon)
        await send_all(sock, partial)
        reset(sock)
        await assert_serving(daemon)
    sock = await connect(daemon, rcvbuf=4096)
    await send_all(sock, _LARGE[kind][:65536])  # more follows while answers pile up
    with trio.fail_after(TIMEOUT):
        assert await sock.recv(1) == b"H"
    with trio.move_on_after(1):  # until the daemon stops reading: its answers are not read
        await send_all(sock, _LARGE[kind][65536:])
    reset(sock)
    await assert_serving(daemon)
    assert b"Traceback" not in daemon.log and b"FATAL" not in daemon.log, daemon.log[-3000:]


@pytest.mark.parametrize("kind", ["nsqd", "nsqlookupd", "nsqadmin"])
async def test_max_connections(spawn: Callable[..., Any], kind: str) -> None:
    daemon = await spawn(kind, "--max-connections", "4")
    kept = []
    for _ in range(4):
        sock = await connect(daemon)
        await send_all(sock, b"GET /ping HTTP/1.1\r\n\r\n")
        await read_head(sock)
        kept.append(sock)
    for _ in range(3):
        assert await closed(await connect(daemon))
    for sock in kept:
        await send_all(sock, b"GET /ping HTTP/1.1\r\n\r\n")
        assert (await read_head(sock)).startswith(b"HTTP/1.1 200")
    await daemon.wait_for(rb"HTTP: 1 connection\(s\) refused: max-connections \(4\) reached")
    assert daemon.log.count(b"refused: max-connections") == 1
    for sock in kept:
        sock.close()
    with trio.fail_after(TIMEOUT):
        while True:  # the slots free up once the daemon sees the closes
            try:
                await assert_serving(daemon)
                break
            except (AssertionError, OSError):
                await trio.sleep(0.05)


async def test_nsqd_refuses_oversized_bodies_on_the_headers(spawn: Callable[..., Any]) -> None:
    daemon = await spawn("nsqd", "--max-msg-size", "1048576", "--max-body-size", "5242880")
    cases = [
        (b"/pub?topic=t", 2 << 20, b"MSG_TOO_BIG"),  # over --max-msg-size, under --max-body-size
        (b"/pub?topic=t", 100 << 20, b"MSG_TOO_BIG"),
        (b"/mpub?topic=t", 100 << 20, b"BODY_TOO_BIG"),
        (b"/mpub?topic=t&binary=true", 6 << 20, b"BODY_TOO_BIG"),
    ]
    for path, size, message in cases:
        sock = await connect(daemon)
        await send_all(sock, b"POST %s HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (path, size))
        head = await read_head(sock)  # before a byte of the body was sent
        assert head.startswith(b"HTTP/1.1 413") and b"Connection: close" in head
        assert head.endswith(b"\r\n\r\n") or message in head
        assert await closed(sock)
    # chunked: refused as soon as the body crosses the limit
    sock = await connect(daemon)
    await send_all(sock, b"POST /pub?topic=t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"40000\r\n" + b"c" * 0x40000 + b"\r\n"  # 256 KiB
    for _ in range(5):
        await send_all(sock, chunk)
    reply = await read_head(sock)
    assert reply.startswith(b"HTTP/1.1 413")
    with trio.fail_after(TIMEOUT):
        while b"MSG_TOO_BIG" not in reply:
            reply += await sock.recv(4096)
    sock.close()
    await assert_serving(daemon)


async def test_nsqd_memory_stays_flat_under_huge_declared_bodies(spawn: Callable[..., Any]) -> None:
    daemon = await spawn("nsqd")
    await assert_serving(daemon)
    before = daemon.rss()
    payload = b"p" * (1 << 20)

    async def flood(path: bytes, size: int) -> None:
        sock = await connect(daemon)
        await send_all(sock, b"POST %s HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (path, size))
        assert (await read_head(sock)).startswith(b"HTTP/1.1 413")
        try:
            with trio.move_on_after(5):
                for _ in range(4):  # a few MB of the 100 MB; the daemon closes on us
                    await send_all(sock, payload)
        except OSError:
            pass
        sock.close()

    async with trio.open_nursery() as nursery:
        for i in range(50):
            if i % 2:  # under --max-body-size, over --max-msg-size
                nursery.start_soon(flood, b"/pub?topic=t", 4 << 20)
            else:
                nursery.start_soon(flood, b"/mpub?topic=t", 100 << 20)
    await assert_serving(daemon)
    assert daemon.rss() - before < 30 << 20


async def test_nsqadmin_bad_static_paths_are_404(spawn: Callable[..., Any]) -> None:
    daemon = await spawn("nsqadmin")
    bad = ["/static/%00", "/static/a%00.js", "/static/..", "/static/%2e%2e",
           "/static/..%2f..%2fetc%2fpasswd", "/static/%2fetc%2fpasswd", "/static/a%5cb",
           "/static/.hidden", "/static/" + "a" * 5000, "/static/%ff%fe", "/static/nsqadmin.js%00"]
    for path in bad:
        sock = await connect(daemon)
        await send_all(sock, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head = await read_head(sock)
        assert head.startswith(b"HTTP/1.1 404"), (path, head)
        sock.close()
    sock = await connect(daemon)
    await send_all(sock, b"GET /static/nsqadmin.js HTTP/1.1\r\n\r\n")
    assert (await read_head(sock)).startswith(b"HTTP/1.1 200")
    assert b"Traceback" not in daemon.log


# ---------------------------------------------------------------------------- nsqlookupd TCP (V1)
async def test_nsqlookupd_tcp_survives_resets_and_caps_connections(
        spawn: Callable[..., Any]) -> None:
    daemon = await spawn("nsqlookupd", "--max-connections", "2")
    found = await daemon.wait_for(rb"TCP: listening on (\S+):(\d+)")
    tcp = (found.group(1).decode(), int(found.group(2)))

    async def v1() -> trio.socket.SocketType:
        sock = trio.socket.socket()
        await sock.connect(tcp)
        return sock

    async def ping(sock: trio.socket.SocketType) -> bytes:
        await send_all(sock, b"PING\n")
        with trio.fail_after(TIMEOUT):
            return await sock.recv(64)

    for payload in (b"", b"  V1", b"  V1IDENTIFY\n\x00\x00\x10", b"GARBAGE\n", b"  V1PI"):
        sock = await v1()
        await send_all(sock, payload)
        reset(sock)
    async def session() -> trio.socket.SocketType:
        with trio.fail_after(TIMEOUT):
            while True:  # the slots of the reset connections free up once nsqlookupd sees them
                sock = await v1()
                try:
                    await send_all(sock, b"  V1")
                    if await ping(sock) == struct.pack(">l", 2) + b"OK":
                        return sock
                except OSError:
                    pass
                sock.close()
                await trio.sleep(0.05)

    kept = [await session() for _ in range(2)]
    assert await closed(await v1())
    for sock in kept:
        assert await ping(sock) == struct.pack(">l", 2) + b"OK"
    await daemon.wait_for(rb"TCP: 1 connection\(s\) refused: max-connections \(2\) reached")
    await assert_serving(daemon)
    assert b"Traceback" not in daemon.log


async def test_pipelined_requests_for_large_answers_do_not_pile_up(
        spawn: Callable[..., Any]) -> None:
    """20 clients pipeline 1000 requests each for nsqadmin's 7.7 kB script and do not read."""
    daemon = await spawn("nsqadmin")
    await assert_serving(daemon)
    before = daemon.rss()
    requests = b"GET /static/nsqadmin.js HTTP/1.1\r\n\r\n" * 1000
    socks = []
    for _ in range(20):
        sock = await connect(daemon, rcvbuf=4096)
        with trio.move_on_after(1):  # until the daemon stops reading a client that does not
            await send_all(sock, requests)
        socks.append(sock)
    await assert_serving(daemon)
    assert daemon.rss() - before < 60 << 20  # ~300 MB if each read's answers were all built
    for sock in socks:
        reset(sock)
    await assert_serving(daemon)
