"""NSQ in the queue framework against our nsqd (in-process, 127.0.0.1 port 0).

A ServiceGroup pipeline (NSQQueue → NSQPusher → NSQQueue) with one shutdown, the
in-flight bound over two nsqd, REQ/redelivery and give-up, discovery through nsqlookupd,
and the delay queue on DPUB (over TCP and HTTP, within nsqd's max-req-timeout).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel

from client import ClientConfig, HTTPProducer, Message, Producer
from client.queue import DelayQueue, NSQPusher, NSQQueue, ServiceGroup
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

TIMEOUT = 30


def tcp(server: Any) -> str:
    return "%s:%d" % server.tcp_address


async def wait_for(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await trio.sleep(0.01)


async def test_service_group_pipeline_with_one_shutdown(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    address = tcp(server)
    results: list[bytes] = []
    pusher = NSQPusher(address, "squares", flush_interval=0.05, max_items=100)

    async def square(message: Message) -> None:
        await pusher.push(b"%d" % int(message.body) ** 2)

    async def collect(message: Message) -> None:
        results.append(message.body)

    # Stopped in reverse: the squaring queue stops (and drains into the pusher) before
    # the pusher flushes and closes.
    group = ServiceGroup([
        pusher,
        NSQQueue("numbers", "square", square, nsqd_tcp_addresses=[address], conns=2,
                 processors=8, queue_capacity=50),
        NSQQueue("squares", "collect", collect, nsqd_tcp_addresses=[address], processors=4,
                 queue_capacity=20),
    ])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            async with Producer(address) as producer:
                for start in range(0, 1000, 100):
                    await producer.multi_publish("numbers", [b"%d" % i for i in range(start, start + 100)])
            await wait_for(lambda: len(results) == 1000)
            await group.aclose()
    assert sorted(int(body) for body in results) == [i * i for i in range(1000)]
    stats = pusher.statistics()
    assert stats.published == 1000 and stats.failed == 0 and stats.chunks >= 10
    for topic, channel in (("numbers", "square"), ("squares", "collect")):
        ch = server.nsqd.topics[topic].channels[channel]
        assert len(ch.in_flight) == 0 and ch.depth() == 0 and not ch.clients


async def test_in_flight_bound_over_two_nsqd(start_nsqd: Callable[..., Any], tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    servers = [await start_nsqd(data_path=str(tmp_path / "a")),
               await start_nsqd(data_path=str(tmp_path / "b"), node_id=2)]
    handled = 0
    peak = 0

    def in_flight() -> int:
        channels = [s.nsqd.topics["bound"].channels.get("c") for s in servers
                    if "bound" in s.nsqd.topics]
        return sum(len(c.in_flight) for c in channels if c is not None)

    async def handler(message: Message) -> None:
        nonlocal handled
        await trio.lowlevel.checkpoint()
        handled += 1

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, in_flight())
            await trio.sleep(0.0005)

    queue = NSQQueue("bound", "c", handler, nsqd_tcp_addresses=[tcp(s) for s in servers],
                     conns=2, processors=8, queue_capacity=24)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample)
            await nursery.start(queue.run)
            await queue.wait_connected(2)
            # publish once nsqd has every connection's final RDY: while connections come
            # up, a first connection's larger RDY lets nsqd send more than its later share
            # (NSQ's RDY cannot take back what was sent), so the bound holds from here on
            await wait_for(lambda: sum(c.ready_count for s in servers
                                       for c in s.nsqd.get_topic("bound").channels["c"].clients.values()
                                       ) == 24)
            for server in servers:
                async with Producer(tcp(server)) as producer:
                    await producer.multi_publish("bound", [b"%d" % i for i in range(2000)])
            await wait_for(lambda: handled == 4000)
            stats = queue.statistics()
            queue.stop()
            await wait_for(lambda: in_flight() == 0)
            nursery.cancel_scope.cancel()
    assert 0 < peak <= 24
    assert sum(c.messages_finished for c in stats.connections) == 4000
    assert [c.connections for c in stats.connections] == [2, 2]


async def test_failures_are_requeued_redelivered_then_given_up(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    seen: list[tuple[bytes, int]] = []
    given_up: list[bytes] = []

    async def handler(message: Message) -> None:
        seen.append((message.body, message.attempts))
        if message.body == b"poison" or message.attempts == 1:
            raise RuntimeError("fails")

    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("flaky", [b"ok-1", b"ok-2", b"poison"])
    queue = NSQQueue("flaky", "c", handler, nsqd_tcp_addresses=[tcp(server)], max_attempts=3,
                     requeue_delay=0.05, backoff=False, on_give_up=lambda m: given_up.append(m.body))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_for(lambda: bool(given_up) and len(seen) == 7)
            stats = queue.statistics()
            queue.stop()
    assert given_up == [b"poison"]
    assert sorted(seen) == sorted([(b"ok-1", 1), (b"ok-1", 2), (b"ok-2", 1), (b"ok-2", 2),
                                   (b"poison", 1), (b"poison", 2), (b"poison", 3)])
    assert stats.queue is not None and stats.queue.failures == 5 and stats.queue.consumed == 2
    channel = server.nsqd.topics["flaky"].channels["c"]
    assert channel.requeue_count == 5 and len(channel.in_flight) == 0 and channel.depth() == 0


async def test_discovers_nsqd_through_lookupd(
    nursery: trio.Nursery, start_nsqd: Callable[..., Any]
) -> None:
    lookupd: NSQLookupd = await nursery.start(NSQLookupd(LookupdOptions(
        tcp_address="127.0.0.1:0", http_address="127.0.0.1:0", broadcast_address="127.0.0.1")).run)
    assert lookupd.real_tcp_addr is not None and lookupd.real_http_addr is not None
    server = await start_nsqd(lookupd_tcp_addresses=["%s:%d" % lookupd.real_tcp_addr],
                              broadcast_address="127.0.0.1")
    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("found", [b"a", b"b", b"c"])
    got: list[bytes] = []

    async def handler(message: Message) -> None:
        got.append(message.body)

    config = ClientConfig(lookupd_poll_interval=0.2, lookupd_poll_jitter=0.1)
    queue = NSQQueue("found", "c", handler, config=config,
                     lookupd_http_addresses=["http://%s:%d" % lookupd.real_http_addr])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as inner:
            await inner.start(queue.run)
            await wait_for(lambda: len(got) == 3)
            queue.stop()
    assert sorted(got) == [b"a", b"b", b"c"]


async def test_delay_queue_over_tcp_and_http(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(max_req_timeout=2.0)
    arrivals: dict[bytes, float] = {}

    async def handler(message: Message) -> None:
        arrivals[message.body] = trio.current_time()

    queue = NSQQueue("later", "c", handler, nsqd_tcp_addresses=[tcp(server)])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await queue.wait_connected()
            start = trio.current_time()
            async with Producer(tcp(server)) as producer, HTTPProducer(server.http_url) as http:
                delays = DelayQueue(producer, "later", max_delay=2.0)
                await delays.put(b"tcp-0.4", 0.4)
                await delays.put(b"now", 0)
                await DelayQueue(http, "later", max_delay=2.0).put("http-0.2", 0.2)
                # Beyond nsqd's max-req-timeout: refused before it reaches nsqd (which
                # would drop the connection), so the producer stays usable.
                with pytest.raises(ValueError):
                    await delays.put(b"too-late", 2.5)
                await producer.publish("later", b"plain")
            await wait_for(lambda: len(arrivals) == 4)
            queue.stop()
    assert set(arrivals) == {b"tcp-0.4", b"now", b"http-0.2", b"plain"}
    assert arrivals[b"tcp-0.4"] - start >= 0.4
    assert arrivals[b"http-0.2"] - start >= 0.2
    assert arrivals[b"now"] <= arrivals[b"tcp-0.4"]
