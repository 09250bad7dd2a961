"""Durability across restarts, in-process: metadata, backlogs, deferred messages, corruption."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import trio
from durability_helpers import addr, consumer, receive, running
from helpers import RawConn

from client.protocol import commands


async def test_restart_keeps_topics_channels_paused_and_backlog(tmp_path: Path) -> None:
    async with running(tmp_path, mem_queue_size=5) as nsqd:
        t1 = nsqd.get_topic("t1")
        t1.get_channel("c1")
        t1.get_channel("c2").pause()
        t1.get_channel("gone#ephemeral")
        t2 = nsqd.get_topic("t2")
        t2.pause()
        nsqd.get_topic("eph#ephemeral").get_channel("x")
        nsqd.publish("t1", [b"m%d" % i for i in range(50)])
        nsqd.publish("t2", [b"paused-%d" % i for i in range(3)])
    assert any(f.startswith("t1:c1.tdq.") for f in os.listdir(tmp_path))
    async with running(tmp_path, mem_queue_size=5) as nsqd:
        assert set(nsqd.topics) == {"t1", "t2"}
        t1 = nsqd.topics["t1"]
        assert set(t1.channels) == {"c1", "c2"}
        assert not t1.paused and nsqd.topics["t2"].paused
        assert t1.channels["c2"].paused and not t1.channels["c1"].paused
        assert t1.channels["c1"].depth() == 50 and t1.channels["c2"].depth() == 50
        assert nsqd.topics["t2"].depth() == 3
        conn = await consumer(addr(nsqd), "t1", "c1", rdy=10)
        got = await receive(conn, 50)
        # the first 5 waited in memory and were appended at shutdown; the rest kept order
        assert sorted(m.body for m in got) == sorted(b"m%d" % i for i in range(50))
        assert [m.body for m in got[:45]] == [b"m%d" % i for i in range(5, 50)]
        await conn.aclose()


async def test_disk_overflow_fifo(tmp_path: Path) -> None:
    """Past --mem-queue-size messages go to disk and come back complete, in order."""
    async with running(tmp_path, mem_queue_size=100, max_bytes_per_file=64 * 1024) as nsqd:
        nsqd.get_topic("t").get_channel("c")
        for i in range(0, 20_000, 500):
            nsqd.publish("t", [b"%06d" % k for k in range(i, i + 500)])
        channel = nsqd.topics["t"].channels["c"]
        assert channel.backend.depth() == 20_000 - 100
        conn = await consumer(addr(nsqd), "t", "c", rdy=500)
        got = await receive(conn, 20_000, timeout=60)
        assert [m.body for m in got] == [b"%06d" % k for k in range(20_000)]
        assert channel.depth() == 0
        await conn.aclose()
    names = os.listdir(tmp_path)
    assert len([n for n in names if n.startswith("t:c.tdq.") and n.endswith(".dat")]) <= 1


async def test_mem_queue_size_zero_goes_through_disk(tmp_path: Path) -> None:
    async with running(tmp_path, mem_queue_size=0) as nsqd:
        conn = await consumer(addr(nsqd), "t", "c", rdy=5)
        pub = await RawConn.open(addr(nsqd))
        for i in range(20):
            await pub.pub("t", b"msg-%d" % i)
        got = await receive(conn, 20)
        assert [m.body for m in got] == [b"msg-%d" % i for i in range(20)]
        channel = nsqd.topics["t"].channels["c"]
        assert channel.backend.write_through and not channel.memory
        await conn.aclose()
        await pub.aclose()


async def test_shutdown_keeps_in_flight_attempts_and_deferred_delays(tmp_path: Path) -> None:
    async with running(tmp_path) as nsqd:
        conn = await consumer(addr(nsqd), "t", "c", rdy=10)
        pub = await RawConn.open(addr(nsqd))
        await pub.pub("t", b"in-flight")
        (m,) = await receive(conn, 1, fin=False)
        assert m.attempts == 1
        await conn.send(commands.req(m.id, 0))
        (m,) = await receive(conn, 1, fin=False)
        assert m.attempts == 2  # left in flight at shutdown
        await pub.send(commands.dpub("t", 2500, b"deferred"))
        assert await pub.response() == b"OK"
        published = time.time()
        await pub.send(commands.pub("t", b"requeued"))
        assert await pub.response() == b"OK"
        (r,) = await receive(conn, 1, fin=False)
        await conn.send(commands.req(r.id, 3000))
        await trio.sleep(0.2)
        channel = nsqd.topics["t"].channels["c"]
        assert len(channel.deferred) == 2
    await trio.sleep(0.5)  # downtime counts against the delays
    async with running(tmp_path) as nsqd:
        channel = nsqd.topics["t"].channels["c"]
        assert len(channel.deferred) == 2
        conn = await consumer(addr(nsqd), "t", "c", rdy=10)
        (m,) = await receive(conn, 1)
        assert (m.body, m.attempts) == (b"in-flight", 3)
        (d,) = await receive(conn, 1)
        assert d.body == b"deferred" and time.time() >= published + 2.5
        (r,) = await receive(conn, 1)
        assert (r.body, r.attempts) == (b"requeued", 2) and time.time() >= published + 3.0
        await conn.aclose()


async def test_deferred_beyond_an_hour(tmp_path: Path) -> None:
    async with running(tmp_path, max_req_timeout=7 * 86400.0) as nsqd:
        pub = await RawConn.open(addr(nsqd))
        nsqd.get_topic("t").get_channel("c")
        await pub.send(commands.dpub("t", 3 * 86400 * 1000, b"in three days"))
        assert await pub.response() == b"OK"
        channel = nsqd.topics["t"].channels["c"]
        assert len(channel.deferred) == 1 and not channel.deferred.in_memory()
    async with running(tmp_path, max_req_timeout=7 * 86400.0) as nsqd:
        assert len(nsqd.topics["t"].channels["c"].deferred) == 1
    files = os.listdir(tmp_path / "t:c.deferred")
    assert any(f.startswith("L1-") for f in files)


async def test_corrupt_record_costs_only_itself(tmp_path: Path, caplog) -> None:
    async with running(tmp_path, mem_queue_size=0, max_bytes_per_file=4096) as nsqd:
        nsqd.get_topic("t").get_channel("c")
        for i in range(0, 600, 50):
            nsqd.publish("t", [b"%04d" % k + b"." * 60 for k in range(i, i + 50)])
    segs = sorted(f for f in os.listdir(tmp_path) if f.startswith("t:c.tdq.")
                  and f.endswith(".dat"))
    assert len(segs) > 3
    bad = tmp_path / segs[1]
    raw = bytearray(bad.read_bytes())
    raw[100] ^= 0x55
    bad.write_bytes(bytes(raw))
    async with running(tmp_path, mem_queue_size=0, max_bytes_per_file=4096) as nsqd:
        conn = await consumer(addr(nsqd), "t", "c", rdy=100)
        got = []
        with trio.move_on_after(3):
            while True:
                got.extend(await receive(conn, 1))
        bodies = [m.body[:4] for m in got]
        assert (tmp_path / (segs[1] + ".bad")).exists()
        assert "damaged data" in caplog.text and "1 message(s) lost" in caplog.text
        assert bodies[0] == b"0000" and bodies[-1] == b"0599"
        assert len(bodies) == 599
        assert bodies == sorted(bodies)
        # the daemon goes on: new messages flow
        pub = await RawConn.open(addr(nsqd))
        await pub.pub("t", b"after")
        (m,) = await receive(conn, 1)
        assert m.body == b"after"
        await conn.aclose()
        await pub.aclose()


async def test_durable_http_and_tcp_publish_are_on_disk_when_acknowledged(tmp_path: Path
                                                                         ) -> None:
    async with running(tmp_path, mem_queue_size=0, sync_every=1) as nsqd:
        nsqd.get_topic("t").get_channel("c")
        seg = tmp_path / "t:c.tdq.000000.dat"
        assert nsqd.bound is not None and nsqd.bound.http_address is not None
        host, port = nsqd.bound.http_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            before = nsqd.syncer.cycles
            resp = await http.post("/pub?topic=t", content=b"via-http")
            assert resp.status_code == 200
            assert nsqd.syncer.cycles > before
            assert b"via-http" in seg.read_bytes()
            resp = await http.post("/mpub?topic=t", content=b"a1\na2")
            assert resp.status_code == 200 and b"a2" in seg.read_bytes()
            resp = await http.post("/pub?topic=t&defer=60000", content=b"later-http")
            assert resp.status_code == 200
        pub = await RawConn.open(addr(nsqd))
        await pub.pub("t", b"via-tcp")
        assert b"via-tcp" in seg.read_bytes()
        await pub.send(commands.mpub("t", [b"b1", b"b2"]) + commands.dpub("t", 60000, b"dl"))
        assert await pub.response() == b"OK" and await pub.response() == b"OK"
        assert b"b2" in seg.read_bytes()
        deferred = b"".join(p.read_bytes() for p in (tmp_path / "t:c.deferred").iterdir())
        assert b"later-http" in deferred and b"dl" in deferred
        await pub.aclose()


async def test_released_deferred_burst_stays_in_memory_up_to_the_slack(
        tmp_path: Path, monkeypatch) -> None:
    """Due messages nobody takes yet: beyond --mem-queue-size up to RELEASE_SLACK, then disk."""
    from nsqd import channel as channel_mod

    monkeypatch.setattr(channel_mod, "RELEASE_SLACK", 20)
    async with running(tmp_path, mem_queue_size=10) as nsqd:
        channel = nsqd.get_topic("t").get_channel("c")
        pub = await RawConn.open(addr(nsqd))
        await pub.send(b"".join(commands.dpub("t", 50, b"d%d" % i) for i in range(50)))
        for _ in range(50):
            assert await pub.response() == b"OK"
        with trio.fail_after(10):
            while len(channel.deferred):
                await trio.sleep(0.02)
        assert len(channel.memory) == 30 and channel.backend.depth() == 20
        sub = await consumer(addr(nsqd), "t", "c", rdy=100)
        bodies = sorted(m.body for m in await receive(sub, 50))
        assert bodies == sorted(b"d%d" % i for i in range(50))
