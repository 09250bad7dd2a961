"""Throughput of the command-line tools, against pynsq-based equivalents.

    python scripts/bench/apps_bench.py [--messages 200000] [--http-messages 50000] [--size 100]
                                       [--tools to_nsq,nsq_tail,nsq_to_file,nsq_to_http,nsq_to_nsq]
                                       [--no-pynsq] [--timeout 180]

nsqd runs as subprocesses (port 0, in-memory queues); every tool runs as its own
subprocess, exactly as installed (``python -m apps.<tool>``), next to the pynsq
equivalent in ``_apps_pynsq.py``:

  to_nsq       N lines of --size bytes from a file on stdin → one nsqd;
  nsq_tail     N queued messages → stdout (/dev/null), max-in-flight 2500;
  nsq_to_file  N queued messages → a file in a temp dir, FIN after write + fsync, max-in-flight 2500;
  nsq_to_http  --http-messages queued messages POSTed to a local HTTP sink (a subprocess on
               our HTTP server), 100 requests at once, max-in-flight 200 (NSQ's defaults);
  nsq_to_nsq   N queued messages → a second nsqd, max-in-flight 2500.

The rate is taken from nsqd's counters polled every 10 ms (from the first progress seen
to completion), so process start-up is not counted. Latency percentiles are the tools'
own ``--status-every`` reports (request → answer / publish → ack) where there is one.
"cpu" is the tool process's CPU time per message over the same span (1e6 / cpu is
what one free core sustains, whatever else loads the machine). Peak RSS is the tool
process's VmHWM, sampled while it runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from _common import cpu_seconds, daemon, peak_rss_mb  # noqa: E402
from client_bench import fill  # noqa: E402

PY = sys.executable
TOOLS = ("to_nsq", "nsq_tail", "nsq_to_file", "nsq_to_http", "nsq_to_nsq")
_STATUS = re.compile(r"\[aggregate\]: finished \d+ - 99th: ([\d.]+)ms - 95th: ([\d.]+)ms - avg: ([\d.]+)ms")


@contextmanager
def nsqd() -> Iterator[dict[str, tuple[str, int]]]:
    """An nsqd subprocess (port 0, in-memory queues)."""
    with daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                "--mem-queue-size", "100000000") as (_proc, addrs):
        yield addrs


def hostport(addr: tuple[str, int]) -> str:
    return f"{addr[0]}:{addr[1]}"


_conns: dict[str, http.client.HTTPConnection] = {}


def get_json(url: str) -> Any:
    """GET over a kept-alive connection per host (one retry on a fresh connection)."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.path}?{parts.query}"
    for attempt in (1, 2):
        conn = _conns.get(parts.netloc)
        if conn is None:
            conn = _conns[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=30)
        try:
            conn.request("GET", target)
            return json.loads(conn.getresponse().read())
        except (OSError, http.client.HTTPException):
            conn.close()
            del _conns[parts.netloc]
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def topic_stats(http: str, topic: str) -> dict[str, Any] | None:
    doc = get_json(f"http://{http}/stats?format=json&topic={topic}&include_clients=false")
    for t in doc.get("topics") or ():
        if t["topic_name"] == topic:
            return t
    return None


def topic_count(http: str, topic: str) -> Callable[[], int]:
    def progress() -> int:
        t = topic_stats(http, topic)
        return t["message_count"] if t else 0
    return progress


def channel_done(http: str, topic: str, channel: str) -> Callable[[], int]:
    """Messages of the channel finished (or requeued) so far."""
    def progress() -> int:
        t = topic_stats(http, topic)
        for c in (t or {}).get("channels") or ():
            if c["channel_name"] == channel:
                return c["message_count"] - c["depth"] - c["in_flight_count"] - c["deferred_count"]
        return 0
    return progress



def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()

class Proc:
    """A tool subprocess whose peak RSS is read from ``wait4``."""

    def __init__(self, cmd: list[str], stdin: Any = subprocess.DEVNULL, stdout: Any = subprocess.DEVNULL) -> None:
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdin=stdin, stdout=stdout, stderr=self.err)
        self.rss_mb = float("nan")
        self.cpu_us = float("nan")  # the tool's CPU time per message while measured
        self.code: int | None = None

    def alive(self) -> bool:
        if self.code is not None:
            return False
        try:
            rss = peak_rss_mb(self.proc.pid)  # VmHWM: since exec, unlike ru_maxrss
            if rss == rss:
                self.rss_mb = rss
        except OSError:
            pass
        pid, status, _ = os.wait4(self.proc.pid, os.WNOHANG)
        if pid:
            self._reaped(status)
        return self.code is None

    def _reaped(self, status: int) -> None:
        self.code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.code

    def stop(self, timeout: float = 60) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.alive():
                self.proc.kill()
                _, status, _ = os.wait4(self.proc.pid, 0)
                self._reaped(status)

    def stderr(self) -> str:
        self.err.seek(0)
        return self.err.read().decode(errors="replace")


def measure(proc: Proc, progress: Callable[[], int], total: int, timeout: float) -> float:
    """msgs/s from the first progress seen to ``total`` (the tool is stopped on failure)."""
    try:
        return _measure(proc, progress, total, timeout)
    except BaseException:
        proc.stop(5)
        raise


def _cpu(proc: Proc) -> float:
    try:
        return cpu_seconds(proc.proc.pid)
    except (OSError, IndexError, ValueError):
        return float("nan")


def _measure(proc: Proc, progress: Callable[[], int], total: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    t0 = p0 = None
    cpu0 = 0.0
    while time.monotonic() < deadline:
        done = progress()
        now = time.perf_counter()
        if t0 is None and done > 0:
            t0, p0, cpu0 = now, done, _cpu(proc)
        if done >= total:
            assert t0 is not None and p0 is not None
            proc.cpu_us = (_cpu(proc) - cpu0) / max(1, total - p0) * 1e6
            if now - t0 < 0.05:  # finished between two polls: count the whole run
                return float("nan")
            return (total - p0) / (now - t0)
        if not proc.alive() and done < total:
            raise RuntimeError(f"exited {proc.code} at {done}/{total}: {proc.stderr()[-500:]}")
        time.sleep(0.01)
    raise RuntimeError(f"timed out at {progress()}/{total}")


def finish(proc: Proc) -> None:
    """Wait for a tool that ends by itself (sampling its RSS)."""
    while proc.alive():
        time.sleep(0.01)


def latency(proc: Proc) -> str:
    found = _STATUS.findall(proc.stderr())
    if not found:
        return ""
    p99, p95, avg = found[-1]
    return f"avg {float(avg):.1f}ms p95 {float(p95):.1f}ms p99 {float(p99):.1f}ms"


def report(tool: str, impl: str, rate: float, proc: Proc, lat: str = "") -> None:
    print(f"  {tool:<12} {impl:<6} {rate:>10,.0f} msg/s  cpu {proc.cpu_us:5.1f} us/msg  "
          f"peak rss {proc.rss_mb:6.1f} MiB   {lat}", flush=True)


def sink_role() -> None:
    """An HTTP sink on our server: POST anything → 200; GET /count → requests so far."""
    import trio

    from internal.http import Response, serve_http

    count = 0

    def handler(request: Any) -> Response:
        nonlocal count
        if request.method == "GET":
            return Response(200, str(count).encode())
        count += 1
        return Response(200, b"")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            host, port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
            print(f"http://{host}:{port}", flush=True)

    trio.run(main)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--http-messages", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--no-pynsq", action="store_true")
    ap.add_argument("--no-ours", action="store_true")
    ap.add_argument("--timeout", type=float, default=180)
    ap.add_argument("--role", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "sink":
        sink_role()
        return
    tools = args.tools.split(",")
    impls = ([] if args.no_ours else ["ours"]) + ([] if args.no_pynsq else ["pynsq"])
    n, size = args.messages, args.size
    pynsq = [PY, os.path.join(HERE, "_apps_pynsq.py")]
    with tempfile.TemporaryDirectory() as tmp, nsqd() as addrs:
        tcp_a, tcp, http = addrs["TCP"], hostport(addrs["TCP"]), hostport(addrs["HTTP"])
        print(f"{n} messages of {size} bytes ({args.http_messages} for nsq_to_http); one nsqd at {tcp}")
        for impl in impls:
            if "to_nsq" in tools:
                path = os.path.join(tmp, "lines.txt")
                if not os.path.exists(path):
                    with open(path, "wb") as f:
                        pad = b"x" * (size - 10)
                        f.write(b"".join(b"%09d %s\n" % (i, pad) for i in range(n)))
                topic = f"to_nsq_{impl}"
                with open(path, "rb") as stdin:
                    cmd = ([PY, "-m", "apps.to_nsq", "--topic", topic, "--nsqd-tcp-address", tcp]
                           if impl == "ours" else pynsq + ["to_nsq", tcp, topic])
                    proc = Proc(cmd, stdin=stdin)
                    rate = measure(proc, topic_count(http, topic), n, args.timeout)
                    finish(proc)
                report("to_nsq", impl, rate, proc)
            if "nsq_tail" in tools:
                topic = f"tail_{impl}"
                fill(tcp_a, topic, n, size)
                cmd = ([PY, "-m", "apps.nsq_tail", "--topic", topic, "--channel", "tail", "--nsqd-tcp-address",
                        tcp, "-n", str(n), "--max-in-flight", "2500"]
                       if impl == "ours" else pynsq + ["tail", tcp, topic, "tail", str(n), "2500"])
                proc = Proc(cmd)
                rate = measure(proc, channel_done(http, topic, "tail"), n, args.timeout)
                finish(proc)
                report("nsq_tail", impl, rate, proc)
            if "nsq_to_file" in tools:
                topic = f"file_{impl}"
                fill(tcp_a, topic, n, size)
                out = os.path.join(tmp, f"out_{impl}")
                os.makedirs(out)
                cmd = ([PY, "-m", "apps.nsq_to_file", "--topic", topic, "--channel", "file", "--nsqd-tcp-address",
                        tcp, "--output-dir", out, "--max-in-flight", "2500"]
                       if impl == "ours" else pynsq + ["to_file", tcp, topic, "file", os.path.join(out, "py.log"),
                                                        "2500"])
                proc = Proc(cmd)
                rate = measure(proc, channel_done(http, topic, "file"), n, args.timeout)
                proc.stop()
                lines = sum(_read(os.path.join(out, f)).count(b"\n") for f in os.listdir(out))
                report("nsq_to_file", impl, rate, proc, f"{lines} lines written")
            if "nsq_to_http" in tools:
                sink = subprocess.Popen([PY, __file__, "--role", "sink"], cwd=ROOT, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
                try:
                    assert sink.stdout is not None
                    url = sink.stdout.readline().strip()
                    topic = f"http_{impl}"
                    hn = args.http_messages
                    fill(tcp_a, topic, hn, size)
                    cmd = ([PY, "-m", "apps.nsq_to_http", "--topic", topic, "--nsqd-tcp-address", tcp,
                            "--post", url + "/in", "--status-every", str(max(1, hn // 5))]
                           if impl == "ours" else pynsq + ["to_http", tcp, topic, "nsq_to_http", url + "/in",
                                                            "100", "200"])
                    proc = Proc(cmd)
                    rate = measure(proc, channel_done(http, topic, "nsq_to_http"), hn, args.timeout)
                    proc.stop()
                    got = int(urllib.request.urlopen(url + "/count", timeout=10).read())
                    report("nsq_to_http", impl, rate, proc, f"{got} requests; {latency(proc)}")
                finally:
                    sink.terminate()
                    sink.wait(10)
            if "nsq_to_nsq" in tools:
                with nsqd() as dest_addrs:
                    dest, dest_http = hostport(dest_addrs["TCP"]), hostport(dest_addrs["HTTP"])
                    topic = f"bridge_{impl}"
                    fill(tcp_a, topic, n, size)
                    cmd = ([PY, "-m", "apps.nsq_to_nsq", "--topic", topic, "--nsqd-tcp-address", tcp,
                            "--destination-nsqd-tcp-address", dest, "--max-in-flight", "2500",
                            "--status-every", str(max(1, n // 5))]
                           if impl == "ours" else pynsq + ["to_nsq_bridge", tcp, topic, "nsq_to_nsq", dest, "2500"])
                    proc = Proc(cmd)
                    rate = measure(proc, topic_count(dest_http, topic), n, args.timeout)
                    proc.stop()
                    report("nsq_to_nsq", impl, rate, proc, latency(proc))


if __name__ == "__main__":
    main()
