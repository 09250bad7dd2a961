"""Helpers of the durability tests: nsqd in-process across restarts, or as a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, ClassVar

import trio
from helpers import RawConn

from client.protocol import FrameType, commands, decode_message
from nsqd import NSQD, Options

ROOT = Path(__file__).resolve().parents[2]
_LISTEN = re.compile(r"(TCP|HTTP): listening on (\S+)")


@asynccontextmanager
async def running(data_path: Path, **overrides: Any) -> AsyncIterator[NSQD]:
    """An in-process nsqd; fully shut down (everything persisted) when the block ends."""
    kwargs: dict[str, Any] = dict(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                                  data_path=str(data_path), node_id=1)
    kwargs.update(overrides)
    nsqd = NSQD(Options(**kwargs))
    async with trio.open_nursery() as nursery:
        await nursery.start(nsqd.run)
        try:
            yield nsqd
        finally:
            nursery.cancel_scope.cancel()


def addr(nsqd: NSQD) -> tuple[str, int]:
    assert nsqd.bound is not None
    return nsqd.bound.tcp_address


async def consumer(address: tuple[str, int], topic: str, channel: str, rdy: int = 100
                   ) -> RawConn:
    conn = await RawConn.open(address)
    await conn.identify(feature_negotiation=False)
    await conn.sub(topic, channel, rdy)
    return conn


async def receive(conn: RawConn, count: int, *, fin: bool = True, timeout: float = 20.0
                  ) -> list[Any]:
    """``count`` messages (FIN'd unless told otherwise), FINs batched per read."""
    out: list[Any] = []
    with trio.fail_after(timeout):
        while len(out) < count:
            ftype, data = await conn.frame(timeout)
            if ftype != FrameType.MESSAGE:
                continue
            msg = decode_message(data)
            out.append(msg)
            if fin:
                await conn.send(commands.fin(msg.id))
    return out


class Daemon:
    """``python -m nsqd`` on port 0 with a data path; stderr kept for the test."""

    #: every daemon started, so a test's teardown can kill what a failure left running
    started: ClassVar[list[Daemon]] = []

    def __init__(self, data_path: Path, *args: str, preexec: Any = None) -> None:
        self.data_path = data_path
        self.args = args
        self.preexec = preexec
        self.proc: subprocess.Popen[str] | None = None
        self.lines: list[str] = []
        self.tcp: tuple[str, int] | None = None
        self.http: tuple[str, int] | None = None
        self._ready = threading.Event()

    async def start(self) -> Daemon:
        cmd = [sys.executable, "-m", "nsqd", "--tcp-address", "127.0.0.1:0",
               "--http-address", "127.0.0.1:0", "--data-path", str(self.data_path),
               "--node-id", "7", *self.args]
        self.lines = []
        self.tcp = self.http = None
        self._ready = threading.Event()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                                     preexec_fn=self.preexec)
        Daemon.started.append(self)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        ok = await trio.to_thread.run_sync(self._ready.wait, 30)
        if not ok or self.tcp is None:
            raise RuntimeError("nsqd did not start:\n" + "".join(self.lines[-30:]))
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            self.lines.append(line)
            m = _LISTEN.search(line)
            if m:
                host, _, port = m.group(2).rpartition(":")
                if m.group(1) == "TCP":
                    self.tcp = (host, int(port))
                else:
                    self.http = (host, int(port))
                if self.tcp and self.http:
                    self._ready.set()
        self._ready.set()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        return await trio.to_thread.run_sync(self.proc.wait, timeout)

    def log(self) -> str:
        return "".join(self.lines)

    def kill(self) -> None:
        """SIGKILL if still running (test teardown)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
