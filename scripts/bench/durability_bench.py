"""nsqd durability benchmarks: disk backlog RSS, 12M deferred messages, durable throughput.

    python scripts/bench/durability_bench.py backlog  [--messages 10000000]
    python scripts/bench/durability_bench.py deferred [--rate 100000 --delay 120 --seconds 150]
    python scripts/bench/durability_bench.py durable  [--durable-seconds 5 --publishers 10]
    python scripts/bench/durability_bench.py dpub     [--messages 1000000 --delay 5]
    python scripts/bench/durability_bench.py pubwait  [--durable-seconds 5 --publishers 10]
    python scripts/bench/durability_bench.py httpwait [--durable-seconds 5 --publishers 50]

backlog:  --mem-queue-size=10000; W writers MPUB N 100-byte messages into a channel
          nobody reads, then one reader drains it. nsqd's RSS is sampled all along.
deferred: publishers DPUB at --rate msg/s with --delay s (each body carries its due time)
          for --seconds; a reader FINs and measures lateness = arrival - due. Pending
          deferred messages peak at rate x delay (12M with the defaults).
dpub:     nsqd's own cost: --messages pipelined DPUBs (--delay s) as fast as nsqd takes
          them, then their release, delivery and FIN (RDY --rdy); msg/s and nsqd CPU/msg.
durable:  --publishers connections each publishing one command at a time (wait for OK),
          PUB then MPUB x --batch, default mode vs durable mode (--mem-queue-size=0
          --sync-every=1, where each OK waits for the group commit's fsync).
pubwait:  as durable's PUB, but all --publishers connections are driven by one process
          (epoll), so the load generator costs little; msg/s and nsqd CPU/msg per mode
          (--modes durable,default; go-durable, go-default run --go-nsqd's binary).
httpwait: wrk -t2 -c--publishers POSTing --size-byte bodies to /pub for --durable-seconds;
          req/s, latency and nsqd CPU/req per mode.
"""

from __future__ import annotations

import argparse
import array
import collections
import contextlib
import json
import multiprocessing as mp
import os
import socket
import struct
import sys
import threading
import time
import urllib.request
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from _common import cpu_seconds, daemon, peak_rss_mb, percentiles, rss_mb

from client.protocol import commands

_FRAME = struct.Struct(">lL")


def _connect(addr: tuple[str, int]) -> socket.socket:
    s = socket.create_connection(addr)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"  V2")
    return s


class Sampler(threading.Thread):
    """Samples nsqd's RSS (and optionally a /stats figure) every ``interval`` s."""

    def __init__(self, pid: int, interval: float = 0.5, stats_url: str | None = None) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.stats_url = stats_url
        self.samples: list[tuple[float, float, int]] = []
        self.depths: list[int] = []
        self.cpu: list[float] = []  # nsqd's CPU use over each interval, in % of one core
        self.stop = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        last = (t0, cpu_seconds(self.pid))
        while not self.stop.wait(self.interval):
            try:
                now = (time.monotonic(), cpu_seconds(self.pid))
            except OSError:
                return
            self.cpu.append(100 * (now[1] - last[1]) / max(1e-9, now[0] - last[0]))
            last = now
            extra = -1
            if self.stats_url:
                try:
                    with urllib.request.urlopen(self.stats_url, timeout=5) as r:
                        doc = json.loads(r.read())
                    ch = doc["topics"][0]["channels"][0]
                    extra = ch["deferred_count"]
                    self.depths.append(ch["depth"])
                except Exception:  # best effort
                    pass
            try:
                self.samples.append((time.monotonic() - t0, rss_mb(self.pid), extra))
            except OSError:
                return

    def peak(self) -> float:
        return max((s[1] for s in self.samples), default=float("nan"))


def _drain_log(proc) -> collections.deque:
    """Keep reading nsqd's stderr (a full pipe would block its logging); last lines kept."""
    lines: collections.deque = collections.deque(maxlen=200)

    def run() -> None:
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=run, daemon=True).start()
    return lines


def _http(addrs: dict, path: str) -> None:
    host, port = addrs["HTTP"]
    req = urllib.request.Request(f"http://{host}:{port}{path}", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=10).read()


def _ok_reader(sock: socket.socket, count: int) -> None:
    """Read ``count`` OK frames (raises on an error frame)."""
    buf = b""
    got = 0
    while got < count:
        data = sock.recv(1 << 16)
        if not data:
            raise RuntimeError("closed")
        buf += data
        pos = 0
        while len(buf) - pos >= 8:
            size, ftype = _FRAME.unpack_from(buf, pos)
            if len(buf) - pos - 4 < size:
                break
            if ftype == 1:
                raise RuntimeError(buf[pos + 8:pos + 4 + size])
            if buf[pos + 8:pos + 4 + size] != b"_heartbeat_":
                got += 1
            pos += 4 + size
        buf = buf[pos:]


def _reader(addr: tuple[str, int], topic: str, channel: str, total: int, *,
            lateness: Any = None, e2e: Any = None,
            delay: float = 0.0, deadline: float = 1e18, rdy: int = 2500,
            arrivals: Any = None) -> tuple[int, float]:
    """Consume (FIN each, batched per read).

    With ``lateness``: arrival - (nsqd's timestamp + delay), i.e. against the due time
    nsqd set when it took the DPUB; with ``e2e``: arrival - the due time the publisher
    wrote in the body (adds the time the DPUB waited to be read by nsqd).
    """
    sock = _connect(addr)
    sock.sendall(commands.sub(topic, channel) + commands.rdy(rdy))
    got = 0
    buf = b""
    t0 = time.perf_counter()
    first = True
    unpack = _FRAME.unpack_from
    due_of = struct.Struct(">d").unpack_from
    ts_of = struct.Struct(">q").unpack_from
    sock.settimeout(1.0)
    while got < total and time.monotonic() < deadline:
        try:
            data = sock.recv(1 << 20)
        except TimeoutError:
            continue
        if not data:
            raise RuntimeError("closed")
        now = time.time()
        buf = buf + data if buf else data
        pos, end, ids = 0, len(buf), []
        while end - pos >= 8:
            size, ftype = unpack(buf, pos)
            if end - pos - 4 < size:
                break
            if ftype == 2:
                ids.append(buf[pos + 18:pos + 34])
                if lateness is not None:
                    lateness.append((now - ts_of(buf, pos + 8)[0] / 1e9 - delay) * 1000)
                    if arrivals is not None:
                        arrivals.append(now)
                if e2e is not None:
                    e2e.append((now - due_of(buf, pos + 34)[0]) * 1000)
            elif first and buf[pos + 8:pos + 4 + size] == b"OK":
                first = False
            elif buf[pos + 8:pos + 4 + size] == b"_heartbeat_":
                sock.sendall(b"NOP\n")
            pos += 4 + size
        buf = buf[pos:]
        if ids:
            got += len(ids)
            sock.sendall(b"FIN " + b"\nFIN ".join(ids) + b"\n")
    elapsed = time.perf_counter() - t0
    sock.close()
    return got, elapsed


# ---------------------------------------------------------------------- backlog
def _mpub_writer(addr, topic, batches, batch, size, go, out):
    sock = _connect(addr)
    frame = commands.mpub(topic, [b"x" * size] * batch)
    go.wait()
    for _ in range(batches):
        sock.sendall(frame)
        _ok_reader(sock, 1)
    out.put(1)
    sock.close()


def bench_backlog(args: argparse.Namespace) -> None:
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--mem-queue-size", "10000", *args.nsqd_args.split()) as (proc, addrs):
        _http(addrs, "/topic/create?topic=backlog")
        _http(addrs, "/channel/create?topic=backlog&channel=ch")
        sampler = Sampler(proc.pid)
        sampler.start()
        per = args.messages // args.batch // args.writers
        go = mp.Event()
        out = mp.Queue()
        procs = [mp.Process(target=_mpub_writer,
                            args=(addrs["TCP"], "backlog", per, args.batch, args.size, go, out))
                 for _ in range(args.writers)]
        for p in procs:
            p.start()
        t0 = time.perf_counter()
        go.set()
        for p in procs:
            p.join()
        n = per * args.batch * args.writers
        el = time.perf_counter() - t0
        build_peak = sampler.peak()
        print(f"backlog build: {n:,} msgs in {el:.1f}s = {n / el:,.0f} msg/s; "
              f"nsqd RSS peak {build_peak:.0f} MiB, now {rss_mb(proc.pid):.0f} MiB", flush=True)
        got, el = _reader(addrs["TCP"], "backlog", "ch", n)
        sampler.stop.set()
        print(f"backlog drain: {got:,} msgs in {el:.1f}s = {got / el:,.0f} msg/s; "
              f"nsqd RSS peak {sampler.peak():.0f} MiB (VmHWM {peak_rss_mb(proc.pid):.0f} MiB)")
        marks = sampler.samples[:: max(1, len(sampler.samples) // 12)]
        print("RSS over time (s, MiB): " + ", ".join(f"{t:.0f}:{r:.0f}" for t, r, _ in marks))


# ---------------------------------------------------------------------- deferred
def _dpub_writer(addr, topic, rate, delay, seconds, size, go, out):
    sock = _connect(addr)
    sock.setblocking(False)
    delay_ms = int(delay * 1000)
    head = f"DPUB {topic} {delay_ms}\n".encode() + struct.pack(">l", size)
    pad = b"." * (size - 8)
    pack = struct.Struct(">d").pack
    go.wait()
    t0 = time.monotonic()
    sent = 0
    pending = b""
    acks = 0
    while True:
        now = time.monotonic()
        if now - t0 >= seconds and not pending:
            break
        due_n = int((min(now - t0, seconds)) * rate)
        if due_n > sent:
            k = min(due_n - sent, rate // 20 + 1)
            wall = time.time() + delay
            pending += b"".join(head + pack(wall) + pad for _ in range(k))
            sent += k
        if pending:
            try:
                n = sock.send(pending)
                pending = pending[n:]
            except BlockingIOError:
                pass
        try:
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    raise RuntimeError("closed")
                acks += len(data) // 10
        except BlockingIOError:
            pass
        if not pending:
            time.sleep(0.002)
    out.put((sent, time.monotonic() - t0))
    time.sleep(0.5)
    sock.close()


def bench_deferred(args: argparse.Namespace) -> None:
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--max-req-timeout", f"{int(args.delay * 2)}s",
                "--max-rdy-count", str(max(2500, args.rdy)), *args.nsqd_args.split(),
                drain=False) as (proc, addrs):
        log = _drain_log(proc)
        _http(addrs, "/topic/create?topic=later")
        _http(addrs, "/channel/create?topic=later&channel=ch")
        host, port = addrs["HTTP"]
        sampler = Sampler(proc.pid, 1.0, f"http://{host}:{port}/stats?format=json&topic=later")
        sampler.start()
        go = mp.Event()
        out = mp.Queue()
        procs = [mp.Process(target=_dpub_writer,
                            args=(addrs["TCP"], "later", args.rate // args.writers, args.delay,
                                  args.seconds, args.size, go, out))
                 for _ in range(args.writers)]
        for p in procs:
            p.start()
        # arrays: 12M samples must not stall the reader with list growth and float objects
        lateness = array.array("d")
        arrivals = array.array("d")
        e2e = array.array("d")
        result: dict = {}

        def read() -> None:
            try:
                result["got"] = _reader(addrs["TCP"], "later", "ch", 1 << 62, lateness=lateness,
                                        e2e=e2e, delay=args.delay, rdy=args.rdy,
                                        arrivals=arrivals,
                                        deadline=time.monotonic() + args.seconds + args.delay + 60)
            except (RuntimeError, OSError):
                pass  # nsqd stopped first

        reader = threading.Thread(target=read, daemon=True)
        go.set()
        reader.start()
        sent = 0
        for p in procs:
            p.join()
        while not out.empty():
            s, _el = out.get()
            sent += s
        print(f"deferred publish: {sent:,} DPUB ({args.delay:.0f}s delay) in {args.seconds:.0f}s "
              f"= {sent / args.seconds:,.0f} msg/s", flush=True)
        deadline = time.monotonic() + args.delay + 60
        while len(lateness) < sent and time.monotonic() < deadline:
            time.sleep(0.5)
        sampler.stop.set()
        p = percentiles(lateness, (50, 90, 99, 99.9, 100))
        q = percentiles(e2e, (50, 99))
        pending = max((s[2] for s in sampler.samples), default=-1)
        print(f"deferred delivery: {len(lateness):,}/{sent:,} delivered; lateness after nsqd's "
              f"due time p50 {p[50]:.1f} ms, p90 {p[90]:.1f} ms, p99 {p[99]:.1f} ms, "
              f"p99.9 {p[99.9]:.1f} ms, max {p[100]:.1f} ms; early {sum(1 for x in lateness if x < -1)}")
        print(f"                   after the publisher's due time (includes DPUB queueing): "
              f"p50 {q[50]:.1f} ms, p99 {q[99]:.1f} ms")
        print(f"deferred memory: pending peak {pending:,}; nsqd RSS peak {sampler.peak():.0f} MiB "
              f"(VmHWM {peak_rss_mb(proc.pid):.0f} MiB)")
        marks = sampler.samples[:: max(1, len(sampler.samples) // 12)]
        print("RSS / pending over time (s, MiB, pending): "
              + ", ".join(f"{t:.0f}:{r:.0f}:{d}" for t, r, d in marks))
        print(f"channel depth (released, not yet delivered): max {max(sampler.depths, default=0):,}")
        busy = sorted(sampler.cpu)
        if busy:
            print(f"nsqd CPU per {sampler.interval:.0f} s: median {busy[len(busy) // 2]:.0f}%, "
                  f"max {busy[-1]:.0f}% of one core")
        if arrivals:
            t0 = arrivals[0]
            worst: dict[int, float] = {}
            for at, late in zip(arrivals, lateness, strict=False):
                sec = int(at - t0)
                if late > worst.get(sec, -1e9):
                    worst[sec] = late
            bad = [(sec, late) for sec, late in sorted(worst.items()) if late > 100]
            print(f"seconds of delivery with a message > 100 ms late: {len(bad)} of "
                  f"{len(worst)}: " + ", ".join(f"{s}s:{v:.0f}ms" for s, v in bad[:30]))
        problems = [line for line in log if "ERROR" in line or "WARN" in line]
        if problems:
            print("nsqd problems:\n" + "".join(problems[-10:]))


# ---------------------------------------------------------------------- durable
def _sync_publisher(addr, topic, batch, seconds, go, out):
    sock = _connect(addr)
    frame = commands.pub(topic, b"x" * 100) if batch == 1 else \
        commands.mpub(topic, [b"x" * 100] * batch)
    go.wait()
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        sock.sendall(frame)
        _ok_reader(sock, 1)
        n += batch
    out.put(n)
    sock.close()


def _durable_run(extra: list[str], batch: int, args: argparse.Namespace) -> float:
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                *extra, *args.nsqd_args.split()) as (_proc, addrs):
        _http(addrs, "/topic/create?topic=d")
        _http(addrs, "/channel/create?topic=d&channel=ch")
        go = mp.Event()
        out = mp.Queue()
        procs = [mp.Process(target=_sync_publisher,
                            args=(addrs["TCP"], "d", batch, args.durable_seconds, go, out))
                 for _ in range(args.publishers)]
        for p in procs:
            p.start()
        time.sleep(0.3)
        go.set()
        for p in procs:
            p.join()
        total = sum(out.get() for _ in procs)
        return total / args.durable_seconds


def bench_durable(args: argparse.Namespace) -> None:
    modes = [("default", []), ("durable", ["--mem-queue-size=0", "--sync-every=1"])]
    for cmd, batch in (("PUB", 1), (f"MPUB x{args.batch}", args.batch)):
        figures = {name: _durable_run(extra, batch, args) for name, extra in modes}
        print(f"{args.publishers} publishers, {cmd}, wait for each OK: "
              + ", ".join(f"{name} {v:,.0f} msg/s" for name, v in figures.items())
              + f" (durable/default {figures['durable'] / figures['default']:.0%})", flush=True)


_MODES = {"default": [], "durable": ["--mem-queue-size=0", "--sync-every=1"]}


@contextlib.contextmanager
def _nsqd(mode: str, args: argparse.Namespace):
    """Our nsqd, or with a ``go-`` mode the binary at ``--go-nsqd``, in ``mode``."""
    flags = ["--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
             *_MODES[mode.removeprefix("go-")], *args.nsqd_args.split()]
    if not mode.startswith("go-"):
        with daemon("nsqd", *flags) as (proc, addrs):
            yield proc, addrs
        return
    import re
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen([args.go_nsqd, "--data-path", data, *flags],
                                stderr=subprocess.PIPE, text=True)
        addrs = {}
        while len(addrs) < 2:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"{args.go_nsqd} exited: rc={proc.poll()}")
            m = re.search(r"(TCP|HTTP): listening on (\S+)", line)
            if m:
                host, _, port = m.group(2).rpartition(":")
                addrs[m.group(1)] = (host, int(port))
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        try:
            yield proc, addrs
        finally:
            proc.terminate()
            proc.wait(10)


def _epoll_publishers(addr, topic: str, conns: int, seconds: float, size: int) -> int:
    """``conns`` connections, each sending one PUB and waiting for its OK; messages done."""
    import select

    frame = commands.pub(topic, b"x" * size)
    ok = _FRAME.pack(6, 0) + b"OK"
    socks = [_connect(addr) for _ in range(conns)]
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        s.setblocking(False)
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = [s, b""]
    for s in socks:
        s.send(frame)
    n = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, _ in ep.poll(0.5):
            entry = by_fd[fd]
            s, buf = entry
            data = s.recv(4096)
            if not data:
                raise RuntimeError("closed")
            buf += data
            while len(buf) >= 10:
                if buf[:10] != ok:
                    raise RuntimeError(f"unexpected response {buf[:40]!r}")
                buf = buf[10:]
                n += 1
                s.send(frame)
            entry[1] = buf
    for s in socks:
        s.close()
    ep.close()
    return n


def bench_pubwait(args: argparse.Namespace) -> None:
    for mode in args.modes.split(","):
        with _nsqd(mode, args) as (proc, addrs):
            _http(addrs, "/topic/create?topic=d")
            _http(addrs, "/channel/create?topic=d&channel=ch")
            c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
            n = _epoll_publishers(addrs["TCP"], "d", args.publishers, args.durable_seconds,
                                  args.size)
            c1, t1 = cpu_seconds(proc.pid), time.perf_counter()
            print(f"{mode:8} {args.publishers} PUB publishers, wait for each OK: "
                  f"{n / (t1 - t0):,.0f} msg/s; nsqd {1e6 * (c1 - c0) / max(1, n):.1f} us CPU/msg "
                  f"({(c1 - c0) / (t1 - t0):.0%} of a core)", flush=True)


_WRK_LUA = r"""wrk.method = "POST"
wrk.body = string.rep("x", %d)
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\n", summary.requests,
    summary.errors.status, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def bench_httpwait(args: argparse.Namespace) -> None:
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        lua.write(_WRK_LUA % args.size)
        lua.flush()
        for mode in args.modes.split(","):
            with _nsqd(mode, args) as (proc, addrs):
                _http(addrs, "/topic/create?topic=d")
                _http(addrs, "/channel/create?topic=d&channel=ch")
                host, port = addrs["HTTP"]
                c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
                out = subprocess.run(
                    ["wrk", "-t2", f"-c{args.publishers}", f"-d{args.durable_seconds:g}s",
                     "-s", lua.name, f"http://{host}:{port}/pub?topic=d"],
                    capture_output=True, text=True, check=True).stdout
                c1, t1 = cpu_seconds(proc.pid), time.perf_counter()
                line = next(x for x in out.splitlines() if x.startswith("RESULT"))
                n, bad, p50, p99, top = map(int, line.split()[1:])
                print(f"{mode:8} wrk -c{args.publishers} POST /pub: "
                      f"{n / args.durable_seconds:,.0f} req/s (non-2xx {bad}); latency p50 "
                      f"{p50 / 1000:.2f} p99 {p99 / 1000:.2f} max {top / 1000:.1f} ms; nsqd "
                      f"{1e6 * (c1 - c0) / max(1, n):.1f} us CPU/req "
                      f"({(c1 - c0) / (t1 - t0):.0%} of a core)", flush=True)


# ---------------------------------------------------------------------- dpub
def bench_dpub(args: argparse.Namespace) -> None:
    n = args.messages - args.messages % 1000
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--max-rdy-count", str(max(2500, args.rdy)), *args.nsqd_args.split()
                ) as (proc, addrs):
        _http(addrs, "/topic/create?topic=later")
        _http(addrs, "/channel/create?topic=later&channel=ch")
        batch = commands.dpub("later", int(args.delay * 1000), b"x" * args.size) * 1000
        pub = _connect(addrs["TCP"])
        acks = threading.Thread(target=_ok_reader, args=(pub, n))
        acks.start()
        c0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        for _ in range(n // 1000):
            pub.sendall(batch)
        acks.join()
        c1, t1 = cpu_seconds(proc.pid), time.perf_counter()
        print(f"DPUB ingest: {n:,} in {t1 - t0:.2f}s = {n / (t1 - t0):,.0f} msg/s; "
              f"nsqd {1e6 * (c1 - c0) / n:.2f} us CPU/msg", flush=True)
        time.sleep(max(0.0, t0 + args.delay - time.perf_counter()))
        c2 = cpu_seconds(proc.pid)
        got, elapsed = _reader(addrs["TCP"], "later", "ch", n, rdy=args.rdy,
                               deadline=time.monotonic() + args.delay + 120)
        c3 = cpu_seconds(proc.pid)
        print(f"release + deliver + FIN: {got:,} in {elapsed:.2f}s = {got / elapsed:,.0f} msg/s; "
              f"nsqd {1e6 * (c3 - c2) / max(1, got):.2f} us CPU/msg; "
              f"nsqd peak RSS {peak_rss_mb(proc.pid):.0f} MiB", flush=True)
        pub.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phase", choices=["backlog", "deferred", "durable", "dpub", "pubwait",
                                      "httpwait", "all"])
    ap.add_argument("--messages", type=int, default=10_000_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--batch", type=int, default=200)
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--rate", type=int, default=100_000)
    ap.add_argument("--delay", type=float, default=120.0)
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--publishers", type=int, default=10)
    ap.add_argument("--rdy", type=int, default=10000, help="reader's RDY (deferred)")
    ap.add_argument("--durable-seconds", type=float, default=5.0)
    ap.add_argument("--nsqd-args", default="", help="extra nsqd flags")
    ap.add_argument("--modes", default="durable,default", help="pubwait/httpwait modes")
    ap.add_argument("--go-nsqd", default="", help="Go nsqd binary for the go-* modes")
    args = ap.parse_args()
    if args.phase in ("backlog", "all"):
        bench_backlog(args)
    if args.phase in ("deferred", "all"):
        bench_deferred(args)
    if args.phase in ("durable", "all"):
        bench_durable(args)
    if args.phase in ("dpub", "all"):
        bench_dpub(args)
    if args.phase in ("pubwait", "all"):
        bench_pubwait(args)
    if args.phase in ("httpwait", "all"):
        bench_httpwait(args)


if __name__ == "__main__":
    main()
