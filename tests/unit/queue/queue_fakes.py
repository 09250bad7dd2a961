"""Fakes shared by the client.queue tests: list-backed sources and recording handlers."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import trio

from client.queue import NOTHING, Nothing, ProduceListener, Queue

TIMEOUT = 10_000  # virtual seconds; a hang fails the test instead of blocking the run


class SourceProducer:
    """Pops items from a shared deque; NOTHING once it is empty. Cancel-safe."""

    def __init__(self, source: deque[int]) -> None:
        self.source = source
        self.listeners: list[ProduceListener] = []
        self.closed = False

    def add_listener(self, listener: ProduceListener) -> None:
        self.listeners.append(listener)

    async def produce(self) -> int | Nothing:
        await trio.lowlevel.checkpoint()
        if self.source:
            return self.source.popleft()
        return NOTHING

    async def aclose(self) -> None:
        self.closed = True


class CountingProducer:
    """An endless source: 0, 1, 2, ... Remembers how many it handed out."""

    def __init__(self) -> None:
        self.handed_out = 0

    def add_listener(self, listener: ProduceListener) -> None:
        pass

    async def produce(self) -> int:
        await trio.lowlevel.checkpoint()
        value = self.handed_out
        self.handed_out += 1
        return value


class RecordingConsumer:
    """Appends items to a shared list, optionally sleeping first; records events."""

    def __init__(self, sink: list[int], delay: float = 0.0) -> None:
        self.sink = sink
        self.delay = delay
        self.events: list[object] = []
        self.busy = False
        self.overlaps = 0
        self.closed = False

    async def consume(self, item: int) -> None:
        self.busy = True
        try:
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()
            self.sink.append(item)
        finally:
            self.busy = False

    async def on_event(self, event: object) -> None:
        if self.busy:
            self.overlaps += 1
        await trio.sleep(0.001)
        self.events.append(event)

    async def aclose(self) -> None:
        self.closed = True


def make_queue(
    source: deque[int],
    sink: list[int],
    *,
    delay: float = 0.0,
    consumers_out: list[RecordingConsumer] | None = None,
    producers_out: list[SourceProducer] | None = None,
    **kwargs: object,
) -> Queue[int]:
    def producer_factory() -> SourceProducer:
        producer = SourceProducer(source)
        if producers_out is not None:
            producers_out.append(producer)
        return producer

    def consumer_factory() -> RecordingConsumer:
        consumer = RecordingConsumer(sink, delay)
        if consumers_out is not None:
            consumers_out.append(consumer)
        return consumer

    return Queue(producer_factory, consumer_factory, **kwargs)  # type: ignore[arg-type]


async def wait_until(predicate: Callable[[], bool], step: float = 0.01) -> None:
    while not predicate():
        await trio.sleep(step)
