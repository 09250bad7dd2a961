"""Benchmark nsqd's ``POST /pub``: keep-alive load against a fresh ``python -m nsqd``.

Starts nsqd on 127.0.0.1 port 0 (ports read back from its ``HTTP: listening on`` log
line), drives ``POST /pub?topic=...`` for a fixed time with ``wrk`` when installed (else
with a multi-connection raw-socket generator in a separate process), then prints
requests/s, latency p50/p99, nsqd's peak RSS and the topic's message count from /stats.

    .venv/bin/python scripts/bench/http_pub_bench.py                 # wrk -t2 -c10, 10 s
    .venv/bin/python scripts/bench/http_pub_bench.py --duration 5 --connections 20
    .venv/bin/python scripts/bench/http_pub_bench.py --generator python

Go's nsqd 1.3 did 64–67k req/s with ``wrk -t2 -c10`` on the 2-core development machine; the target for
this implementation is >= 30k req/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LISTEN_RE = re.compile(r"HTTP: listening on (\S+):(\d+)")

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = string.rep("x", %(size)d)
wrk.headers["Content-Type"] = "application/octet-stream"
done = function(summary, latency, requests)
  io.write(string.format("RESULT requests=%%d duration_us=%%d non2xx=%%d errors=%%d "
      .. "p50_us=%%d p99_us=%%d max_us=%%d\\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


# ---------------------------------------------------------------------------- nsqd
def start_nsqd(data_path: str, extra: list[str]) -> tuple[subprocess.Popen[str], str, int]:
    cmd = [sys.executable, "-m", "nsqd", "--tcp-address=127.0.0.1:0",
           "--http-address=127.0.0.1:0", f"--data-path={data_path}",
           "--mem-queue-size=100000000", "--log-level=info", *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"nsqd exited early (rc={proc.wait()})")
        m = LISTEN_RE.search(line)
        if m:
            host, port = m.group(1).strip("[]"), int(m.group(2))
            # keep draining stderr so nsqd never blocks on a full pipe
            threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
            return proc, host, port
    proc.kill()
    raise SystemExit("nsqd did not report its HTTP address in time")


def _drain(stream: object) -> None:
    for line in stream:  # type: ignore[attr-defined]
        if "ERROR" in line or "FATAL" in line:
            sys.stderr.write(line)


def http_call(host: str, port: int, method: str, path: str, body: bytes | None = None) -> bytes:
    req = urllib.request.Request(f"http://{host}:{port}{path}", data=body, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        data: bytes = resp.read()
        return data


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


# ---------------------------------------------------------------------------- generators
def run_wrk(host: str, port: int, topic: str, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % {"size": args.size})
        script = f.name
    try:
        cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
               "--latency", "-s", script, f"http://{host}:{port}/pub?topic={topic}"]
        print("$", " ".join(cmd), flush=True)
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(script)
    if args.verbose:
        print(out)
    m = re.search(r"RESULT (.*)", out)
    if not m:
        raise SystemExit(f"could not parse wrk output:\n{out}")
    fields = dict(kv.split("=") for kv in m.group(1).split())
    seconds = int(fields["duration_us"]) / 1e6
    return {
        "requests": int(fields["requests"]),
        "seconds": seconds,
        "non2xx": int(fields["non2xx"]),
        "errors": int(fields["errors"]),
        "p50_ms": int(fields["p50_us"]) / 1000,
        "p99_ms": int(fields["p99_us"]) / 1000,
        "max_ms": int(fields["max_us"]) / 1000,
    }


def _python_worker(host: str, port: int, topic: str, size: int, connections: int,
                   duration: float, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """One process, ``connections`` keep-alive sockets, one request in flight each."""
    body = b"x" * size
    request = (f"POST /pub?topic={topic} HTTP/1.1\r\nHost: {host}:{port}\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
               ).encode() + body
    sel = selectors.DefaultSelector()
    conns: dict[int, socket.socket] = {}
    sent_at: dict[socket.socket, float] = {}
    buffers: dict[socket.socket, bytes] = {}
    latencies: list[float] = []
    non2xx = 0
    for _ in range(connections):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        conns[s.fileno()] = s
        buffers[s] = b""
        sent_at[s] = time.perf_counter()
        s.send(request)
    start = time.perf_counter()
    end = start + duration
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in sel.select(end - now):
            s = conns[key.fd]
            data = s.recv(65536)
            if not data:
                raise SystemExit("nsqd closed a connection")
            buf = buffers[s] + data
            while True:  # responses are small: "HTTP/1.1 200 OK ... Content-Length: 2\r\n\r\nOK"
                head_end = buf.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                m = re.search(rb"Content-Length: (\d+)", buf[:head_end])
                total = head_end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) < total:
                    break
                if not buf.startswith(b"HTTP/1.1 200"):
                    non2xx += 1
                buf = buf[total:]
                t = time.perf_counter()
                latencies.append(t - sent_at[s])
                sent_at[s] = t
                s.send(request)
            buffers[s] = buf
    elapsed = time.perf_counter() - start
    for s in buffers:
        s.close()
    queue.put((latencies, non2xx, elapsed))


def run_python(host: str, port: int, topic: str, args: argparse.Namespace) -> dict[str, float]:
    procs = []
    queue: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    per = [args.connections // args.threads + (i < args.connections % args.threads)
           for i in range(args.threads)]
    print(f"python generator: {args.threads} processes, {args.connections} connections, "
          f"{args.duration}s", flush=True)
    for n in per:
        p = multiprocessing.Process(target=_python_worker,
                                    args=(host, port, topic, args.size, n, args.duration, queue))
        p.start()
        procs.append(p)
    results = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    latencies = sorted(x for r in results for x in r[0])
    seconds = max(r[2] for r in results)

    def pct(q: float) -> float:
        if not latencies:
            return 0.0
        value: float = latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))]
        return value * 1000

    return {
        "requests": len(latencies),
        "seconds": seconds,
        "non2xx": sum(r[1] for r in results),
        "errors": 0,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": latencies[-1] * 1000 if latencies else 0.0,
    }


# ---------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load (default 10)")
    parser.add_argument("--connections", "-c", type=int, default=10)
    parser.add_argument("--threads", "-t", type=int, default=2,
                        help="wrk threads / python generator processes")
    parser.add_argument("--size", type=int, default=100, help="message body bytes (default 100)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--verbose", "-v", action="store_true")
    parser.add_argument("nsqd_args", nargs="*", help="extra nsqd flags (after --)")
    args = parser.parse_args()
    generator = args.generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"

    topic = "bench_http_pub"
    with tempfile.TemporaryDirectory(prefix="nsqd-bench-") as data_path:
        proc, host, port = start_nsqd(data_path, args.nsqd_args)
        try:
            assert http_call(host, port, "GET", "/ping") == b"OK"
            http_call(host, port, "POST", f"/topic/create?topic={topic}")
            run = run_wrk if generator == "wrk" else run_python
            result = run(host, port, topic, args)
            rss = peak_rss_kib(proc.pid)
            stats = json.loads(http_call(host, port, "GET",
                                         f"/stats?format=json&topic={topic}&include_mem=false"))
            published = stats["topics"][0]["message_count"] if stats["topics"] else 0
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    rate = result["requests"] / result["seconds"] if result["seconds"] else 0.0
    print(f"generator      {generator} ({args.threads} threads, {args.connections} connections, "
          f"{args.size} B bodies, {args.duration}s)")
    print(f"requests       {result['requests']}  (non-2xx {result['non2xx']}, "
          f"socket errors {result['errors']})")
    print(f"throughput     {rate:,.0f} req/s")
    print(f"latency        p50 {result['p50_ms']:.3f} ms   p99 {result['p99_ms']:.3f} ms   "
          f"max {result['max_ms']:.3f} ms")
    print(f"nsqd peak RSS  {rss / 1024:.1f} MiB")
    print(f"topic messages {published}")
    if result["non2xx"] or result["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
