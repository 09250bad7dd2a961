"""Run a local NSQ cluster (nsqlookupd, nsqd, nsqadmin) in the foreground.

Each daemon is a child process on NSQ's default ports; their logs go to this terminal.
Ctrl-C (or SIGTERM) stops them all, nsqd first so it can persist its queues. If a daemon
fails to start or exits, the others are stopped and the exit status is 1, after a line
naming the daemon and why.

Options of this script (``--run-...``; every other argument is passed to nsqd)::

    --run-data-path DIR              nsqd's data path (default: data/nsqd in the repo)
    --run-lookupd-tcp-address ADDR   the daemons' listen addresses (default: each
    --run-lookupd-http-address ADDR  daemon's own, NSQ's 4160, 4161, 4150, 4151, 4171;
    --run-nsqd-tcp-address ADDR      port 0 picks a free port)
    --run-nsqd-http-address ADDR
    --run-nsqadmin-http-address ADDR
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LISTEN = re.compile(r"(TCP|HTTP|HTTPS): listening on (\S+)")
FATAL = re.compile(r"FATAL: (.*)")
#: how long a daemon may take to listen
START_TIMEOUT = 30


def available(module: str) -> bool:
    return importlib.util.find_spec(f"{module}.__main__") is not None


class Daemon:
    """One child daemon, its stderr echoed and watched for its listening lines."""

    def __init__(self, name: str, args: list[str], expect: int) -> None:
        self.name = name
        self.args = args
        self.expect = expect  # listening lines that mean "started"
        self.proc: trio.Process | None = None
        self.listening: dict[str, str] = {}
        self.fatal: list[str] = []
        self.ready = trio.Event()   # listening, or exited
        self.exited = trio.Event()

    async def run(self, nursery: trio.Nursery) -> None:
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", self.name, *self.args], cwd=ROOT,
            stderr=subprocess.PIPE, start_new_session=True)  # Ctrl-C reaches only us
        nursery.start_soon(self._pump)

    async def _pump(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        buf = b""
        async for chunk in self.proc.stderr:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for raw in lines:
                line = raw.decode(errors="replace")
                sys.stderr.write(line + "\n")
                m = LISTEN.search(line)
                if m:
                    self.listening[m.group(1)] = m.group(2)
                    if len(self.listening) >= self.expect:
                        self.ready.set()
                m = FATAL.search(line)
                if m:
                    self.fatal.append(m.group(1))
        await self.proc.wait()  # stderr closed: the exit status follows
        self.exited.set()
        self.ready.set()

    async def start(self, nursery: trio.Nursery) -> str | None:
        """Start and wait until listening; the reason when it did not start."""
        await self.run(nursery)
        with trio.move_on_after(START_TIMEOUT):
            await self.ready.wait()
        assert self.proc is not None
        if self.exited.is_set() or len(self.listening) < self.expect:
            if self.fatal:
                return "; ".join(self.fatal)
            if self.exited.is_set():
                return f"exited with status {self.proc.returncode}"
            return f"not listening after {START_TIMEOUT} s"
        return None


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--run-data-path", default=os.path.join(ROOT, "data", "nsqd"))
    for flag in ("lookupd-tcp", "lookupd-http", "nsqd-tcp", "nsqd-http", "nsqadmin-http"):
        p.add_argument(f"--run-{flag}-address")
    return p.parse_known_args(argv)


def listen(flag: str, address: str | None) -> list[str]:
    return [flag, address] if address else []


def local(address: str) -> str:
    """A listening address as this host reaches it (0.0.0.0 and :: are 127.0.0.1)."""
    host, _, port = address.rpartition(":")
    return f"127.0.0.1:{port}" if host in ("0.0.0.0", "[::]", "::", "") else address


async def main(argv: list[str]) -> int:
    opts, nsqd_args = parse(argv)
    os.makedirs(opts.run_data_path, exist_ok=True)
    daemons: list[Daemon] = []
    status = 0
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:

            async def launch(d: Daemon) -> bool:
                daemons.append(d)
                why = await d.start(nursery)
                if why is None:
                    return True
                print(f"\n{d.name} failed to start: {why}; stopping.", file=sys.stderr)
                return False

            lookupd = None
            if available("nsqlookupd"):
                lookupd = Daemon("nsqlookupd", [
                    *listen("--tcp-address", opts.run_lookupd_tcp_address),
                    *listen("--http-address", opts.run_lookupd_http_address)], 2)
                if not await launch(lookupd):
                    status = 1
            nsqd = None
            if not status:
                lookup = (["--lookupd-tcp-address", local(lookupd.listening["TCP"])]
                          if lookupd else [])
                nsqd = Daemon("nsqd", [
                    "--data-path", opts.run_data_path, "--broadcast-address", "127.0.0.1",
                    *listen("--tcp-address", opts.run_nsqd_tcp_address),
                    *listen("--http-address", opts.run_nsqd_http_address),
                    *lookup, *nsqd_args], 2)
                if not await launch(nsqd):
                    status = 1
            if not status and nsqd is not None and available("nsqadmin"):
                source = (["--lookupd-http-address", local(lookupd.listening["HTTP"])]
                          if lookupd else
                          ["--nsqd-http-address", local(nsqd.listening["HTTP"])])
                if not await launch(Daemon("nsqadmin", [
                        *listen("--http-address", opts.run_nsqadmin_http_address), *source],
                        1)):
                    status = 1
            if status:
                with trio.CancelScope(shield=True):
                    await stop(daemons)
                nursery.cancel_scope.cancel()
                return status
            assert nsqd is not None
            http = local(nsqd.listening["HTTP"])
            print("\n" + "=" * 64, file=sys.stderr)
            for d in daemons:
                where = ", ".join(f"{k} {v}" for k, v in sorted(d.listening.items()))
                print(f"  {d.name:<11} {where}", file=sys.stderr)
            admin = [d for d in daemons if d.name == "nsqadmin"]
            if admin:
                print(f"  web UI      http://{local(admin[0].listening['HTTP'])}/",
                      file=sys.stderr)
            print(f"  publish     curl -d 'hello' 'http://{http}/pub?topic=test'",
                  file=sys.stderr)
            print(f"  stats       curl 'http://{http}/stats'", file=sys.stderr)
            print("  Ctrl-C stops everything.", file=sys.stderr)
            print("=" * 64 + "\n", file=sys.stderr)

            stopped = trio.Event()

            async def watch(d: Daemon) -> None:
                nonlocal status
                await d.exited.wait()
                assert d.proc is not None
                if not stopped.is_set():
                    print(f"\n{d.name} exited with status {d.proc.returncode}; stopping.",
                          file=sys.stderr)
                    status = 1
                    stopped.set()

            async def on_signal() -> None:
                async for _ in signals:
                    break
                stopped.set()
                async for _ in signals:
                    print("already stopping...", file=sys.stderr)

            for d in daemons:
                nursery.start_soon(watch, d)
            nursery.start_soon(on_signal)
            await stopped.wait()
            with trio.CancelScope(shield=True):
                await stop(daemons)
            nursery.cancel_scope.cancel()
    return status


async def stop(daemons: list[Daemon]) -> None:
    """SIGTERM each daemon (nsqd first) and wait; SIGKILL after 15 s."""
    order = sorted(daemons, key=lambda d: d.name != "nsqd")
    for d in order:
        if d.proc is None or d.proc.poll() is not None:
            continue
        d.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(15) as cs:
            await d.proc.wait()
        if cs.cancelled_caught:
            d.proc.kill()
            await d.proc.wait()
    print("all daemons stopped", file=sys.stderr)


if __name__ == "__main__":
    code = 0
    try:
        code = trio.run(main, sys.argv[1:])
    except* KeyboardInterrupt:  # a Ctrl-C racing the shutdown: the daemons are stopped
        pass
    sys.exit(code)
