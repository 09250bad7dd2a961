"""Damaged deferred bucket files cost only the damaged records (start-up scan and load)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from test_diskqueue_deferred import Clocks

from nsqd.deferred_store import DeferredStore
from nsqd.records import encode_record

N = 6


def msg(i: int) -> tuple[bytes, bytes, int, int]:
    return (b"%016d" % i, b"body-%d" % i + b"z" * i, i, 2)


def make(path: Path, clocks: Clocks) -> DeferredStore:
    return DeferredStore(str(path / "c.deferred"), clock=clocks.mono, wall_ns=clocks.wall,
                         max_msg_size=1024)


def release_all(store: DeferredStore, clocks: Clocks) -> list[Any]:
    out: list[Any] = []
    for _ in range(200):
        clocks.t += 0.5
        while store.advance():
            pass
        out.extend(store.pop_due(clocks.t))
    return out


@pytest.mark.parametrize("meta", [True, False], ids=["found-loading", "found-at-start"])
def test_each_flipped_byte_loses_only_its_record(tmp_path: Path, meta: bool,
                                                 caplog: Any) -> None:
    src = tmp_path / "src"
    clocks = Clocks()
    store = make(src, clocks)
    for i in range(N):
        store.push(msg(i), clocks.t + 30)
    store.close()
    d = src / "c.deferred"
    (name,) = [f for f in os.listdir(d) if f.endswith(".dat")]
    if not meta:
        os.unlink(d / "meta.json")
    raw = (d / name).read_bytes()
    spans, off = [], 0
    for i in range(N):
        # every record of the file has the same due time: find the lengths by encoding
        size = len(encode_record(msg(i)[0], msg(i)[1], 0, 0, 0))
        spans.append((off, off + size))
        off += size
    assert off == len(raw)
    caplog.set_level(logging.WARNING)
    for pos in range(len(raw)):
        caplog.clear()
        work = tmp_path / "w"
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(src, work)
        bad = bytearray(raw)
        bad[pos] ^= 0x21
        (work / "c.deferred" / name).write_bytes(bytes(bad))
        c2 = Clocks()
        c2.t = clocks.t
        store = make(work, c2)
        got = release_all(store, c2)
        hit = {i for i, (a, b) in enumerate(spans) if a <= pos < b}
        want = [msg(i) for i in range(N) if i not in hit]
        assert all(m in got for m in want), (pos, len(got))
        assert all(m in [msg(i) for i in range(N)] for m in got)
        assert len(got) >= N - 1
        if len(got) < N:
            assert name in caplog.text
        assert len(store) == 0
        store.close()


def test_missing_bucket_file_is_a_warning(tmp_path: Path, caplog: Any) -> None:
    clocks = Clocks()
    store = make(tmp_path, clocks)
    for i in range(N):
        store.push(msg(i), clocks.t + 30)
    store.push(msg(99), clocks.t + 90)
    store.close()
    d = tmp_path / "c.deferred"
    victim = sorted(f for f in os.listdir(d) if f.endswith(".dat"))[0]
    os.unlink(d / victim)
    caplog.set_level(logging.WARNING)
    store = make(tmp_path, clocks)
    assert len(store) == 1
    assert f"{victim} is missing: up to {N} deferred message(s) lost" in caplog.text
    store.close()
