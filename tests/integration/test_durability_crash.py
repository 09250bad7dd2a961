"""Durability of a real ``python -m nsqd`` process: SIGTERM, kill -9, disk failures, 1M backlog.

The kill -9 loop checks the durable-mode contract (``--mem-queue-size=0
--sync-every=1``): every publish answered OK is delivered at least once after any
number of crashes, and a FIN'd message is redelivered only if the crash came within a
sync cycle of its FIN (checked here as: never when the FIN was sent >= 1.5 s before).
"""

from __future__ import annotations

import collections
import random
import resource
import shutil
import signal
import struct
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from durability_helpers import Daemon
from helpers import RawConn

from client.protocol import FrameReader, FrameType, commands


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A data path of our own: pytest's basetemp rotation (other sessions running at the
    same time) must not delete it under a daemon that runs for a while."""
    path = Path(tempfile.mkdtemp(prefix="nsqd-durability-"))
    yield path
    while Daemon.started:
        Daemon.started.pop().kill()
    shutil.rmtree(path, ignore_errors=True)


async def _published(conn: RawConn) -> bool:
    """The next publish response: True for OK, False for an error."""
    ftype, data = await conn.frame(20)
    if ftype == FrameType.ERROR:
        return False
    assert data == b"OK", data
    return True


# ---------------------------------------------------------------------- SIGTERM
async def test_sigterm_keeps_deferred_due_times(tmp_path: Path) -> None:
    daemon = await Daemon(tmp_path).start()
    assert daemon.tcp is not None
    pub = await RawConn.open(daemon.tcp)
    cons = await RawConn.open(daemon.tcp)
    await cons.identify(feature_negotiation=False)
    await cons.sub("t", "c", 1)
    due: dict[bytes, float] = {}
    for i in range(30):
        delay_ms = 1500 + 100 * i
        body = b"d%02d" % i
        due[body] = time.time() + delay_ms / 1000
        await pub.send(commands.dpub("t", delay_ms, body))
        assert await pub.response() == b"OK"
    await pub.send(commands.pub("t", b"req"))
    assert await pub.response() == b"OK"
    msg = await cons.message()
    sent = time.time()
    await cons.send(commands.req(msg.id, 2500))
    due[b"req"] = sent + 2.5
    await pub.send(commands.pub("t", b"in-flight"))
    assert await pub.response() == b"OK"
    await cons.send(commands.rdy(1))
    assert (await cons.message()).body == b"in-flight"
    assert await daemon.stop(signal.SIGTERM) == 0
    assert "flushing" in daemon.log()

    daemon = await Daemon(tmp_path).start()
    assert daemon.tcp is not None
    cons = await RawConn.open(daemon.tcp)
    await cons.identify(feature_negotiation=False)
    await cons.sub("t", "c", 50)
    got: dict[bytes, tuple[float, int]] = {}
    with trio.fail_after(20):
        while len(got) < 32:
            msg = await cons.message()
            got[msg.body] = (time.time(), msg.attempts)
            await cons.send(commands.fin(msg.id))
    assert got[b"in-flight"][1] == 2  # delivered once before the restart
    assert got[b"req"][1] == 2
    for body, when in due.items():
        assert got[body][0] >= when, (body, got[body][0] - when)
    assert await daemon.stop() == 0


# ---------------------------------------------------------------------- kill -9
class _Ledger:
    def __init__(self) -> None:
        self.acked: set[bytes] = set()
        self.received: collections.Counter[bytes] = collections.Counter()
        self.fin_sent: dict[bytes, float] = {}
        self.redelivered_after_fin: list[tuple[bytes, float]] = []
        self.seq = 0

    def body(self, kind: str) -> bytes:
        self.seq += 1
        return f"{kind}-{self.seq:07d}".encode()


async def _publisher(address: tuple[str, int], ledger: _Ledger, kind: str,
                     rng: random.Random) -> None:
    conn = await RawConn.open(address)
    while True:
        if kind == "mpub":
            bodies = [ledger.body(kind) for _ in range(rng.randint(2, 30))]
            await conn.send(commands.mpub("t", bodies))
        elif kind == "dpub":
            bodies = [ledger.body(kind)]
            await conn.send(commands.dpub("t", rng.randint(50, 600), bodies[0]))
        else:
            bodies = [ledger.body(kind)]
            await conn.send(commands.pub("t", bodies[0]))
        if not await _published(conn):
            return
        ledger.acked.update(bodies)


async def _consumer(address: tuple[str, int], ledger: _Ledger, rng: random.Random,
                    kill_times: list[float]) -> None:
    conn = await RawConn.open(address)
    await conn.identify(feature_negotiation=False)
    await conn.sub("t", "c", 200)
    while True:
        msg = await conn.message(30)
        body = msg.body
        if body in ledger.fin_sent:
            ledger.redelivered_after_fin.append((body, ledger.fin_sent[body]))
        ledger.received[body] += 1
        if msg.attempts == 1 and rng.random() < 0.05:
            await conn.send(commands.req(msg.id, rng.choice([0, 100])))
            continue
        await conn.send(commands.fin(msg.id))
        ledger.fin_sent[body] = time.monotonic()


async def _run_until_killed(daemon: Daemon, ledger: _Ledger, rng: random.Random,
                            seconds: float, kill_times: list[float]) -> None:
    assert daemon.tcp is not None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_consumer, daemon.tcp, ledger, rng, kill_times)
        for kind in ("pub", "pub", "mpub", "dpub"):
            nursery.start_soon(_publisher, daemon.tcp, ledger, kind, rng)
        await trio.sleep(seconds)
        await daemon.stop(signal.SIGKILL)
        kill_times.append(time.monotonic())
        nursery.cancel_scope.cancel()


def _swallow_disconnects(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_swallow_disconnects(e) for e in exc.exceptions)
    return isinstance(exc, (EOFError, trio.BrokenResourceError, trio.ClosedResourceError,
                            OSError, trio.TooSlowError))


async def test_kill9_loop_loses_no_acknowledged_message(tmp_path: Path) -> None:
    rng = random.Random(4)
    ledger = _Ledger()
    kill_times: list[float] = []
    args = ("--mem-queue-size=0", "--sync-every=1", "--max-bytes-per-file=65536")
    for _ in range(10):
        daemon = await Daemon(tmp_path, *args).start()
        try:
            await _run_until_killed(daemon, ledger, rng, rng.uniform(0.5, 2.5), kill_times)
        except BaseException as exc:  # connections die with the daemon
            if not _swallow_disconnects(exc):
                raise
    assert len(ledger.acked) > 500
    # restart once more and drain: every acknowledged message must come
    daemon = await Daemon(tmp_path, *args).start()
    assert daemon.tcp is not None
    conn = await RawConn.open(daemon.tcp)
    await conn.identify(feature_negotiation=False)
    await conn.sub("t", "c", 500)
    with trio.move_on_after(30):
        while not ledger.acked <= set(ledger.received):
            msg = await conn.message(30)
            ledger.received[msg.body] += 1
            await conn.send(commands.fin(msg.id))
    await daemon.stop()
    dups = sum(n - 1 for n in ledger.received.values())
    print(f"kill -9 x{len(kill_times)}: {len(ledger.acked)} acknowledged, "
          f"{len(ledger.received)} received, {dups} duplicate deliveries, "
          f"{len(ledger.redelivered_after_fin)} redelivered after a FIN")
    missing = ledger.acked - set(ledger.received)
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {sorted(missing)[:5]}"
    # FIN'd messages come back only when the crash followed their FIN closely
    late = [(b, t) for b, t in ledger.redelivered_after_fin
            if min(k for k in kill_times if k > t) - t >= 1.5]
    assert not late, f"{len(late)} messages redelivered long after their FIN"
    assert max(ledger.received.values()) <= 1 + len(kill_times) + 1


# ---------------------------------------------------------------------- disk failure
def _limit_file_size() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, hard))


async def test_write_failure_refuses_publish_then_recovers(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes writes fail (EFBIG): E_PUB_FAILED, no crash, recovery."""
    daemon = await Daemon(tmp_path, "--mem-queue-size=0", "--sync-every=1",
                          "--max-bytes-per-file=10000000", preexec=_limit_file_size).start()
    assert daemon.tcp is not None and daemon.http is not None
    acked: list[bytes] = []
    conn = await RawConn.open(daemon.tcp)
    failed = False
    for i in range(1000):
        body = b"%04d" % i + b"x" * 996
        await conn.send(commands.pub("t", body))
        ftype, data = await conn.frame(20)
        if ftype == FrameType.ERROR:
            assert data.startswith(b"E_PUB_FAILED"), data
            failed = True
            break
        acked.append(body)
    assert failed and 100 < len(acked) < 300
    url = f"http://{daemon.http[0]}:{daemon.http[1]}"
    async with httpx.AsyncClient(base_url=url) as http:
        resp = await http.post("/pub?topic=t", content=b"y" * 1000)
        assert resp.status_code == 500 and "PUB_FAILED" in resp.text
        assert (await http.get("/ping")).status_code == 200  # still running
        resource.prlimit(daemon.pid, resource.RLIMIT_FSIZE,
                         (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        with trio.fail_after(10):
            while True:
                resp = await http.post("/pub?topic=t", content=b"recovered")
                if resp.status_code == 200:
                    break
                await trio.sleep(0.1)
    conn = await RawConn.open(daemon.tcp)
    await conn.pub("t", b"tcp-recovered")
    cons = await RawConn.open(daemon.tcp)
    await cons.identify(feature_negotiation=False)
    await cons.sub("t", "c", 200)
    seen = set()
    with trio.fail_after(20):
        while not (set(acked) | {b"recovered", b"tcp-recovered"}) <= seen:
            msg = await cons.message()
            seen.add(msg.body)
            await cons.send(commands.fin(msg.id))
    assert await daemon.stop() == 0


# ---------------------------------------------------------------------- 1M backlog
async def _fast_consume(address: tuple[str, int], total: int) -> collections.Counter[int]:
    stream = await trio.open_tcp_stream(*address)
    await stream.send_all(b"  V2" + commands.sub("big", "c") + commands.rdy(2500))
    unpack = struct.Struct(">lL").unpack_from
    counts: collections.Counter[int] = collections.Counter()
    got = 0
    buf = b""
    with trio.fail_after(120):
        while got < total:
            data = await stream.receive_some(1 << 20)
            assert data, "closed"
            buf = buf + data if buf else data
            pos, end, ids = 0, len(buf), []
            while end - pos >= 8:
                size, ftype = unpack(buf, pos)
                if end - pos - 4 < size:
                    break
                if ftype == FrameType.MESSAGE:
                    ids.append(buf[pos + 18:pos + 34])
                    counts[int(buf[pos + 34:pos + 42])] += 1
                elif buf[pos + 8:pos + 4 + size] == b"_heartbeat_":
                    await stream.send_all(b"NOP\n")
                pos += 4 + size
            buf = buf[pos:]
            if ids:
                got += len(ids)
                await stream.send_all(b"FIN " + b"\nFIN ".join(ids) + b"\n")
    await stream.aclose()
    return counts


@pytest.mark.slow
async def test_million_messages_through_disk_overflow(tmp_path: Path) -> None:
    total = 1_000_000
    daemon = await Daemon(tmp_path, "--mem-queue-size=10000",
                          "--max-bytes-per-file=16777216").start()
    assert daemon.tcp is not None and daemon.http is not None
    url = f"http://{daemon.http[0]}:{daemon.http[1]}"
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.post("/topic/create?topic=big")).status_code == 200
        assert (await http.post("/channel/create?topic=big&channel=c")).status_code == 200
        stream = await trio.open_tcp_stream(*daemon.tcp)
        await stream.send_all(b"  V2")
        reader = FrameReader()
        batch = 1000
        for start in range(0, total, batch):
            body = commands.mpub("big", [b"%08d" % i + b"." * 92
                                         for i in range(start, start + batch)])
            await stream.send_all(body)
            frames = reader.frames()
            while not frames:
                reader.feed(await stream.receive_some(65536))
                frames = reader.frames()
            assert [f.data for f in frames] == [b"OK"]
        await stream.aclose()
        stats = (await http.get("/stats?format=json&topic=big")).json()
        channel = stats["topics"][0]["channels"][0]
        assert channel["depth"] == total and channel["backend_depth"] >= total - 10000
    counts = await _fast_consume(daemon.tcp, total)
    assert len(counts) == total and max(counts.values()) == 1
    assert await daemon.stop() == 0
