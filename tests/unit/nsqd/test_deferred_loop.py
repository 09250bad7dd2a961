"""DeferredLoop: releases each watched channel's deferred messages on time (mock clock)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from nsqd import deferred_loop, deferred_store
from nsqd.backend import Msg
from nsqd.deferred_loop import DeferredLoop
from nsqd.deferred_store import DeferredStore

NS = 1_000_000_000


class FakeChannel:
    """A channel that records what the loop released, and when."""

    def __init__(self, store: DeferredStore) -> None:
        self.deferred = store
        self.deleted = False
        self.released: list[tuple[float, Msg]] = []

    def process_deferred(self, now: float) -> int:
        msgs = self.deferred.pop_due(now)
        self.released.extend((now, m) for m in msgs)
        return len(msgs)


def msg(i: int) -> Msg:
    return (b"%016d" % i, b"body-%d" % i, i, 0)


def mock_wall() -> int:
    """A wall clock that follows trio's (mock) clock."""
    return int((trio.current_time() + 1_700_000_000) * NS)


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def wait_released(channel: FakeChannel, n: int) -> None:
    with trio.fail_after(3600):
        while len(channel.released) < n:
            await trio.sleep(0.01)


async def test_releases_each_message_at_its_due_time(autojump_clock: trio.testing.MockClock) -> None:
    loop = DeferredLoop()
    channel = FakeChannel(DeferredStore(None))
    loop.watch(channel)
    assert len(loop) == 0  # nothing deferred: not served
    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop.run)
        t0 = trio.current_time()
        channel.deferred.push(msg(1), t0 + 3.0)
        channel.deferred.push(msg(2), t0 + 1.0)  # earlier: wakes the loop early
        assert len(loop) == 1 and channel.deferred.watched
        await wait_released(channel, 2)
        nursery.cancel_scope.cancel()
    (t2, m2), (t1, m1) = channel.released
    assert (m1, m2) == (msg(1), msg(2))
    assert t0 + 1.0 <= t2 <= t0 + 1.0 + deferred_loop.TICK
    assert t0 + 3.0 <= t1 <= t0 + 3.0 + deferred_loop.TICK


async def test_forgets_empty_and_deleted_channels(autojump_clock: trio.testing.MockClock) -> None:
    loop = DeferredLoop()
    done = FakeChannel(DeferredStore(None))
    gone = FakeChannel(DeferredStore(None))
    for channel in (done, gone):
        loop.watch(channel)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop.run)
        now = trio.current_time()
        done.deferred.push(msg(1), now + 0.5)
        gone.deferred.push(msg(2), now + 60)
        assert len(loop) == 2
        await wait_released(done, 1)
        gone.deleted = True
        await trio.sleep(deferred_loop.IDLE * 2)
        assert len(loop) == 0
        assert not done.deferred.watched and not gone.deferred.watched
        assert gone.released == []
        done.deferred.push(msg(3), trio.current_time() + 0.2)  # watched again
        assert len(loop) == 1
        await wait_released(done, 2)
        nursery.cancel_scope.cancel()


async def test_loader_brings_spilled_messages_back_in_time(
        tmp_path: Path, autojump_clock: trio.testing.MockClock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the store reads bucket files in a worker thread; while a task waits for a thread the
    # autojump clock sees everyone asleep and jumps ahead, so here the read runs inline
    async def inline(fn: Any, *args: Any) -> Any:
        return fn(*args)

    monkeypatch.setattr(deferred_store.trio.to_thread, "run_sync", inline)
    loop = DeferredLoop()
    store = DeferredStore(str(tmp_path / "c.deferred"), wall_ns=mock_wall)
    channel = FakeChannel(store)
    loop.watch(channel)
    t0 = trio.current_time()
    dues = [t0 + 10.0 + i * 0.25 for i in range(8)]  # beyond the lookahead: on disk
    store.push_many([msg(i) for i in range(8)], dues)
    assert store.in_memory() == 0 and len(store) == 8
    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop.run)
        nursery.start_soon(loop.run_loader)
        await wait_released(channel, 8)
        nursery.cancel_scope.cancel()
    assert [m for _, m in channel.released] == [msg(i) for i in range(8)]
    for (t, _), due in zip(channel.released, dues, strict=False):
        assert due - 1e-6 <= t <= due + deferred_loop.TICK + 1e-6  # ns round trip
    store.close()


async def test_watching_a_store_with_pending_messages_serves_it(
        autojump_clock: trio.testing.MockClock) -> None:
    loop = DeferredLoop()
    channel = FakeChannel(DeferredStore(None))
    channel.deferred.push(msg(1), trio.current_time() + 2.0)  # before the loop knew it
    loop.watch(channel)
    assert len(loop) == 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop.run)
        await wait_released(channel, 1)
        nursery.cancel_scope.cancel()
