"""End to end: 100k messages through NSQQueue in a worker process, SIGTERM mid-stream, restart.

The nsqd runs in this process (so its channel can be sampled directly); the worker is
``queue_scripts/nsq_worker.py`` (conns=2, processors=8) and journals each handled message
with fsync before the handler returns, i.e. before its FIN. The test publishes 100k
messages with MPUB while the worker consumes, SIGTERMs it once a good share is handled,
checks that it stopped gracefully, restarts it to drain the rest, and then checks:

* none lost: the bodies journalled are exactly the bodies published;
* none handled twice: a graceful stop FINs what was handled and gives back the rest
  unhandled, so no body appears twice in the journal (a duplicate would have to be a
  redelivery, attempts > 1, of a message never FIN'd);
* nsqd's in-flight count for the channel, sampled every millisecond, never exceeded
  ``queue_capacity`` (and neither did the RDY the worker's connections asked for).
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from client import Producer

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).resolve().parent / "queue_scripts" / "nsq_worker.py"
TOPIC, CHANNEL = "e2e_jobs", "workers"
TOTAL = 100_000
BATCH = 1_000
CAPACITY = 64
STOP_AFTER = 30_000
TIMEOUT = 120  # a guard against hangs; the test takes a small fraction of it


class JournalReader:
    """Reads the worker's journal incrementally: ``<id> <attempts> <body>`` lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""
        self.counts: collections.Counter[bytes] = collections.Counter()
        self.attempts: dict[bytes, list[int]] = collections.defaultdict(list)
        self.lines = 0

    def poll(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *complete, self.rest = (self.rest + data).split(b"\n")
        for line in complete:
            _msg_id, attempts, body = line.split(b" ")
            self.counts[body] += 1
            self.attempts[body].append(int(attempts))
        self.lines += len(complete)
        return self.lines


class Worker:
    """The worker subprocess and its stdout."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.out = b""

    @classmethod
    async def start(cls, address: str, journal: Path, stderr: Any) -> Worker:
        cmd = [sys.executable, str(WORKER), "--nsqd", address, "--topic", TOPIC,
               "--channel", CHANNEL, "--journal", str(journal), "--conns", "2",
               "--processors", "8", "--queue-capacity", str(CAPACITY)]
        process = await trio.lowlevel.open_process(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
        worker = cls(process)
        await worker.read_until(b"READY\n")
        return worker

    async def read_until(self, marker: bytes) -> None:
        assert self.process.stdout is not None
        while marker not in self.out:
            chunk = await self.process.stdout.receive_some(65536)
            if not chunk:
                raise AssertionError(f"worker ended early (rc={self.process.poll()}): {self.out!r}")
            self.out += chunk

    async def sigterm(self) -> dict[str, int]:
        """SIGTERM; wait for a clean exit; return the worker's final STATS."""
        self.process.send_signal(signal.SIGTERM)
        await self.read_until(b"STATS ")
        await self.read_until(b"}\n")
        code = await self.process.wait()
        assert code == 0, self.out
        line = self.out[self.out.index(b"STATS ") + 6:].split(b"\n", 1)[0]
        stats: dict[str, int] = json.loads(line)
        return stats


class Peaks:
    in_flight = 0
    rdy = 0
    samples = 0


async def sample_channel(nsqd: Any, peaks: Peaks) -> None:
    while True:
        topic = nsqd.topics.get(TOPIC)
        channel = topic.channels.get(CHANNEL) if topic is not None else None
        if channel is not None:
            peaks.in_flight = max(peaks.in_flight, len(channel.in_flight))
            peaks.rdy = max(peaks.rdy, sum(c.ready_count for c in channel.clients.values()))
            peaks.samples += 1
        await trio.sleep(0.001)


async def wait_for(predicate: Callable[[], bool]) -> None:
    while not predicate():
        await trio.sleep(0.02)


async def publish_all(address: str, bodies: list[bytes], done: trio.Event) -> None:
    async with Producer(address) as producer:
        for start in range(0, len(bodies), BATCH):
            await producer.multi_publish(TOPIC, bodies[start:start + BATCH])
    done.set()


async def test_sigterm_mid_stream_loses_nothing_and_handles_each_once(
    start_nsqd: Callable[..., Any], tmp_path: Path
) -> None:
    server = await start_nsqd(mem_queue_size=TOTAL + 1)
    address = "%s:%d" % server.tcp_address
    bodies = [b"%06d" % i for i in range(TOTAL)]
    journal_path = tmp_path / "journal.log"
    journal = JournalReader(journal_path)
    peaks = Peaks()
    published = trio.Event()

    with (tmp_path / "worker.err").open("wb") as stderr, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_channel, server.nsqd, peaks)
            # READY means subscribed: the channel exists before the first publish.
            first = await Worker.start(address, journal_path, stderr)
            nursery.start_soon(publish_all, address, bodies, published)
            await wait_for(lambda: journal.poll() >= STOP_AFTER)
            first_stats = await first.sigterm()
            after_first = journal.poll()
            assert STOP_AFTER <= after_first < TOTAL, "stop was not mid-stream"
            assert first_stats["finished"] == after_first
            assert first_stats["handled"] == after_first and first_stats["failed"] == 0

            second = await Worker.start(address, journal_path, stderr)
            await published.wait()
            await wait_for(lambda: journal.poll() >= TOTAL)
            second_stats = await second.sigterm()
            nursery.cancel_scope.cancel()
    journal.poll()
    channel = server.nsqd.topics[TOPIC].channels[CHANNEL]
    assert set(journal.counts) == set(bodies)  # none lost
    twice = {body: journal.attempts[body] for body, n in journal.counts.items() if n > 1}
    assert not twice, f"{len(twice)} handled twice, e.g. {list(twice.items())[:5]}"
    assert journal.lines == TOTAL
    assert second_stats["finished"] == TOTAL - after_first
    assert len(channel.in_flight) == 0 and channel.depth() == 0
    assert 0 < peaks.in_flight <= CAPACITY, peaks.in_flight
    assert peaks.rdy <= CAPACITY and peaks.samples > 100
    # What the first worker gave back unhandled at the stop came back (attempts 2) and was
    # handled once, by the second.
    redelivered = [body for body, attempts in journal.attempts.items() if attempts != [1]]
    assert all(journal.attempts[body] == [2] for body in redelivered)
    assert len(redelivered) == first_stats["requeued"]
    print(f"first worker: {first_stats}; second: {second_stats}; peak in flight "
          f"{peaks.in_flight} over {peaks.samples} samples", file=sys.stderr)


async def test_kill_9_mid_stream_loses_nothing_and_repeats_only_redeliveries(
    start_nsqd: Callable[..., Any], tmp_path: Path
) -> None:
    """A crash cannot FIN: messages in flight then are redelivered, some handled again."""
    total = 20_000
    server = await start_nsqd(mem_queue_size=total + 1)
    address = "%s:%d" % server.tcp_address
    bodies = [b"%06d" % i for i in range(total)]
    journal_path = tmp_path / "journal.log"
    journal = JournalReader(journal_path)
    peaks = Peaks()
    published = trio.Event()

    with (tmp_path / "worker.err").open("wb") as stderr, trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sample_channel, server.nsqd, peaks)
            first = await Worker.start(address, journal_path, stderr)
            nursery.start_soon(publish_all, address, bodies, published)
            await wait_for(lambda: journal.poll() >= total // 4)
            first.process.kill()
            assert await first.process.wait() == -signal.SIGKILL
            second = await Worker.start(address, journal_path, stderr)
            await published.wait()
            await wait_for(lambda: journal.poll() > 0 and len(journal.counts) >= total)
            await second.sigterm()
            nursery.cancel_scope.cancel()
    journal.poll()
    assert set(journal.counts) == set(bodies)  # none lost
    twice = {body: journal.attempts[body] for body, n in journal.counts.items() if n > 1}
    # Only what was in flight at the crash can be handled again, each time as a redelivery.
    assert len(twice) <= CAPACITY
    assert all(attempts == sorted(set(attempts)) for attempts in twice.values()), twice
    assert 0 < peaks.in_flight <= CAPACITY, peaks.in_flight
    print(f"kill -9: {len(twice)} handled twice; peak in flight {peaks.in_flight}", file=sys.stderr)
