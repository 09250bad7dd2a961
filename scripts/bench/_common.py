"""Benchmark plumbing: start daemons as subprocesses on port 0, read their RSS."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_LISTEN = re.compile(r"(TCP|HTTP): listening on (\S+)")
_FRAME = struct.Struct(">lL").unpack_from


def split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


@contextmanager
def daemon(module: str, *args: str, drain: bool = True, exe: str | None = None
           ) -> Iterator[tuple[subprocess.Popen, dict[str, tuple[str, int]]]]:
    """Run ``python -m module args`` until the block ends; yields (proc, {"TCP": addr, ...}).

    ``exe`` runs that executable instead of the module (e.g. a Go ``nsqd`` build), given
    the same ``--data-path`` and arguments.

    Once the listen lines are read, a thread keeps reading the daemon's stderr (a full pipe
    would block the daemon's next log write, e.g. its request log); ``drain=False`` leaves
    that to the caller.
    """
    with tempfile.TemporaryDirectory() as data:
        cmd = [sys.executable, "-m", module, "--data-path", data, *args]
        if module != "nsqd":
            cmd = [sys.executable, "-m", module, *args]
        if exe is not None:
            cmd = [exe, "--data-path", data, *args]
        proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
        addrs: dict[str, tuple[str, int]] = {}
        deadline = time.monotonic() + 30
        assert proc.stderr is not None
        while len(addrs) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"{module} exited: rc={proc.poll()}")
            m = _LISTEN.search(line)
            if m:
                addrs[m.group(1)] = split(m.group(2))
        if drain:
            threading.Thread(target=proc.stderr.read, daemon=True).start()
        try:
            yield proc, addrs
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _status_mb(pid: int, key: str) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    return _status_mb(pid, "VmHWM:")


def rss_mb(pid: int) -> float:
    """VmRSS (current resident set) of a live process, in MiB."""
    return _status_mb(pid, "VmRSS:")


def percentiles(samples: list[float], ps: tuple[float, ...] = (50, 90, 99, 99.9)) -> dict[float, float]:
    if not samples:
        return {p: float("nan") for p in ps}
    s = sorted(samples)
    return {p: s[min(len(s) - 1, int(len(s) * p / 100))] for p in ps}


def cpu_seconds(pid: int) -> float:
    """User+system CPU time a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fin_loop(recv: Callable[[], bytes], send: Callable[[bytes], object], total: int,
             buf: bytes = b"") -> int:
    """A lean reader's loop: FIN every message until ``total``, one FIN batch per read.

    Frames are parsed by offset from what ``recv()`` returns (``buf`` is data already
    read; an empty read raises ``RuntimeError("closed")``); heartbeats are answered with
    NOP through ``send``. Returns the messages FIN'd.
    """
    unpack = _FRAME
    got = 0
    while got < total:
        data = recv()
        if not data:
            raise RuntimeError("closed")
        buf = buf + data if buf else data
        pos = 0
        end = len(buf)
        ids = []
        while end - pos >= 8:
            size, ftype = unpack(buf, pos)
            if end - pos - 4 < size:
                break
            if ftype == 2:
                ids.append(buf[pos + 18:pos + 34])
            elif buf[pos + 8:pos + 4 + size] == b"_heartbeat_":
                send(b"NOP\n")
            pos += 4 + size
        buf = buf[pos:]
        if ids:
            got += len(ids)
            send(b"FIN " + b"\nFIN ".join(ids) + b"\n")
    return got
