"""The client library against several nsqd (and nsqlookupd): failover when an nsqd
process is killed, discovery of a node that appears later, RDY distribution over five
nsqd with max_in_flight 3, graceful close under load with zero loss."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from client import ClientConfig, Consumer, Message, Producer
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

TIMEOUT = 60
ROOT = Path(__file__).resolve().parents[2]
_LISTEN = re.compile(rb"(TCP|HTTP): listening on (\S+)")


def tcp(server: Any) -> str:
    return "%s:%d" % server.tcp_address


class NSQDProcess:
    """``python -m nsqd`` in a subprocess, so it can be killed for real."""

    def __init__(self, process: trio.Process, tcp: str, http: str) -> None:
        self.process = process
        self.tcp = tcp
        self.http = http

    def kill(self) -> None:
        self.process.kill()


@pytest.fixture
async def spawn_nsqd(nursery: trio.Nursery) -> AsyncIterator[Callable[..., Any]]:
    processes: list[trio.Process] = []

    async def drain(stream: trio.abc.ReceiveStream) -> None:
        while await stream.receive_some(65536):
            pass

    async def spawn(data_path: Path, *args: str) -> NSQDProcess:
        data_path.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "nsqd", "--tcp-address", "127.0.0.1:0", "--http-address",
               "127.0.0.1:0", "--data-path", str(data_path), *args]
        process = await trio.lowlevel.open_process(cmd, cwd=str(ROOT), stderr=subprocess.PIPE)
        processes.append(process)
        assert process.stderr is not None
        seen = b""
        addrs: dict[bytes, str] = {}
        with trio.fail_after(TIMEOUT):
            while len(addrs) < 2:
                chunk = await process.stderr.receive_some(4096)
                assert chunk, f"nsqd exited: {seen.decode(errors='replace')}"
                seen += chunk
                addrs.update((m.group(1), m.group(2).decode()) for m in _LISTEN.finditer(seen))
        nursery.start_soon(drain, process.stderr)
        return NSQDProcess(process, addrs[b"TCP"], addrs[b"HTTP"])

    yield spawn
    for process in processes:
        if process.returncode is None:
            process.kill()
        with trio.move_on_after(10):
            await process.wait()


async def test_producer_fails_over_when_nsqd_is_killed(spawn_nsqd: Callable[..., Any], tmp_path: Path) -> None:
    durable = ("--mem-queue-size", "0", "--sync-every", "1")
    a = await spawn_nsqd(tmp_path / "a", *durable)
    b = await spawn_nsqd(tmp_path / "b", *durable)
    acked: list[bytes] = []
    killed = trio.Event()

    async def publisher(producer: Producer, worker: int) -> None:
        for i in range(100):
            body = b"%02d-%03d" % (worker, i)
            await producer.publish("failover", body)
            acked.append(body)
            if len(acked) == 300 and not killed.is_set():
                a.kill()  # SIGKILL mid-stream, with publishes in flight
                killed.set()

    async with Producer([a.tcp, b.tcp], batch=True, timeout=TIMEOUT) as producer:
        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for worker in range(20):
                    nursery.start_soon(publisher, producer, worker)
        stats = producer.statistics()
    assert killed.is_set()
    assert len(acked) == 2000  # every publish was acknowledged, by A before or B after
    assert stats.address == b.tcp and stats.retries >= 1

    # nothing acknowledged is lost: restart A on its data and read both
    a2 = await spawn_nsqd(tmp_path / "a", *durable)
    seen: dict[bytes, str] = {}
    async with Consumer("failover", "check", nsqd_tcp_addresses=[a2.tcp, b.tcp], max_in_flight=200) as consumer:
        with trio.move_on_after(TIMEOUT):
            async for message in consumer:
                seen[message.body] = message.address  # at least once: a retry may store it twice
                await message.finish()
                if len(seen) == len(acked):
                    break
        stats = consumer.statistics()
    missing = sorted(set(acked) - set(seen))
    assert not missing, (f"{len(missing)} acknowledged messages lost, acked at positions "
                         f"{sorted(acked.index(m) for m in missing)[:20]}; {stats}; "
                         f"per nsqd {collections.Counter(seen.values())}, restarted A {a2.tcp}, B {b.tcp}")


async def test_consumer_keeps_consuming_when_an_nsqd_dies(spawn_nsqd: Callable[..., Any], tmp_path: Path) -> None:
    a = await spawn_nsqd(tmp_path / "a")
    b = await spawn_nsqd(tmp_path / "b")
    async with Producer(b.tcp) as producer:
        await producer.multi_publish("survive", [b"b%d" % i for i in range(50)])
    async with Producer(a.tcp) as producer:
        await producer.publish("survive", b"a0")
    config = ClientConfig(lookupd_poll_interval=0.5)
    got: list[bytes] = []
    async with Consumer("survive", "c", nsqd_tcp_addresses=[a.tcp, b.tcp], config=config,
                        max_in_flight=10) as consumer:
        with trio.fail_after(TIMEOUT):
            await consumer.wait_connected(2)
            a.kill()
            async for message in consumer:
                got.append(message.body)
                await message.finish()
                if len([g for g in got if g.startswith(b"b")]) == 50:
                    break
            while consumer.connection_count > 1:  # A's death is noticed (not reconnected)
                await trio.sleep(0.01)
        assert consumer.addresses == [b.tcp]
    assert sorted(g for g in got if g.startswith(b"b")) == sorted(b"b%d" % i for i in range(50))


async def test_discovers_an_nsqd_that_appears_later(
    nursery: trio.Nursery, start_nsqd: Callable[..., Any], tmp_path: Path
) -> None:
    lookupd: NSQLookupd = await nursery.start(NSQLookupd(LookupdOptions(
        tcp_address="127.0.0.1:0", http_address="127.0.0.1:0", broadcast_address="127.0.0.1")).run)
    assert lookupd.real_tcp_addr is not None and lookupd.real_http_addr is not None
    lookupd_tcp = "%s:%d" % lookupd.real_tcp_addr
    lookupd_http = "http://%s:%d" % lookupd.real_http_addr

    async def node(name: str) -> Any:
        (tmp_path / name).mkdir()
        return await start_nsqd(data_path=str(tmp_path / name), lookupd_tcp_addresses=[lookupd_tcp],
                                broadcast_address="127.0.0.1")

    first = await node("a")
    async with Producer(tcp(first)) as producer:
        await producer.publish("disc", b"from-a")
    config = ClientConfig(lookupd_poll_interval=0.2, lookupd_poll_jitter=0.1)
    async with Consumer("disc", "c", lookupd_http_addresses=[lookupd_http], config=config,
                        max_in_flight=5) as consumer:
        with trio.fail_after(TIMEOUT):
            message = await consumer.__anext__()
            assert (message.body, message.address) == (b"from-a", tcp(first))
            await message.finish()
            second = await node("b")  # appears later; registers the topic when it gets one
            async with Producer(tcp(second)) as producer:
                await producer.publish("disc", b"from-b")
            await consumer.wait_connected(2)
            message = await consumer.__anext__()
            assert (message.body, message.address) == (b"from-b", tcp(second))
            await message.finish()
        assert sorted(consumer.addresses) == sorted([tcp(first), tcp(second)])


async def test_rdy_distribution_five_nsqd_max_in_flight_three(
    start_nsqd: Callable[..., Any], tmp_path: Path
) -> None:
    servers = []
    for i in range(5):
        (tmp_path / str(i)).mkdir()
        servers.append(await start_nsqd(data_path=str(tmp_path / str(i)), http_address=""))
    for i, server in enumerate(servers):
        async with Producer(tcp(server)) as producer:
            await producer.multi_publish("rdy", [b"%d-%02d" % (i, j) for j in range(30)])
        # the channel exists before the consumer comes: its SUBs are answered at once
        # (a SUB that creates one waits for the metadata write), so all five connections
        # get their RDY share together, as the assertions below expect
        server.nsqd.topics["rdy"].get_channel("c")
    config = ClientConfig(rdy_redistribute_interval=0.05, low_rdy_idle_timeout=0.1, low_rdy_timeout=0.3)
    held = 0
    max_held = 0
    max_server_in_flight = 0
    processed: list[bytes] = []

    def server_in_flight() -> int:
        return sum(len(s.nsqd.topics["rdy"].channels["c"].in_flight) for s in servers
                   if "c" in s.nsqd.topics["rdy"].channels)

    async def handler(message: Message) -> None:
        nonlocal held, max_held, max_server_in_flight
        held += 1
        max_held = max(max_held, held)
        max_server_in_flight = max(max_server_in_flight, server_in_flight())
        await trio.sleep(0.002)
        processed.append(message.body)
        held -= 1
        if len(processed) == 150:
            consumer.stop()

    async with Consumer("rdy", "c", nsqd_tcp_addresses=[tcp(s) for s in servers], max_in_flight=3,
                        config=config, concurrency=10) as consumer:
        with trio.fail_after(TIMEOUT):
            await consumer.run(handler)
    assert sorted(processed) == sorted(b"%d-%02d" % (i, j) for i in range(5) for j in range(30))
    assert max_held <= 3
    assert max_server_in_flight <= 3


async def test_graceful_close_under_load_loses_nothing(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    total = 3000
    bodies = [b"%05d" % i for i in range(total)]
    processed: collections.Counter[bytes] = collections.Counter()
    published = trio.Event()

    async def produce() -> None:
        async with Producer(tcp(server), batch=True) as producer, trio.open_nursery() as nursery:
            for chunk in range(0, total, 100):
                for body in bodies[chunk:chunk + 100]:
                    nursery.start_soon(producer.publish, "load", body)
                await trio.sleep(0.001)
        published.set()

    async def handler(message: Message) -> None:
        await trio.sleep(0.001)
        processed[message.body] += 1
        if sum(processed.values()) == 1000:
            first.stop()  # close in the middle of the stream, handlers busy, messages buffered

    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async with Consumer("load", "c", nsqd_tcp_addresses=[tcp(server)], max_in_flight=100,
                                concurrency=20) as first:
                await first.run(handler)
            stats = first.statistics()
        assert stats.in_flight == 0 and stats.messages_requeued > 0  # buffered ones went back
        await published.wait()
        async with Consumer("load", "c", nsqd_tcp_addresses=[tcp(server)], max_in_flight=100) as second:
            async for message in second:
                processed[message.body] += 1
                await message.finish()
                if len(processed) == total:
                    break
    assert set(processed) == set(bodies)  # nothing lost
    assert max(processed.values()) == 1  # nothing processed twice
