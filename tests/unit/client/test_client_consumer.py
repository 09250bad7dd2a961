"""Consumer against fake nsqds: iteration, handlers, backoff, give-up, close, RDY, discovery."""

from __future__ import annotations

import json
import random

import httpx
import pytest
import trio
import trio.testing
from client_fakes import FakeNetwork, FakeNSQD

from client import ClientConfig, Consumer, Message
from client.errors import BadChannelError, BadTopicError, ConnectionClosedError

A = "127.0.0.1:4150"
B = "127.0.0.1:4250"


def consumer(network: FakeNetwork, addresses: list[str] | None = None, **kwargs: object) -> Consumer:
    return Consumer(
        "t", "c", nsqd_tcp_addresses=addresses or [A], open_stream=network.open_stream, **kwargs  # type: ignore[arg-type]
    )


def test_constructor_validation() -> None:
    with pytest.raises(BadTopicError):
        Consumer("bad topic", "c", nsqd_tcp_addresses=[A])
    with pytest.raises(BadChannelError):
        Consumer("t", "bad channel", nsqd_tcp_addresses=[A])
    with pytest.raises(ValueError):
        Consumer("t", "c")
    with pytest.raises(ValueError):
        Consumer("t", "c", nsqd_tcp_addresses=[A], config=ClientConfig(heartbeat_interval=None))


async def test_iterate_and_finish(network: FakeNetwork) -> None:
    fake = network.add(A)
    for i in range(20):
        fake.put(b"%d" % i)
    got: list[bytes] = []
    async with consumer(network, max_in_flight=5) as c:
        async for message in c:
            assert message.attempts == 1 and message.address == A
            got.append(message.body)
            await message.finish()
            if len(got) == 20:
                break
        stats = c.statistics()
    assert sorted(got) == sorted(b"%d" % i for i in range(20))
    assert sorted(fake.finished) == sorted(got)
    assert stats.messages_received == 20 and stats.messages_finished == 20
    assert fake.clients[0].max_rdy_seen == 5
    assert fake.max_total_in_flight <= 5


async def test_run_handler_fin_and_req_with_backoff(
        network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    fake.put(b"good")
    fake.put(b"bad")

    async def handler(message: Message) -> None:
        if message.body == b"bad":
            raise ValueError("boom")

    config = ClientConfig(default_requeue_delay=7.0, max_in_flight=2)
    async with consumer(network, config=config) as c, trio.open_nursery() as nursery:
        nursery.start_soon(c.run, handler)
        await fake.wait_for(lambda: bool(fake.finished and fake.requeued))
        stats = c.statistics()
        c.stop()
    assert fake.finished == [b"good"]
    assert fake.requeued == [(b"bad", 7000)]  # default_requeue_delay * attempts
    assert stats.messages_requeued == 1 and stats.messages_finished == 1
    assert stats.backoff_level == 1
    assert fake.clients[0].rdy_history[-1] == 0  # backoff sent RDY 0


async def test_handler_answering_itself_is_respected(network: FakeNetwork) -> None:
    fake = network.add(A)
    fake.put(b"x")

    async def handler(message: Message) -> None:
        await message.requeue(delay=1.5, backoff=False)
        c.stop()

    async with consumer(network) as c:
        await c.run(handler)
        assert c.statistics().backoff_level == 0
    assert fake.requeued == [(b"x", 1500)]
    assert fake.finished == []


async def test_custom_requeue_policy(network: FakeNetwork) -> None:
    fake = network.add(A)
    fake.put(b"x", attempts=2)

    async def handler(message: Message) -> None:
        c.stop()
        raise RuntimeError

    async with consumer(network, requeue_delay=lambda m: m.attempts * 0.25) as c:
        await c.run(handler)
    assert fake.requeued == [(b"x", 750)]


async def test_give_up_after_max_attempts(network: FakeNetwork) -> None:
    fake = network.add(A)
    fake.put(b"poison", attempts=5)  # delivered as attempt 6
    fake.put(b"fine")
    given_up: list[bytes] = []
    handled: list[bytes] = []

    async def on_give_up(message: Message) -> None:
        given_up.append(message.body)

    async def handler(message: Message) -> None:
        handled.append(message.body)
        c.stop()

    async with consumer(network, max_attempts=5, on_give_up=on_give_up, max_in_flight=2) as c:
        await c.run(handler)
        assert c.statistics().messages_given_up == 1
    assert given_up == [b"poison"] and handled == [b"fine"]
    assert sorted(fake.finished) == [b"fine", b"poison"]


async def test_graceful_close_requeues_buffered_and_waits_for_in_flight(network: FakeNetwork) -> None:
    fake = network.add(A)
    for i in range(10):
        fake.put(b"%d" % i)
    async with consumer(network, max_in_flight=10) as c:
        held = await c.__anext__()
        await fake.wait_for(lambda: c.statistics().buffered == 9)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.close)
            await fake.wait_for(lambda: len(fake.requeued) == 9)
            names = [name for _, name, _ in fake.commands]
            assert names.index(b"CLS") < names.index(b"REQ")  # no redelivery to us
            assert fake.clients[0].alive  # still waiting for the handed-out message
            with pytest.raises(StopAsyncIteration):
                await c.__anext__()
            await held.finish()
    assert fake.finished == [held.body]
    assert all(delay == 0 for _, delay in fake.requeued)
    assert sorted(fake.finished + [m.body for m in fake.queue]) == sorted(b"%d" % i for i in range(10))


async def test_close_times_out_on_unanswered_messages(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.put(b"x")
    start = trio.current_time()
    async with consumer(network, close_timeout=4.0) as c:
        message = await c.__anext__()
    assert trio.current_time() - start == pytest.approx(4.0, abs=0.1)
    assert not message.has_responded
    assert not fake.clients[0].alive


async def test_rdy_distribution_across_five_nsqd(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    addresses = [f"127.0.0.1:{4150 + 100 * i}" for i in range(5)]
    fakes = [network.add(addr) for addr in addresses]
    for i, fake in enumerate(fakes):
        for j in range(20):
            fake.put(b"%d-%d" % (i, j))
    config = ClientConfig(rdy_redistribute_interval=0.2, low_rdy_idle_timeout=0.5, low_rdy_timeout=1.0)
    got: list[bytes] = []
    async with consumer(network, addresses, max_in_flight=3, config=config, rng=random.Random(3)) as c:
        await c.wait_connected(5)

        async def handler(message: Message) -> None:
            assert sum(f.in_flight_total() for f in fakes) <= 3
            got.append(message.body)
            await trio.sleep(0.05)
            if len(got) == 100:
                c.stop()

        await c.run(handler)
    assert len(got) == 100 and len(set(got)) == 100
    assert all(len(fake.finished) == 20 for fake in fakes)  # every nsqd got its turns


async def test_static_address_reconnects(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    async with consumer(network) as c:
        await c.wait_connected()
        await fake.kill()
        while c.connection_count:
            await trio.sleep(0.01)
        await c.wait_connected()
        fake.put(b"after")
        message = await c.__anext__()
        await message.finish()
    assert fake.finished == [b"after"]
    assert len(fake.clients) == 2


async def test_messages_arriving_during_close_are_requeued(network: FakeNetwork) -> None:
    fake = network.add(A)
    fake.deliver_on_cls = [b"late"]
    async with consumer(network, max_in_flight=4) as c:
        await c.wait_connected()
    assert fake.requeued == [(b"late", 0)]
    assert fake.finished == []
    assert c.statistics().messages_received == 1


async def test_auto_touch(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = FakeNSQD(msg_timeout_ms=4000)
    network.add(A, fake)
    fake.put(b"slow")

    async def handler(message: Message) -> None:
        await trio.sleep(9)
        c.stop()

    async with consumer(network, auto_touch=True) as c:
        await c.run(handler)
    assert len(fake.touched) == 4  # every 2s during 9s
    assert fake.finished == [b"slow"]


async def test_cancelled_handler_requeues_at_once(network: FakeNetwork) -> None:
    fake = network.add(A)
    fake.put(b"x")
    started = trio.Event()

    async def handler(message: Message) -> None:
        started.set()
        await trio.sleep_forever()

    async with consumer(network) as c:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.run, handler)
            await started.wait()
            nursery.cancel_scope.cancel()
        await fake.wait_for(lambda: fake.requeued == [(b"x", 0)])
        assert c.statistics().in_flight == 0


async def test_wait_connected_fails_when_closing(network: FakeNetwork) -> None:
    async with consumer(network) as c:
        c.stop()
        with pytest.raises(ConnectionClosedError):
            await c.wait_connected()


async def test_change_max_in_flight(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with consumer(network, max_in_flight=5) as c:
        await c.wait_connected()
        c.change_max_in_flight(0)
        c.change_max_in_flight(8)
        await fake.wait_for(lambda: fake.clients[0].rdy_history[-1:] == [8])
        assert fake.clients[0].rdy_history == [5, 0, 8]


class Lookupd:
    """A MockTransport nsqlookupd whose producer list the test edits."""

    def __init__(self) -> None:
        self.producers: list[str] = []
        self.queries = 0
        self.fail = False

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.queries += 1
        if self.fail:
            return httpx.Response(500, json={"message": "INTERNAL_ERROR"})
        assert request.url.path == "/lookup" and request.url.params["topic"] == "t"
        if not self.producers:
            return httpx.Response(404, json={"message": "TOPIC_NOT_FOUND"})
        producers = [
            {"broadcast_address": a.split(":")[0], "tcp_port": int(a.split(":")[1]), "http_port": 1}
            for a in self.producers
        ]
        return httpx.Response(200, content=json.dumps({"channels": ["c"], "producers": producers}))


async def test_lookupd_discovers_and_retires(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    lookupd = Lookupd()
    fake_a, fake_b = network.add(A), network.add(B)
    lookupd.producers = [A]
    http = httpx.AsyncClient(transport=httpx.MockTransport(lookupd.handler))
    config = ClientConfig(lookupd_poll_interval=10.0, lookupd_poll_jitter=0.5)
    async with Consumer(
        "t", "c", lookupd_http_addresses=["lookupd:4161"], open_stream=network.open_stream,
        http_client=http, config=config, max_in_flight=10,
    ) as c:
        await c.wait_connected(1)
        assert c.addresses == [A]
        lookupd.producers = [A, B]  # a node appears later
        await c.wait_connected(2)
        fake_b.put(b"from-b")
        message = await c.__anext__()
        assert message.address == B
        await message.finish()
        lookupd.fail = True  # a failed poll must not drop anyone
        await trio.sleep(25)
        assert sorted(c.addresses) == [A, B]
        lookupd.fail = False
        lookupd.producers = [B]  # A vanished from lookupd
        while c.addresses != [B]:
            await trio.sleep(1)
        assert fake_a.clients[0].closing  # retired with CLS
    assert fake_b.finished == [b"from-b"]
    await http.aclose()
