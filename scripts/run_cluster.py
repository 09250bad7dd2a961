"""Run a local NSQ cluster (nsqlookupd, nsqd, nsqadmin) in the foreground.

Each daemon is a child process on NSQ's default ports; their logs go to this terminal.
Ctrl-C (or SIGTERM) stops them all, nsqd first so it can persist its queues.
Extra command-line arguments are passed to nsqd.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys

import trio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "data", "nsqd")
LISTEN = re.compile(r"(TCP|HTTP|HTTPS): listening on (\S+)")


def available(module: str) -> bool:
    return importlib.util.find_spec(f"{module}.__main__") is not None


class Daemon:
    def __init__(self, name: str, args: list[str]) -> None:
        self.name = name
        self.args = args
        self.proc: trio.Process | None = None
        self.listening: dict[str, str] = {}
        self.ready = trio.Event()

    async def run(self, nursery: trio.Nursery, expect: int) -> None:
        self.proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", self.name, *self.args], cwd=ROOT,
            stderr=subprocess.PIPE, start_new_session=True)  # Ctrl-C reaches only us
        nursery.start_soon(self._pump, expect)

    async def _pump(self, expect: int) -> None:
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
                    if len(self.listening) >= expect:
                        self.ready.set()
        self.ready.set()


async def main(nsqd_args: list[str]) -> int:
    os.makedirs(DATA, exist_ok=True)
    daemons: list[Daemon] = []
    if available("nsqlookupd"):
        daemons.append(Daemon("nsqlookupd", []))
    lookup = ["--lookupd-tcp-address", "127.0.0.1:4160"] if daemons else []
    daemons.append(Daemon("nsqd", ["--data-path", DATA, "--broadcast-address", "127.0.0.1",
                                   *lookup, *nsqd_args]))
    if available("nsqadmin"):
        daemons.append(Daemon("nsqadmin", ["--lookupd-http-address", "127.0.0.1:4161"]
                              if lookup else ["--nsqd-http-address", "127.0.0.1:4151"]))
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            for d in daemons:
                await d.run(nursery, 1 if d.name == "nsqadmin" else 2)
                with trio.move_on_after(30):
                    await d.ready.wait()
                if d.proc is not None and d.proc.poll() is not None:
                    print(f"\n{d.name} exited with status {d.proc.returncode}; stopping.",
                          file=sys.stderr)
                    await stop(daemons)
                    return 1
            print("\n" + "=" * 64, file=sys.stderr)
            for d in daemons:
                where = ", ".join(f"{k} {v}" for k, v in sorted(d.listening.items()))
                print(f"  {d.name:<11} {where}", file=sys.stderr)
            if any(d.name == "nsqadmin" for d in daemons):
                print("  web UI      http://127.0.0.1:4171/", file=sys.stderr)
            print("  publish     curl -d 'hello' 'http://127.0.0.1:4151/pub?topic=test'",
                  file=sys.stderr)
            print("  stats       curl 'http://127.0.0.1:4151/stats'", file=sys.stderr)
            print("  Ctrl-C stops everything.", file=sys.stderr)
            print("=" * 64 + "\n", file=sys.stderr)

            async def watch(d: Daemon) -> None:
                assert d.proc is not None
                await d.proc.wait()
                nursery.cancel_scope.cancel()

            for d in daemons:
                nursery.start_soon(watch, d)
            async for _ in signals:
                break

            async def ignore_more() -> None:
                async for _ in signals:
                    print("already stopping...", file=sys.stderr)

            nursery.start_soon(ignore_more)
            with trio.CancelScope(shield=True):
                await stop(daemons)
            nursery.cancel_scope.cancel()
    return 0


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
