"""What e2e latency tracking costs per message on the FIN path, measured in-process.

    python scripts/bench/e2e_overhead.py [--messages 500000] [--batch 1000] [--rounds 5]

Delivers and FINs messages through a real :class:`nsqd.channel.Channel` (a stub consumer,
no sockets) with ``--e2e-processing-latency-percentile`` off and on, alternating, and
prints ns per message (deliver + FIN + the per-batch fold). The whole-daemon figure is
``scripts/bench/nsqd_bench.py`` with and without ``--e2e``; this one is not drowned in
socket and scheduling noise.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from internal.quantile import WindowedQuantile
from nsqd.backend import DummyBackend
from nsqd.channel import Channel


class _Consumer:
    def __init__(self) -> None:
        self.id = 1
        self.ready_count = 2500
        self.in_flight = 0
        self.msg_timeout = 60.0
        self.message_count = 0
        self.in_ready_list = False

    def send_frames(self, frames: list[bytes]) -> None:
        pass

    def message_timed_out(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Topic:
    name = "bench"


def run(e2e: bool, n: int, batch: int) -> float:
    """ns per message to deliver and FIN ``n`` messages, FINs ``batch`` at a time."""
    window = WindowedQuantile(600.0, [0.99, 0.95]) if e2e else None
    channel = Channel(_Topic(), "ch", DummyBackend(), n + 1, False, None, window)  # type: ignore[arg-type]
    consumer = _Consumer()
    channel.add_client(consumer, 0)
    now = time.time_ns()
    msgs = [(i.to_bytes(16, "big"), b"x" * 100, now, 0) for i in range(n)]
    channel.put(msgs, 0.0)
    finish = channel.finish
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        channel.fill(consumer, 0.0)  # deliver (as after RDY or a FIN batch)
        for msg in msgs[i:i + batch]:
            finish(consumer, msg[0])
    channel.fill(consumer, 0.0)
    return (time.perf_counter() - t0) / n * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=500_000)
    ap.add_argument("--batch", type=int, default=1000, help="FINs per batch")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for e2e in (False, True):
            results[e2e].append(run(e2e, args.messages, args.batch))
    for e2e in (False, True):
        r = results[e2e]
        print(f"e2e {'on ' if e2e else 'off'}: min {min(r):.0f} ns/msg, "
              f"median {statistics.median(r):.0f} ns/msg (deliver + FIN, batches of {args.batch})")
    extra = min(results[True]) - min(results[False])
    print(f"cost of e2e tracking: {extra:+.0f} ns per message (min vs min)")


if __name__ == "__main__":
    main()
