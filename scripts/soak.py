"""Bounded soak and fault run against real nsqlookupd + nsqd processes on 127.0.0.1.

    .venv/bin/python scripts/soak.py [--seconds 600] [--kill-every 30] [--publishers 3]
                                     [--consumers 2] [--rate 200]

nsqd runs in durable mode (``--mem-queue-size=0 --sync-every=1``) on a temporary data
path. For ``--seconds`` the script runs, all at once:

- publishers (TCP PUB, TCP MPUB, HTTP /pub and /mpub in turn) sending unique ids at
  ``--rate`` msg/s in total, recording each id nsqd acknowledged;
- consumers on one channel recording every delivery (FIN after recording);
- a ``kill -9`` of nsqd every ``--kill-every`` s (jittered) and its restart on the same
  ports: publishers and consumers reconnect;
- a stuck consumer (small receive buffer, RDY 2500, never reads);
- garbage connections to nsqd's and nsqlookupd's TCP and HTTP ports: random bytes,
  malformed commands and bodies, a bad request then a reset (SO_LINGER 0), trickling
  and idle clients.

Then, nsqd up, the consumers drain the channel and the script prints acknowledged /
delivered / lost (acknowledged, never delivered) / duplicates, nsqd's RSS over time
and the restarts. It exits 1 on a lost acknowledged message, a delivery of an id never
published, a daemon that died (or exited non-zero) other than by the script's own
``kill -9``, an nsqd that stopped answering, or when nothing was acknowledged at all.
"""

from __future__ import annotations

import argparse
import collections
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _soak_faults import HOST, Daemon, Faults, free_port, rss_mib

from client.protocol import (
    HEARTBEAT,
    MAGIC_V2,
    FrameReader,
    FrameType,
    RemoteProtocolError,
    commands,
    decode_message,
)

TOPIC = "soak"
CHANNEL = "c"
MSG_TIMEOUT = 10  # s: in-flight messages of the stuck client come back this soon
_NET_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
               EOFError, RemoteProtocolError)


class Soak:
    """One soak run: its daemons, load, faults and the record of what was acknowledged
    and delivered."""

    def __init__(self, opts: argparse.Namespace, data: Path) -> None:
        self.opts = opts
        self.data = data
        lp_tcp, lp_http, tcp, http = (free_port() for _ in range(4))
        self.lookupd = Daemon("nsqlookupd", [f"--tcp-address={HOST}:{lp_tcp}",
                                             f"--http-address={HOST}:{lp_http}"],
                              data / "nsqlookupd.log", lp_tcp, lp_http)
        self.nsqd = Daemon("nsqd", [f"--tcp-address={HOST}:{tcp}", f"--http-address={HOST}:{http}",
                                    f"--data-path={data / 'nsqd'}", f"--lookupd-tcp-address={HOST}:{lp_tcp}",
                                    "--mem-queue-size=0", "--sync-every=1",
                                    f"--msg-timeout={MSG_TIMEOUT}s", *opts.nsqd_arg],
                           data / "nsqd.log", tcp, http)
        (data / "nsqd").mkdir()
        self.faults = Faults(self.nsqd, self.lookupd, TOPIC, CHANNEL, opts.garbage_rate,
                             opts.garbage_skip)
        self.publishing = True
        self.acked: set[bytes] = set()
        self.sent = 0
        self.unknown = 0  # publishes whose answer never came (connection lost)
        self.pub_errors: collections.Counter[str] = collections.Counter()
        self.acked_by: collections.Counter[str] = collections.Counter()
        self.delivered: collections.Counter[bytes] = collections.Counter()
        self.foreign = 0
        self.kills = 0
        self.deaths: list[str] = []
        self.rss: list[tuple[float, float]] = []
        self.ping_fail_since: float | None = None
        self.hung = 0.0
        self.lookups = collections.Counter[str]()
        self.started = time.monotonic()
        self.abort = trio.Event()
        self.next_seq: dict[int, int] = {}

    # ------------------------------------------------------------------ daemons
    async def watch(self, daemon: Daemon) -> None:
        """Restart a daemon that died on its own, recording it as a failure."""
        while True:
            await trio.sleep(0.2)
            async with daemon.lock:
                if daemon.proc is None or daemon.alive() or daemon.expected_exit:
                    continue
                rc = daemon.proc.returncode
                report = (f"{daemon.name} (pid {daemon.proc.pid}) DIED at t={self.t():.0f}s with "
                          f"exit code {rc}; latest garbage connections: "
                          f"{self.faults.recent_kinds()[-8:]}; last lines of its output:\n{daemon.tail()}")
                self.deaths.append(report)
                print(f"\n!!! {report}", file=sys.stderr, flush=True)
                daemon._gone()
                await self._restart(daemon, "after its death")

    async def killer(self) -> None:
        while self.publishing:
            await trio.sleep(self.opts.kill_every * random.uniform(0.6, 1.4))
            if not self.publishing:
                return
            async with self.nsqd.lock:
                if not self.nsqd.alive():
                    continue
                await self.nsqd.kill9()
                self.kills += 1
                await trio.sleep(random.uniform(0, 1))  # a moment with nsqd down
                await self._restart(self.nsqd, "after kill -9")

    async def _restart(self, daemon: Daemon, when: str) -> None:
        try:
            await daemon.start()
        except RuntimeError as exc:
            self.deaths.append(f"{daemon.name} failed to restart {when}: {exc}")
            daemon.expected_exit = True  # reported once; the run ends early
            self.abort.set()

    async def sample_rss(self) -> None:
        while True:
            if self.nsqd.proc is not None and (mib := rss_mib(self.nsqd.proc.pid)) is not None:
                self.rss.append((self.t(), mib))
            await trio.sleep(self.opts.rss_every)

    async def health(self, client: httpx.AsyncClient) -> None:
        """nsqd's /ping and nsqlookupd's /lookup every 5 s: an nsqd alive but not answering
        for 30 s counts as hung."""
        while True:
            await trio.sleep(5)
            ok = False
            alive = self.nsqd.alive()
            try:
                r = await client.get(f"http://{HOST}:{self.nsqd.http}/ping", timeout=10)
                ok = r.status_code == 200
            except httpx.HTTPError:
                pass
            now = self.t()
            if ok or not alive:
                self.ping_fail_since = None
            elif self.ping_fail_since is None:
                self.ping_fail_since = now
            elif now - self.ping_fail_since > 30:
                self.hung = max(self.hung, now - self.ping_fail_since)
            try:
                r = await client.get(f"http://{HOST}:{self.lookupd.http}/lookup",
                                     params={"topic": TOPIC}, timeout=10)
                self.lookups["ok" if r.status_code == 200 else f"http {r.status_code}"] += 1
            except httpx.HTTPError as exc:
                self.lookups[type(exc).__name__] += 1

    def t(self) -> float:
        return time.monotonic() - self.started

    # ------------------------------------------------------------------ publishers
    def _bodies(self, idx: int, seq: int, count: int) -> tuple[list[bytes], list[bytes]]:
        keys = [b"soak:%d:%d" % (idx, seq + i) for i in range(count)]
        self.next_seq[idx] = seq + count
        bodies = [k + b"|" + b"x" * random.randint(0, 200) for k in keys]
        return keys, bodies

    async def _pace(self, next_at: float, interval: float) -> float:
        now = trio.current_time()
        if next_at > now:
            await trio.sleep_until(next_at)
            return next_at + interval
        return now + interval  # behind (nsqd was down): no burst to catch up

    async def _connect(self) -> trio.SocketStream | None:
        """A connection to nsqd's TCP port, or None (after a pause) while it is down."""
        try:
            with trio.fail_after(5):
                return await trio.open_tcp_stream(HOST, self.nsqd.tcp)
        except (OSError, trio.TooSlowError):
            await trio.sleep(0.2)
            return None

    async def tcp_publisher(self, idx: int, batch: int) -> None:
        kind = "tcp-mpub" if batch > 1 else "tcp-pub"
        interval = batch * self.opts.publishers / self.opts.rate
        seq = 0
        next_at = trio.current_time()
        while self.publishing:
            stream = await self._connect()
            if stream is None:
                continue
            reader = FrameReader()
            keys: list[bytes] = []
            try:
                await stream.send_all(MAGIC_V2)
                while self.publishing:
                    next_at = await self._pace(next_at, interval)
                    keys, bodies = self._bodies(idx, seq, batch)
                    seq += batch
                    cmd = commands.mpub(TOPIC, bodies) if batch > 1 else commands.pub(TOPIC, bodies[0])
                    self.sent += batch
                    await stream.send_all(cmd)
                    with trio.fail_after(15):
                        ftype, data = await _next_frame(stream, reader)
                    if ftype == FrameType.RESPONSE and data == b"OK":
                        self.acked.update(keys)
                        self.acked_by[kind] += batch
                    else:
                        self.pub_errors[data[:40].decode("latin-1")] += 1
                        break  # NSQ closes after most errors: start afresh
                    keys = []
            except _NET_ERRORS:
                self.unknown += len(keys)
            finally:
                await trio.aclose_forcefully(stream)

    async def http_publisher(self, idx: int, client: httpx.AsyncClient) -> None:
        interval = self.opts.publishers / self.opts.rate
        seq = 0
        next_at = trio.current_time()
        while self.publishing:
            multi = seq % 2 == 1
            count = 5 if multi else 1
            next_at = await self._pace(next_at, interval * count)
            keys, bodies = self._bodies(idx, seq, count)
            seq += count
            self.sent += count
            path = "/mpub" if multi else "/pub"
            try:
                r = await client.post(f"http://{HOST}:{self.nsqd.http}{path}", params={"topic": TOPIC},
                                      content=b"\n".join(bodies), timeout=15)
            except httpx.HTTPError:
                self.unknown += count
                await trio.sleep(0.1)
                continue
            if r.status_code == 200 and r.content == b"OK":
                self.acked.update(keys)
                self.acked_by["http" + path] += count
            else:
                self.pub_errors[f"http {r.status_code} {r.content[:30]!r}"] += 1

    # ------------------------------------------------------------------ consumers
    async def consumer(self, idx: int, done: trio.Event) -> None:
        await trio.sleep(self.opts.consumer_delay)  # a backlog builds up meanwhile
        while not done.is_set():
            stream = await self._connect()
            if stream is None:
                continue
            reader = FrameReader()
            try:
                await stream.send_all(MAGIC_V2 + commands.identify(
                    {"client_id": f"soak-c{idx}", "feature_negotiation": False})
                    + commands.sub(TOPIC, CHANNEL) + commands.rdy(100))
                while not done.is_set():
                    with trio.fail_after(70):  # heartbeats come every 30 s
                        data = await stream.receive_some(65536)
                    if not data:
                        break
                    reader.feed(data)
                    reply = []
                    for frame in reader.frames():
                        if frame.type == FrameType.MESSAGE:
                            msg = decode_message(frame.data)
                            self._record(msg.body)
                            reply.append(commands.fin(msg.id))
                        elif frame.type == FrameType.RESPONSE and frame.data == HEARTBEAT:
                            reply.append(commands.nop())
                        elif frame.type == FrameType.ERROR:
                            self.pub_errors[f"consumer {frame.data[:40]!r}"] += 1
                    if reply:
                        await stream.send_all(b"".join(reply))
            except _NET_ERRORS:
                pass
            finally:
                await trio.aclose_forcefully(stream)

    def _record(self, body: bytes) -> None:
        key = body.partition(b"|")[0]
        if key.startswith(b"soak:"):
            self.delivered[key] += 1
        else:
            self.foreign += 1

    async def progress(self) -> None:
        while True:
            await trio.sleep(10)
            rss = f"{self.rss[-1][1]:.0f}" if self.rss else "?"
            print(f"t={self.t():4.0f}s acked={len(self.acked)} delivered={len(self.delivered)} "
                  f"unknown={self.unknown} kills={self.kills} deaths={len(self.deaths)} "
                  f"garbage={sum(self.faults.done.values())} nsqd_rss={rss}MiB", flush=True)

    async def run(self) -> int:
        opts = self.opts
        await self.lookupd.start()
        await self.nsqd.start()
        print(f"nsqlookupd tcp/http {self.lookupd.tcp}/{self.lookupd.http}, nsqd tcp/http "
              f"{self.nsqd.tcp}/{self.nsqd.http}, data {self.data}", flush=True)
        done = trio.Event()
        async with httpx.AsyncClient() as client, trio.open_nursery() as outer:
            for daemon in (self.lookupd, self.nsqd):
                outer.start_soon(self.watch, daemon)
            outer.start_soon(self.sample_rss)
            outer.start_soon(self.health, client)
            outer.start_soon(self.progress)
            for i in range(opts.consumers):
                outer.start_soon(self.consumer, i, done)
            async with trio.open_nursery() as load:
                for i in range(opts.publishers):
                    if i % 3 == 2:
                        load.start_soon(self.http_publisher, i, client)
                    else:
                        load.start_soon(self.tcp_publisher, i, 1 if i % 3 == 0 else 10)
                async with trio.open_nursery() as faults:
                    if opts.kill_every > 0:
                        faults.start_soon(self.killer)
                    if not opts.no_faults:
                        faults.start_soon(self.faults.stuck_client)
                        faults.start_soon(self.faults.garbage)
                    with trio.move_on_after(opts.seconds):
                        await self.abort.wait()
                    self.publishing = False
                    async with self.nsqd.lock:  # not in the middle of a kill and restart
                        faults.cancel_scope.cancel()
                load.cancel_scope.deadline = trio.current_time() + 20  # publishers finish
            print(f"t={self.t():.0f}s load stopped; draining", flush=True)
            drained = await self.drain()
            done.set()
            outer.cancel_scope.cancel()
        rc_nsqd = await self.nsqd.terminate()
        rc_lookupd = await self.lookupd.terminate()
        for daemon, rc in ((self.nsqd, rc_nsqd), (self.lookupd, rc_lookupd)):
            if rc != 0:
                self.deaths.append(f"{daemon.name} exited with {rc} on SIGTERM at the end; "
                                   f"last lines:\n{daemon.tail()}")
        return self.report(drained)

    async def drain(self) -> bool:
        """Wait (nsqd up) until every acknowledged id was delivered: up to 3 message timeouts
        without progress."""
        last, stall_since = -1, trio.current_time()
        while True:
            missing = len(self.acked.difference(self.delivered))
            if missing == 0:
                return True
            now = trio.current_time()
            if missing != last:
                last, stall_since = missing, now
            elif now - stall_since > 3 * MSG_TIMEOUT + 5:
                return False
            await trio.sleep(0.5)

    def _was_sent(self, key: bytes) -> bool:
        parts = key.split(b":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            return False
        return int(parts[2]) < self.next_seq.get(int(parts[1]), 0)

    def report(self, drained: bool) -> int:
        acked = self.acked
        delivered = set(self.delivered)
        lost = acked - delivered
        dup = sum(c - 1 for c in self.delivered.values())
        published_keys = delivered - acked  # delivered, answer never came: fine
        corrupt = [k for k in published_keys if not self._was_sent(k)]
        print()
        print(f"soak: {self.opts.seconds:.0f} s load, nsqd restarts {self.nsqd.starts - 1} "
              f"(kill -9 {self.kills}), nsqlookupd restarts {self.lookupd.starts - 1}, "
              f"unexpected daemon deaths {len(self.deaths)}")
        print(f"messages: sent {self.sent}, acknowledged {len(acked)} ({dict(self.acked_by)}), "
              f"delivered {len(delivered)}, lost {len(lost)}, duplicates {dup}, "
              f"delivered-without-ack {len(published_keys)}, answer-lost {self.unknown}, "
              f"foreign {self.foreign}")
        if self.pub_errors:
            print(f"error answers: {dict(self.pub_errors.most_common(8))}")
        if self.rss:
            values = [v for _, v in self.rss]
            per_min: dict[int, float] = {}
            for t, v in self.rss:
                per_min[int(t // 60)] = max(per_min.get(int(t // 60), 0.0), v)
            print(f"nsqd RSS MiB (every {self.opts.rss_every:g} s, {len(values)} samples): "
                  f"min {min(values):.1f} max {max(values):.1f} last {values[-1]:.1f}; "
                  f"max per minute {[round(v) for v in per_min.values()]}")
        print(f"garbage connections: {sum(self.faults.done.values())} done, {self.faults.refused} "
              f"refused/timed out; {dict(sorted(self.faults.done.items()))}")
        if self.faults.no_read:
            took = ", ".join(f"{k} {v // 1000} of {total // 1000} kB"
                             for k, (v, total) in sorted(self.faults.no_read.items()))
            print(f"pipelining clients that never read, most the server took in (kernel buffers "
                  f"included): {took}")
        for daemon in (self.nsqd, self.lookupd):
            errors = _log_errors(daemon.log)
            if errors:
                print(f"{daemon.name} log: {sum(errors.values())} ERROR/FATAL lines or tracebacks "
                      f"(not counted as failures): {dict(errors.most_common(6))}")
        print(f"nsqlookupd lookups: {dict(self.lookups)}")
        failures = []
        if lost:
            failures.append(f"lost {len(lost)} acknowledged messages, e.g. "
                            f"{sorted(lost)[:5]}{'' if drained else ' (drain stalled)'}")
        if corrupt:
            failures.append(f"{len(corrupt)} deliveries of ids never published, e.g. {corrupt[:5]}")
        if self.hung:
            failures.append(f"nsqd alive but not answering /ping for {self.hung:.0f} s")
        if not acked:
            failures.append("nothing was acknowledged")
        for death in self.deaths:
            failures.append(death)
        print(f"lost {len(lost)}")
        if failures:
            print("\nFAILED:\n- " + "\n- ".join(failures))
            return 1
        print("OK")
        return 0


async def _next_frame(stream: trio.SocketStream, reader: FrameReader) -> tuple[int, bytes]:
    """The next non-heartbeat frame (heartbeats answered with NOP)."""
    while True:
        frame = reader.next_frame()
        if frame is not None:
            if frame.type == FrameType.RESPONSE and frame.data == HEARTBEAT:
                await stream.send_all(commands.nop())
                continue
            return frame.type, frame.data
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("nsqd closed the connection")
        reader.feed(data)


_LOG_ERROR = re.compile(r"(ERROR|FATAL): (.*)")
_EXC_LINE = re.compile(r"^[ |]*((?:[A-Za-z_]+\.)*[A-Za-z_]*(?:Error|Exception|Exit))(: .*)?$")


def _log_errors(log: Path) -> collections.Counter[str]:
    """ERROR/FATAL lines of a daemon's log by kind (numbers blanked) and the exceptions
    that ended its tracebacks."""
    out: collections.Counter[str] = collections.Counter()
    try:
        text = log.read_text("utf-8", "replace")
    except OSError:
        return out
    for line in text.splitlines():
        if m := _LOG_ERROR.search(line):
            out[re.sub(r"[\d.:]+|\(.*?\)|'[^']*('|$)", "_", m.group(2))[:60]] += 1
        elif (m := _EXC_LINE.match(line)) and "ExceptionGroup" not in m.group(1):
            out["exception " + (m.group(1) + (m.group(2) or ""))[:70]] += 1
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600, help="load duration (default 600)")
    parser.add_argument("--kill-every", type=float, default=30,
                        help="mean seconds between kill -9 of nsqd, 0 = never (default 30)")
    parser.add_argument("--publishers", type=int, default=3,
                        help="publishers: TCP PUB, TCP MPUB, HTTP in turn (default 3)")
    parser.add_argument("--consumers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=200, help="messages/s over all publishers")
    parser.add_argument("--consumer-delay", type=float, default=0,
                        help="seconds before the consumers start (a backlog builds up)")
    parser.add_argument("--garbage-rate", type=float, default=10, help="garbage connections/s")
    parser.add_argument("--garbage-skip", action="append", default=[], metavar="TEXT",
                        help="leave out the garbage kinds whose name contains TEXT")
    parser.add_argument("--no-faults", action="store_true", help="no stuck client, no garbage")
    parser.add_argument("--rss-every", type=float, default=5)
    parser.add_argument("--nsqd-arg", action="append", default=[], help="extra nsqd flag")
    parser.add_argument("--keep", action="store_true", help="keep the data and log directory")
    opts = parser.parse_args()
    if opts.publishers < 1 or opts.consumers < 1 or opts.rate <= 0 or opts.seconds <= 0:
        parser.error("--publishers, --consumers, --rate and --seconds must be positive")
    data = Path(tempfile.mkdtemp(prefix="nsq-soak-"))
    soak = Soak(opts, data)
    try:
        return trio.run(soak.run)
    finally:
        for daemon in (soak.nsqd, soak.lookupd):
            if daemon.alive():
                assert daemon.proc is not None
                daemon.proc.kill()
                daemon.proc.wait()
        if opts.keep:
            print(f"data and logs kept in {data}")
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
