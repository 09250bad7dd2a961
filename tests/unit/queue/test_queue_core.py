"""Queue under Trio's virtual clock: delivery, shutdown, back-pressure, retries, stats."""

from __future__ import annotations

import logging
from collections import deque

import pytest
import trio
from queue_fakes import (
    TIMEOUT,
    CountingProducer,
    RecordingConsumer,
    SourceProducer,
    make_queue,
    wait_until,
)

from client.queue import NOTHING, Backoff, Nothing, Queue


async def test_every_item_consumed_exactly_once(autojump_clock: trio.abc.Clock) -> None:
    source = deque(range(2000))
    sink: list[int] = []
    queue = make_queue(source, sink, producers=3, consumers=5, capacity=7)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: not source)
            queue.stop()
    assert sorted(sink) == list(range(2000))
    stats = queue.statistics()
    assert (stats.produced, stats.consumed, stats.failures) == (2000, 2000, 0)
    assert stats.buffered == 0


async def test_stop_waits_for_buffered_items(autojump_clock: trio.abc.Clock) -> None:
    source = deque(range(40))
    sink: list[int] = []
    queue = make_queue(source, sink, delay=1.0, producers=1, consumers=2, capacity=10)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: queue.statistics().buffered == 10)
            queue.stop()
            stopped_at = trio.current_time()
            at_stop = queue.statistics()
    assert at_stop.buffered == 10
    assert at_stop.consumed < 40
    # Everything produced by then (buffered or in a send) was still consumed.
    assert sorted(sink) == list(range(len(sink)))
    assert len(sink) == queue.statistics().produced >= at_stop.produced
    assert len(sink) >= at_stop.consumed + 10
    # Draining 10+ one-second items over 2 consumers takes at least 5 virtual seconds.
    assert trio.current_time() - stopped_at >= 5.0


async def test_stop_interrupts_blocked_produce_without_losing_items(
    autojump_clock: trio.abc.Clock,
) -> None:
    class GatedProducer(SourceProducer):
        async def produce(self) -> int | Nothing:
            if not self.source:
                await trio.sleep_forever()
            return await super().produce()

    source = deque(range(5))
    sink: list[int] = []
    queue: Queue[int] = Queue(
        lambda: GatedProducer(source), lambda: RecordingConsumer(sink), consumers=2
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: len(sink) == 5)
            queue.stop()
    assert sorted(sink) == [0, 1, 2, 3, 4]


async def test_item_returned_by_a_stopping_producer_is_delivered(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A source that stops the queue as it hands out its last item must not lose it."""
    source = deque(range(10))
    sink: list[int] = []
    queue_ref: list[Queue[int]] = []

    class LastCallProducer(SourceProducer):
        async def produce(self) -> int | Nothing:
            item = await super().produce()
            if not self.source:
                queue_ref[0].stop()
            return item

    queue: Queue[int] = Queue(
        lambda: LastCallProducer(source), lambda: RecordingConsumer(sink), capacity=0
    )
    queue_ref.append(queue)
    with trio.fail_after(TIMEOUT):
        await queue.run()
    assert sink == list(range(10))


async def test_backpressure_bounds_buffer_and_blocks_producer(
    autojump_clock: trio.abc.Clock,
) -> None:
    producer = CountingProducer()
    release = trio.Event()
    sink: list[int] = []
    max_buffered = 0
    queue_ref: list[Queue[int]] = []

    class SlowConsumer(RecordingConsumer):
        async def consume(self, item: int) -> None:
            nonlocal max_buffered
            max_buffered = max(max_buffered, queue_ref[0].statistics().buffered)
            await release.wait()
            await super().consume(item)

    queue: Queue[int] = Queue(lambda: producer, lambda: SlowConsumer(sink), consumers=1, capacity=5)
    queue_ref.append(queue)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            for _ in range(100):
                await trio.sleep(0.1)
                max_buffered = max(max_buffered, queue.statistics().buffered)
            stats = queue.statistics()
            # 1 item in consume(), 5 buffered, 1 more taken from the source, blocked in send.
            assert stats.buffered == 5
            assert stats.produced == 6
            assert producer.handed_out == 7
            # Stopping now interrupts the producer's blocked send; that item is kept.
            queue.stop()
            await trio.sleep(1)
            assert queue.statistics().produced == 6
            release.set()
    assert max_buffered <= 5
    assert producer.handed_out == 7
    assert sink == list(range(7))
    assert queue.statistics().produced == 7


async def test_flow_resumes_when_slow_consumers_catch_up(autojump_clock: trio.abc.Clock) -> None:
    producer = CountingProducer()
    release = trio.Event()
    enough = trio.Event()
    sink: list[int] = []

    class GatedConsumer(RecordingConsumer):
        async def consume(self, item: int) -> None:
            await release.wait()
            await super().consume(item)
            if len(self.sink) >= 500:
                enough.set()

    queue: Queue[int] = Queue(
        lambda: producer, lambda: GatedConsumer(sink), consumers=1, capacity=5
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await trio.sleep(10)
            release.set()
            # The pipeline never idles, so virtual time stands still: wait on an event.
            await enough.wait()
            queue.stop()
    assert sink == list(range(producer.handed_out))
    assert len(sink) >= 500


async def test_unbuffered_queue_hands_over_directly(autojump_clock: trio.abc.Clock) -> None:
    source = deque(range(50))
    sink: list[int] = []
    queue = make_queue(source, sink, capacity=0, consumers=3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: len(sink) == 50)
            assert queue.statistics().buffered == 0
            queue.stop()
    assert sorted(sink) == list(range(50))


async def test_factories_retried_with_backoff_until_they_succeed(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    source = deque(range(20))
    sink: list[int] = []
    producer_failures = 3
    consumer_failures = 2

    def producer_factory() -> SourceProducer:
        nonlocal producer_failures
        if producer_failures:
            producer_failures -= 1
            raise ConnectionError("source down")
        return SourceProducer(source)

    async def consumer_factory() -> RecordingConsumer:
        nonlocal consumer_failures
        await trio.lowlevel.checkpoint()
        if consumer_failures:
            consumer_failures -= 1
            raise ConnectionError("sink down")
        return RecordingConsumer(sink)

    queue: Queue[int] = Queue(
        producer_factory,
        consumer_factory,
        consumers=1,
        retry_backoff=Backoff(initial=1.0, maximum=2.0),
    )
    start = trio.current_time()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: len(sink) == 20)
            elapsed = trio.current_time() - start
            queue.stop()
    # Producer retries wait 1, 2, 2 seconds (capped); the consumer's overlap with them.
    assert 5.0 <= elapsed < 6.0
    assert sink == list(range(20))
    assert queue.statistics().factory_errors == 5
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert sum("creating producer" in r.getMessage() for r in errors) == 3
    assert sum("creating consumer" in r.getMessage() for r in errors) == 2


async def test_stop_ends_producer_factory_retries(autojump_clock: trio.abc.Clock) -> None:
    def never() -> SourceProducer:
        raise ConnectionError("down for good")

    queue: Queue[int] = Queue(never, lambda: RecordingConsumer([]), consumers=1)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await trio.sleep(100)
            queue.stop()
            stopped_at = trio.current_time()
    assert trio.current_time() == stopped_at  # the 30 s backoff sleep was interrupted
    assert queue.statistics().factory_errors >= 4


async def test_stuck_consumer_factory_gives_up_once_drained(autojump_clock: trio.abc.Clock) -> None:
    source = deque(range(30))
    sink: list[int] = []
    built = 0

    def consumer_factory() -> RecordingConsumer:
        nonlocal built
        if built:
            raise ConnectionError("only one consumer can connect")
        built += 1
        return RecordingConsumer(sink)

    queue: Queue[int] = Queue(lambda: SourceProducer(source), consumer_factory, consumers=3)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: len(sink) == 30)
            queue.stop()
            stopped_at = trio.current_time()
    assert trio.current_time() - stopped_at < 1.0
    assert sorted(sink) == list(range(30))


async def test_stop_ends_consumer_factory_retries_when_nothing_is_left(
    autojump_clock: trio.abc.Clock,
) -> None:
    def never() -> RecordingConsumer:
        raise ConnectionError("sink down for good")

    queue: Queue[int] = Queue(
        lambda: SourceProducer(deque()),
        never,
        consumers=2,
        retry_backoff=Backoff(initial=100.0, maximum=100.0),
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await trio.sleep(1)
            queue.stop()
            stopped_at = trio.current_time()
    # The retry sleeps are woken when the last producer closes the empty channel.
    assert trio.current_time() - stopped_at < 1.0
    assert queue.statistics().factory_errors == 2


async def test_consumer_exceptions_are_counted_and_the_queue_continues(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    sink: list[int] = []

    class PickyConsumer(RecordingConsumer):
        async def consume(self, item: int) -> None:
            if item % 3 == 0:
                raise ValueError(f"bad item {item}")
            await super().consume(item)

    source = deque(range(30))
    queue: Queue[int] = Queue(
        lambda: SourceProducer(source), lambda: PickyConsumer(sink), consumers=2
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: not source)
            queue.stop()
    stats = queue.statistics()
    assert stats.failures == 10
    assert stats.consumed == 20
    assert stats.produced == stats.consumed + stats.failures
    assert sorted(sink) == [i for i in range(30) if i % 3]
    assert sum("bad item" in (r.exc_text or "") for r in caplog.records) == 10


async def test_produce_exceptions_back_off_and_continue(autojump_clock: trio.abc.Clock) -> None:
    class FlakyProducer(SourceProducer):
        fail_next = True

        async def produce(self) -> int | Nothing:
            if self.fail_next:
                self.fail_next = False
                raise OSError("transient")
            return await super().produce()

    source = deque(range(10))
    sink: list[int] = []
    queue: Queue[int] = Queue(
        lambda: FlakyProducer(source),
        lambda: RecordingConsumer(sink),
        retry_backoff=Backoff(initial=3.0, maximum=3.0),
    )
    start = trio.current_time()
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: len(sink) == 10)
            assert trio.current_time() - start >= 3.0
            queue.stop()
    assert queue.statistics().produce_errors == 1
    assert sorted(sink) == list(range(10))


async def test_idle_producer_backs_off_exponentially(autojump_clock: trio.abc.Clock) -> None:
    calls = 0

    class EmptyProducer(SourceProducer):
        async def produce(self) -> int | Nothing:
            nonlocal calls
            calls += 1
            return await super().produce()

    queue: Queue[int] = Queue(
        lambda: EmptyProducer(deque()),
        lambda: RecordingConsumer([]),
        idle_backoff=Backoff(initial=0.001, maximum=1.0),
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await trio.sleep(60)
            queue.stop()
    # 1+2+...+512 ms is ~1 s for 10 calls, then one call per second: ~70, not 60 000.
    assert 60 <= calls <= 80


async def test_statistics_percentiles_follow_consume_durations(
    autojump_clock: trio.abc.Clock,
) -> None:
    class TimedConsumer(RecordingConsumer):
        async def consume(self, item: int) -> None:
            await trio.sleep(item / 1000)

    source = deque(range(1, 101))
    queue: Queue[int] = Queue(
        lambda: SourceProducer(source), lambda: TimedConsumer([]), consumers=1
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: queue.statistics().consumed == 100)
            queue.stop()
    stats = queue.statistics()
    assert stats.samples == 100
    assert stats.p50 == pytest.approx(0.050)
    assert stats.p90 == pytest.approx(0.090)
    assert stats.p99 == pytest.approx(0.099)


async def test_factory_objects_with_aclose_are_closed(autojump_clock: trio.abc.Clock) -> None:
    producers: list[SourceProducer] = []
    consumers: list[RecordingConsumer] = []
    queue = make_queue(
        deque(range(3)), [], producers_out=producers, consumers_out=consumers, producers=2
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await trio.sleep(1)
            assert not any(p.closed for p in producers)
            queue.stop()
    assert len(producers) == 2 and all(p.closed for p in producers)
    assert len(consumers) == 8 and all(c.closed for c in consumers)


async def test_stop_before_run_returns_promptly(autojump_clock: trio.abc.Clock) -> None:
    source = deque(range(10))
    queue = make_queue(source, [])
    queue.stop()
    queue.stop()
    with trio.fail_after(1):
        await queue.run()
    assert queue.statistics().produced == 0
    assert len(source) == 10


async def test_run_twice_is_an_error(autojump_clock: trio.abc.Clock) -> None:
    queue = make_queue(deque(), [])
    queue.stop()
    await queue.run()
    with pytest.raises(RuntimeError):
        await queue.run()


@pytest.mark.parametrize(
    "kwargs",
    [{"producers": 0}, {"consumers": 0}, {"capacity": -1}, {"latency_window": 0}],
)
def test_invalid_sizes_are_rejected(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        make_queue(deque(), [], **kwargs)  # type: ignore[arg-type]


def test_defaults_and_name() -> None:
    queue = make_queue(deque(), [], name="orders")
    stats = queue.statistics()
    assert queue.name == stats.name == "orders"
    assert stats.capacity == 64
    assert (stats.produced, stats.samples, stats.p99) == (0, 0, 0.0)
    assert repr(NOTHING) == "NOTHING"
