"""NSQQueue against the client tests' fake nsqd, under Trio's virtual clock.

Covers the kq-style knobs (conns, consumers, processors, queue_capacity, max_attempts),
FIN-after-success / REQ-on-failure, the graceful stop (CLS, drain, REQ of unstarted
messages), the drain timeout, pause/resume, touching and statistics.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from client_fakes import FakeNetwork, FakeNSQD

from client import BadChannelError, BadTopicError, ClientConfig, Message
from client.queue import NSQHandler, NSQQueue, Queue, ServiceGroup

A = "127.0.0.1:4150"
B = "127.0.0.1:4250"
TIMEOUT = 10_000  # virtual seconds


@pytest.fixture
async def network(nursery: trio.Nursery) -> FakeNetwork:
    return FakeNetwork(nursery)


def make_queue(network: FakeNetwork, handler: Callable[[Message], object], **kwargs: object) -> NSQQueue:
    kwargs.setdefault("nsqd_tcp_addresses", [A])
    return NSQQueue("t", "c", handler, open_stream=network.open_stream, **kwargs)  # type: ignore[arg-type]


def bodies(count: int) -> list[bytes]:
    return [b"m%04d" % i for i in range(count)]


def fill(fake: FakeNSQD, count: int) -> list[bytes]:
    items = bodies(count)
    for body in items:
        fake.put(body)
    return items


def cmd_names(fake: FakeNSQD) -> list[bytes]:
    return [name for _cid, name, _params in fake.commands]


def test_constructor_validation() -> None:
    async def handler(message: Message) -> None:
        pass

    def build(topic: str = "t", **kwargs: object) -> NSQQueue:
        kwargs.setdefault("nsqd_tcp_addresses", [A])
        return NSQQueue(topic, "c", handler, **kwargs)  # type: ignore[arg-type]

    for bad in ({"conns": 0}, {"consumers": 0}, {"processors": 0}, {"max_attempts": -1},
                {"queue_capacity": 1, "conns": 2}, {"drain_timeout": 0}, {"requeue_delay": -1},
                {"touch_interval": 0.0}, {"nsqd_tcp_addresses": []}):
        with pytest.raises(ValueError):
            build(**bad)
    with pytest.raises(BadTopicError):
        build(topic="no spaces")
    with pytest.raises(BadChannelError):
        NSQQueue("t", "bad/channel", handler, nsqd_tcp_addresses=[A])
    with pytest.raises(ValueError, match="heartbeats"):
        build(config=ClientConfig(heartbeat_interval=None))
    queue = build(name="jobs")
    assert queue.name == "jobs" and repr(queue) == "<NSQQueue jobs>"
    assert build().name == "t/c"


async def test_every_message_finished_once_within_capacity(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fakes = [network.add(A), network.add(B)]
    expected = sorted(bodies(150) + [b"b" + body for body in bodies(150)])
    handled: list[bytes] = []
    busy = 0
    peak = 0

    async def handler(message: Message) -> None:
        nonlocal busy, peak
        busy += 1
        peak = max(peak, busy)
        await trio.sleep(0.5)
        busy -= 1
        handled.append(message.body)

    queue = make_queue(network, handler, nsqd_tcp_addresses=[A, B], conns=2, consumers=2,
                       processors=6, queue_capacity=20)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await queue.wait_connected(2)
            # messages come once every connection has its RDY: while connections come up,
            # nsqd may already have sent what an earlier, larger RDY allowed (NSQ's RDY
            # protocol cannot take that back), so the bound is checked from here on;
            # one virtual second lets the fakes read the RDYs already written
            await trio.sleep(1)
            for body in bodies(150):
                fakes[0].put(body)
                fakes[1].put(b"b" + body)
            await fakes[0].wait_for(lambda: len(handled) == 300)
            stats = queue.statistics()
            queue.stop()
    assert sorted(handled) == expected
    assert sorted(fakes[0].finished + fakes[1].finished) == expected
    assert not fakes[0].requeued and not fakes[1].requeued
    assert peak == 6  # processors bound concurrency
    # 2 conns x 2 nsqd: four connections share the capacity of 20.
    assert len(fakes[0].clients) == len(fakes[1].clients) == 2
    assert fakes[0].max_total_in_flight + fakes[1].max_total_in_flight <= 20
    assert all(c.total_rdy <= 10 for c in stats.connections)
    assert stats.queue is not None and stats.queue.consumed == 300
    assert stats.queue.active_producers == 4  # conns * consumers fetchers
    assert sum(c.messages_finished for c in stats.connections) == 300
    assert stats.in_flight == 0 and stats.queue_capacity == 20 and not stats.paused
    assert all(c.connections == 2 and c.max_in_flight == 10 for c in stats.connections)


async def test_capacity_split_is_uneven_but_exact(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fill(fake, 50)
    release = trio.Event()

    async def handler(message: Message) -> None:
        await release.wait()

    queue = make_queue(network, handler, conns=3, processors=2, queue_capacity=7)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await fake.wait_for(lambda: fake.in_flight_total() == 7)
            await trio.sleep(1)  # nothing more arrives while handlers hang
            assert fake.in_flight_total() == 7
            assert sorted(c.rdy for c in fake.clients) == [2, 2, 3]
            release.set()
            await fake.wait_for(lambda: len(fake.finished) == 50)
            queue.stop()
    assert fake.max_total_in_flight == 7


async def test_failure_requeues_with_policy_then_gives_up(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.put(b"bad")
    fake.put(b"good")
    given_up: list[tuple[bytes, int]] = []
    calls: list[tuple[bytes, int]] = []

    async def handler(message: Message) -> None:
        calls.append((message.body, message.attempts))
        if message.body == b"bad":
            raise RuntimeError("nope")

    queue = make_queue(network, handler, max_attempts=3, requeue_delay=lambda m: 2.0 * m.attempts,
                       backoff=False, on_give_up=lambda m: given_up.append((m.body, m.attempts)))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await fake.wait_for(lambda: bool(given_up))
            stats = queue.statistics()
            queue.stop()
    assert calls.count((b"good", 1)) == 1
    assert [c for c in calls if c[0] == b"bad"] == [(b"bad", 1), (b"bad", 2), (b"bad", 3)]
    assert fake.requeued == [(b"bad", 2000), (b"bad", 4000), (b"bad", 6000)]
    assert given_up == [(b"bad", 4)]  # the 4th delivery is finished unhandled
    assert sorted(fake.finished) == [b"bad", b"good"]
    assert stats.queue is not None and stats.queue.failures == 3 and stats.queue.consumed == 1
    assert stats.connections[0].messages_given_up == 1
    assert stats.connections[0].backoff_level == 0


async def test_fixed_requeue_delay_and_backoff(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.put(b"bad")
    failed = trio.Event()

    async def handler(message: Message) -> None:
        failed.set()
        raise ValueError("boom")

    queue = make_queue(network, handler, requeue_delay=30)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await fake.wait_for(lambda: bool(fake.requeued))
            stats = queue.statistics()
            queue.stop()
    assert fake.requeued[0] == (b"bad", 30000)
    assert stats.connections[0].backoff_level == 1
    assert fake.clients[0].rdy_history[-1] == 0  # backoff: RDY 0


async def test_handler_may_answer_itself(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.put(b"fin")
    fake.put(b"req")

    async def handler(message: Message) -> None:
        if message.body == b"fin":
            await message.finish()
            raise RuntimeError("after finishing: nothing else is sent")
        await message.requeue(5.0, backoff=False)

    queue = make_queue(network, handler, max_attempts=1)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await fake.wait_for(lambda: len(fake.finished) == 2)  # req given up at attempt 2
            queue.stop()
    assert fake.requeued == [(b"req", 5000)]
    assert sorted(fake.finished) == [b"fin", b"req"]
    assert cmd_names(fake).count(b"FIN") == 2 and cmd_names(fake).count(b"REQ") == 1


@pytest.mark.parametrize("capacity", [10, 100])
async def test_graceful_stop_drains_started_and_requeues_the_rest(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock, capacity: int
) -> None:
    fake = network.add(A)
    fill(fake, 100)
    started: list[bytes] = []
    done: list[bytes] = []
    two_started = trio.Event()

    async def handler(message: Message) -> None:
        started.append(message.body)
        if len(started) == 2:
            two_started.set()
        await trio.sleep(10)
        done.append(message.body)

    queue = make_queue(network, handler, processors=2, queue_capacity=capacity, drain_timeout=60)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await two_started.wait()
            await fake.wait_for(lambda: fake.in_flight_total() == capacity)
            stopped_at = trio.current_time()
            queue.stop()
            queue.stop()
        # run() returned: the connection is closed and every message answered.
        elapsed = trio.current_time() - stopped_at
    stats = queue.statistics()
    assert fake.clients[0].closing  # CLS was sent
    # Only the two in progress were handled (and FIN'd); nothing else was started.
    assert sorted(done) == sorted(started) == sorted(fake.finished) and len(done) == 2
    assert elapsed <= 10.0
    # The others in flight went back unhandled, at once: those in the queue's channel (64
    # slots at most, plus one a fetcher was sending) through the processors, the rest
    # from the consumer's buffer.
    assert sorted(body for body, _delay in fake.requeued) == sorted(
        set(bodies(capacity)) - set(done))
    assert all(delay == 0 for _body, delay in fake.requeued)
    if capacity == 10:
        assert stats.given_back == 8
    else:
        assert 62 <= stats.given_back <= 65  # a full channel, less the two started
    assert stats.handled == 2 and stats.failed == 0
    assert stats.connections[0].messages_requeued == capacity - 2 and stats.in_flight == 0
    assert fake.in_flight_total() == 0
    assert len(fake.queue) == 98  # nothing lost


async def test_stop_then_restart_handles_everything_exactly_once(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    expected = fill(fake, 500)
    handled: list[bytes] = []

    async def handler(message: Message) -> None:
        await trio.sleep(0.01 * (message.body[-1] % 7))
        handled.append(message.body)

    with trio.fail_after(TIMEOUT):
        for threshold in (137, 301, 500):
            queue = make_queue(network, handler, conns=2, processors=8, queue_capacity=32)
            async with trio.open_nursery() as nursery:
                await nursery.start(queue.run)
                await fake.wait_for(lambda: len(handled) >= threshold)  # noqa: B023 - awaited here
                queue.stop()
    assert sorted(handled) == sorted(expected)  # none lost, none twice
    assert sorted(fake.finished) == sorted(expected)
    assert fake.max_total_in_flight <= 32


async def test_drain_timeout_cancels_stuck_handlers_and_requeues(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.put(b"stuck")
    entered = trio.Event()

    async def handler(message: Message) -> None:
        entered.set()
        await trio.sleep_forever()

    queue = make_queue(network, handler, drain_timeout=5)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await entered.wait()
            start = trio.current_time()
            queue.stop()
        assert trio.current_time() - start == pytest.approx(5.0)
    assert fake.requeued == [(b"stuck", 0)] and not fake.finished


async def test_cancelling_run_requeues_messages_in_progress(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fill(fake, 3)
    entered = trio.Event()

    async def handler(message: Message) -> None:
        entered.set()
        await trio.sleep_forever()

    queue = make_queue(network, handler, processors=3, queue_capacity=3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await entered.wait()
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        await fake.wait_for(lambda: fake.in_flight_total() == 0)
    assert not fake.finished
    assert len(fake.queue) == 3  # REQ'd (or returned when the connection dropped)


async def test_stop_before_run_returns_without_connecting(network: FakeNetwork) -> None:
    network.add(A)

    async def handler(message: Message) -> None:
        raise AssertionError("never called")

    queue = make_queue(network, handler)
    queue.stop()
    queue.stop()
    with trio.fail_after(5):
        await queue.run()
    assert network.dials == []
    with pytest.raises(RuntimeError):
        await queue.run()


async def test_stop_during_startup(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    fill(fake, 5)
    handled: list[bytes] = []

    async def handler(message: Message) -> None:
        handled.append(message.body)

    queue = make_queue(network, handler)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queue.run)
            await trio.lowlevel.checkpoint()
            queue.stop()
    assert sorted(handled) == sorted(fake.finished)
    assert len(fake.queue) + len(handled) == 5


async def test_pause_and_resume(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    handled: list[bytes] = []
    events: list[str] = []

    class Recorder:
        def on_pause(self) -> None:
            events.append("pause")

        def on_resume(self) -> None:
            events.append("resume")

    async def handler(message: Message) -> None:
        handled.append(message.body)

    queue = make_queue(network, handler, conns=2, consumers=2, queue_capacity=8)
    queue.add_listener(Recorder())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await queue.wait_connected()
            fake.put(b"before")
            await fake.wait_for(lambda: len(handled) == 1)
            queue.pause()
            queue.pause()
            assert queue.paused and queue.statistics().paused
            await trio.sleep(1)
            assert [c.rdy for c in fake.clients] == [0, 0]
            fake.put(b"during")
            await trio.sleep(10)
            assert handled == [b"before"]
            queue.resume()
            await fake.wait_for(lambda: len(handled) == 2)
            queue.stop()
    assert handled == [b"before", b"during"]
    assert events == ["pause", "resume"]
    with pytest.raises(RuntimeError):
        queue.add_listener(Recorder())


async def test_paused_before_run_starts_with_rdy_zero(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fill(fake, 3)
    handled: list[bytes] = []

    async def handler(message: Message) -> None:
        handled.append(message.body)

    queue = make_queue(network, handler)
    queue.pause()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await queue.wait_connected()
            await trio.sleep(5)
            assert handled == [] and fake.clients[0].max_rdy_seen == 0
            stats = queue.statistics()
            assert stats.queue is not None and stats.queue.paused
            queue.resume()
            await fake.wait_for(lambda: len(handled) == 3)
            queue.stop()


async def test_touch_interval_touches_slow_handlers(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    fake.put(b"slow")
    fake.put(b"broken")

    async def handler(message: Message) -> None:
        await trio.sleep(25)
        if message.body == b"broken":
            raise ValueError("late failure")

    queue = make_queue(network, handler, touch_interval=10, processors=2, backoff=False,
                       requeue_delay=100)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await fake.wait_for(lambda: bool(fake.finished) and bool(fake.requeued))
            queue.stop()
    assert fake.finished == [b"slow"] and fake.requeued == [(b"broken", 100000)]
    assert len(fake.touched) == 4  # at 10 s and 20 s, for each message


async def test_nsq_handler_alone_in_a_plain_queue(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    """NSQHandler is an ordinary queue Consumer: pair it with any source of messages."""
    from client import Consumer
    from client.queue import NSQSource

    fake = network.add(A)
    fill(fake, 20)
    seen: list[bytes] = []

    async def handler(message: Message) -> None:
        seen.append(message.body)

    with pytest.raises(ValueError):
        NSQHandler(handler, touch_interval=-1)
    with trio.fail_after(TIMEOUT):
        async with Consumer("t", "c", nsqd_tcp_addresses=[A], open_stream=network.open_stream,
                            max_in_flight=4) as consumer:
            source = NSQSource(consumer)
            assert source.consumer is consumer and "t/c" in repr(source)
            queue: Queue[Message] = Queue(lambda: source, lambda: NSQHandler(handler), consumers=3)
            async with trio.open_nursery() as nursery:
                await nursery.start(queue.run)
                await fake.wait_for(lambda: len(fake.finished) == 20)
                queue.stop()
    assert sorted(seen) == bodies(20)


async def test_in_a_service_group(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(A)
    fill(fake, 30)
    handled: list[bytes] = []

    async def handler(message: Message) -> None:
        await trio.sleep(0.1)
        handled.append(message.body)

    queues = [make_queue(network, handler, name=f"q{i}", queue_capacity=5) for i in range(2)]
    group = ServiceGroup(queues)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            await fake.wait_for(lambda: len(handled) == 30)
            await group.aclose()
    assert sorted(handled) == bodies(30)
    assert len(fake.clients) == 2 and all(c.closing for c in fake.clients)


async def test_config_is_passed_to_the_consumers(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)

    async def handler(message: Message) -> None:
        pass

    queue = make_queue(network, handler, config=ClientConfig(client_id="worker-7"))
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await queue.wait_connected()
            queue.stop()
    assert fake.clients[0].identify["client_id"] == "worker-7"
