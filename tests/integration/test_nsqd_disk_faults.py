"""A real ``python -m nsqd`` process whose data files are damaged between runs: it loses
only what the damage touched, says so in a WARN line naming the file, and a garbage
``nsqd.dat`` stops it with the way out (after which it keeps the queues on disk)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from durability_helpers import ROOT, Daemon, consumer, receive
from helpers import RawConn

from client.protocol import commands


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nsqd-damage-"))
    yield path
    while Daemon.started:
        Daemon.started.pop().kill()
    shutil.rmtree(path, ignore_errors=True)


async def _fill(daemon: Daemon, n: int, topic: str = "t", channel: str = "c") -> None:
    """Create ``topic``/``channel`` and publish ``n`` numbered messages (MPUB batches)."""
    assert daemon.tcp is not None
    async with httpx.AsyncClient(base_url=f"http://{daemon.http[0]}:{daemon.http[1]}") as http:
        r = await http.post(f"/channel/create?topic={topic}&channel={channel}")
        if r.status_code == 404:
            assert (await http.post(f"/topic/create?topic={topic}")).status_code == 200
            r = await http.post(f"/channel/create?topic={topic}&channel={channel}")
        assert r.status_code == 200
    pub = await RawConn.open(daemon.tcp)
    for i in range(0, n, 100):
        await pub.send(commands.mpub(topic, [b"m%05d" % k + b"." * 40
                                             for k in range(i, min(n, i + 100))]))
        assert await pub.response() == b"OK"
    await pub.aclose()


async def _drain(daemon: Daemon, expect: int, topic: str = "t", channel: str = "c"
                 ) -> list[bytes]:
    """Consume ``expect`` messages; then the channel must be empty (depth and in-flight 0)."""
    assert daemon.tcp is not None and daemon.http is not None
    conn = await consumer(daemon.tcp, topic, channel, rdy=200)
    got = [m.body for m in await receive(conn, expect, timeout=30)]
    async with httpx.AsyncClient(base_url=f"http://{daemon.http[0]}:{daemon.http[1]}") as http:
        with trio.fail_after(20):
            while True:  # until our FINs are in: anything still in flight is an extra
                stats = (await http.get(f"/stats?format=json&topic={topic}"
                                        f"&channel={channel}")).json()
                (chan,) = [c for t in stats["topics"] for c in t["channels"]]
                if sum(c["finish_count"] for c in chan["clients"]) >= expect:
                    break
                await trio.sleep(0.05)
    assert chan["depth"] == 0 and chan["in_flight_count"] == 0, chan
    await conn.aclose()
    return got


async def test_flipped_byte_loses_one_message(tmp_path: Path) -> None:
    daemon = await Daemon(tmp_path, "--mem-queue-size=0").start()
    await _fill(daemon, 1000)
    assert await daemon.stop() == 0
    (seg,) = [f for f in os.listdir(tmp_path) if f.startswith("t:c.tdq.") and f.endswith(".dat")]
    raw = bytearray((tmp_path / seg).read_bytes())
    raw[len(raw) // 3] ^= 0x10
    (tmp_path / seg).write_bytes(bytes(raw))

    daemon = await Daemon(tmp_path, "--mem-queue-size=0").start()
    got = await _drain(daemon, 999)
    assert got == sorted(got)
    warn = [line for line in daemon.lines if "WARNING" in line and seg in line]
    assert warn and "1 message(s) lost" in warn[0], daemon.log()[-2000:]
    assert await daemon.stop() == 0


async def test_deleted_segment_is_a_warning_with_the_count(tmp_path: Path) -> None:
    args = ("--mem-queue-size=0", "--max-bytes-per-file=4096")
    daemon = await Daemon(tmp_path, *args).start()
    await _fill(daemon, 500)
    assert await daemon.stop() == 0
    segs = sorted(f for f in os.listdir(tmp_path) if f.startswith("t:c.tdq.")
                  and f.endswith(".dat"))
    assert len(segs) > 3
    with open(tmp_path / "t:c.tdq.meta.json") as f:
        import json
        totals = json.load(f)["totals"]
    victim = segs[1]
    count = totals[str(int(victim.split(".")[2]))]
    os.unlink(tmp_path / victim)

    daemon = await Daemon(tmp_path, *args).start()
    await _drain(daemon, 500 - count)
    warn = [line for line in daemon.lines if "WARNING" in line and victim in line]
    assert warn and f"{count} message(s) lost" in warn[0], daemon.log()[-2000:]
    assert await daemon.stop() == 0


def _run_nsqd(data_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsqd", "--tcp-address", "127.0.0.1:0",
                           "--http-address", "127.0.0.1:0", "--data-path", str(data_path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


async def test_garbage_metadata_stops_with_the_way_out(tmp_path: Path) -> None:
    daemon = await Daemon(tmp_path).start()
    await _fill(daemon, 50)
    await _fill(daemon, 20, topic="u", channel="d")
    assert await daemon.stop() == 0
    (tmp_path / "nsqd.dat").write_bytes(b"\x00garbage{")

    out = _run_nsqd(tmp_path)
    assert out.returncode == 1
    assert (tmp_path / "nsqd.dat").read_bytes() == b"\x00garbage{"  # left as it was
    fatal = [line for line in out.stderr.splitlines() if "FATAL" in line]
    assert len(fatal) == 1, out.stderr
    assert str(tmp_path / "nsqd.dat") in fatal[0] and "failed to parse metadata" in fatal[0]
    assert "move the file aside" in fatal[0]
    assert "Trio nursery" not in out.stderr
    assert any(f.startswith("t:c.tdq.") for f in os.listdir(tmp_path))  # nothing deleted

    os.rename(tmp_path / "nsqd.dat", tmp_path / "nsqd.dat.bad")
    daemon = await Daemon(tmp_path).start()
    assert "restoring the 2 topic(s)" in daemon.log()
    await _drain(daemon, 50)
    await _drain(daemon, 20, "u", "d")
    assert await daemon.stop() == 0
    assert (tmp_path / "nsqd.dat").exists()  # written again, with both topics
    daemon = await Daemon(tmp_path).start()
    assert "restoring" not in daemon.log()
    async with httpx.AsyncClient(base_url=f"http://{daemon.http[0]}:{daemon.http[1]}") as http:
        stats = (await http.get("/stats?format=json")).json()
    assert sorted(t["topic_name"] for t in stats["topics"]) == ["t", "u"]
    assert await daemon.stop() == 0


def test_missing_data_path_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    out = _run_nsqd(missing)
    assert out.returncode == 1
    assert re.search(rf"FATAL: failed to lock data-path: open {re.escape(str(missing))}: "
                     r"No such file or directory \(--data-path must be an existing "
                     r"directory\)", out.stderr), out.stderr
    assert "listen" not in out.stderr


async def test_busy_addresses_are_named_and_version_logged(tmp_path: Path) -> None:
    import socket
    daemon = await Daemon(tmp_path).start()
    await _fill(daemon, 1)
    assert await daemon.stop() == 0
    metadata = (tmp_path / "nsqd.dat").read_bytes()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for flag in ("--tcp-address", "--http-address"):
            other = "--http-address" if flag == "--tcp-address" else "--tcp-address"
            out = subprocess.run(
                [sys.executable, "-m", "nsqd", flag, f"127.0.0.1:{port}", other, "127.0.0.1:0",
                 "--data-path", str(tmp_path)],
                capture_output=True, text=True, timeout=60, cwd=ROOT)
            assert out.returncode == 1
            assert re.search(r"INFO: nsqd v1\.3\.0 \(built w/python[\d.]+ trio-nsq/[\w.]+\)", out.stderr)
            assert f"FATAL: listen (127.0.0.1:{port}) failed - Address already in use" \
                in out.stderr, out.stderr
            assert "Trio nursery" not in out.stderr
    # a failed start leaves the metadata alone
    assert (tmp_path / "nsqd.dat").read_bytes() == metadata


async def test_metadata_write_failure_is_an_error_to_the_creator(tmp_path: Path) -> None:
    daemon = await Daemon(tmp_path).start()
    assert daemon.tcp is not None and daemon.http is not None
    base = f"http://{daemon.http[0]}:{daemon.http[1]}"
    async with httpx.AsyncClient(base_url=base) as http:
        assert (await http.post("/topic/create?topic=old")).status_code == 200
        # the next metadata write fails: its temp file cannot be created
        blocker = tmp_path / "nsqd.dat.tmp"
        blocker.mkdir()
        r = await http.post("/topic/create?topic=new1")
        assert r.status_code == 500 and "PERSIST_METADATA_FAILED" in r.text
        r = await http.post("/channel/create?topic=old&channel=c1")
        assert r.status_code == 500 and "PERSIST_METADATA_FAILED" in r.text
        r = await http.post("/pub?topic=new2", content=b"x")
        assert r.status_code == 500
        # publishing to a topic that was persisted is not held up
        assert (await http.post("/pub?topic=old", content=b"x")).status_code == 200

        pub = await RawConn.open(daemon.tcp)
        await pub.send(commands.pub("new3", b"x"))
        err = await pub.error()
        assert err.startswith(b"E_PUB_FAILED PUB failed failed to persist metadata"), err
        assert await pub.closed()
        sub = await RawConn.open(daemon.tcp)
        await sub.identify(feature_negotiation=False)
        await sub.send(commands.sub("old", "c2"))
        err = await sub.error()
        assert err.startswith(b"E_SUB_FAILED SUB failed failed to persist metadata"), err
        assert "failed to persist metadata" in daemon.log()

        blocker.rmdir()  # the disk recovers: the writer's retry succeeds
        with trio.fail_after(20):
            while (await http.post("/topic/create?topic=new4")).status_code != 200:
                pass
    assert await daemon.stop() == 0
    daemon = await Daemon(tmp_path).start()
    async with httpx.AsyncClient(base_url=f"http://{daemon.http[0]}:{daemon.http[1]}") as http:
        stats = (await http.get("/stats?format=json")).json()
    topics = {t["topic_name"]: sorted(c["channel_name"] for c in t["channels"])
              for t in stats["topics"]}
    # everything created in memory was written once the disk came back
    assert topics["new4"] == [] and "new1" in topics and topics["old"] == ["c1", "c2"]
    assert await daemon.stop() == 0
