"""How long nsqd takes to answer ``GET /metrics`` (and ``/stats``) with many topics.

    python scripts/bench/metrics_bench.py [--topics 1000] [--channels 3] [--scrapes 20]
                                          [--e2e] [--messages 1]

Starts one nsqd subprocess, creates topics x channels over HTTP, publishes
``--messages`` to each topic and (with ``--e2e``, i.e.
``--e2e-processing-latency-percentile 0.99,0.95``) FINs them from one consumer per
channel so every channel has latency data; then times sequential scrapes and prints
min / median / max and the body size.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import httpx
from _common import daemon, fin_loop

from client.protocol import FrameReader, commands


def _timed(http: httpx.Client, path: str, n: int) -> tuple[list[float], int]:
    times = []
    size = 0
    for _ in range(n):
        t0 = time.perf_counter()
        resp = http.get(path)
        times.append(time.perf_counter() - t0)
        resp.raise_for_status()
        size = len(resp.content)
    return times, size


def _fin_all(tcp: tuple[str, int], topics: int, channels: int, per_topic: int) -> None:
    """One connection per channel subscribes, receives and FINs its messages."""
    for t in range(topics):
        for c in range(channels):
            s = socket.create_connection(tcp, timeout=30)
            s.sendall(b"  V2" + commands.sub(f"t{t:04d}", f"c{c}"))
            reader = FrameReader()
            while not reader.frames():  # SUB's OK; then messages may come
                reader.feed(s.recv(4096))
            s.sendall(commands.rdy(per_topic))
            fin_loop(partial(s.recv, 65536), s.sendall, per_topic)
            s.sendall(commands.cls())
            s.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--topics", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--scrapes", type=int, default=20)
    ap.add_argument("--messages", type=int, default=1, help="messages per topic")
    ap.add_argument("--e2e", action="store_true",
                    help="--e2e-processing-latency-percentile 0.99,0.95 and FIN everything")
    args = ap.parse_args()
    extra = ["--e2e-processing-latency-percentile", "0.99,0.95"] if args.e2e else []
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                *extra) as (_proc, addrs):
        host, port = addrs["HTTP"]
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=30) as http:
            t0 = time.perf_counter()
            body = b"x" * 100
            for t in range(args.topics):
                http.post("/topic/create", params={"topic": f"t{t:04d}"}).raise_for_status()
                for c in range(args.channels):
                    http.post("/channel/create", params={"topic": f"t{t:04d}", "channel": f"c{c}"}
                              ).raise_for_status()
                if args.messages:
                    http.post("/mpub", params={"topic": f"t{t:04d}"},
                              content=b"\n".join([body] * args.messages))
            if args.e2e and args.messages:
                _fin_all(addrs["TCP"], args.topics, args.channels, args.messages)
            print(f"setup: {args.topics} topics x {args.channels} channels, "
                  f"{args.messages} msg/topic{' FIN’d, e2e on' if args.e2e else ''} "  # noqa: RUF001
                  f"in {time.perf_counter() - t0:.1f}s")
            for path in ("/metrics", "/stats?format=json&include_clients=false"):
                times, size = _timed(http, path, args.scrapes)
                ms = sorted(x * 1000 for x in times)
                print(f"GET {path}: min {ms[0]:.1f} ms, median {statistics.median(ms):.1f} ms, "
                      f"max {ms[-1]:.1f} ms over {args.scrapes} scrapes, {size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
