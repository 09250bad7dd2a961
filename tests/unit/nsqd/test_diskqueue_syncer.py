"""Syncer: group commit shares fsyncs, orders data before acks, reports failures."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
import trio.testing

from nsqd import diskqueue as dq_mod
from nsqd.backend import BackendError
from nsqd.diskqueue import DiskQueue
from nsqd.fsyncs import Fsyncer
from nsqd.syncer import Syncer


def queue(path: Path, syncer: Syncer, **kw: Any) -> DiskQueue:
    kw.setdefault("sync_every", 1)
    return DiskQueue("q", str(path), max_bytes_per_file=1 << 20, max_msg_size=1024,
                     syncer=syncer, **kw)


def msg(i: int) -> tuple[bytes, bytes, int, int]:
    return (b"%016d" % i, b"x" * 20, i, 0)


async def test_group_commit_shares_cycles(tmp_path: Path, nursery: trio.Nursery) -> None:
    syncer = Syncer(sync_timeout=2.0)
    nursery.start_soon(syncer.run)
    q = queue(tmp_path, syncer)
    done = []

    async def publisher(i: int) -> None:
        for k in range(20):
            token = syncer.token()
            q.put([msg(i * 1000 + k)])
            await syncer.wait(token)
            done.append(i)

    async with trio.open_nursery() as inner:
        for i in range(10):
            inner.start_soon(publisher, i)
    assert len(done) == 200
    assert syncer.cycles < 150  # 200 durable writes, far fewer fsync cycles
    q.close()
    assert queue(tmp_path, syncer).depth() == 200


async def test_wait_without_writes_returns_at_once(tmp_path: Path) -> None:
    syncer = Syncer(sync_timeout=2.0)
    token = syncer.token()
    with trio.fail_after(1):
        await syncer.wait(token)  # nothing written: no cycle needed (and none running)


async def test_default_mode_is_not_durable(tmp_path: Path) -> None:
    syncer = Syncer(sync_timeout=2.0)
    q = queue(tmp_path, syncer, sync_every=100)
    token = syncer.token()
    q.put([msg(1)])
    assert not syncer.pending(token)


async def test_failed_cycle_fails_waiters_then_recovers(tmp_path: Path, nursery: trio.Nursery,
                                                        monkeypatch: Any) -> None:
    syncer = Syncer(sync_timeout=2.0)
    nursery.start_soon(syncer.run)
    q = queue(tmp_path, syncer)
    real_write = os.write
    broken = {"on": True}

    def write(fd: int, data: Any) -> int:
        if broken["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(dq_mod.os, "write", write)
    token = syncer.token()
    q.put([msg(1)])
    with pytest.raises(BackendError, match="No space"):
        await syncer.wait(token)
    with pytest.raises(BackendError):
        q.put([msg(2)])  # refused while the disk fails
    broken["on"] = False
    await trio.sleep(0.3)  # the syncer retries the pending data
    token = syncer.token()
    q.put([msg(3)])
    await syncer.wait(token)
    q.close()
    got = queue(tmp_path, syncer).read(10)
    assert [m[0] for m in got] == [msg(1)[0], msg(3)[0]]


async def test_acks_follow_data(tmp_path: Path, nursery: trio.Nursery,
                                monkeypatch: Any) -> None:
    """A cycle writes every data buffer before any ack log."""
    syncer = Syncer(sync_timeout=2.0)
    q = queue(tmp_path, syncer)
    q.put([msg(1)])
    (m,) = q.read(1)
    q.put([m])  # the requeued copy...
    q.ack(m[0])  # ...retires the original
    order = []
    real_write = os.write

    def write(fd: int, data: Any) -> int:
        order.append(os.readlink(f"/proc/self/fd/{fd}").rsplit(".", 1)[-1])
        return real_write(fd, data)

    monkeypatch.setattr(dq_mod.os, "write", write)
    await syncer.cycle()
    assert order[:2] == ["dat", "acks"]  # (then the metadata, .tmp renamed)
    q.close()
    again = queue(tmp_path, syncer)
    assert again.read(5) == [m]


async def test_waiter_taken_after_its_cycle_started_is_not_left_for_the_tick(
        tmp_path: Path, nursery: trio.Nursery) -> None:
    """A batch that awaited (AUTH) after publishing may ask for its cycle late."""
    syncer = Syncer(sync_timeout=3600.0)  # no periodic tick to rescue a wrong choice
    nursery.start_soon(syncer.run)
    q = queue(tmp_path, syncer)
    token = syncer.token()
    q.put([msg(1)])
    before = syncer.cycles
    with trio.fail_after(5):
        while syncer._running is None and syncer.cycles == before:
            await trio.lowlevel.checkpoint()  # the cycle covering the write starts (or ends) meanwhile
        cycle = syncer.covering_cycle(token)
        if cycle is not None:
            assert cycle is not syncer._next
            await syncer.wait_cycle(cycle)
    assert syncer.covering_cycle(token) is None  # durable now: nothing to wait for


class _SlowFlight:
    """An fsync that takes 1 ms of (virtual) time."""

    async def wait(self) -> None:
        await trio.sleep(0.001)


async def test_closed_loop_publishers_share_every_fsync(
        tmp_path: Path, nursery: trio.Nursery, monkeypatch: Any,
        autojump_clock: trio.testing.MockClock) -> None:
    """Publishers that send their next message a little after their OK (a round trip
    shorter than an fsync) are all in the next fsync: one per round, not one per half."""
    monkeypatch.setattr(Fsyncer, "start", lambda self, data, acks, jobs: _SlowFlight())
    syncer = Syncer(sync_timeout=3600.0)
    nursery.start_soon(syncer.run)
    q = queue(tmp_path, syncer)
    rounds = 20

    async def publisher(i: int) -> None:
        for k in range(rounds):
            token = syncer.token()
            q.put([msg(i * 1000 + k)])
            await syncer.wait(token)
            await trio.sleep(0.0001 * (i % 4))  # the round trip, 0 to 0.3 ms

    async with trio.open_nursery() as inner:
        for i in range(8):
            inner.start_soon(publisher, i)
    assert syncer.cycles <= rounds + 1  # halves taking turns: about 2 x rounds


async def test_a_cycle_fsyncs_only_segments_written_since_their_last_fsync(
        tmp_path: Path) -> None:
    """Reads move the cursor (the metadata is rewritten) but leave the data as it was."""
    syncer = Syncer(sync_timeout=2.0)
    q = queue(tmp_path, syncer, sync_every=2)
    q.put([msg(1), msg(2), msg(3)])
    fds = q.flush_data()
    assert len(fds) == 1
    q.sync_done(True)
    assert q.read(2) == [msg(1), msg(2)]
    assert q.flush_data() == []  # only read since
    q.sync_done(True)
    q.put([msg(4)])
    assert q.flush_data() == fds
    q.sync_done(False)  # that fsync failed: the next cycle takes the file again
    assert q.flush_data() == fds
    q.put([msg(5)])  # written while the cycle is under way: the next one covers it
    q.sync_done(True)
    assert q.flush_data() == fds
    q.sync_done(True)
    assert await syncer.cycle() is False
    q.close()
    assert queue(tmp_path, syncer, sync_every=2).read(5) == [msg(3), msg(4), msg(5)]
