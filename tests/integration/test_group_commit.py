"""Durable mode's group commit over real sockets: no OK or 200 before the fsync that
covers the message, and every publisher waiting when an fsync starts is in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from durability_helpers import addr, running
from helpers import RawConn

from client.protocol import commands
from nsqd import fsyncs
from nsqd.nsqd import NSQD


class Gate:
    """Holds every cycle's end until the test opens it; counts the cycles and the fds."""

    def __init__(self, monkeypatch: Any) -> None:
        self.open = trio.Event()
        self.started = 0
        self.data_fds: list[list[int]] = []
        real_start = fsyncs.Fsyncer.start
        gate = self

        class GatedFlight:
            def __init__(self, flight: fsyncs.Flight, event: trio.Event) -> None:
                self.flight = flight
                self.event = event

            async def wait(self) -> None:
                await self.flight.wait()
                await self.event.wait()

        def start(self: fsyncs.Fsyncer, data_fds: list[int], ack_fds: list[int],
                  jobs: list[fsyncs.SyncJob]) -> Any:
            gate.started += 1
            gate.data_fds.append(list(data_fds))
            return GatedFlight(real_start(self, data_fds, ack_fds, jobs), gate.open)

        monkeypatch.setattr(fsyncs.Fsyncer, "start", start)

    def release(self) -> None:
        self.open.set()
        self.open = trio.Event()


async def _wait_for(cond: Any) -> None:
    with trio.fail_after(10):
        while not cond():
            await trio.sleep(0.001)


async def _pending_writes(nsqd: NSQD, gen: int) -> None:
    await _wait_for(lambda: nsqd.syncer.write_gen >= gen)


async def test_ok_only_after_the_covering_fsync(tmp_path: Path, monkeypatch: Any) -> None:
    gate = Gate(monkeypatch)
    async with running(tmp_path, mem_queue_size=0, sync_every=1, sync_timeout=3600.0) as nsqd:
        nsqd.get_topic("t").get_channel("c")
        pub = await RawConn.open(addr(nsqd))
        await pub.send(commands.pub("t", b"m1"))
        await _wait_for(lambda: gate.started == 1)
        with trio.move_on_after(0.3):
            await pub.frame()
            pytest.fail("OK before the fsync ended")
        gate.release()
        assert await pub.response() == b"OK"

        assert nsqd.bound is not None and nsqd.bound.http_address is not None
        host, port = nsqd.bound.http_address
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:
            got: list[int] = []

            async def post() -> None:
                got.append((await http.post("/pub?topic=t", content=b"h1")).status_code)

            async with trio.open_nursery() as n:
                n.start_soon(post)
                await _wait_for(lambda: gate.started == 2)
                await trio.sleep(0.3)
                assert got == []  # no 200 before the fsync ended
                gate.release()
            assert got == [200]
        await pub.aclose()


async def test_every_waiting_publisher_is_in_the_next_fsync(tmp_path: Path,
                                                           monkeypatch: Any) -> None:
    gate = Gate(monkeypatch)
    async with running(tmp_path, mem_queue_size=0, sync_every=1, sync_timeout=3600.0) as nsqd:
        nsqd.get_topic("t").get_channel("c")
        assert nsqd.bound is not None and nsqd.bound.http_address is not None
        host, port = nsqd.bound.http_address
        pubs = [await RawConn.open(addr(nsqd)) for _ in range(10)]
        base = nsqd.syncer.write_gen
        await pubs[0].send(commands.pub("t", b"first"))
        await _wait_for(lambda: gate.started == 1)  # cycle 1 holds "first"
        # meanwhile 9 TCP publishers and 5 HTTP ones publish and wait
        for i, p in enumerate(pubs[1:]):
            await p.send(commands.pub("t", b"tcp%d" % i))
        statuses: list[int] = []
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as http:

            async def post(i: int) -> None:
                r = await http.post("/pub?topic=t", content=b"http%d" % i)
                statuses.append(r.status_code)

            async with trio.open_nursery() as n:
                for i in range(5):
                    n.start_soon(post, i)
                await _pending_writes(nsqd, base + 15)
                assert gate.started == 1
                gate.release()  # cycle 1 ends; cycle 2 must take all 14 waiting writes
                await _wait_for(lambda: gate.started == 2)
                assert nsqd.syncer._running is not None
                assert nsqd.syncer._running.gen == base + 15
                gate.release()
                for p in pubs:
                    assert await p.response() == b"OK"
        assert statuses == [200] * 5
        assert gate.started == 2  # nobody left for a third fsync
        for p in pubs:
            await p.aclose()
