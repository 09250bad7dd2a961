"""Measure client.queue.Queue's own per-item cost with a no-op in-memory source and handler.

    .venv/bin/python scripts/bench/queue_overhead.py [--items 1000000] [--capacity 64]

The producer hands out integers without awaiting and stops the queue after the last one;
the consumer only counts. What is left is the framework: the produce loop and its cancel
scope, the memory channel hand-off, the consumer gate, timing and counters. For scale, a
naive memory-channel loop (``async for`` on the receiver, one yield per item) is timed as
well. Each run is bounded by
``--timeout`` seconds; a cut-short run reports the items it got through.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from client.queue import NOTHING, Nothing, ProduceListener, Queue


class CountingSource:
    """Yields 0..items-1, then stops the queue it feeds."""

    def __init__(self, items: int, queue_ref: list[Queue[int]]) -> None:
        self._items = items
        self._next = 0
        self._queue_ref = queue_ref

    def add_listener(self, listener: ProduceListener) -> None:
        pass

    async def produce(self) -> int | Nothing:
        value = self._next
        if value >= self._items:
            self._queue_ref[0].stop()
            return NOTHING
        self._next = value + 1
        return value


class CountingSink:
    def __init__(self) -> None:
        self.count = 0

    async def consume(self, item: int) -> None:
        self.count += 1

    async def on_event(self, event: object) -> None:
        pass


async def bench_queue(
    items: int, capacity: int, consumers: int, timeout: float
) -> tuple[int, float]:
    queue_ref: list[Queue[int]] = []
    sinks: list[CountingSink] = []

    def make_sink() -> CountingSink:
        sink = CountingSink()
        sinks.append(sink)
        return sink

    queue: Queue[int] = Queue(
        lambda: CountingSource(items, queue_ref),
        make_sink,
        producers=1,
        consumers=consumers,
        capacity=capacity,
        name="bench",
    )
    queue_ref.append(queue)
    start = time.perf_counter()
    with trio.move_on_after(timeout):
        await queue.run()
    elapsed = time.perf_counter() - start
    return sum(sink.count for sink in sinks), elapsed


async def bench_channel(items: int, capacity: int, timeout: float) -> tuple[int, float]:
    send, recv = trio.open_memory_channel[int](capacity)
    received = 0

    async def producer() -> None:
        async with send:
            for value in range(items):
                try:
                    send.send_nowait(value)
                except trio.WouldBlock:
                    await send.send(value)

    async def consumer() -> None:
        nonlocal received
        async with recv:
            async for _ in recv:
                received += 1

    start = time.perf_counter()
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(producer)
            nursery.start_soon(consumer)
    return received, time.perf_counter() - start


def report(label: str, count: int, elapsed: float) -> None:
    rate = count / elapsed if elapsed else 0.0
    per_item_us = elapsed / count * 1e6 if count else float("nan")
    print(
        f"{label:<34} {count:>9} items  {elapsed:7.2f} s  "
        f"{rate:>11,.0f} items/s  {per_item_us:6.2f} us/item"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--capacity", type=int, default=64)
    parser.add_argument("--consumers", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=120.0, help="cap per run, seconds")
    args = parser.parse_args()

    count, elapsed = await bench_channel(args.items, args.capacity, args.timeout)
    report(f"naive channel loop (cap {args.capacity})", count, elapsed)
    count, elapsed = await bench_queue(args.items, args.capacity, args.consumers, args.timeout)
    report(f"Queue 1p/{args.consumers}c (cap {args.capacity})", count, elapsed)


if __name__ == "__main__":
    trio.run(main)
