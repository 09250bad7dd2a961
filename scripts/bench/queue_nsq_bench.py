"""NSQ → handler throughput: NSQQueue (the queue framework) against the Consumer used directly.

    .venv/bin/python scripts/bench/queue_nsq_bench.py [--messages 200000] [--capacity 200]
        [--processors 8] [--handler noop|yield] [--repeat 3]

One nsqd subprocess (port 0, in-memory queue) serves every run. Before each run a fresh
topic is filled with ``--messages`` messages of ``--size`` bytes; then a child process
(its own CPU) drains it, FIN'ing every message after the handler returned:

  consumer async-for   ``async for message in consumer`` + ``finish()``, one task: the floor
  consumer.run x P     ``Consumer.run(handler, concurrency=P)``: the client's own workers
  NSQQueue p=P         ``NSQQueue(conns=1, processors=P, queue_capacity=C)``
  NSQQueue c=2 p=P     the same with two consumers (connections)

max_in_flight (or queue_capacity) is ``--capacity`` in every row. The handler counts the
message (``noop``) or also yields once to the scheduler (``yield``, the cheapest stand-in
for a handler that awaits I/O). The rate is taken from the first handled message to the
last, and so is the consuming process's CPU time per message; each row shows the median
run of ``--repeat`` (and the range of rates), and for NSQQueue rows the difference in
wall time per message from the direct ``Consumer.run`` row. nsqd and the consumer share
the machine's cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

import trio  # noqa: E402
import trio.lowlevel  # noqa: E402
from _common import daemon  # noqa: E402

from client import Consumer, Message, Producer  # noqa: E402
from client.queue import NSQQueue  # noqa: E402

CHANNEL = "bench"


# ---------------------------------------------------------------------- child roles


class Counter:
    """The handler's bookkeeping: count, first/last time, and a done event."""

    def __init__(self, target: int, yield_once: bool) -> None:
        self.target = target
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.cpu_first = 0.0
        self.cpu_last = 0.0
        self.done = trio.Event()
        self.yield_once = yield_once

    async def handle(self, message: Message) -> None:
        if self.yield_once:
            await trio.lowlevel.checkpoint()
        if not self.count:
            self.first = time.perf_counter()
            self.cpu_first = time.process_time()
        self.count += 1
        if self.count >= self.target:
            self.last = time.perf_counter()
            self.cpu_last = time.process_time()
            self.done.set()


async def role_consumer_iter(addr: str, topic: str, counter: Counter, capacity: int, processors: int) -> None:
    async with Consumer(topic, CHANNEL, nsqd_tcp_addresses=[addr], max_in_flight=capacity) as consumer:
        async for message in consumer:
            await counter.handle(message)
            await message.finish()
            if counter.done.is_set():
                break


async def role_consumer_run(addr: str, topic: str, counter: Counter, capacity: int, processors: int) -> None:
    async with Consumer(topic, CHANNEL, nsqd_tcp_addresses=[addr], max_in_flight=capacity,
                        concurrency=processors) as consumer, trio.open_nursery() as nursery:
        nursery.start_soon(consumer.run, counter.handle)
        await counter.done.wait()
        consumer.stop()


async def _role_queue(addr: str, topic: str, counter: Counter, capacity: int, processors: int,
                      conns: int) -> None:
    queue = NSQQueue(topic, CHANNEL, counter.handle, nsqd_tcp_addresses=[addr], conns=conns,
                     processors=processors, queue_capacity=capacity)
    async with trio.open_nursery() as nursery:
        await nursery.start(queue.run)
        await counter.done.wait()
        queue.stop()


async def role_queue(addr: str, topic: str, counter: Counter, capacity: int, processors: int) -> None:
    await _role_queue(addr, topic, counter, capacity, processors, conns=1)


async def role_queue2(addr: str, topic: str, counter: Counter, capacity: int, processors: int) -> None:
    await _role_queue(addr, topic, counter, capacity, processors, conns=2)


ROLES = {
    "consumer-iter": ("consumer async-for", role_consumer_iter),
    "consumer-run": ("consumer.run x {p}", role_consumer_run),
    "queue": ("NSQQueue p={p}", role_queue),
    "queue2": ("NSQQueue c=2 p={p}", role_queue2),
}


def child_main(argv: list[str]) -> None:
    role, addr, topic, messages, capacity, processors, handler = argv
    counter = Counter(int(messages), handler == "yield")
    fn = ROLES[role][1]
    trio.run(fn, addr, topic, counter, int(capacity), int(processors))
    print(json.dumps({"messages": counter.count, "seconds": counter.last - counter.first,
                      "cpu": counter.cpu_last - counter.cpu_first}))


# ---------------------------------------------------------------------- parent


async def fill(addr: str, topic: str, count: int, size: int, batch: int = 500) -> None:
    body = b"x" * size
    async with Producer(addr) as producer, trio.open_nursery() as nursery:
        for start in range(0, count, batch * 8):
            for offset in range(start, min(count, start + batch * 8), batch):
                n = min(batch, count - offset)
                nursery.start_soon(producer.multi_publish, topic, [body] * n)
            await trio.lowlevel.checkpoint()


def run_child(role: str, addr: str, topic: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", role, addr, topic, str(args.messages),
           str(args.capacity), str(args.processors), args.handler]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout}s"}
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"rc={proc.returncode}"])[-1]}
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--capacity", type=int, default=200, help="max_in_flight / queue_capacity")
    ap.add_argument("--processors", type=int, default=8)
    ap.add_argument("--handler", choices=("noop", "yield"), default="noop")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--roles", default=",".join(ROLES))
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = ap.parse_args()

    print(f"{args.messages} messages of {args.size} B, capacity {args.capacity}, "
          f"handler {args.handler}, median of {args.repeat}", flush=True)
    rates: dict[str, float] = {}
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--mem-queue-size", str(args.messages + 1)) as (_proc, addrs):
        host, port = addrs["TCP"]
        addr = f"{host}:{port}"
        for role in args.roles.split(","):
            label = ROLES[role][0].format(p=args.processors)
            runs = []
            for attempt in range(args.repeat):
                topic = f"qb_{role.replace('-', '_')}_{attempt}"
                trio.run(fill, addr, topic, args.messages, args.size)
                runs.append(run_child(role, addr, topic, args))
            ok = [r for r in runs if "error" not in r and r["seconds"] > 0]
            if not ok:
                print(f"  {label:<22} ERROR {runs[0].get('error')}", flush=True)
                continue
            for r in ok:
                r["rate"] = r["messages"] / r["seconds"]
            ok.sort(key=lambda r: r["rate"])
            med = ok[len(ok) // 2]
            rates[role] = med["rate"]
            us = 1e6 / med["rate"]
            cpu_us = med["cpu"] / med["messages"] * 1e6
            extra = ""
            if role.startswith("queue") and "consumer-run" in rates:
                extra = f"  {us - 1e6 / rates['consumer-run']:+.1f} us/msg vs consumer.run"
            print(f"  {label:<22} {med['rate']:>9,.0f} msg/s ({ok[0]['rate'] / 1000:,.0f}k-"
                  f"{ok[-1]['rate'] / 1000:,.0f}k)  {us:5.1f} us/msg  cpu {cpu_us:5.1f} us/msg{extra}",
                  flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
