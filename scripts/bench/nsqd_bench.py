"""nsqd throughput and latency, measured from separate processes over loopback.

    python scripts/bench/nsqd_bench.py [--messages 2000000] [--size 100] [--batch 200]
                                       [--e2e] [--scrape-interval 1.0]

Phases (one nsqd subprocess, like NSQ's bench.sh):
  1. ingest: N 100-byte messages by MPUB (batches of 200, pre-encoded), W writer procs
  2. consume: one reader (RDY 2500, FIN every message, FINs batched per read)
  3. latency: a fixed 10k msg/s PUB stream, consumer measures publish→receive p50/p99
Prints msgs/s, latency percentiles and nsqd's peak RSS. ``--e2e`` runs nsqd with
``--e2e-processing-latency-percentile 0.99,0.95``; ``--scrape-interval S`` GETs
``/metrics`` every S seconds from a separate process throughout (both for measuring
their cost against a plain run).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
import urllib.request
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _common import cpu_seconds, daemon, fin_loop, peak_rss_mb, percentiles

from client.protocol import FrameReader, FrameType, commands


def _connect(addr):
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"  V2")
    return s


def _read_ok(sock, reader, count=1):
    got = 0
    while got < count:
        for f in reader.frames():
            if f.type == FrameType.ERROR:
                raise RuntimeError(f.data)
            if f.data == b"OK":
                got += 1
        if got < count:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("closed")
            reader.feed(data)


def writer(addr, topic, batches, size, batch, ready, go, out):
    sock = _connect(addr)
    reader = FrameReader()
    frame = commands.mpub(topic, [b"x" * size] * batch)
    ready.set()
    go.wait()
    t0 = time.perf_counter()
    for _ in range(batches):
        sock.sendall(frame)
        _read_ok(sock, reader)
    out.put(time.perf_counter() - t0)
    sock.close()


def ingest(addr, topic, total, size, batch, writers):
    per = total // batch // writers
    ready = [mp.Event() for _ in range(writers)]
    go = mp.Event()
    out = mp.Queue()
    procs = [mp.Process(target=writer, args=(addr, topic, per, size, batch, ready[i], go, out))
             for i in range(writers)]
    for p in procs:
        p.start()
    for e in ready:
        e.wait()
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - t0
    return per * batch * writers, elapsed


def consume(addr, topic, channel, total, rdy=2500):
    """A lean reader: frames parsed by offset, one FIN batch written per read."""
    sock = _connect(addr)
    reader = FrameReader()
    sock.sendall(commands.identify({"feature_negotiation": True}) + commands.sub(topic, channel))
    responses = 0
    while responses < 2:
        reader.feed(sock.recv(65536))
        responses += len(reader.frames())
    sock.sendall(commands.rdy(rdy))
    t0 = time.perf_counter()
    got = fin_loop(partial(sock.recv, 1 << 20), sock.sendall, total)
    elapsed = time.perf_counter() - t0
    sock.close()
    return got, elapsed


def latency(addr, topic, rate, seconds):
    sub = _connect(addr)
    reader = FrameReader()
    sub.sendall(commands.sub(topic, "lat") + commands.rdy(2500))
    while not reader.frames():
        reader.feed(sub.recv(65536))
    pub = _connect(addr)
    preader = FrameReader()
    n = int(rate * seconds)
    lat = []
    start = time.perf_counter()
    sent = 0
    got = 0
    pub.setblocking(False)
    sub.setblocking(False)
    acks = 0
    while got < n:
        now = time.perf_counter()
        due = int((now - start) * rate)
        if sent < min(due, n):
            k = min(due, n) - sent
            frames = b"".join(commands.pub(topic, struct.pack(">d", time.perf_counter()) + b"x" * 92)
                              for _ in range(k))
            pub.setblocking(True)
            pub.sendall(frames)
            pub.setblocking(False)
            sent += k
        try:
            data = pub.recv(65536)
            preader.feed(data)
            acks += len(preader.frames())
        except BlockingIOError:
            pass
        try:
            data = sub.recv(262144)
        except BlockingIOError:
            time.sleep(0.0002)
            continue
        reader.feed(data)
        out = []
        t = time.perf_counter()
        for f in reader.frames():
            if f.type == FrameType.MESSAGE:
                (ts,) = struct.unpack_from(">d", f.data, 26)
                lat.append((t - ts) * 1000)
                out.append(commands.fin(f.data[10:26]))
                got += 1
        if out:
            sub.setblocking(True)
            sub.sendall(b"".join(out))
            sub.setblocking(False)
    return lat, time.perf_counter() - start


def scraper(url, interval, stop, out):
    """GET ``url`` every ``interval`` seconds until ``stop``; report the scrape times."""
    times = []
    while not stop.wait(interval):
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as resp:
            resp.read()
        times.append(time.perf_counter() - t0)
    out.put(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--rate", type=int, default=10_000)
    ap.add_argument("--latency-seconds", type=float, default=5.0)
    ap.add_argument("--nsqd-args", default="", help="extra nsqd flags")
    ap.add_argument("--e2e", action="store_true",
                    help="nsqd --e2e-processing-latency-percentile 0.99,0.95")
    ap.add_argument("--scrape-interval", type=float, default=0.0,
                    help="GET /metrics every this many seconds during the run (0: never)")
    args = ap.parse_args()
    extra = args.nsqd_args.split()
    if args.e2e:
        extra += ["--e2e-processing-latency-percentile", "0.99,0.95"]
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--mem-queue-size", str(args.messages + 1), *extra) as (proc, addrs):
        tcp = addrs["TCP"]
        stop = mp.Event()
        scrapes = mp.Queue()
        if args.scrape_interval > 0:
            host, port = addrs["HTTP"]
            mp.Process(target=scraper, args=(f"http://{host}:{port}/metrics",
                                             args.scrape_interval, stop, scrapes)).start()
        # create the channel first so ingest fans out into it, as bench_reader consumes it
        s = _connect(tcp)
        s.sendall(commands.sub("bench", "ch") + commands.cls())
        s.recv(1024)
        s.close()
        c0 = cpu_seconds(proc.pid)
        n, el = ingest(tcp, "bench", args.messages, args.size, args.batch, args.writers)
        print(f"ingest:  {n} msgs in {el:.2f}s = {n / el:,.0f} msg/s "
              f"(MPUB x{args.batch}, {args.size} B, {args.writers} writers); "
              f"nsqd peak RSS {peak_rss_mb(proc.pid):.0f} MiB")
        print(f"         nsqd CPU {cpu_seconds(proc.pid) - c0:.2f}s over {el:.2f}s")
        c0 = cpu_seconds(proc.pid)
        got, el = consume(tcp, "bench", "ch", n)
        print(f"         nsqd CPU {cpu_seconds(proc.pid) - c0:.2f}s over {el:.2f}s")
        print(f"consume: {got} msgs in {el:.2f}s = {got / el:,.0f} msg/s (RDY 2500, FIN each); "
              f"nsqd peak RSS {peak_rss_mb(proc.pid):.0f} MiB")
        lat, el = latency(tcp, "lat", args.rate, args.latency_seconds)
        p = percentiles(lat)
        print(f"latency: {len(lat)} msgs at {args.rate}/s: p50 {p[50]:.2f} ms, p90 {p[90]:.2f} ms, "
              f"p99 {p[99]:.2f} ms, p99.9 {p[99.9]:.2f} ms; nsqd peak RSS {peak_rss_mb(proc.pid):.0f} MiB")
        if args.scrape_interval > 0:
            stop.set()
            times = sorted(scrapes.get(timeout=60))
            if times:
                print(f"scrapes: {len(times)} GET /metrics, median {times[len(times) // 2] * 1000:.1f} ms, "
                      f"max {times[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    main()
