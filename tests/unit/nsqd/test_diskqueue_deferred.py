"""DeferredStore: time buckets on disk, bounded memory, restart keeps due times."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from nsqd import deferred_store as ds_mod
from nsqd.deferred_store import DeferredStore

NS = 1_000_000_000


class Clocks:
    """A monotonic and a wall clock that advance together (in a test's hands)."""

    def __init__(self) -> None:
        self.t = 500.0

    def mono(self) -> float:
        return self.t

    def wall(self) -> int:
        return int((self.t + 1_700_000_000) * NS)


def make(path: Path, clocks: Clocks, **kw: Any) -> DeferredStore:
    return DeferredStore(str(path / "c.deferred"), clock=clocks.mono, wall_ns=clocks.wall, **kw)


def msg(i: int) -> tuple[bytes, bytes, int, int]:
    return (b"%016d" % i, b"body-%d" % i, i, 2)


def run(store: DeferredStore, clocks: Clocks, until: float, dues: dict[bytes, float],
        got: dict[bytes, int], step: float = 0.05) -> None:
    """Advance time to ``until``; every message must come at or after its due time."""
    while clocks.t < until:
        clocks.t = round(clocks.t + step, 6)
        while store.advance():
            pass
        for m in store.pop_due(clocks.t):
            due = dues[m[0]]
            assert clocks.t >= due, "released early"
            assert clocks.t - due <= step + 1e-6, "released late"
            got[m[0]] = got.get(m[0], 0) + 1


@pytest.mark.parametrize("write_through", [False, True])
def test_spill_load_and_restart(tmp_path: Path, write_through: bool) -> None:
    clocks = Clocks()
    store = make(tmp_path, clocks, write_through=write_through)
    rng = random.Random(1)
    dues: dict[bytes, float] = {}
    for i in range(3000):
        delay = rng.choice([0.2, 1.5, 3.0, 7.5, 40.0, 4000.0, 90000.0])
        store.push(msg(i), clocks.t + delay)
        dues[msg(i)[0]] = clocks.t + delay
    assert len(store) == 3000
    assert store.in_memory() < 1500  # the rest is on disk
    got: dict[bytes, int] = {}
    run(store, clocks, clocks.t + 20, dues, got)
    remaining = len(store)
    assert remaining == 3000 - len(got)
    store.close()
    assert any(f.startswith("L1-") for f in os.listdir(tmp_path / "c.deferred"))
    store = make(tmp_path, clocks, write_through=write_through)
    assert len(store) == remaining
    run(store, clocks, clocks.t + 100, dues, got, step=0.25)
    run(store, clocks, clocks.t + 100_000, dues, got, step=20.0)
    assert len(got) == 3000 and set(got.values()) == {1}
    assert len(store) == 0
    store.close()
    assert os.listdir(tmp_path / "c.deferred") == []


def test_memory_stays_bounded(tmp_path: Path) -> None:
    """A steady stream with a 120 s delay keeps only a few seconds of it in memory."""
    clocks = Clocks()
    store = make(tmp_path, clocks)
    dues: dict[bytes, float] = {}
    got: dict[bytes, int] = {}
    peak = 0
    i = 0
    for _ in range(200):  # 200 x 0.5 s, 100 messages per tick
        for _ in range(100):
            store.push(msg(i), clocks.t + 120)
            dues[msg(i)[0]] = clocks.t + 120
            i += 1
        run(store, clocks, clocks.t + 0.5, dues, got)
        peak = max(peak, store.in_memory())
    assert len(store) == i - len(got)
    assert peak <= 100 * 2 * 4  # about (lookahead + bucket) x rate
    run(store, clocks, clocks.t + 130, dues, got)
    assert len(got) == i


def test_write_through_crash_replays_only_unreleased(tmp_path: Path) -> None:
    clocks = Clocks()
    store = make(tmp_path, clocks, write_through=True)
    dues = {}
    for i in range(100):
        store.push(msg(i), clocks.t + 3 + i * 0.01)
        dues[msg(i)[0]] = clocks.t + 3 + i * 0.01
    got: dict[bytes, int] = {}
    store.flush_data()
    run(store, clocks, clocks.t + 3.5, dues, got)
    assert 0 < len(got) < 100
    store.flush_data()
    store.flush_acks()  # releases reach the OS; then the process is killed
    again = make(tmp_path, clocks, write_through=True)
    assert len(again) == 100 - len(got)
    run(again, clocks, clocks.t + 5, dues, got)
    assert len(got) == 100 and set(got.values()) == {1}


def test_overdue_after_downtime_come_at_once(tmp_path: Path) -> None:
    clocks = Clocks()
    store = make(tmp_path, clocks)
    for i in range(50):
        store.push(msg(i), clocks.t + 10)
    store.close()
    clocks.t += 3600  # nsqd was down for an hour
    store = make(tmp_path, clocks)
    while store.advance():
        pass
    assert len(store.pop_due(clocks.t)) == 50


def test_torn_bucket_is_cut(tmp_path: Path) -> None:
    clocks = Clocks()
    store = make(tmp_path, clocks)
    for i in range(5):
        store.push(msg(i), clocks.t + 60)
    store.close()
    d = tmp_path / "c.deferred"
    (name,) = [f for f in os.listdir(d) if f.endswith(".dat")]
    with open(d / name, "ab") as f:
        f.write(b"\x07\x00\x00")
    store = make(tmp_path, clocks)
    assert len(store) == 5


def test_corrupt_bucket_quarantined(tmp_path: Path, caplog: Any) -> None:
    clocks = Clocks()
    store = make(tmp_path, clocks)
    for i in range(5):
        store.push(msg(i), clocks.t + 60)
    store.push(msg(9), clocks.t + 30)
    store.close()
    d = tmp_path / "c.deferred"
    files = sorted(f for f in os.listdir(d) if f.endswith(".dat"))
    os.unlink(d / "meta.json")
    later = d / files[-1]
    raw = bytearray(later.read_bytes())
    raw[60] ^= 0xFF
    later.write_bytes(bytes(raw))
    store = make(tmp_path, clocks)  # start-up scan keeps the valid prefix
    got: dict[bytes, int] = {}
    run(store, clocks, clocks.t + 70, {msg(i)[0]: 0.0 for i in range(10)} | {
        msg(9)[0]: clocks.t + 30} | {msg(i)[0]: clocks.t + 60 for i in range(5)}, got)
    assert msg(9)[0] in got


def test_in_memory_store_for_ephemeral() -> None:
    store = DeferredStore(None, clock=lambda: 0.0)
    store.push(msg(1), 5.0)
    store.push(msg(2), 1.0)
    assert len(store) == 2 and store.next_due() == 1.0
    assert store.pop_due(1.0) == [msg(2)]
    assert not store.advance()
    store.close()


def test_loading_is_chunked(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(ds_mod, "LOAD_CHUNK", 8192)
    clocks = Clocks()
    store = make(tmp_path, clocks, max_msg_size=1000)
    for i in range(1000):
        store.push(msg(i), clocks.t + 10)
    clocks.t += 8.5  # within the lookahead of the bucket
    steps = 0
    while store.advance(100):
        steps += 1
    assert steps >= 5
    assert store.in_memory() == 1000


async def test_async_loading_reads_in_a_thread(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(ds_mod, "LOAD_CHUNK", 8192)
    clocks = Clocks()
    store = make(tmp_path, clocks, max_msg_size=1000)
    for i in range(1000):
        store.push(msg(i), clocks.t + 10)
    clocks.t += 8.5
    while await store.advance_async():
        pass
    assert store.in_memory() == 1000
    clocks.t += 2
    assert [int(m[0]) for m in store.pop_due(clocks.t)] == list(range(1000))
    # emptied while a read is under way: the chunk read is dropped
    for i in range(10):
        store.push(msg(i), clocks.t + 10)
    clocks.t += 8.5
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.advance_async)
        await trio.testing.wait_all_tasks_blocked()  # in the worker thread's read
        store.empty()
    assert len(store) == 0 and store.pop_due(clocks.t + 100) == []


def test_two_files_of_one_second_merge_in_due_order(tmp_path: Path) -> None:
    clocks = Clocks()
    a = make(tmp_path / "a", clocks)
    b = make(tmp_path / "b", clocks)
    base = float(int(clocks.t)) + 30  # the start of a wall-clock second, 30 s ahead
    for i in range(0, 10, 2):
        a.push(msg(i), base + i / 20)
    for i in range(1, 10, 2):
        b.push(msg(i), base + i / 20)
    a.close()
    b.close()
    target = tmp_path / "c.deferred"
    target.mkdir()
    for gen, src in enumerate((tmp_path / "a" / "c.deferred", tmp_path / "b" / "c.deferred")):
        (name,) = [f for f in os.listdir(src) if f.endswith(".dat")]
        level_idx = name.rsplit("-", 1)[0]
        os.rename(src / name, target / f"{level_idx}-{gen}.dat")
    store = make(tmp_path, clocks)
    assert len(store) == 10
    order = []
    while clocks.t < base + 1:
        clocks.t = round(clocks.t + 0.01, 6)
        while store.advance():
            pass
        order.extend(int(m[0]) for m in store.pop_due(clocks.t))
    assert order == list(range(10))


@pytest.mark.parametrize("write_through", [False, True])
def test_push_many_files_each_message_by_its_own_due_time(tmp_path: Path,
                                                          write_through: bool) -> None:
    """A DPUB run mixes delays: near ones go to the heap, far ones to several buckets."""
    clocks = Clocks()
    store = make(tmp_path, clocks, write_through=write_through)
    rng = random.Random(7)
    delays = [rng.choice([0.3, 1.2, 2.6, 2.7, 5.0, 5.1, 9.9, 4000.0]) for _ in range(2000)]
    msgs = [msg(i) for i in range(2000)]
    dues = {m[0]: clocks.t + d for m, d in zip(msgs, delays, strict=False)}
    store.push_many(msgs[:1000], [clocks.t + d for d in delays[:1000]])
    store.push_many(msgs[1000:], [clocks.t + d for d in delays[1000:]])
    assert len(store) == 2000
    near = sum(1 for d in delays if d < 2)
    assert near <= store.in_memory() < 2000 - delays.count(4000.0)
    got: dict[bytes, int] = {}
    run(store, clocks, clocks.t + 15, dues, got)
    store.close()  # the hour-long ones survive a restart
    store = make(tmp_path, clocks, write_through=write_through)
    run(store, clocks, clocks.t + 4100, dues, got, step=0.5)
    assert len(got) == 2000 and set(got.values()) == {1}
    store.close()
