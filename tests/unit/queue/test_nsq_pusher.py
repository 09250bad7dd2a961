"""NSQPusher (chunked MPUB) and DelayQueue (DPUB), under Trio's virtual clock.

Most tests use a recording publisher; one of each goes through the real client Producer
and the client tests' fake nsqd to check the wire commands.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
import trio
import trio.testing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "client"))

from client_fakes import FakeNetwork

import client.queue
from client import BadTopicError, Producer
from client.queue import BalancedPusher, DelayQueue, NSQPusher, ServiceGroup

A = "127.0.0.1:4150"
TIMEOUT = 10_000


class RecordingPublisher:
    """Records MPUBs and DPUBs with their virtual time; can be told to fail."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[bytes], float]] = []
        self.deferred: list[tuple[str, bytes, float]] = []
        self.fail_with: Exception | None = None

    async def multi_publish(self, topic: str, bodies: Iterable[bytes]) -> None:
        await trio.sleep(0.001)
        if self.fail_with is not None:
            raise self.fail_with
        self.batches.append((topic, list(bodies), trio.current_time()))

    async def deferred_publish(self, topic: str, body: bytes, delay: float) -> None:
        await trio.lowlevel.checkpoint()
        self.deferred.append((topic, body, delay))


@pytest.fixture
async def network(nursery: trio.Nursery) -> FakeNetwork:
    return FakeNetwork(nursery)


def test_exports_cover_the_nsq_modules() -> None:
    exported = set(client.queue.__all__)
    for name in ("delay", "nsq_pusher", "nsq_queue", "nsq_source"):
        module = importlib.import_module(f"client.queue.{name}")
        public = {n for n in module.__all__ if not n.startswith("DEFAULT_")}
        assert public <= exported, (name, public - exported)


def test_pusher_validation() -> None:
    publisher = RecordingPublisher()
    with pytest.raises(BadTopicError):
        NSQPusher(publisher, "bad topic!")
    with pytest.raises(ValueError):
        NSQPusher([], "t")
    with pytest.raises(ValueError):
        NSQPusher(publisher, "t", chunk_size_bytes=0)
    with pytest.raises(ValueError):
        NSQPusher(publisher, "t", flush_interval=0)
    pusher = NSQPusher(publisher, "events")
    assert pusher.name == "events" and repr(pusher) == "<NSQPusher events>"


async def test_chunks_by_size_count_and_interval(autojump_clock: trio.testing.MockClock) -> None:
    publisher = RecordingPublisher()
    async with NSQPusher(publisher, "t", chunk_size_bytes=100, flush_interval=2.0, max_items=3) as pusher:
        start = trio.current_time()
        for _ in range(4):
            await pusher.push(b"x" * 20)  # 24 bytes each with MPUB framing
        await trio.sleep(0.5)
        # max_items=3 flushed the first three at once; the fourth waits for the interval.
        assert [len(b) for _t, b, _at in publisher.batches] == [3]
        await trio.sleep(2)
        assert [len(b) for _t, b, _at in publisher.batches] == [3, 1]
        assert publisher.batches[1][2] - start == pytest.approx(2.0, abs=0.01)
        await pusher.push(b"y" * 60)
        await pusher.push("é" * 10)  # a str is UTF-8 encoded: 20 bytes, 88 buffered
        await pusher.push(b"z" * 10)  # 102 >= 100: flushed by size
        await trio.sleep(0.01)
        assert publisher.batches[2][1] == [b"y" * 60, "é".encode() * 10, b"z" * 10]
        await pusher.push(b"tail")
        stats = pusher.statistics()
        assert stats.buffered == 1 and stats.buffered_bytes == 8
    # Closing published the tail.
    assert publisher.batches[-1][1] == [b"tail"]
    stats = pusher.statistics()
    assert (stats.pushed, stats.published, stats.chunks, stats.failed) == (8, 8, 4, 0)
    with pytest.raises(trio.ClosedResourceError):
        await pusher.push(b"late")
    with pytest.raises(RuntimeError):
        async with pusher:
            pass


async def test_push_before_open_and_flush(autojump_clock: trio.testing.MockClock) -> None:
    publisher = RecordingPublisher()
    pusher = NSQPusher(publisher, "t", flush_interval=60)
    with pytest.raises(RuntimeError):
        await pusher.push(b"early")
    async with pusher:
        await pusher.push(b"a")
        await pusher.flush()
        assert [b for _t, b, _at in publisher.batches] == [[b"a"]]
        assert trio.current_time() < 1


async def test_failed_chunks_go_to_on_error(autojump_clock: trio.testing.MockClock) -> None:
    publisher = RecordingPublisher()
    publisher.fail_with = RuntimeError("nsqd down")
    failures: list[tuple[list[bytes], str]] = []

    async def on_error(chunk: list[bytes], exc: Exception) -> None:
        await trio.lowlevel.checkpoint()
        failures.append((chunk, str(exc)))

    async with NSQPusher(publisher, "t", max_items=2, on_error=on_error) as pusher:
        for body in (b"a", b"b", b"c"):
            await pusher.push(body)  # never raises: errors are reported asynchronously
    assert failures == [([b"a", b"b"], "nsqd down"), ([b"c"], "nsqd down")]
    stats = pusher.statistics()
    assert (stats.published, stats.failed, stats.failed_chunks) == (0, 3, 2)


async def test_failed_chunk_without_hook_is_logged(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    publisher = RecordingPublisher()
    publisher.fail_with = RuntimeError("refused")

    def broken_hook(chunk: list[bytes], exc: Exception) -> None:
        raise ValueError("hook bug")

    async with NSQPusher(publisher, "t") as pusher:
        await pusher.push(b"a")
    assert "execute failed on a batch of 1 items" in caplog.text
    caplog.clear()
    async with NSQPusher(publisher, "t", on_error=broken_hook) as hooked:
        await hooked.push(b"b")
    assert "on_error hook failed" in caplog.text
    assert any(r.levelno == logging.WARNING and "MPUB of 1 bodies failed" in r.getMessage()
               for r in caplog.records)


async def test_pusher_as_a_service_flushes_on_stop(autojump_clock: trio.testing.MockClock) -> None:
    publisher = RecordingPublisher()
    pusher = NSQPusher(publisher, "t", flush_interval=1000)
    group = ServiceGroup([pusher])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            for i in range(5):
                await pusher.push(b"%d" % i)
            assert publisher.batches == []
            await group.aclose()
    assert [b for _t, b, _at in publisher.batches] == [[b"0", b"1", b"2", b"3", b"4"]]


async def test_pushers_compose_with_balanced_pusher(autojump_clock: trio.testing.MockClock) -> None:
    left, right = RecordingPublisher(), RecordingPublisher()
    async with NSQPusher(left, "t") as a, NSQPusher(right, "t") as b:
        balanced = BalancedPusher([a, b])
        assert balanced.name == "t,t"
        for i in range(4):
            await balanced.push(b"%d" % i)
    assert [x for _t, batch, _at in left.batches for x in batch] == [b"0", b"2"]
    assert [x for _t, batch, _at in right.batches for x in batch] == [b"1", b"3"]


async def test_pusher_sends_mpub_through_a_real_producer(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    async with (
        Producer(A, open_stream=network.open_stream) as producer,
        NSQPusher(producer, "events", max_items=50) as pusher,
    ):
        for i in range(120):
            await pusher.push(b"e%d" % i)
    assert fake.published["events"] == [b"e%d" % i for i in range(120)]
    assert [name for _cid, name, _params in fake.commands if name != b"IDENTIFY"] == [b"MPUB"] * 3


# -- DelayQueue ----------------------------------------------------------------------


def test_delay_queue_validation() -> None:
    publisher = RecordingPublisher()
    with pytest.raises(BadTopicError):
        DelayQueue(publisher, "no good")
    with pytest.raises(ValueError):
        DelayQueue(publisher, "t", max_delay=-1)
    delays = DelayQueue(publisher, "later", max_delay=60)
    assert delays.name == "later" and delays.max_delay == 60 and "later" in repr(delays)


async def test_delay_put_and_limits() -> None:
    publisher = RecordingPublisher()
    delays = DelayQueue(publisher, "later", max_delay=60)
    await delays.put(b"a", 1.5)
    await delays.put("b", 0)
    await delays.put(b"c", 60)
    for bad in (-0.001, 60.001, float("nan")):
        with pytest.raises(ValueError, match="max-req-timeout"):
            await delays.put(b"x", bad)
    assert publisher.deferred == [("later", b"a", 1.5), ("later", b"b", 0), ("later", b"c", 60)]


async def test_delay_put_at() -> None:
    publisher = RecordingPublisher()
    now = 1_700_000_000.0
    delays = DelayQueue(publisher, "later", clock=lambda: now)
    await delays.put_at(b"soon", now + 90)
    await delays.put_at(b"past", now - 5)
    when = datetime.datetime.fromtimestamp(now + 30, tz=datetime.UTC)
    await delays.put_at(b"dt", when)
    with pytest.raises(ValueError, match="aware"):
        await delays.put_at(b"naive", datetime.datetime(2030, 1, 1))
    with pytest.raises(ValueError):
        await delays.put_at(b"far", now + 3601)
    assert publisher.deferred == [
        ("later", b"soon", 90.0), ("later", b"past", 0.0), ("later", b"dt", pytest.approx(30.0)),
    ]


async def test_delay_sends_dpub_through_a_real_producer(
    network: FakeNetwork, autojump_clock: trio.testing.MockClock
) -> None:
    fake = network.add(A)
    async with Producer(A, open_stream=network.open_stream) as producer:
        delays = DelayQueue(producer, "later")
        await delays.put(b"x", 2.5)
        await delays.put(b"y", 3600)
    assert fake.deferred == [("later", 2500, b"x"), ("later", 3_600_000, b"y")]
