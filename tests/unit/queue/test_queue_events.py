"""Queue pause/resume listeners and broadcast events."""

from __future__ import annotations

from collections import deque

import trio
from queue_fakes import (
    TIMEOUT,
    RecordingConsumer,
    SourceProducer,
    make_queue,
    wait_until,
)

from client.queue import Queue


async def test_pause_and_resume_notify_listeners(autojump_clock: trio.abc.Clock) -> None:
    calls: list[str] = []

    class Recorder:
        def on_pause(self) -> None:
            calls.append("pause")

        def on_resume(self) -> None:
            calls.append("resume")

    class Broken:
        def on_pause(self) -> None:
            raise RuntimeError("listener bug")

        def on_resume(self) -> None:
            raise RuntimeError("listener bug")

    producers: list[SourceProducer] = []
    queue = make_queue(deque(), [], producers_out=producers, producers=2, consumers=1)
    queue.add_listener(Broken())
    queue.add_listener(Recorder())
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await wait_until(lambda: len(producers) == 2 and all(p.listeners for p in producers))
            first, second = (p.listeners[0] for p in producers)
            assert queue.statistics().active_producers == 2
            first.on_producer_pause()
            first.on_producer_pause()  # idempotent
            assert calls == [] and not queue.paused
            second.on_producer_pause()
            assert calls == ["pause"] and queue.paused
            assert queue.statistics().active_producers == 0
            second.on_producer_pause()
            assert calls == ["pause"]
            first.on_producer_resume()
            assert calls == ["pause", "resume"] and not queue.paused
            second.on_producer_resume()
            assert calls == ["pause", "resume"]
            assert queue.statistics().active_producers == 2
            queue.stop()
    # Producers leaving at shutdown do not look like a pause.
    assert calls == ["pause", "resume"]
    assert queue.statistics().active_producers == 0


async def test_broadcast_reaches_every_consumer_between_items(
    autojump_clock: trio.abc.Clock,
) -> None:
    source = deque(range(200))
    consumers: list[RecordingConsumer] = []
    queue = make_queue(source, [], delay=0.01, consumers_out=consumers, consumers=4)
    assert await queue.broadcast("before-run") == 4
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            for n in range(5):
                assert await queue.broadcast(f"event-{n}") == 4
                await trio.sleep(0.05)
            queue.stop()
            assert await queue.broadcast("while-draining") == 4
    assert len(consumers) == 4
    expected = ["before-run"] + [f"event-{n}" for n in range(5)] + ["while-draining"]
    for consumer in consumers:
        assert consumer.events == expected
        assert consumer.overlaps == 0
    assert await queue.broadcast("after-run") == 0


async def test_events_queued_behind_the_last_item_are_delivered(
    autojump_clock: trio.abc.Clock,
) -> None:
    consumers: list[RecordingConsumer] = []
    queue = make_queue(deque([1]), [], delay=5.0, consumers_out=consumers, consumers=1)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await trio.sleep(1)
            assert consumers[0].busy  # inside consume() of the only item
            queue.stop()
            for n in range(3):
                assert await queue.broadcast(n) == 1
    assert consumers[0].events == [0, 1, 2]
    assert consumers[0].overlaps == 0


async def test_event_handler_errors_are_counted(autojump_clock: trio.abc.Clock) -> None:
    class GrumpyConsumer(RecordingConsumer):
        async def on_event(self, event: object) -> None:
            raise RuntimeError("no events please")

    queue: Queue[int] = Queue(
        lambda: SourceProducer(deque()), lambda: GrumpyConsumer([]), consumers=3
    )
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await queue.broadcast("x")
            await trio.sleep(1)
            queue.stop()
    assert queue.statistics().event_errors == 3
