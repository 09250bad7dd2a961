"""Record format 2 (crc at the end, checked by its residue), runs read as a grid, and
format 1 files left by an older nsqd read after an upgrade."""

from __future__ import annotations

import logging
import os
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from test_deferred_resync import make as make_store
from test_deferred_resync import msg as due_msg
from test_deferred_resync import release_all
from test_diskqueue_deferred import Clocks

from nsqd.backend import DueMsg
from nsqd.diskqueue import DiskQueue
from nsqd.records import (
    RESIDUE,
    decode_record,
    encode_due_records,
    encode_record,
    encode_records,
    grid_records,
    record_end,
    scan_file,
)

SEG = "t:c.tdq.000000.dat"


def make(path: Path, **kw: Any) -> DiskQueue:
    kw.setdefault("max_bytes_per_file", 1 << 20)
    kw.setdefault("sync_every", 2500)
    kw.setdefault("max_msg_size", 1024)
    return DiskQueue("t:c", str(path), **kw)


def same_size(n: int, start: int = 0) -> list[tuple[bytes, bytes, int, int]]:
    return [(b"%016d" % i, b"%06d" % i + b"q" * 40, 7_000 + i, i % 4)
            for i in range(start, start + n)]


def drain(q: DiskQueue, n: int = 50) -> list[Any]:
    out: list[Any] = []
    while got := q.read(n):
        out.extend(got)
    return out


def to_format1(raw: bytes) -> bytes:
    """The records of ``raw`` rewritten as an older nsqd wrote them (same lengths):
    ``u32 size | u32 crc32(rest) | [due] ts attempts id | body``."""
    out, off = [], 0
    while off < len(raw):
        rec, end = decode_record(raw, off, len(raw), 1 << 20)
        assert rec is not None
        word = raw[off:off + 4]
        if len(rec) == 5:
            rest = struct.pack("<qqH16s", rec[4], rec[2], rec[3], rec[0]) + rec[1]
        else:
            rest = struct.pack("<qH16s", rec[2], rec[3], rec[0]) + rec[1]
        out.append(word + struct.pack("<I", zlib.crc32(rest)) + rest)
        off = end
    new = b"".join(out)
    assert len(new) == len(raw)
    return new


def test_a_valid_record_and_a_run_of_them_check_to_the_residue() -> None:
    one = encode_record(b"i" * 16, b"body", 5, 1)
    assert zlib.crc32(one, RESIDUE) == RESIDUE
    due = encode_record(b"d" * 16, b"later", 5, 0, 123)
    assert zlib.crc32(due, RESIDUE) == RESIDUE
    run = b"".join(encode_records(same_size(5) + [(b"x" * 16, b"", 1, 0)]))
    assert zlib.crc32(run, RESIDUE) == RESIDUE
    assert run.startswith(b"".join(encode_records(same_size(1))))
    dues = b"".join(encode_due_records(same_size(3), [1, 2, 3]))
    assert zlib.crc32(dues, RESIDUE) == RESIDUE
    # each record of a run decodes on its own, and a flipped bit fails it
    off = 0
    for m in same_size(5):
        rec, off = decode_record(run, off, len(run), 1024)
        assert rec == m
    bad = bytearray(one)
    bad[10] ^= 4
    assert record_end(bytes(bad), 0, len(bad), 1024) == -1


def test_grid_takes_a_run_of_equal_sizes_and_stops_at_another_size() -> None:
    data = same_size(10)
    other = (b"o" * 16, b"short", 1, 0)
    raw = b"".join(encode_records(data + [other] + data))
    mv = memoryview(raw)
    got, end = grid_records(mv, 0, len(raw), 100, 1024)
    assert got == data
    assert record_end(raw, end, len(raw), 1024) > end  # the other one starts there
    got, end7 = grid_records(mv, 0, len(raw), 7, 1024)
    assert got == data[:7] and decode_record(raw, end7, len(raw), 1024)[0] == data[7]
    assert grid_records(mv, end, len(raw), 100, 1024) == ([], end)  # a run of one


@pytest.mark.parametrize("meta", [True, False], ids=["found-reading", "found-at-start"])
def test_each_flipped_byte_of_a_grid_loses_only_its_record(tmp_path: Path, meta: bool) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = same_size(12)
    q = make(src)
    q.put(data)
    q.close()
    if not meta:
        os.unlink(src / "t:c.tdq.meta.json")
    rec = len(b"".join(encode_records(data[:1])))
    size = (src / SEG).stat().st_size
    assert size == 12 * rec
    for pos in range(0, size, 3):
        for mask in (0xFF, 0x10):
            work = tmp_path / "w"
            if work.exists():
                shutil.rmtree(work)
            shutil.copytree(src, work)
            raw = bytearray((work / SEG).read_bytes())
            raw[pos] ^= mask
            (work / SEG).write_bytes(bytes(raw))
            q = make(work)
            got = drain(q)
            hit = pos // rec
            assert got == data[:hit] + data[hit + 1:] or \
                (hit == 11 and got == data[:11]), (pos, mask, len(got))
            assert q.depth() == 0
            q.close()


def test_a_format1_segment_is_read_after_an_upgrade_and_appended_in_format2(
        tmp_path: Path) -> None:
    q = make(tmp_path, max_bytes_per_file=1500)
    old = same_size(30) + [(b"v" * 16, b"var%d" % i * i, i, 1) for i in range(5)]
    for i in range(0, len(old), 5):
        q.put(old[i:i + 5])
    q.close()
    segs = sorted(f for f in os.listdir(tmp_path) if f.endswith(".dat"))
    assert len(segs) > 1
    for name in segs:
        path = tmp_path / name
        path.write_bytes(to_format1(path.read_bytes()))
        # the start-up scan takes format 1 records as valid too
        scan = scan_file(str(path), 0, 1024)
        assert not scan.damaged and scan.count > 0
    q = make(tmp_path, max_bytes_per_file=1500)
    assert q.read(3) == old[:3]
    q.put(same_size(4, 100))  # format 2 after format 1 in the newest segment
    q.close()
    q = make(tmp_path, max_bytes_per_file=1500)
    assert drain(q) == old[3:] + same_size(4, 100)
    q.close()


async def test_format1_due_records_in_a_topic_queue(tmp_path: Path) -> None:
    q = make(tmp_path)
    due = [DueMsg(b"%016d" % i, b"due%d" % i, i, 0, 1e9 + i) for i in range(5)]
    q.put([same_size(1)[0], *due])
    q.close()
    path = tmp_path / SEG
    path.write_bytes(to_format1(path.read_bytes()))
    q = make(tmp_path)
    got = drain(q)
    assert got[0] == same_size(1)[0]
    assert [(m.msg_id, m.body) for m in got[1:]] == [(m.msg_id, m.body) for m in due]
    q.close()


def test_format1_deferred_bucket_files_are_loaded(tmp_path: Path, caplog: Any) -> None:
    clocks = Clocks()
    store = make_store(tmp_path, clocks)
    for i in range(6):
        store.push(due_msg(i), clocks.t + 30)
    store.close()
    d = tmp_path / "c.deferred"
    for name in [f for f in os.listdir(d) if f.endswith(".dat")]:
        (d / name).write_bytes(to_format1((d / name).read_bytes()))
    caplog.set_level(logging.WARNING)
    store = make_store(tmp_path, clocks)
    got = release_all(store, clocks)
    assert sorted(m[0] for m in got) == [due_msg(i)[0] for i in range(6)]
    assert [m[1] for m in sorted(got)] == [due_msg(i)[1] for i in range(6)]
    assert "lost" not in caplog.text and "unreadable" not in caplog.text
    store.close()
