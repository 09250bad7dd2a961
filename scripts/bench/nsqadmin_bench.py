"""Benchmark nsqadmin page and API render times on a 10 nsqd × 100 topic cluster.

Starts, as separate processes on loopback (port 0): one ``nsqlookupd``, ``--nodes`` nsqd
registered with it and one ``nsqadmin`` reading the lookupd. Every nsqd gets the same
``--topics`` topics with ``--channels`` channels each and a few messages, so each topic
has one row per node and the Topics page aggregates nodes × topics stats documents.
After nsqadmin has taken a few graph samples (so sparklines and charts have data), each
page and API endpoint is fetched ``--requests`` times, one request at a time, and the
time to the last byte is reported (median, p90, max) with the response size.

A render includes nsqadmin's concurrent queries to nsqlookupd and every nsqd, the
aggregation and the HTML, exactly as an operator's browser would wait for it.

    .venv/bin/python scripts/bench/nsqadmin_bench.py
    .venv/bin/python scripts/bench/nsqadmin_bench.py --nodes 3 --topics 20 --requests 10
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import peak_rss_mb, percentiles  # noqa: E402

_LISTEN = re.compile(r"(TCP|HTTP): listening on (\S+)")
BUDGET_MS = 300.0


@contextmanager
def process(module: str, args: list[str], listeners: int) -> Iterator[tuple[subprocess.Popen[str], dict[str, str]]]:
    """Run ``python -m module`` until the block ends; yields (proc, {"TCP"/"HTTP": addr})."""
    proc = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    addrs: dict[str, str] = {}
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        while len(addrs) < listeners:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{module} did not start listening")
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"{module} exited: rc={proc.poll()}")
            m = _LISTEN.search(line)
            if m:
                addrs[m.group(1)] = m.group(2)
        # keep draining stderr so a chatty daemon never blocks on a full pipe
        drain = subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
        yield proc, addrs
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if "drain" in locals():
            drain.wait(10)


def build_cluster(stack: ExitStack, args: argparse.Namespace, tmp: str) -> tuple[str, list[str], str]:
    _, lookupd = stack.enter_context(process("nsqlookupd", [
        "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0",
        "--broadcast-address=127.0.0.1", "--log-level=info"], 2))
    nsqd_http = []
    for i in range(args.nodes):
        path = os.path.join(tmp, f"nsqd{i}")
        os.mkdir(path)
        _, addrs = stack.enter_context(process("nsqd", [
            "--tcp-address=127.0.0.1:0", "--http-address=127.0.0.1:0", f"--node-id={i}",
            "--broadcast-address=127.0.0.1", f"--data-path={path}",
            f"--lookupd-tcp-address={lookupd['TCP']}", "--log-level=info"], 2))
        nsqd_http.append(addrs["HTTP"])
    return lookupd["HTTP"], nsqd_http, lookupd["TCP"]


def populate(http: httpx.Client, args: argparse.Namespace, lookupd: str, nsqds: list[str]) -> None:
    body = b"\n".join(b"message %d" % i for i in range(10))
    for node in nsqds:
        for t in range(args.topics):
            topic = f"topic_{t:03d}"
            http.post(f"http://{node}/topic/create", params={"topic": topic}).raise_for_status()
            for c in range(args.channels):
                http.post(f"http://{node}/channel/create",
                          params={"topic": topic, "channel": f"ch_{c}"}).raise_for_status()
            http.post(f"http://{node}/mpub", params={"topic": topic}, content=body).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        doc = http.get(f"http://{lookupd}/nodes").json()
        if (len(doc["producers"]) == len(nsqds)
                and all(len(p["topics"]) == args.topics for p in doc["producers"])):
            return
        time.sleep(0.2)
    raise RuntimeError("nsqlookupd did not learn every topic in time")


def measure(http: httpx.Client, url: str, n: int) -> tuple[list[float], int, int]:
    times = []
    size = status = 0
    for _ in range(n):
        start = time.perf_counter()
        resp = http.get(url)
        body = resp.content
        times.append((time.perf_counter() - start) * 1000)
        size, status = len(body), resp.status_code
    return times, size, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--topics", type=int, default=100)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--samples", type=int, default=3, help="graph samples before measuring")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack, \
            httpx.Client(timeout=60) as http:
        t0 = time.monotonic()
        lookupd, nsqds, _ = build_cluster(stack, args, tmp)
        populate(http, args, lookupd, nsqds)
        print(f"cluster: {args.nodes} nsqd × {args.topics} topics × {args.channels} channels "
              f"(+1 nsqlookupd) ready in {time.monotonic() - t0:.1f}s")
        interval = 1.0
        admin_proc, admin = stack.enter_context(process("nsqadmin", [
            "--http-address=127.0.0.1:0", f"--lookupd-http-address={lookupd}",
            f"--graph-sample-interval={interval:g}s", "--log-level=info"], 1))
        base = f"http://{admin['HTTP']}"
        time.sleep(interval * (args.samples + 0.5))

        node = nsqds[args.nodes // 2]
        topic = f"topic_{args.topics // 2:03d}"
        pages = [
            ("Topics page", "/"),
            ("Topic page", f"/topics/{topic}"),
            ("Channel page", f"/topics/{topic}/ch_0"),
            ("Nodes page", "/nodes"),
            ("Node page", f"/nodes/{node}"),
            ("Lookup page", "/lookup"),
            ("Counter page", "/counter"),
            ("GET /api/topics", "/api/topics"),
            ("GET /api/topics/:topic", f"/api/topics/{topic}"),
            ("GET /api/topics/:t/:c", f"/api/topics/{topic}/ch_0"),
            ("GET /api/nodes", "/api/nodes"),
            ("GET /api/nodes/:node", f"/api/nodes/{node}"),
            ("GET /api/counter", "/api/counter"),
            ("depth chart SVG", f"/graphs/topic/{topic}/depth"),
        ]
        for _, path in pages:  # warm up connections and caches
            http.get(base + path)
        print(f"\n{'endpoint':<26}{'median':>9}{'p90':>9}{'max':>9}{'bytes':>10}  status")
        worst = 0.0
        for name, path in pages:
            times, size, status = measure(http, base + path, args.requests)
            p = percentiles(times, (50, 90))
            worst = max(worst, p[50]) if "page" in name else worst
            print(f"{name:<26}{p[50]:>7.1f}ms{p[90]:>7.1f}ms{max(times):>7.1f}ms{size:>10}  {status}")
        print(f"\nnsqadmin peak RSS {peak_rss_mb(admin_proc.pid):.0f} MiB; "
              f"slowest page median {worst:.1f} ms (budget {BUDGET_MS:.0f} ms): "
              f"{'OK' if worst < BUDGET_MS else 'OVER BUDGET'}")


if __name__ == "__main__":
    main()
