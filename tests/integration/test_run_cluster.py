"""``scripts/run_cluster.py`` (what ``scripts/run`` runs): a daemon that cannot start is
named with its reason, the others are stopped, the exit status is 1; a cluster that
starts shows its real addresses and stops cleanly."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "run_cluster.py"


@pytest.fixture
def busy() -> Iterator[str]:
    """An address something already listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield f"127.0.0.1:{s.getsockname()[1]}"


def _ports(**taken: str) -> list[str]:
    args = {f"--run-{k}-address": "127.0.0.1:0" for k in
            ("lookupd-tcp", "lookupd-http", "nsqd-tcp", "nsqd-http", "nsqadmin-http")}
    for key, value in taken.items():
        args[f"--run-{key.replace('_', '-')}-address"] = value
    return [x for kv in args.items() for x in kv]


def _run(tmp_path: Path, **taken: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), "--run-data-path", str(tmp_path),
                           *_ports(**taken)], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)


@pytest.mark.parametrize("daemon,flag", [("nsqlookupd", "lookupd_http"),
                                         ("nsqd", "nsqd_tcp"), ("nsqd", "nsqd_http"),
                                         ("nsqadmin", "nsqadmin_http")])
def test_a_daemon_that_cannot_listen_fails_the_run(tmp_path: Path, busy: str, daemon: str,
                                                   flag: str) -> None:
    out = _run(tmp_path, **{flag: busy})
    assert out.returncode == 1, out.stderr[-3000:]
    assert (f"{daemon} failed to start: listen ({busy}) failed - Address already in use; "
            f"stopping.") in out.stderr, out.stderr[-3000:]
    assert "all daemons stopped" in out.stderr
    assert "Ctrl-C stops everything" not in out.stderr  # no ready box


def test_missing_data_path_parent_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = subprocess.run([sys.executable, str(SCRIPT), "--run-data-path",
                          str(tmp_path / "data"), *_ports(), "--data-path", str(blocker)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 1
    assert f"nsqd failed to start: failed to lock data-path: open {blocker}" in out.stderr


def test_cluster_starts_with_real_addresses_and_stops(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--run-data-path", str(tmp_path),
                             *_ports()], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "Ctrl-C stops everything" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120), "".join(lines)
        box = "".join(lines)
        for name in ("nsqlookupd", "nsqd", "nsqadmin"):
            assert f"  {name:<11} HTTP 127.0.0.1:" in box, box
        assert ":0" not in box.split("=" * 64)[1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        assert "all daemons stopped" in "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
