"""Client benchmark: trio-nsq's Consumer/Producer against pynsq's Reader/Writer.

    python scripts/bench/client_bench.py [--messages 200000] [--pub-messages 200000]
                                         [--pynsq-pub-messages 20000] [--size 100]
                                         [--phases consume,produce,e2e]

One nsqd subprocess (port 0, in-memory queues) serves every phase; each client runs in
its own subprocess (so its CPU and peak RSS are its own) and phases run one after the
other on fresh topics:

  consume  a topic pre-filled with N messages is drained (FIN each) by our Consumer
           (``async for`` + ``finish``) and by pynsq's Reader, both max_in_flight 2500;
  produce  our batched Producer fed by one task through ``send_nowait()`` (receipts awaited by
           a collector), and by C concurrent ``publish()`` calls each awaiting its own
           ack; our ``multi_publish`` and pynsq Writer.mpub (batches of 200, 8 in
           flight); pynsq Writer.pub (100 in flight); latency = call → acknowledgement
           (per message for ours, per MPUB for the MPUB rows);
  e2e      publish → receive latency at a fixed rate (producer and consumer in one
           process; ours: Producer(batch=True) + Consumer; pynsq: Writer.pub + Reader).

Every phase is bounded by its message count and by --phase-timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from _common import daemon, peak_rss_mb, percentiles  # noqa: E402

from client.protocol import FrameReader, FrameType, commands  # noqa: E402


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _lat(samples: list[float]) -> dict[str, float]:
    p = percentiles(samples)
    return {f"p{k:g}": v * 1000 for k, v in p.items()}


# ---------------------------------------------------------------------- roles (children)


def role_ours_consume(addr: str, topic: str, count: int) -> dict[str, Any]:
    import trio

    from client import Consumer

    async def main() -> dict[str, Any]:
        got = 0
        start = 0.0
        async with Consumer(topic, "bench", nsqd_tcp_addresses=[addr], max_in_flight=2500) as consumer:
            async for message in consumer:
                if got == 0:
                    start = time.perf_counter()
                got += 1
                await message.finish()
                if got == count:
                    break
            elapsed = time.perf_counter() - start
        return {"messages": got, "seconds": elapsed}

    return trio.run(main)


def role_pynsq_consume(addr: str, topic: str, count: int) -> dict[str, Any]:
    import nsq
    import tornado.ioloop

    loop = tornado.ioloop.IOLoop.current()
    state = {"got": 0, "start": 0.0, "end": 0.0}

    def handler(message: Any) -> bool:
        if state["got"] == 0:
            state["start"] = time.perf_counter()
        state["got"] += 1
        if state["got"] == count:
            state["end"] = time.perf_counter()
            loop.add_callback(loop.stop)
        return True

    nsq.Reader(topic=topic, channel="bench", message_handler=handler, nsqd_tcp_addresses=[addr],
               max_in_flight=2500)
    loop.start()
    return {"messages": state["got"], "seconds": state["end"] - state["start"]}


def role_ours_produce(addr: str, topic: str, count: int, size: int, concurrency: int) -> dict[str, Any]:
    import trio

    from client import Producer

    body = b"x" * size
    latencies: list[float] = []

    async def main() -> float:
        async with Producer(addr, batch=True) as producer:
            await producer.publish(topic, body)  # connect before timing
            per_task = count // concurrency

            async def worker() -> None:
                clock = time.perf_counter
                for _ in range(per_task):
                    t0 = clock()
                    await producer.publish(topic, body)
                    latencies.append(clock() - t0)

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(concurrency):
                    nursery.start_soon(worker)
            return time.perf_counter() - start

    elapsed = trio.run(main)
    return {"messages": len(latencies), "seconds": elapsed, "latency_ms": _lat(latencies)}


def role_ours_send(addr: str, topic: str, count: int, size: int) -> dict[str, Any]:
    import trio

    from client import Producer

    body = b"x" * size
    latencies: list[float] = []

    async def main() -> float:
        async with Producer(addr, batch=True) as producer:
            await producer.publish(topic, body)  # connect before timing
            send_channel, receive_channel = trio.open_memory_channel[Any](1000)

            async def collect() -> None:
                clock = time.perf_counter
                async for times, receipts in receive_channel:
                    for t0, receipt in zip(times, receipts, strict=False):
                        if not receipt.done:
                            await receipt
                        elif receipt.error is not None:
                            raise receipt.error
                        latencies.append(clock() - t0)

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(collect)
                async with send_channel:
                    clock = time.perf_counter
                    send_nowait = producer.send_nowait
                    # parallel lists, not (time, receipt) tuples: keep the harness's own
                    # GC-tracked allocations out of the measurement
                    times: list[float] = []
                    receipts: list[Any] = []
                    for _ in range(count):
                        times.append(clock())
                        try:
                            receipts.append(send_nowait(topic, body))
                        except trio.WouldBlock:
                            receipts.append(await producer.send(topic, body))
                        if len(receipts) == 200:
                            await send_channel.send((times, receipts))
                            times, receipts = [], []
                    if receipts:
                        await send_channel.send((times, receipts))
            return time.perf_counter() - start

    elapsed = trio.run(main)
    return {"messages": len(latencies), "seconds": elapsed, "latency_ms": _lat(latencies)}


def role_ours_mpub(addr: str, topic: str, count: int, size: int, batch: int, window: int) -> dict[str, Any]:
    import trio

    from client import Producer

    bodies = [b"x" * size] * batch
    per_task = count // batch // window
    latencies: list[float] = []

    async def main() -> float:
        async with Producer(addr) as producer:
            await producer.publish(topic, bodies[0])  # connect before timing

            async def worker() -> None:
                clock = time.perf_counter
                for _ in range(per_task):
                    t0 = clock()
                    await producer.multi_publish(topic, bodies)
                    latencies.append(clock() - t0)

            start = time.perf_counter()
            async with trio.open_nursery() as nursery:
                for _ in range(window):
                    nursery.start_soon(worker)
            return time.perf_counter() - start

    elapsed = trio.run(main)
    return {"messages": len(latencies) * batch, "seconds": elapsed, "latency_ms": _lat(latencies)}


def _pynsq_writer_run(addr: str, start_fn: Any) -> None:
    import nsq
    import tornado.ioloop

    loop = tornado.ioloop.IOLoop.current()
    writer = nsq.Writer([addr])

    def wait_connected() -> None:
        if writer.conns:
            start_fn(writer, loop)
        else:
            loop.call_later(0.01, wait_connected)

    loop.add_callback(wait_connected)
    loop.start()


def role_pynsq_mpub(addr: str, topic: str, count: int, size: int, batch: int, window: int) -> dict[str, Any]:
    import nsq

    bodies = [b"x" * size] * batch
    total = count // batch
    state = {"sent": 0, "acked": 0, "start": 0.0, "end": 0.0, "errors": 0}
    latencies: list[float] = []

    def go(writer: Any, loop: Any) -> None:
        state["start"] = time.perf_counter()

        def send() -> None:
            t0 = time.perf_counter()
            state["sent"] += 1

            def done(conn: Any, data: Any) -> None:
                if isinstance(data, nsq.Error):
                    state["errors"] += 1
                latencies.append(time.perf_counter() - t0)
                state["acked"] += 1
                if state["acked"] == total:
                    state["end"] = time.perf_counter()
                    loop.stop()
                elif state["sent"] < total:
                    send()

            writer.mpub(topic, bodies, callback=done)

        for _ in range(min(window, total)):
            send()

    _pynsq_writer_run(addr, go)
    return {"messages": state["acked"] * batch, "seconds": state["end"] - state["start"],
            "errors": state["errors"], "latency_ms": _lat(latencies)}


def role_pynsq_pub(addr: str, topic: str, count: int, size: int, window: int) -> dict[str, Any]:
    import nsq

    body = b"x" * size
    state = {"sent": 0, "acked": 0, "start": 0.0, "end": 0.0, "errors": 0}
    latencies: list[float] = []

    def go(writer: Any, loop: Any) -> None:
        state["start"] = time.perf_counter()

        def send() -> None:
            t0 = time.perf_counter()
            state["sent"] += 1

            def done(conn: Any, data: Any) -> None:
                if isinstance(data, nsq.Error):
                    state["errors"] += 1
                latencies.append(time.perf_counter() - t0)
                state["acked"] += 1
                if state["acked"] == count:
                    state["end"] = time.perf_counter()
                    loop.stop()
                elif state["sent"] < count:
                    send()

            writer.pub(topic, body, callback=done)

        for _ in range(min(window, count)):
            send()

    _pynsq_writer_run(addr, go)
    return {"messages": state["acked"], "seconds": state["end"] - state["start"],
            "errors": state["errors"], "latency_ms": _lat(latencies)}


def role_ours_e2e(addr: str, topic: str, count: int, rate: float) -> dict[str, Any]:
    import struct

    import trio

    from client import Consumer, Producer

    latencies: list[float] = []

    async def main() -> None:
        async with Consumer(topic, "e2e", nsqd_tcp_addresses=[addr], max_in_flight=2500) as consumer, \
                Producer(addr, batch=True) as producer:
            await consumer.wait_connected()

            async def publish_all() -> None:
                start = trio.current_time()
                async with trio.open_nursery() as nursery:
                    for i in range(count):
                        await trio.sleep_until(start + i / rate)
                        nursery.start_soon(producer.publish, topic, struct.pack(">d", time.perf_counter()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(publish_all)
                async for message in consumer:
                    latencies.append(time.perf_counter() - struct.unpack(">d", message.body[:8])[0])
                    await message.finish()
                    if len(latencies) == count:
                        break

    trio.run(main)
    return {"messages": len(latencies), "latency_ms": _lat(latencies)}


def role_pynsq_e2e(addr: str, topic: str, count: int, rate: float) -> dict[str, Any]:
    import struct

    import nsq
    import tornado.ioloop

    loop = tornado.ioloop.IOLoop.current()
    latencies: list[float] = []

    def handler(message: Any) -> bool:
        latencies.append(time.perf_counter() - struct.unpack(">d", message.body[:8])[0])
        if len(latencies) == count:
            loop.add_callback(loop.stop)
        return True

    reader = nsq.Reader(topic=topic, channel="e2e", message_handler=handler, nsqd_tcp_addresses=[addr],
                        max_in_flight=2500)
    writer = nsq.Writer([addr])
    state = {"i": 0, "start": 0.0}

    def tick() -> None:
        now = time.perf_counter()
        while state["i"] < count and state["start"] + state["i"] / rate <= now:
            writer.pub(topic, struct.pack(">d", time.perf_counter()), callback=lambda c, d: None)
            state["i"] += 1
        if state["i"] < count:
            loop.call_later(0.001, tick)

    def wait_connected() -> None:
        if writer.conns and reader.conns:
            state["start"] = time.perf_counter()
            tick()
        else:
            loop.call_later(0.01, wait_connected)

    loop.add_callback(wait_connected)
    loop.start()
    return {"messages": len(latencies), "latency_ms": _lat(latencies)}


ROLES = {
    "ours-consume": role_ours_consume,
    "pynsq-consume": role_pynsq_consume,
    "ours-produce": role_ours_produce,
    "ours-send": role_ours_send,
    "ours-mpub": role_ours_mpub,
    "pynsq-mpub": role_pynsq_mpub,
    "pynsq-pub": role_pynsq_pub,
    "ours-e2e": role_ours_e2e,
    "pynsq-e2e": role_pynsq_e2e,
}


def child_main(role: str, args: list[str]) -> None:
    threshold = os.environ.get("CLIENT_BENCH_GC_THRESHOLD")
    if threshold:
        import gc

        gc.set_threshold(int(threshold), 20, 100)
    fn = ROLES[role]
    typed: list[Any] = [int(a) if a.isdigit() else (float(a) if a.replace(".", "", 1).isdigit() else a)
                        for a in args]
    result = fn(*typed)
    result["peak_rss_mb"] = _rss_mb()
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------- parent


def run_role(role: str, *args: object, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, os.path.abspath(__file__), "--role", role, *map(str, args)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout}s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or [f"rc={proc.returncode}"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fill(addr: tuple[str, int], topic: str, count: int, size: int, batch: int = 200) -> None:
    """Pre-fill ``topic`` with ``count`` messages by pipelined MPUB over a raw socket."""
    sock = socket.create_connection(addr)
    sock.sendall(b"  V2")
    frame = commands.mpub(topic, [b"x" * size] * batch)
    reader = FrameReader()
    frames = count // batch
    window = 16
    sent = acked = 0
    while acked < frames:
        while sent < frames and sent - acked < window:
            sock.sendall(frame)
            sent += 1
        data = sock.recv(65536)
        if not data:
            raise RuntimeError("nsqd closed the connection while filling")
        reader.feed(data)
        for f in reader.frames():
            if f.type == FrameType.ERROR:
                raise RuntimeError(f.data)
            if f.data == b"OK":
                acked += 1
    sock.close()


def show(name: str, runs: list[dict[str, Any]]) -> float:
    """Print the median run (by rate) of ``runs``; return its rate."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        print(f"  {name:<32} ERROR {runs[0]['error']}")
        return float("nan")
    for r in ok:
        r["rate"] = r["messages"] / r["seconds"] if r.get("seconds") else float("nan")
    ok.sort(key=lambda r: r["rate"])
    med = ok[len(ok) // 2]
    rate = med["rate"]
    lat = med.get("latency_ms")
    lat_s = "  ".join(f"{k} {v:.2f}ms" for k, v in lat.items()) if lat else ""
    if rate == rate:
        spread = f" ({ok[0]['rate'] / 1000:,.0f}k-{ok[-1]['rate'] / 1000:,.0f}k)" if len(ok) > 1 else ""
        rate_s = f"{rate:>10,.0f} msg/s{spread:<12}"
    else:
        rate_s = " " * 28
    print(f"  {name:<32} {rate_s} rss {med['peak_rss_mb']:.0f} MiB  {lat_s}", flush=True)
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200_000, help="messages per consume run")
    ap.add_argument("--pub-messages", type=int, default=200_000, help="messages per batched/MPUB run")
    ap.add_argument("--pynsq-pub-messages", type=int, default=20_000, help="messages for pynsq PUB")
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=1000, help="concurrent publish() calls (ours)")
    ap.add_argument("--e2e-messages", type=int, default=10_000)
    ap.add_argument("--e2e-rate", type=float, default=5000.0)
    ap.add_argument("--repeat", type=int, default=3, help="runs per row (the median is shown)")
    ap.add_argument("--phase-timeout", type=float, default=120.0, help="seconds per client run")
    ap.add_argument("--gc-threshold", type=int, default=0,
                    help="young-generation GC threshold for every client process, ours and pynsq "
                         "alike (0: Python's default; nsqd itself uses 50000)")
    ap.add_argument("--phases", default="consume,produce,e2e",
                    help="comma-separated phases to run (consume, produce, e2e)")
    ap.add_argument("--role", help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if args.role:
        child_main(args.role, rest)
        return

    n, t, size = args.messages, args.phase_timeout, args.size
    if args.gc_threshold:
        os.environ["CLIENT_BENCH_GC_THRESHOLD"] = str(args.gc_threshold)
    pub_n = args.pub_messages
    queue = max(n, pub_n) * 2
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--mem-queue-size", str(queue)) as (proc, addrs):
        host, port = addrs["TCP"]
        addr = f"{host}:{port}"
        gc_note = f"; client GC threshold {args.gc_threshold}" if args.gc_threshold else ""
        print(f"nsqd pid {proc.pid} at {addr}; {size}-byte messages; median of {args.repeat} runs (range)"
              f"{gc_note}")
        serial = iter(range(1_000_000))

        def runs(role: str, *role_args: Any, prefill: int = 0) -> list[dict[str, Any]]:
            out = []
            for _ in range(args.repeat):
                topic = f"{role.replace('-', '_')}_{next(serial)}"
                if prefill:
                    fill(addrs["TCP"], topic, prefill, size)
                out.append(run_role(role, addr, topic, *role_args, timeout=t))
            return out

        phases = set(args.phases.split(","))
        if "consume" in phases:
            print(f"consume ({n:,} pre-filled messages, max_in_flight 2500, FIN each)")
            ours_c = show("trio-nsq Consumer", runs("ours-consume", n, prefill=n))
            py_c = show("pynsq Reader", runs("pynsq-consume", n, prefill=n))

        if "produce" in phases:
            print(f"produce ({pub_n:,} messages; pynsq PUB {args.pynsq_pub_messages:,})")
            ours_p = show("trio-nsq Producer.send_nowait", runs("ours-send", pub_n, size))
            ours_pc = show(f"trio-nsq publish(batch) x{args.concurrency}",
                           runs("ours-produce", pub_n, size, args.concurrency))
            ours_m = show("trio-nsq multi_publish(200) x8", runs("ours-mpub", pub_n, size, 200, 8))
            py_m = show("pynsq Writer.mpub(200) x8", runs("pynsq-mpub", pub_n, size, 200, 8))
            py_p = show("pynsq Writer.pub x100", runs("pynsq-pub", args.pynsq_pub_messages, size, 100))

        if "e2e" in phases:
            print(f"e2e latency ({args.e2e_messages:,} messages at {args.e2e_rate:,.0f} msg/s)")
            show("trio-nsq Producer+Consumer", runs("ours-e2e", args.e2e_messages, args.e2e_rate))
            show("pynsq Writer+Reader", runs("pynsq-e2e", args.e2e_messages, args.e2e_rate))
        print(f"nsqd peak RSS {peak_rss_mb(proc.pid):.0f} MiB")

    print("ratios of medians (targets: consume >= 4x, batched vs MPUB >= 0.75x, batched vs PUB >= 10x)")
    if "consume" in phases:
        print(f"  consume:         {ours_c / py_c:.2f}x pynsq Reader")
    if "produce" in phases:
        print(f"  batched vs MPUB: {ours_p / py_m:.2f}x pynsq Writer.mpub (send_nowait); "
              f"{ours_pc / py_m:.2f}x (concurrent publish); multi_publish {ours_m / py_m:.2f}x")
        print(f"  batched vs PUB:  {ours_p / py_p:.2f}x pynsq Writer.pub (send_nowait); "
              f"{ours_pc / py_p:.2f}x (concurrent publish)")


if __name__ == "__main__":
    main()
