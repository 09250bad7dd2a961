"""Producer: publish/MPUB/DPUB, pipelining, auto-batching, failover, retries, close."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel
import trio.testing
from client_fakes import FakeClient, FakeNetwork

from client import ClientConfig, Producer
from client.errors import (
    BadMessageError,
    BadTopicError,
    NotConnectedError,
    PublishError,
    PublishTimeoutError,
)

A = "127.0.0.1:4150"
B = "127.0.0.1:4250"


def names(fake_commands: list[tuple[int, bytes, list[bytes]]], name: bytes) -> int:
    return sum(1 for _, n, _ in fake_commands if n == name)


async def test_publish_multi_and_deferred(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream) as producer:
        await producer.publish("events", b"hello")
        await producer.multi_publish("events", [b"a", b"b"])
        await producer.deferred_publish("events", b"later", delay=30.0)
        stats = producer.statistics()
    assert fake.published["events"] == [b"hello", b"a", b"b"]
    assert fake.deferred == [("events", 30_000, b"later")]
    assert stats.messages_published == 4 and stats.connects == 1 and stats.address == A


async def test_argument_validation(network: FakeNetwork) -> None:
    network.add(A)
    with pytest.raises(ValueError):
        Producer([])
    async with Producer(A, open_stream=network.open_stream) as producer:
        with pytest.raises(BadTopicError):
            await producer.publish("bad topic!", b"x")
        with pytest.raises(ValueError):
            await producer.multi_publish("t", [])
        with pytest.raises(ValueError):
            await producer.deferred_publish("t", b"x", delay=-1)
    assert network.dials == []  # nothing was worth a connection


async def test_lifecycle_errors(network: FakeNetwork) -> None:
    network.add(A)
    producer = Producer(A, open_stream=network.open_stream)
    with pytest.raises(RuntimeError):
        await producer.publish("t", b"x")
    async with producer:
        await producer.publish("t", b"x")
    with pytest.raises(PublishError):
        await producer.publish("t", b"x")
    with pytest.raises(RuntimeError):
        async with producer:
            pass


async def test_unbatched_publishes_are_pipelined_on_one_connection(network: FakeNetwork) -> None:
    fake = network.add(A)
    fake.hold = trio.Event()
    async with Producer(A, open_stream=network.open_stream) as producer, trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(producer.publish, "t", b"%d" % i)
        while (producer.statistics().in_progress < 200 or producer._conn is None
               or producer._conn.pending_requests < 200):
            await trio.sleep(0.01)
        fake.hold.set()
    assert len(fake.clients) == 1
    assert sorted(fake.published["t"]) == sorted(b"%d" % i for i in range(200))


async def test_batching_coalesces_concurrent_publishes(network: FakeNetwork) -> None:
    fake = network.add(A)
    done: list[int] = []

    async def publish(producer: Producer, i: int) -> None:
        await producer.publish("t", b"%d" % i)
        done.append(i)

    async with (
        Producer(A, open_stream=network.open_stream, batch=True, batch_size=100) as producer,
        trio.open_nursery() as nursery,
    ):
        for i in range(1000):
            nursery.start_soon(publish, producer, i)
    assert sorted(done) == list(range(1000))
    assert sorted(fake.published["t"]) == sorted(b"%d" % i for i in range(1000))
    assert names(fake.commands, b"MPUB") == 10
    assert names(fake.commands, b"PUB") == 0


async def test_batch_bytes_limit(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with (
        Producer(A, open_stream=network.open_stream, batch=True, batch_bytes=1000) as producer,
        trio.open_nursery() as nursery,
    ):
        for _ in range(10):
            nursery.start_soon(producer.publish, "t", b"x" * 496)  # 500 bytes with its size
    assert names(fake.commands, b"MPUB") == 5


async def test_lone_batched_publish_goes_out_at_once(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream, batch=True, flush_interval=5.0) as producer:
        start = trio.current_time()
        await producer.publish("t", b"lonely")
        assert trio.current_time() - start < 0.01
    assert fake.published["t"] == [b"lonely"]
    assert names(fake.commands, b"PUB") == 1  # a batch of one goes out as PUB


async def test_batch_gathers_while_previous_is_in_flight(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.hold = trio.Event()
    async with (
        Producer(A, open_stream=network.open_stream, batch=True, flush_interval=0.5) as producer,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(producer.publish, "t", b"first")
        while producer._conn is None or producer._conn.pending_requests < 1:
            await trio.sleep(0.01)
        start = trio.current_time()
        for body in (b"a", b"b", b"c"):
            nursery.start_soon(producer.publish, "t", body)
        while producer._conn.pending_requests < 2:
            await trio.sleep(0.01)
        # the second batch waited flush_interval, since the first was unanswered
        assert trio.current_time() - start == pytest.approx(0.5, abs=0.02)
        fake.hold.set()
    assert fake.published["t"][0] == b"first"
    assert sorted(fake.published["t"][1:]) == [b"a", b"b", b"c"]
    assert names(fake.commands, b"MPUB") == 1


async def test_next_batch_goes_when_previous_is_answered(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.hold = trio.Event()
    async with Producer(A, open_stream=network.open_stream, batch=True, flush_interval=100.0) as producer:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer.publish, "t", b"first")
            await trio.sleep(1.0)
            for body in (b"a", b"b"):
                nursery.start_soon(producer.publish, "t", body)
            await trio.sleep(1.0)
            assert producer._conn is not None and producer._conn.pending_requests == 1
            fake.hold.set()
        assert trio.current_time() < 3.0
    assert fake.published["t"][0] == b"first"
    assert sorted(fake.published["t"][1:]) == [b"a", b"b"]
    assert names(fake.commands, b"MPUB") == 1


async def test_each_batched_caller_gets_its_own_error(network: FakeNetwork) -> None:
    fake = network.add(A)
    results: dict[bytes, object] = {}

    async def publish(producer: Producer, body: bytes) -> None:
        try:
            await producer.publish("t", body)
            results[body] = "ok"
        except BadMessageError as exc:
            results[body] = exc

    async with (
        Producer(A, open_stream=network.open_stream, batch=True, flush_interval=1.0) as producer,
        trio.open_nursery() as nursery,
    ):
        for body in (b"one", b"", b"three"):
            nursery.start_soon(publish, producer, body)
    assert results[b"one"] == "ok" and results[b"three"] == "ok"
    assert isinstance(results[b""], BadMessageError)
    assert sorted(fake.published["t"]) == [b"one", b"three"]
    assert names(fake.commands, b"MPUB") == 1  # refused as a whole, then retried one by one


async def test_cancelled_batched_publish_is_withdrawn(
        network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    fake.hold = trio.Event()
    async with (
        Producer(A, open_stream=network.open_stream, batch=True, flush_interval=1.0) as producer,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(producer.publish, "t", b"first")
        await trio.sleep(0.01)
        nursery.start_soon(producer.publish, "t", b"kept")
        with trio.move_on_after(0.1):
            await producer.publish("t", b"withdrawn")
        fake.hold.set()
    assert fake.published["t"] == [b"first", b"kept"]


async def test_close_flushes_pending_batches(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    finished: list[bytes] = []

    async def publish(producer: Producer, body: bytes) -> None:
        await producer.publish("t", body)
        finished.append(body)

    start = trio.current_time()
    async with trio.open_nursery() as outer:
        async with Producer(A, open_stream=network.open_stream, batch=True, flush_interval=100.0) as producer:
            fake.hold = trio.Event()
            outer.start_soon(publish, producer, b"first")
            await trio.sleep(0.01)
            for i in range(5):
                outer.start_soon(publish, producer, b"%d" % i)
            while producer.statistics().in_progress < 6:
                await trio.lowlevel.checkpoint()
            fake.hold.set()
        # leaving the producer sent the batch without waiting for the flush interval
        assert sorted(finished) == [b"0", b"1", b"2", b"3", b"4", b"first"]
    assert trio.current_time() - start < 1.0
    assert len(fake.published["t"]) == 6


async def test_server_error_is_not_retried(network: FakeNetwork) -> None:
    fake_a = network.add(A)
    fake_b = network.add(B)
    fake_a.error_hook = lambda c, name, p, body: b"E_BAD_MESSAGE PUB message too big 10 > 5" if name == b"PUB" else None
    async with Producer([A, B], open_stream=network.open_stream) as producer:
        with pytest.raises(BadMessageError) as info:
            await producer.publish("t", b"0123456789")
    assert info.value.code == "E_BAD_MESSAGE" and "too big" in info.value.desc
    assert names(fake_a.commands, b"PUB") == 1
    assert fake_b.commands == []


async def test_retriable_server_error_fails_over(network: FakeNetwork) -> None:
    fake_a = network.add(A)
    fake_b = network.add(B)
    fake_a.error_hook = lambda c, name, p, body: b"E_PUB_FAILED PUB failed exiting" if name == b"PUB" else None
    async with Producer([A, B], open_stream=network.open_stream) as producer:
        await producer.publish("t", b"x")
        assert producer.statistics().retries == 1
    assert fake_b.published["t"] == [b"x"]


async def test_failover_when_an_nsqd_dies_mid_stream(network: FakeNetwork) -> None:
    fake_a = network.add(A)
    fake_b = network.add(B)
    acked: list[int] = []

    async def publish(producer: Producer, i: int) -> None:
        await producer.publish("t", b"%d" % i)
        acked.append(i)

    async with Producer([A, B], open_stream=network.open_stream) as producer, trio.open_nursery() as nursery:
        for i in range(300):
            nursery.start_soon(publish, producer, i)
            if i == 100:
                await fake_a.wait_for(lambda: len(fake_a.published["t"]) > 50)
                network.remove(A)
                await fake_a.kill()
    assert sorted(acked) == list(range(300))
    stored = set(fake_a.published["t"]) | set(fake_b.published["t"])
    assert stored == {b"%d" % i for i in range(300)}  # at least once, none lost
    assert fake_b.published["t"]


async def test_dial_failover_skips_dead_address(network: FakeNetwork) -> None:
    fake_b = network.add(B)
    async with Producer([A, B], open_stream=network.open_stream) as producer:
        await producer.publish("t", b"x")
        await producer.publish("t", b"y")
    assert fake_b.published["t"] == [b"x", b"y"]
    assert network.dials == [A, B]  # B stays current once it works


async def test_reconnects_after_connection_loss(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream) as producer:
        await producer.publish("t", b"1")
        await fake.kill()
        await producer.publish("t", b"2")
        assert producer.statistics().connects == 2
    assert fake.published["t"] == [b"1", b"2"]


async def test_nothing_reachable_times_out(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    async with Producer([A, B], open_stream=network.open_stream, timeout=5.0) as producer:
        start = trio.current_time()
        with pytest.raises(PublishTimeoutError) as info:
            await producer.publish("t", b"x")
    assert trio.current_time() - start == pytest.approx(5.0, abs=0.01)
    assert isinstance(info.value, TimeoutError)
    assert isinstance(info.value.__cause__, NotConnectedError)
    assert len(network.dials) > 4  # kept retrying both, with backoff


async def test_recovers_when_nsqd_comes_back(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    async with Producer(A, open_stream=network.open_stream, timeout=30.0) as producer, trio.open_nursery() as nursery:
        nursery.start_soon(producer.publish, "t", b"x")
        await trio.sleep(3.0)
        fake = network.add(A)
    assert fake.published["t"] == [b"x"]


async def test_heartbeats_keep_an_idle_producer_connected(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream, config=ClientConfig(heartbeat_interval=1.0)) as producer:
        await producer.publish("t", b"1")
        await trio.sleep(30)
        await producer.publish("t", b"2")
        assert producer.statistics().connects == 1
    client: FakeClient = fake.clients[0]
    assert client.nops >= 29


async def test_send_returns_receipts(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream, batch_size=50) as producer:
        receipts = [await producer.send("t", b"%d" % i) for i in range(120)]
        assert not receipts[-1].done
        for receipt in receipts:
            await receipt
        assert all(r.done and r.error is None and r.topic == "t" for r in receipts)
        stats = producer.statistics()
    assert stats.messages_published == 120 and stats.pending_messages == 0
    assert sorted(fake.published["t"]) == sorted(b"%d" % i for i in range(120))
    assert names(fake.commands, b"MPUB") >= 3


async def test_send_nowait_backpressure(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream, max_pending=10) as producer:
        receipts = [producer.send_nowait("t", b"%d" % i) for i in range(10)]
        with pytest.raises(trio.WouldBlock):
            producer.send_nowait("t", b"over")
        late = await producer.send("t", b"over")  # waits for room instead
        await late
        assert all(r.done for r in receipts)
        with pytest.raises(BadTopicError):
            producer.send_nowait("bad topic", b"x")
    assert len(fake.published["t"]) == 11
    with pytest.raises(PublishError):
        producer.send_nowait("t", b"closed")


async def test_receipt_cancel_and_errors(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    fake.hold = trio.Event()
    async with Producer(A, open_stream=network.open_stream, flush_interval=1.0) as producer:
        first = await producer.send("t", b"first")  # goes at once, held by nsqd
        await trio.sleep(0.1)
        withdrawn = await producer.send("t", b"withdrawn")  # waits behind it
        bad = await producer.send("t", b"")
        assert withdrawn.cancel() and withdrawn.cancelled
        assert isinstance(withdrawn.error, PublishError)
        fake.hold.set()
        await first
        assert not first.cancel()  # already sent
        with pytest.raises(BadMessageError):
            await bad
    assert fake.published["t"] == [b"first"]


async def test_withdrawn_receipts_leave_a_hole_in_their_batch(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.hold = trio.Event()
    async with Producer(A, open_stream=network.open_stream, flush_interval=1.0) as producer:
        first = await producer.send("t", b"first")  # goes at once, held by nsqd
        await trio.sleep(0.1)
        receipts = [await producer.send("t", b"m%d" % i) for i in range(5)]
        assert [r.body for r in receipts] == [b"m%d" % i for i in range(5)]
        assert all(r.topic == "t" and not r.done and r.error is None for r in receipts)
        assert receipts[1].cancel() and receipts[3].cancel() and receipts[3].cancel()
        assert receipts[1].done and isinstance(receipts[1].error, PublishError)
        with pytest.raises(PublishError, match="withdrawn"):
            await receipts[1]
        fake.hold.set()
        await first
        for i in (0, 2, 4):
            await receipts[i]
            assert receipts[i].done and receipts[i].error is None and not receipts[i].cancel()
        stats = producer.statistics()
    assert fake.published["t"] == [b"first", b"m0", b"m2", b"m4"]
    assert stats.messages_published == 4 and stats.publish_errors == 0 and stats.pending_messages == 0


async def test_publish_cancelled_before_it_starts_is_not_sent(network: FakeNetwork) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream, batch=True) as producer:
        await producer.publish("t", b"first")
        with trio.CancelScope() as scope:
            scope.cancel()
            await producer.publish("t", b"never")
        await producer.publish("t", b"last")
        assert producer.statistics().in_progress == 0
    assert fake.published["t"] == [b"first", b"last"]
