"""The soak's daemons (subprocesses on fixed loopback ports) and its faults: a stuck
consumer and garbage connections to nsqd's and nsqlookupd's TCP and HTTP ports."""

from __future__ import annotations

import collections
import os
import random
import signal
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from client.protocol import MAGIC_V1, MAGIC_V2, commands

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A loopback port free right now (the daemons keep it across restarts)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float | None:
    """Resident set size of a live process in MiB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class Daemon:
    """A daemon subprocess on fixed ports; its output goes to a log file (kept for tails)."""

    def __init__(self, name: str, args: list[str], log: Path, tcp: int, http: int) -> None:
        self.name = name
        self.args = args
        self.log = log
        self.tcp = tcp
        self.http = http
        self.proc: subprocess.Popen[bytes] | None = None
        self.expected_exit = False
        self.lock = trio.Lock()
        self.starts = 0
        self.generation = trio.Event()  # set (and replaced) when the process goes away
        self._log_offset = 0

    async def start(self) -> None:
        """Start and wait until both ports answer (30 s)."""
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", self.name, *self.args], cwd=ROOT,
                                         stdout=out, stderr=out, stdin=subprocess.DEVNULL, env=env)
        self.expected_exit = False
        self.starts += 1
        with trio.move_on_after(30):
            while self.proc.poll() is None:
                if await port_open(self.tcp) and await port_open(self.http):
                    return
                await trio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start (rc={self.proc.poll()}):\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def kill9(self) -> None:
        assert self.proc is not None
        self.expected_exit = True
        self.proc.kill()
        await trio.to_thread.run_sync(self.proc.wait)
        self._gone()

    async def terminate(self, timeout: float = 30) -> int | None:
        """SIGTERM and wait; the exit code (None if it had to be killed)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.expected_exit = True
        self.proc.send_signal(signal.SIGTERM)
        try:
            return await trio.to_thread.run_sync(self.proc.wait, timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self._gone()

    def _gone(self) -> None:
        self.generation.set()
        self.generation = trio.Event()

    def tail(self, lines: int = 40) -> str:
        try:
            with open(self.log, "rb") as f:
                f.seek(self._log_offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "".join(text.splitlines(keepends=True)[-lines:])


async def port_open(port: int) -> bool:
    try:
        with trio.fail_after(2):
            stream = await trio.open_tcp_stream(HOST, port)
    except (OSError, trio.TooSlowError):
        return False
    await stream.aclose()
    return True


def rst_close(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a reset, not a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class Faults:
    """The stuck client and the garbage connections, with what they did."""

    def __init__(self, nsqd: Daemon, lookupd: Daemon, topic: str, channel: str, rate: float,
                 skip: list[str]) -> None:
        self.nsqd = nsqd
        self.lookupd = lookupd
        self.topic = topic
        self.channel = channel
        self.rate = rate
        self.skip = skip
        self.done: collections.Counter[str] = collections.Counter()
        self.refused = 0
        #: most bytes a never-reading client got the server to accept, by port kind
        self.no_read: dict[str, tuple[int, int]] = {}
        #: (monotonic time, kind) of the latest garbage connections, for death reports
        self.recent: collections.deque[tuple[float, str]] = collections.deque(maxlen=30)

    def recent_kinds(self, seconds: float = 3) -> list[str]:
        """The garbage kinds started in the last ``seconds``, oldest first."""
        now = trio.current_time()
        return [kind for t, kind in self.recent if now - t <= seconds]

    async def stuck_client(self) -> None:
        """Subscribes with RDY 2500 and a tiny receive buffer, never reads; reconnects when
        nsqd restarts (or every 30 s)."""
        while True:
            gone = self.nsqd.generation
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            try:
                with trio.fail_after(5):
                    await sock.connect((HOST, self.nsqd.tcp))
                await sock.send(MAGIC_V2 + commands.sub(self.topic, self.channel) + commands.rdy(2500))
                with trio.move_on_after(30):
                    await gone.wait()
            except (OSError, trio.TooSlowError):
                await trio.sleep(0.5)
            finally:
                sock.close()

    async def garbage(self) -> None:
        """Start ``rate`` garbage connections a second, at most 12 at a time, each under 20 s."""
        jobs = [(k, j) for k, j in self._jobs() if not any(s in k for s in self.skip)]
        if not jobs:
            return
        limiter = trio.CapacityLimiter(12)
        async with trio.open_nursery() as nursery:
            while True:
                await trio.sleep(1 / self.rate)
                token = object()
                await limiter.acquire_on_behalf_of(token)
                kind, job = random.choice(jobs)
                self.recent.append((trio.current_time(), kind))
                nursery.start_soon(self._run_garbage, limiter, token, kind, job)

    async def _run_garbage(self, limiter: trio.CapacityLimiter, token: object, kind: str,
                           job: Any) -> None:
        try:
            with trio.move_on_after(20):
                await job()
            self.done[kind] += 1
        except (OSError, trio.TooSlowError):
            self.refused += 1
        finally:
            limiter.release_on_behalf_of(token)

    def _jobs(self) -> list[tuple[str, Any]]:
        n, lk = self.nsqd, self.lookupd

        def rnd(hi: int = 2000) -> bytes:
            return random.randbytes(random.randint(1, hi))

        bad_lines = [b"SUB \xff\xfe x\n", b"RDY -1\n", b"RDY 99999999999999999999\n", b"FIN zzz\n",
                     b"REQ 0123456789abcdef -5\n", b"TOUCH\n", b"CLS\n", b"BOGUS\n", b"PUB  \n",
                     b"MPUB garbage\n\x00\x00\x00\x08\x00\x00\x00\x09abcd", b"DPUB garbage x\n",
                     b"SUB garbage c\nRDY 1\nFIN x\n" * 3, b"\n" * 50, b"x" * 20000 + b"\n"]
        identify_bodies = [b'{"heartbeat_interval": Infinity}', b"[" * 200_000, b"null", b"\xff\xfe",
                           b'{"msg_timeout": 1e400}', b'{"output_buffer_size": -5}',
                           b'{"deflate": true, "snappy": true, "feature_negotiation": true}']
        http_heads = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                      b"POST /pub?topic=garbage HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
                      b"POST /pub?topic=garbage HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                      b"GET /stats HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
                      b"POST /mpub?topic=garbage&binary=true HTTP/1.1\r\nContent-Length: 9\r\n\r\n"
                      b"\x7f\xff\xff\xff\x00\x00\x00\x01z",
                      b"GET /%zz/../\x00 HTTP/1.1\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                      b"POST /topic/create?topic=" + b"a" * 70 + b" HTTP/1.1\r\n\r\n",
                      b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n"]

        async def send(port: int, data: bytes, *, rst: bool = False, read: bool = True,
                       delay: float = 0) -> None:
            sock = trio.socket.socket()
            try:
                await sock.connect((HOST, port))
                view = memoryview(data)
                while view:
                    view = view[await sock.send(view):]
                if delay:
                    await trio.sleep(delay)
                if read and not rst:
                    with trio.move_on_after(3):
                        while await sock.recv(65536):
                            pass
            finally:
                if rst:
                    rst_close(sock)
                else:
                    sock.close()

        async def trickle(port: int, data: bytes) -> None:
            sock = trio.socket.socket()
            try:
                await sock.connect((HOST, port))
                for i in range(min(len(data), 30)):
                    await sock.send(data[i:i + 1])
                    await trio.sleep(0.3)
            finally:
                sock.close()

        async def idle(port: int) -> None:
            sock = trio.socket.socket()
            try:
                await sock.connect((HOST, port))
                await trio.sleep(10)
            finally:
                sock.close()

        async def no_read(kind: str, port: int, data: bytes) -> None:
            """Pipelines ``data`` (commands that each get an answer) and never reads: the
            server must stop reading (backpressure) or bound what it buffers."""
            sock = trio.socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sent = 0
            try:
                await sock.connect((HOST, port))
                with trio.move_on_after(8):
                    while sent < len(data):
                        sent += await sock.send(data[sent:sent + 65536])
                await trio.sleep(2)
            finally:
                self.no_read[kind] = (max(self.no_read.get(kind, (0, 0))[0], sent), len(data))
                rst_close(sock)

        def pick(seq: list[bytes]) -> bytes:
            return random.choice(seq)

        def ident() -> bytes:
            body = pick(identify_bodies)
            return MAGIC_V2 + b"IDENTIFY\n" + struct.pack(">l", len(body)) + body

        return [
            ("nsqd-tcp random", lambda: send(n.tcp, rnd())),
            ("nsqd-tcp V2+random", lambda: send(n.tcp, MAGIC_V2 + rnd())),
            ("nsqd-tcp bad command", lambda: send(n.tcp, MAGIC_V2 + pick(bad_lines))),
            ("nsqd-tcp bad IDENTIFY", lambda: send(n.tcp, ident())),
            ("nsqd-tcp partial body+RST", lambda: send(
                n.tcp, MAGIC_V2 + b"PUB garbage\n\x00\x10\x00\x00" + rnd(500), rst=True, delay=0.05)),
            ("nsqd-tcp bad command+RST", lambda: send(n.tcp, MAGIC_V2 + pick(bad_lines), rst=True)),
            ("nsqd-tcp trickle", lambda: trickle(n.tcp, MAGIC_V2 + b"NOP\nSUB garbage c\nRDY 1\n")),
            ("nsqd-tcp idle", lambda: idle(n.tcp)),
            ("nsqd-tcp pipelined, never reads", lambda: no_read(
                "nsqd-tcp", n.tcp, MAGIC_V2 + b"SUB garbage c\n" + b"FIN 0123456789abcdef\n" * 20000)),
            ("nsqd-http pipelined, never reads", lambda: no_read(
                "nsqd-http", n.http, b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n" * 20000)),
            ("nsqd-http random", lambda: send(n.http, rnd())),
            ("nsqd-http bad request", lambda: send(n.http, pick(http_heads))),
            ("nsqd-http bad request+RST", lambda: send(n.http, pick(http_heads), rst=True)),
            ("nsqd-http bad request+wait+RST", lambda: send(n.http, pick(http_heads), rst=True,
                                                            delay=0.05)),
            ("nsqd-http random+RST", lambda: send(n.http, rnd(), rst=True)),
            ("nsqd-http trickle", lambda: trickle(n.http, b"GET /stats?format=json HTTP/1.1\r\n\r\n")),
            ("nsqd-http idle", lambda: idle(n.http)),
            ("lookupd-tcp random", lambda: send(lk.tcp, rnd())),
            ("lookupd-tcp V1+garbage", lambda: send(lk.tcp, MAGIC_V1 + pick(bad_lines + [
                b"IDENTIFY\n" + struct.pack(">l", 9) + b"[[[[[[[[["]))),
            ("lookupd-tcp RST", lambda: send(lk.tcp, MAGIC_V1 + b"PING\n" + rnd(100), rst=True)),
            ("lookupd-http bad request", lambda: send(lk.http, pick(http_heads))),
            ("lookupd-http bad request+RST", lambda: send(lk.http, pick(http_heads), rst=True)),
            ("lookupd-http trickle", lambda: trickle(lk.http, b"GET /ping HTTP/1.1\r\n\r\n")),
        ]

    # ------------------------------------------------------------------ run
