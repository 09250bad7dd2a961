"""Producer publishing modes compared: what ``batch=True``, ``send()`` and MPUB buy.

    .venv/bin/python scripts/bench/producer_batch_bench.py [--messages 50000] [--tasks 1000]

One nsqd subprocess (port 0, in-memory queue); the client runs in this process, one row
per mode, each on a fresh topic, ``--repeat`` times (every run is printed):

  concurrent   ``--tasks`` tasks each awaiting ``publish()`` in a loop, ``batch=False``
               (one PUB per call, pipelined on the connection) and ``batch=True``
               (concurrent calls coalesced into MPUBs);
  sequential   one task awaiting each ``publish()`` (one round trip per message);
  send         one task queuing with ``send()`` (``batch`` implied), then awaiting the
               receipts;
  mpub         one task awaiting ``multi_publish()`` of 200 bodies at a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Awaitable, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import trio  # noqa: E402
from _common import daemon  # noqa: E402

from client import Producer  # noqa: E402

Mode = Callable[[str, str, int, int, bytes], Awaitable[int]]


async def concurrent(addr: str, topic: str, total: int, tasks: int, body: bytes, *, batch: bool) -> int:
    per_task = max(1, total // tasks)
    async with Producer(addr, batch=batch) as producer:

        async def worker() -> None:
            for _ in range(per_task):
                await producer.publish(topic, body)

        async with trio.open_nursery() as nursery:
            for _ in range(tasks):
                nursery.start_soon(worker)
    return per_task * tasks


async def sequential(addr: str, topic: str, total: int, tasks: int, body: bytes) -> int:
    count = max(1, total // 10)  # one round trip each: keep the run short
    async with Producer(addr) as producer:
        for _ in range(count):
            await producer.publish(topic, body)
    return count


async def send(addr: str, topic: str, total: int, tasks: int, body: bytes) -> int:
    async with Producer(addr) as producer:
        receipts = [await producer.send(topic, body) for _ in range(total)]
        for receipt in receipts:
            await receipt
    return total


async def mpub(addr: str, topic: str, total: int, tasks: int, body: bytes) -> int:
    rounds = max(1, total // 200)
    async with Producer(addr) as producer:
        for _ in range(rounds):
            await producer.multi_publish(topic, [body] * 200)
    return rounds * 200


async def timed(mode: Mode, addr: str, topic: str, args: argparse.Namespace) -> float:
    async with Producer(addr) as producer:  # the topic exists before the clock starts
        await producer.publish(topic, b"warm-up")
    start = time.perf_counter()
    count = await mode(addr, topic, args.messages, args.tasks, b"x" * args.size)
    return count / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=50_000)
    ap.add_argument("--tasks", type=int, default=1000, help="publishing tasks of the concurrent rows")
    ap.add_argument("--size", type=int, default=100, help="body bytes")
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    async def unbatched(*a: object) -> int:
        return await concurrent(*a, batch=False)  # type: ignore[arg-type]

    async def batched(*a: object) -> int:
        return await concurrent(*a, batch=True)  # type: ignore[arg-type]

    modes: list[tuple[str, Mode]] = [
        (f"{args.tasks} tasks x publish(), batch=False", unbatched),
        (f"{args.tasks} tasks x publish(), batch=True", batched),
        ("1 task, await publish() each", sequential),
        ("1 task, send() + await receipts", send),
        ("1 task, multi_publish() x 200", mpub),
    ]
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--mem-queue-size", "100000000") as (_, addrs):
        addr = "%s:%d" % addrs["TCP"]
        for run in range(args.repeat):
            for i, (label, mode) in enumerate(modes):
                rate = trio.run(timed, mode, addr, f"bench_{run}_{i}", args)
                print(f"{label:<40} {rate:>10,.0f} msg/s", flush=True)


if __name__ == "__main__":
    main()
