"""Benchmark nsqlookupd: ``GET /lookup`` throughput and registration churn.

Starts ``python -m nsqlookupd`` on loopback (free ports picked up front), connects 10
fake nsqd nodes over the V1 protocol, each registering the same 100 topics (one channel
each), then, each phase bounded by ``--duration``:

1. ``/lookup?topic=...`` over all 100 topics (10 producers each) with ``wrk`` when
   installed, else a raw-socket keep-alive generator in separate processes;
2. registration churn, one command per round trip (as Go's nsqd lookupPeer does):
   10 more nodes, one process each, create and delete their own topics and channels
   (REGISTER t, REGISTER t ch, UNREGISTER t ch, UNREGISTER t) in a loop;
3. the same churn pipelined 64 commands per write (as ``nsqd.lookup.LookupPeers``
   does for a burst).

Prints requests/s, latency, changes/s, nsqlookupd CPU use and peak RSS.

    .venv/bin/python scripts/bench/lookupd_bench.py
    .venv/bin/python scripts/bench/lookupd_bench.py --duration 5 --log-level warn
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, peak_rss_mb  # noqa: E402

from client.protocol import MAGIC_V1, ResponseReader, commands  # noqa: E402

NODES = 10
TOPICS = 100
PIPELINE = 64

WRK_SCRIPT = """
local i = 0
request = function()
  i = i %% %(topics)d + 1
  return wrk.format("GET", "/lookup?topic=topic_" .. i)
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d duration_us=%%d non2xx=%%d errors=%%d "
      .. "p50_us=%%d p99_us=%%d\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Node:
    """A fake nsqd: one blocking V1 connection."""

    def __init__(self, tcp: tuple[str, int], index: int) -> None:
        self.sock = socket.create_connection(tcp, timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = ResponseReader()
        self.pending: list[bytes] = []
        self.sock.sendall(MAGIC_V1)
        ident = {"broadcast_address": f"node{index}.bench", "hostname": f"node{index}",
                 "tcp_port": 4150 + index, "http_port": 5150 + index, "version": "1.3.0"}
        (resp,) = self.roundtrip([commands.identify(ident)])
        assert resp.startswith(b"{"), resp

    def roundtrip(self, cmds: list[bytes]) -> list[bytes]:
        self.sock.sendall(b"".join(cmds))
        while len(self.pending) < len(cmds):
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("nsqlookupd closed the connection")
            self.reader.feed(data)
            self.pending.extend(self.reader.responses())
        out, self.pending = self.pending[: len(cmds)], self.pending[len(cmds) :]
        return out


def _churn_worker(tcp: tuple[str, int], i: int, duration: float, batch: int,
                  out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One fake nsqd creating and deleting its own topics and channels until time is up."""
    node = Node(tcp, NODES + i)
    # nsqd's order: topic, channel created; channel, topic deleted
    cycle = []
    for k in range(64):  # 256 commands: a multiple of every batch size
        topic = f"churn_{i}_{k}"
        cycle += [commands.register(topic), commands.register(topic, "ch"),
                  commands.unregister(topic, "ch"), commands.unregister(topic)]
    count = pos = 0
    stop = time.monotonic() + duration
    while time.monotonic() < stop:
        cmds = cycle[pos : pos + batch]
        pos = (pos + batch) % len(cycle)
        for resp in node.roundtrip(cmds):
            assert resp == b"OK", resp
        count += len(cmds)
    node.sock.close()
    out.put(count)


def churn(tcp: tuple[str, int], duration: float, batch: int) -> tuple[int, float]:
    """Run one churn process per node; returns (commands, seconds)."""
    q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_churn_worker, args=(tcp, i, duration, batch, q))
             for i in range(NODES)]
    start = time.monotonic()
    for p in procs:
        p.start()
    total = sum(q.get(timeout=duration + 60) for _ in procs)
    elapsed = time.monotonic() - start
    for p in procs:
        p.join()
    return total, elapsed


def run_wrk(http: tuple[str, int], duration: float, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % {"topics": TOPICS})
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", "-s", script,
             f"http://{http[0]}:{http[1]}"], capture_output=True, text=True, check=True,
            timeout=duration + 60).stdout
    finally:
        os.unlink(script)
    m = re.search(r"RESULT (.*)", out)
    assert m, out
    r = {k: float(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    return {"requests": r["requests"], "seconds": r["duration_us"] / 1e6,
            "errors": r["non2xx"] + r["errors"], "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3}


def _py_client(http: tuple[str, int], duration: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    sock = socket.create_connection(http)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    n = errors = 0
    stop = time.monotonic() + duration
    buf = b""
    while time.monotonic() < stop:
        sock.sendall(b"GET /lookup?topic=topic_%d HTTP/1.1\r\nHost: x\r\n\r\n" % (n % TOPICS + 1))
        while True:
            head_end = buf.find(b"\r\n\r\n")
            if head_end >= 0:
                length = int(re.search(rb"(?i)content-length: (\d+)", buf[:head_end]).group(1))  # type: ignore[union-attr]
                if len(buf) >= head_end + 4 + length:
                    errors += not buf.startswith(b"HTTP/1.1 200")
                    buf = buf[head_end + 4 + length :]
                    break
            buf += sock.recv(65536)
        n += 1
    out.put((n, errors))


def run_python(http: tuple[str, int], duration: float, connections: int) -> dict[str, float]:
    q: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.Process(target=_py_client, args=(http, duration, q))
             for _ in range(connections)]
    start = time.monotonic()
    for p in procs:
        p.start()
    results = [q.get(timeout=duration + 60) for _ in procs]
    for p in procs:
        p.join()
    return {"requests": sum(r[0] for r in results), "seconds": time.monotonic() - start,
            "errors": sum(r[1] for r in results), "p50_ms": float("nan"), "p99_ms": float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=10, help="HTTP connections")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--log-level", default="info", help="nsqlookupd --log-level")
    args = parser.parse_args()

    tcp = ("127.0.0.1", free_port())
    http = ("127.0.0.1", free_port())
    proc = subprocess.Popen(
        [sys.executable, "-m", "nsqlookupd", f"--tcp-address={tcp[0]}:{tcp[1]}",
         f"--http-address={http[0]}:{http[1]}", f"--log-level={args.log_level}"],
        cwd=ROOT, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(http, timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("nsqlookupd did not start") from None
                time.sleep(0.05)

        nodes = [Node(tcp, i) for i in range(NODES)]
        for node in nodes:
            node.roundtrip([commands.register(f"topic_{j}", "ch") for j in range(1, TOPICS + 1)])
        with socket.create_connection(http) as s:
            s.sendall(b"GET /lookup?topic=topic_1 HTTP/1.0\r\n\r\n")
            body = b""
            while chunk := s.recv(65536):
                body += chunk
        doc = json.loads(body.split(b"\r\n\r\n", 1)[1])
        assert len(doc["producers"]) == NODES, doc
        lookup_size = len(body.split(b"\r\n\r\n", 1)[1])

        use_wrk = args.generator == "wrk" or (args.generator == "auto" and shutil.which("wrk"))
        print(f"nsqlookupd bench: {NODES} nodes x {TOPICS} topics, {args.duration:g} s per phase, "
              f"log level {args.log_level}, cores {os.cpu_count()}")
        cpu0 = cpu_seconds(proc.pid)
        if use_wrk:
            r = run_wrk(http, args.duration, args.connections)
            gen = f"wrk -t2 -c{args.connections}"
        else:
            r = run_python(http, args.duration, args.connections)
            gen = f"python x{args.connections}"
        cpu = cpu_seconds(proc.pid) - cpu0
        print(f"GET /lookup ({gen}, {lookup_size} B responses): "
              f"{r['requests'] / r['seconds']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, "
              f"p99 {r['p99_ms']:.2f} ms, errors {r['errors']:.0f}, "
              f"lookupd CPU {cpu / r['seconds']:.0%}")

        for label, batch in (("round trip", 1), (f"pipelined x{PIPELINE}", PIPELINE)):
            cpu0 = cpu_seconds(proc.pid)
            n, secs = churn(tcp, args.duration, batch)
            cpu = cpu_seconds(proc.pid) - cpu0
            print(f"registration churn ({label}, {NODES} nodes): {n / secs:,.0f} commands/s "
                  f"= {n / secs / 4:,.0f} topic+channel create+delete cycles/s, "
                  f"lookupd CPU {cpu / secs:.0%}")
        print(f"nsqlookupd peak RSS {peak_rss_mb(proc.pid):.1f} MiB")
        for node in nodes:
            node.sock.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
