"""Our nsqd against Go's nsqd 1.3 in one run, both driven by the same load generators.

    python scripts/bench/vs_go.py [--go-bin DIR] [--phases ingest,consume,http,e2e,durable,rss]
                                  [--runfor SECONDS]

``--go-bin DIR`` names a directory with Go builds of ``nsqd``, ``bench_writer`` and
``bench_reader`` (NSQ's apps/nsqd, bench/bench_writer, bench/bench_reader). With it, each
phase runs against our ``python -m nsqd`` and then against DIR/nsqd, both started fresh on
free loopback ports with a temporary data dir and the same flags, and the Go bench tools
drive ingest and consume for both. Without it only our nsqd runs, driven by this
repository's Python generators in the same shapes.

ingest:  bench_writer (one MPUB of 200 x 100 B in flight per writer, a writer per core)
consume: bench_reader on the channel the ingest filled (RDY 2500, FIN each)
http:    wrk -t2 -c10 POST /pub with a 100 B body (the Python generator when wrk is absent)
e2e:     a 10k msg/s PUB stream; a consumer measures publish -> receive p50/p99
durable: --mem-queue-size=0 --sync-every=1: wrk -c50 POST /pub, and 10 TCP publishers
         each waiting for OK before its next PUB
rss:     1,000,000 x 100 B messages MPUB'd into a topic with one channel, all held in
         memory; nsqd's VmRSS once the channel holds them
Ingest, consume and http also give nsqd's CPU time per message (utime+stime from /proc).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import http_pub_bench
import nsqd_bench
from _common import cpu_seconds, daemon, percentiles, rss_mb
from durability_bench import _sync_publisher

PHASES = ("ingest", "consume", "http", "e2e", "durable", "rss")
GO_TOOLS = ("nsqd", "bench_writer", "bench_reader")
SIZE = 100
BATCH = 200
TOPIC = "sub_bench"  # bench_writer's and bench_reader's default topic
MAIN_FLAGS = ("--mem-queue-size", "1000000")  # as NSQ's bench.sh
DURABLE_FLAGS = ("--mem-queue-size=0", "--sync-every=1")
RSS_MESSAGES = 1_000_000


def parse_phases(text: str) -> list[str]:
    """``"ingest,rss"`` -> the phases in run order; unknown names raise ValueError."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = sorted(set(names) - set(PHASES))
    if unknown:
        raise ValueError(f"unknown phase(s) {', '.join(unknown)}; choose from {','.join(PHASES)}")
    if not names:
        raise ValueError("no phase given")
    return [p for p in PHASES if p in names]


@dataclass
class Side:
    """One nsqd under test: ours (``exe`` None) or a Go build."""

    name: str
    exe: str | None
    results: dict[str, float] = field(default_factory=dict)

    def start(self, *flags: str) -> Any:
        return daemon("nsqd", "--tcp-address", "127.0.0.1:0", "--http-address", "127.0.0.1:0",
                      *flags, exe=self.exe)


@dataclass
class Ctx:
    runfor: float
    tools: str | None  # directory of bench_writer/bench_reader, None: Python generators
    wrk: bool
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ helpers
def _post(http: tuple[str, int], path: str) -> None:
    req = urllib.request.Request(f"http://{http[0]}:{http[1]}{path}", data=b"", method="POST")
    urllib.request.urlopen(req, timeout=10).read()


def _topic_stats(http: tuple[str, int], topic: str) -> dict[str, Any]:
    url = f"http://{http[0]}:{http[1]}/stats?format=json&topic={topic}&include_mem=false"
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.loads(r.read())
    for t in doc.get("topics") or []:
        if t["topic_name"] == topic:
            return dict(t)
    return {"message_count": 0, "channels": []}


def _channel_backlog(http: tuple[str, int], topic: str, channel: str) -> tuple[int, int]:
    """(depth, in flight) of a channel."""
    for ch in _topic_stats(http, topic)["channels"]:
        if ch["channel_name"] == channel:
            return int(ch["depth"]), int(ch["in_flight_count"])
    return 0, 0


def _go_tool(ctx: Ctx, name: str, tcp: tuple[str, int], seconds: float, *flags: str) -> float:
    """Run a Go bench tool for ``seconds``; its ops/s."""
    assert ctx.tools is not None
    cmd = [os.path.join(ctx.tools, name), f"--nsqd-tcp-address={tcp[0]}:{tcp[1]}",
           f"--runfor={seconds}s", f"--size={SIZE}", f"--topic={TOPIC}", *flags]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    m = re.search(r"([\d.]+)ops/s", out.stderr)
    if out.returncode or not m:
        raise RuntimeError(f"{name} failed (rc={out.returncode}): {out.stderr[-500:]}")
    return float(m.group(1))


def _processes(target: Callable[..., None], argsets: list[tuple[Any, ...]], timeout: float
               ) -> list[Any]:
    """Run ``target(*args, go, out)`` in one process per argset, started together; the
    values they put on ``out``."""
    go = mp.Event()
    out: mp.Queue[Any] = mp.Queue()
    procs = [mp.Process(target=target, args=(*a, go, out)) for a in argsets]
    for p in procs:
        p.start()
    time.sleep(0.3)  # connected and waiting
    go.set()
    values = [out.get(timeout=timeout) for _ in procs]
    for p in procs:
        p.join(10)
    return values


def _http_load(ctx: Ctx, http: tuple[str, int], topic: str, connections: int, seconds: float
               ) -> float:
    """POST /pub at ``connections`` keep-alive connections for ``seconds``; req/s."""
    opts = argparse.Namespace(threads=2, connections=connections, duration=max(1, round(seconds)),
                              size=SIZE, verbose=False)
    run = http_pub_bench.run_wrk if ctx.wrk else http_pub_bench.run_python
    r = run(http[0], http[1], topic, opts)
    if r["non2xx"] or r["errors"]:
        ctx.notes.append(f"POST /pub to {topic}: {r['non2xx']} non-2xx, {r['errors']} socket errors")
    return float(r["requests"] / r["seconds"])


def _latency_child(tcp: tuple[str, int], seconds: float, out: mp.Queue[Any]) -> None:
    lat, _ = nsqd_bench.latency(tcp, "lat", 10_000, seconds)
    p = percentiles(lat, (50, 99))
    out.put((p[50], p[99]))


# ------------------------------------------------------------------ phases
def ingest(side: Side, ctx: Ctx, proc: Any, addrs: dict[str, tuple[str, int]]) -> None:
    _post(addrs["HTTP"], f"/topic/create?topic={TOPIC}")
    _post(addrs["HTTP"], f"/channel/create?topic={TOPIC}&channel=ch")
    c0 = cpu_seconds(proc.pid)
    if ctx.tools:
        rate = _go_tool(ctx, "bench_writer", addrs["TCP"], ctx.runfor, f"--batch-size={BATCH}")
    else:
        counts = _processes(_sync_publisher, [(addrs["TCP"], TOPIC, BATCH, ctx.runfor)] * 2,
                            ctx.runfor + 60)
        rate = sum(counts) / ctx.runfor
    n = _topic_stats(addrs["HTTP"], TOPIC)["message_count"]
    side.results["ingest"] = rate
    side.results["ingest_cpu"] = 1e6 * (cpu_seconds(proc.pid) - c0) / max(1, n)


def consume(side: Side, ctx: Ctx, proc: Any, addrs: dict[str, tuple[str, int]]) -> None:
    depth, _ = _channel_backlog(addrs["HTTP"], TOPIC, "ch")
    if not depth:
        ctx.notes.append(f"consume ({side.name}): the channel is empty, run ingest first")
        return
    c0 = cpu_seconds(proc.pid)
    t0 = time.monotonic()
    emptied: list[float] = []
    stop = threading.Event()

    def watch() -> None:  # when the backlog ran out, bench_reader's rate counts idle time
        while not stop.wait(0.2):
            if _channel_backlog(addrs["HTTP"], TOPIC, "ch")[0] == 0:
                emptied.append(time.monotonic())
                return

    if ctx.tools:
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rate = _go_tool(ctx, "bench_reader", addrs["TCP"], ctx.runfor, "--channel=ch")
        stop.set()
        watcher.join()
    else:
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(60)  # bounded: fails rather than waits forever
        try:
            got, elapsed = nsqd_bench.consume(addrs["TCP"], TOPIC, "ch", depth)
        finally:
            socket.setdefaulttimeout(old)
        rate = got / elapsed
    left, in_flight = _channel_backlog(addrs["HTTP"], TOPIC, "ch")
    done = depth - left - in_flight
    if emptied:
        rate = done / (emptied[0] - t0)
        ctx.notes.append(f"consume ({side.name}): drained all {depth:,} before --runfor ended; "
                         f"rate = messages / time to drain (a lower bound)")
    side.results["consume"] = rate
    side.results["consume_cpu"] = 1e6 * (cpu_seconds(proc.pid) - c0) / max(1, done)


def http(side: Side, ctx: Ctx, proc: Any, addrs: dict[str, tuple[str, int]]) -> None:
    topic = "http_bench"
    _post(addrs["HTTP"], f"/topic/create?topic={topic}")
    c0 = cpu_seconds(proc.pid)
    side.results["http"] = _http_load(ctx, addrs["HTTP"], topic, 10, ctx.runfor)
    n = _topic_stats(addrs["HTTP"], topic)["message_count"]
    side.results["http_cpu"] = 1e6 * (cpu_seconds(proc.pid) - c0) / max(1, n)


def e2e(side: Side, ctx: Ctx, proc: Any, addrs: dict[str, tuple[str, int]]) -> None:
    seconds = min(5.0, ctx.runfor)
    out: mp.Queue[Any] = mp.Queue()
    child = mp.Process(target=_latency_child, args=(addrs["TCP"], seconds, out))
    child.start()
    try:
        side.results["e2e_p50"], side.results["e2e_p99"] = out.get(timeout=seconds + 60)
    finally:
        child.join(5)
        if child.is_alive():
            child.kill()


def durable(side: Side, ctx: Ctx) -> None:
    seconds = max(2.0, ctx.runfor / 2)
    with side.start(*DURABLE_FLAGS) as (proc, addrs):
        _post(addrs["HTTP"], "/topic/create?topic=d")
        _post(addrs["HTTP"], "/channel/create?topic=d&channel=ch")
        side.results["durable_http"] = _http_load(ctx, addrs["HTTP"], "d", 50, seconds)
        counts = _processes(_sync_publisher, [(addrs["TCP"], "d", 1, seconds)] * 10, seconds + 60)
        side.results["durable_tcp"] = sum(counts) / seconds
        proc.kill()  # a temporary data dir: no need to wait for a clean shutdown


def rss(side: Side, ctx: Ctx) -> None:
    with side.start("--mem-queue-size", str(2 * RSS_MESSAGES)) as (proc, addrs):
        _post(addrs["HTTP"], "/topic/create?topic=rss")
        _post(addrs["HTTP"], "/channel/create?topic=rss&channel=ch")
        nsqd_bench.ingest(addrs["TCP"], "rss", RSS_MESSAGES, SIZE, BATCH, 2)
        deadline = time.monotonic() + 60
        while (_channel_backlog(addrs["HTTP"], "rss", "ch")[0] < RSS_MESSAGES
               and time.monotonic() < deadline):
            time.sleep(0.2)
        side.results["rss"] = rss_mb(proc.pid)
        proc.kill()


# ------------------------------------------------------------------ report
# key, label, target: (kind, bound) with kind "ratio>=", "ratio<=" (ours/go) or "ours<="
ROWS: list[tuple[str, str, tuple[str, float] | None]] = [
    ("ingest", "ingest msgs/s", ("ratio>=", 0.9)),
    ("ingest_cpu", "ingest nsqd CPU us/msg", None),
    ("consume", "consume msgs/s", ("ratio>=", 1.2)),
    ("consume_cpu", "consume nsqd CPU us/msg", None),
    ("http", "http /pub c10 req/s", ("ratio>=", 1.0)),
    ("http_cpu", "http nsqd CPU us/req", None),
    ("e2e_p50", "e2e p50 ms", None),
    ("e2e_p99", "e2e p99 ms", ("ours<=", 5.0)),
    ("durable_http", "durable http c50 req/s", ("ratio>=", 20.0)),
    ("durable_tcp", "durable tcp 10 pubs msgs/s", ("ratio>=", 10.0)),
    ("rss", "rss MiB, 1M x 100 B", ("ratio<=", 1.5)),
]


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def table(ours: Side, go: Side | None) -> list[str]:
    head = ("phase", "ours", "go", "ours/go", "target", "result")
    rows: list[tuple[str, ...]] = [head]
    for key, label, target in ROWS:
        a = ours.results.get(key)
        b = go.results.get(key) if go else None
        if a is None and b is None:
            continue
        ratio = a / b if a is not None and b else None
        want, verdict = "", ""
        if target:
            kind, bound = target
            want = f"{'<=' if kind.endswith('<=') else '>='} {bound:g}{' ms' if kind == 'ours<=' else 'x'}"
            value = a if kind == "ours<=" else ratio
            if value is not None:
                ok = value <= bound if kind.endswith("<=") else value >= bound
                verdict = "pass" if ok else "FAIL"
        rows.append((label, _fmt(a), _fmt(b), f"{ratio:.2f}x" if ratio is not None else "-",
                     want, verdict))
    if go is None:  # ours only
        rows = [(r[0], r[1], r[4], r[5]) for r in rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in rows]


# ------------------------------------------------------------------ main
@contextmanager
def _main_nsqd(side: Side) -> Iterator[tuple[Any, dict[str, tuple[str, int]]]]:
    """One nsqd of ``side`` for its ingest/consume/http/e2e phases."""
    with side.start(*MAIN_FLAGS) as (proc, addrs):
        yield proc, addrs
        proc.kill()  # a temporary data dir: skip flushing the backlog to disk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--go-bin", metavar="DIR",
                    help="directory with Go's nsqd, bench_writer and bench_reader")
    ap.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset, "
                    "default all")
    ap.add_argument("--runfor", type=float, default=10.0,
                    help="seconds per load phase (default 10)")
    args = ap.parse_args()
    try:
        phases = parse_phases(args.phases)
    except ValueError as e:
        ap.error(str(e))
    if args.runfor <= 0:
        ap.error("--runfor must be positive")
    sides = [Side("ours", None)]
    tools = None
    if args.go_bin:
        missing = [t for t in GO_TOOLS if not os.access(os.path.join(args.go_bin, t), os.X_OK)]
        if missing:
            ap.error(f"--go-bin {args.go_bin}: no executable {', '.join(missing)}")
        tools = args.go_bin
        version = subprocess.run([os.path.join(tools, "nsqd"), "--version"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
        print(f"go: {version}", flush=True)
        sides.append(Side("go", os.path.join(args.go_bin, "nsqd")))
    ctx = Ctx(args.runfor, tools, wrk=shutil.which("wrk") is not None)
    if not ctx.wrk and {"http", "durable"} & set(phases):
        ctx.notes.append("wrk not found: HTTP load from http_pub_bench's Python generator")
    if tools and "e2e" in phases:
        ctx.notes.append("e2e: the consumer sends no IDENTIFY, so Go's nsqd buffers its output "
                         "(16 KiB or --output-buffer-timeout 250 ms); ours writes each batch at once")
    if not tools:
        ctx.notes.append("no --go-bin: ingest/consume driven by the Python generators, ours only")
    load = os.getloadavg()
    print(f"phases {','.join(phases)}, --runfor {args.runfor:g}s, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores", flush=True)
    shared = {"ingest": ingest, "consume": consume, "http": http, "e2e": e2e}
    # ingest/consume/http/e2e: one side's nsqd at a time, so that neither works in the
    # background of the other's phases (Go's nsqd keeps a core busy for seconds after its
    # ingest); the other phases start their own nsqd per side
    main_phases = [p for p in phases if p in shared]
    for side in sides if main_phases else []:
        with _main_nsqd(side) as (proc, addrs):
            for phase in main_phases:
                print(f"{phase} ({side.name})...", flush=True)
                shared[phase](side, ctx, proc, addrs)
    for phase in (p for p in phases if p not in shared):
        for side in sides:  # sides alternate: about the same machine load for both
            print(f"{phase} ({side.name})...", flush=True)
            (durable if phase == "durable" else rss)(side, ctx)
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("\n".join(table(sides[0], sides[1] if len(sides) > 1 else None)))
    for note in ctx.notes:
        print(f"note: {note}")


if __name__ == "__main__":
    main()
