"""nsq_to_file as a subprocess: Go's file names, gzip members that decompress to the
input, rotation by size and interval, work dir → output dir, topic discovery, and
SIGTERM mid-stream losing nothing."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from apps_helpers import TIMEOUT, run_tool, tcp

from client import Producer

HOST = socket.gethostname().split(".", 1)[0]


async def publish(server: Any, topic: str, bodies: list[bytes]) -> None:
    async with Producer(tcp(server)) as producer:
        for i in range(0, len(bodies), 500):
            await producer.multi_publish(topic, bodies[i:i + 500])


async def all_finished(server: Any, topic: str, count: int, channel: str = "nsq_to_file") -> None:
    """Wait until ``count`` messages went through the channel and none is pending."""
    with trio.fail_after(TIMEOUT):
        while True:
            t = server.nsqd.topics.get(topic)
            c = t.channels.get(channel) if t is not None else None
            if c is not None and c.message_count >= count and c.depth() == 0 and not c.in_flight:
                return
            await trio.sleep(0.05)


def _finished(server: Any, topic: str, channel: str = "nsq_to_file") -> int:
    """Messages the channel took in and no longer holds: FIN'd (none are dropped here)."""
    c = server.nsqd.topics[topic].channels.get(channel)
    return 0 if c is None else c.message_count - c.depth() - len(c.in_flight)


def read_lines(paths: list[Path]) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(paths):
        data = path.read_bytes()
        lines.extend((gzip.decompress(data) if path.suffix == ".gz" else data).splitlines())
    return lines


async def test_plain_file_with_go_default_name(start_nsqd: Callable[..., Any], tool: Any,
                                               tmp_path: Path) -> None:
    server = await start_nsqd()
    out = tmp_path / "out"
    out.mkdir()
    bodies = [b"plain %d" % i for i in range(1000)]
    await publish(server, "plain", bodies)
    before = time.strftime("%Y-%m-%d_%H")
    running = await tool("nsq_to_file", "--topic", "plain", "--nsqd-tcp-address", tcp(server),
                         "--output-dir", str(out))
    await all_finished(server, "plain", 1000)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    after = time.strftime("%Y-%m-%d_%H")
    files = sorted(os.listdir(out))
    assert files in ([f"plain.{HOST}.{before}.log"], [f"plain.{HOST}.{after}.log"])
    assert read_lines([out / files[0]]) == bodies


async def test_gzip_rotation_by_size_and_work_dir(start_nsqd: Callable[..., Any], tool: Any,
                                                  tmp_path: Path) -> None:
    server = await start_nsqd()
    out, work = tmp_path / "out", tmp_path / "work"
    bodies = [b"gz %05d %s" % (i, b"z" * 40) for i in range(3000)]
    await publish(server, "gzt", bodies)
    running = await tool("nsq_to_file", "--topic", "gzt", "--nsqd-tcp-address", tcp(server),
                         "--output-dir", str(out), "--work-dir", str(work), "--gzip", "--gzip-level", "9",
                         "--rotate-size", "20000", "--datetime-format", "%Y",
                         "--filename-format", "<TOPIC>/<HOST><REV>.<DATETIME>.log")
    await all_finished(server, "gzt", 3000)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    year = time.strftime("%Y")
    files = sorted(os.listdir(out / "gzt"))
    # ~150 KB of lines in files of just over 20000 uncompressed bytes each
    assert len(files) >= 7
    assert files == [f"{HOST}-{rev:06d}.{year}.log.gz" for rev in range(len(files))]
    assert read_lines([out / "gzt" / f for f in files]) == bodies
    assert os.listdir(work / "gzt") == []  # every file was moved out of the work dir


async def test_rotate_interval_and_skip_empty(start_nsqd: Callable[..., Any], tool: Any,
                                              tmp_path: Path) -> None:
    server = await start_nsqd()
    out = tmp_path / "out"
    running = await tool("nsq_to_file", "--topic", "tick", "--nsqd-tcp-address", tcp(server),
                         "--output-dir", str(out), "--rotate-interval", "300ms", "--sync-interval", "100ms",
                         "--skip-empty-files", "--datetime-format", "X")
    await publish(server, "tick", [b"first"])
    await all_finished(server, "tick", 1)
    await trio.sleep(0.8)  # the interval passes: the file is closed, no empty file follows
    await publish(server, "tick", [b"second"])
    await all_finished(server, "tick", 2)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    files = sorted(os.listdir(out))
    assert files == [f"tick.{HOST}-000000.X.log", f"tick.{HOST}-000001.X.log"]
    assert [read_lines([out / f]) for f in files] == [[b"first"], [b"second"]]


async def test_sigterm_mid_stream_loses_nothing(start_nsqd: Callable[..., Any], tool: Any,
                                                tmp_path: Path) -> None:
    server = await start_nsqd()
    out = tmp_path / "out"
    total = 30000
    bodies = [b"m%06d" % i for i in range(total)]
    await publish(server, "mid", bodies)
    args = ["--topic", "mid", "--nsqd-tcp-address", tcp(server), "--output-dir", str(out),
            "--max-in-flight", "50", "--gzip", "--datetime-format", "X"]
    running = await tool("nsq_to_file", *args)
    with trio.fail_after(TIMEOUT):  # some messages written and FIN'd, most still to come
        while _finished(server, "mid") < 2000:
            await trio.sleep(0.01)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    partial = read_lines(list(out.iterdir()))
    assert 0 < len(partial) < total
    second = await tool("nsq_to_file", *args)
    await all_finished(server, "mid", total)
    second.signal(signal.SIGTERM)
    assert await second.wait() == 0, second.stderr.decode()
    lines = read_lines(list(out.iterdir()))
    assert set(lines) == set(bodies)
    assert len(lines) == total  # what was FIN'd was written once; the rest redelivered once


async def test_topic_pattern_discovery(start_nsqd: Callable[..., Any], lookupd: Any, tool: Any,
                                       tmp_path: Path) -> None:
    server = await start_nsqd(lookupd_tcp_addresses=[lookupd.tcp], broadcast_address="127.0.0.1")
    out = tmp_path / "out"
    await publish(server, "logs_a", [b"a1"])
    running = await tool("nsq_to_file", "--topic-pattern", "^logs_", "--topic-refresh", "200ms",
                         "--lookupd-http-address", lookupd.http, "--output-dir", str(out),
                         "--datetime-format", "X")
    await all_finished(server, "logs_a", 1)
    await publish(server, "logs_b", [b"b1", b"b2"])
    await publish(server, "other", [b"o1"])
    await all_finished(server, "logs_b", 2)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    assert sorted(os.listdir(out)) == [f"logs_a.{HOST}.X.log", f"logs_b.{HOST}.X.log"]
    assert read_lines([out / f"logs_b.{HOST}.X.log"]) == [b"b1", b"b2"]
    assert "nsq_to_file" not in server.nsqd.topics["other"].channels


async def test_bad_input(tool: Any, tmp_path: Path) -> None:
    base = ["--nsqd-tcp-address", "127.0.0.1:1", "--output-dir", str(tmp_path)]
    cases = [
        (base, 2, "--topic or --topic-pattern required"),
        (base + ["--topic-pattern", "x"], 2, "--lookupd-http-address must be specified"),
        (base + ["--topic", "t", "--gzip", "--filename-format", "<TOPIC>.log"], 2, "missing <REV>"),
        (base + ["--topic", "t", "--gzip-level", "10"], 2, "invalid --gzip-level value (10)"),
        (base + ["--topic", "t", "--rotate-interval", "5"], 2, "missing unit"),
        (base + ["--topic", "t", "--log-level", "loud"], 2, "--log-level is invalid"),
        (base + ["--topic", "t"], 1, "failed to connect to nsqd"),
    ]
    for args, status, text in cases:
        code, _, err = await run_tool(tool, "nsq_to_file", *args)
        assert code == status and text in err and err.count("\n") == 1, (args, code, err)


async def test_sighup_closes_and_moves_the_file(start_nsqd: Callable[..., Any], tool: Any,
                                                tmp_path: Path) -> None:
    server = await start_nsqd()
    out, work = tmp_path / "out", tmp_path / "work"
    running = await tool("nsq_to_file", "--topic", "hup", "--nsqd-tcp-address", tcp(server),
                         "--output-dir", str(out), "--work-dir", str(work), "--datetime-format", "X",
                         "--progress")
    await publish(server, "hup", [b"one"])
    await all_finished(server, "hup", 1)
    assert os.listdir(work) == [f"hup.{HOST}-000000.X.log"] and os.listdir(out) == []
    running.signal(signal.SIGHUP)
    with trio.fail_after(TIMEOUT):
        while not os.listdir(out):
            await trio.sleep(0.05)
    await publish(server, "hup", [b"two"])
    await all_finished(server, "hup", 2)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    files = sorted(os.listdir(out))
    assert files == [f"hup.{HOST}-000000.X.log", f"hup.{HOST}-000001.X.log"]
    assert [read_lines([out / f]) for f in files] == [[b"one"], [b"two"]]
    assert "nsq_to_file: 2 messages" in running.stderr.decode()  # --progress on a pipe: plain lines


async def test_unwritable_output_dir_exits_1_and_gives_the_message_back(
        start_nsqd: Callable[..., Any], tool: Any, tmp_path: Path) -> None:
    server = await start_nsqd()
    await publish(server, "nowhere", [b"kept"])
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, _, err = await run_tool(tool, "nsq_to_file", "--topic", "nowhere", "--nsqd-tcp-address", tcp(server),
                                  "--output-dir", str(blocker / "sub"), timeout=20)
    assert code == 1 and "unable to create dir" in err and err.count("\n") == 1, err
    channel = server.nsqd.topics["nowhere"].channels["nsq_to_file"]
    assert channel.depth() == 1 and not channel.in_flight  # requeued, not lost
