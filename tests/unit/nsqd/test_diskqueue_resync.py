"""Damaged segment data costs only the records it touches: the reader and the
start-up scan resynchronise on the next valid record (sane length, matching crc)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from nsqd.diskqueue import DiskQueue
from nsqd.records import encode_records, find_record, scan_file

N = 8


def msgs(n: int, start: int = 0) -> list[tuple[bytes, bytes, int, int]]:
    return [(b"%016d" % i, b"%d:" % i + b"y" * (5 + 3 * i), 1_000_000 + i, i % 3)
            for i in range(start, start + n)]


def make(path: Path, **kw: Any) -> DiskQueue:
    kw.setdefault("max_bytes_per_file", 1 << 20)
    kw.setdefault("sync_every", 2500)
    kw.setdefault("max_msg_size", 1024)
    return DiskQueue("t:c", str(path), **kw)


def drain(q: DiskQueue) -> list[Any]:
    out: list[Any] = []
    while got := q.read(3):
        out.extend(got)
    return out


def bounds(data: list[Any]) -> list[tuple[int, int]]:
    """Byte range of each record in a segment holding ``data``."""
    out, off = [], 0
    for m in data:
        size = len(encode_records([m])[0] + m[1]) + 4  # head, body, crc
        out.append((off, off + size))
        off += size
    assert off == len(b"".join(encode_records(data)))
    return out


def check(got: list[Any], data: list[Any], hit: set[int]) -> None:
    """Every record the damage did not touch is delivered, in order, intact."""
    want = [m for i, m in enumerate(data) if i not in hit]
    kept = [m for m in got if m in data]
    assert kept == sorted(kept, key=data.index)
    assert len(got) == len(kept)  # nothing made up
    assert all(m in got for m in want), (len(got), hit)


def damaged_copy(src: Path, dst: Path, name: str, pos: int, mask: int = 0xFF) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    seg = dst / name
    raw = bytearray(seg.read_bytes())
    raw[pos] ^= mask
    seg.write_bytes(bytes(raw))


@pytest.mark.parametrize("meta", [True, False], ids=["found-reading", "found-at-start"])
def test_each_flipped_byte_loses_only_its_record(tmp_path: Path, meta: bool,
                                                 caplog: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = msgs(N)
    q = make(src)
    q.put(data)
    q.close()
    name = "t:c.tdq.000000.dat"
    if not meta:
        os.unlink(src / "t:c.tdq.meta.json")
    spans = bounds(data)
    size = (src / name).stat().st_size
    assert spans[-1][1] == size
    caplog.set_level(logging.WARNING)
    for pos in range(size):
        for mask in (0xFF, 0x01):
            caplog.clear()
            work = tmp_path / "w"
            damaged_copy(src, work, name, pos, mask)
            q = make(work)
            got = drain(q)
            hit = {i for i, (a, b) in enumerate(spans) if a <= pos < b}
            check(got, data, hit)
            assert len(got) >= N - 1
            assert q.depth() == 0
            if len(got) < N:
                assert name in caplog.text
                assert "1 message(s) lost" in caplog.text or "torn record" in caplog.text
            q.put(msgs(2, 100))
            assert drain(q) == msgs(2, 100)
            q.close()


def test_flips_in_a_sealed_segment(tmp_path: Path, caplog: Any) -> None:
    src = tmp_path / "src"
    src.mkdir()
    data = msgs(40)
    q = make(src, max_bytes_per_file=1024)
    for m in data:
        q.put([m])
    q.close()
    first = sorted(f for f in os.listdir(src) if f.endswith(".dat"))[0]
    size = (src / first).stat().st_size
    in_first = len([e for e in bounds(data) if e[1] <= size])
    spans = bounds(data[:in_first])
    caplog.set_level(logging.WARNING)
    for pos in range(0, size, 3):
        caplog.clear()
        work = tmp_path / "w"
        damaged_copy(src, work, first, pos)
        q = make(work, max_bytes_per_file=1024)
        got = drain(q)
        hit = {i for i, (a, b) in enumerate(spans) if a <= pos < b}
        check(got, data, hit)
        assert len(got) == len(data) - 1
        assert f"{first} (bytes" in caplog.text and "1 message(s) lost" in caplog.text
        assert q.depth() == 0
        q.close()
        assert (work / (first + ".bad")).exists()


def test_several_damaged_ranges_and_garbage_tail(tmp_path: Path, caplog: Any) -> None:
    data = msgs(30)
    q = make(tmp_path, max_bytes_per_file=1 << 20)
    q.put(data)
    q.close()
    seg = tmp_path / "t:c.tdq.000000.dat"
    spans = bounds(data)
    raw = bytearray(seg.read_bytes())
    for i in (3, 4, 17):
        a, _b = spans[i]
        raw[a + 9] ^= 0x40
    raw[spans[25][0]:spans[25][0] + 20] = os.urandom(20)
    seg.write_bytes(bytes(raw))
    caplog.set_level(logging.WARNING)
    q = make(tmp_path)
    got = drain(q)
    check(got, data, {3, 4, 17, 25})
    assert len(got) == 26
    assert "4 message(s) lost" in caplog.text
    q.close()


def test_find_record_rejects_noise() -> None:
    rec = b"".join(encode_records(msgs(1)))
    noise = os.urandom(4096)
    buf = noise + rec
    off, found = find_record(buf, 0, len(buf), 1024, True)
    assert found and off == len(noise)
    assert find_record(noise, 0, len(noise), 1024, True) == (len(noise), False)


def test_scan_file_counts_and_ranges(tmp_path: Path) -> None:
    data = msgs(10)
    raw = bytearray(b"".join(encode_records(data)))
    spans = bounds(data)
    raw[spans[2][0] + 40] ^= 1
    path = tmp_path / "f"
    path.write_bytes(bytes(raw) + b"\x00" * 5)
    scan = scan_file(str(path), 0, 1024)
    assert scan.count == 9
    assert scan.damaged == [spans[2], (spans[-1][1], spans[-1][1] + 5)]
    assert scan.valid_end == spans[-1][1]
    assert scan.estimates[0] == 1


@pytest.mark.parametrize("max_size", [1024, 1024 * 1024, 1 << 30])
def test_header_pattern_admits_every_valid_size(max_size: int) -> None:
    import random
    import struct

    from nsqd.records import FIXED, _header_pattern

    pattern = _header_pattern(max_size)
    top = max_size + FIXED + 8
    rng = random.Random(max_size)
    sizes = [*range(FIXED, min(top, 70_000) + 1), top,
             *(rng.randint(FIXED, top) for _ in range(5000))]
    for size in sizes:
        for flag in (0, 0x80000000):
            assert pattern.fullmatch(struct.pack("<I", size | flag)), (size, flag)
    for size in range(FIXED):  # zero-filled or small: skipped without a look
        assert not pattern.fullmatch(struct.pack("<I", size))


def test_ack_mode_damage_keeps_counts_and_drops_the_segment(tmp_path: Path,
                                                             caplog: Any) -> None:
    data = msgs(60)
    q = make(tmp_path, sync_every=1, max_bytes_per_file=1024)
    for m in data:
        q.put([m])
    got = q.read(4)
    for m in got[::2]:
        q.ack(m[0])  # 0 and 2 acked before the restart, 1 and 3 replayed
    q.close()
    first = sorted(f for f in os.listdir(tmp_path) if f.endswith(".dat"))[0]
    spans = bounds(data)
    raw = bytearray((tmp_path / first).read_bytes())
    raw[spans[5][0] + 30] ^= 0x08  # record 5
    raw[spans[2][0] + 30] ^= 0x08  # record 2, acked already: not a loss
    (tmp_path / first).write_bytes(bytes(raw))
    caplog.set_level(logging.WARNING)
    q = make(tmp_path, sync_every=1, max_bytes_per_file=1024)
    assert q.depth() == 58
    got = drain(q)
    assert got == [data[1], data[3], data[4]] + data[6:]
    assert "1 message(s) lost" in caplog.text and first in caplog.text
    assert q.depth() == 0
    for m in got:
        q.ack(m[0])
    q.sync_now()
    assert (tmp_path / (first + ".bad")).exists()
    assert not (tmp_path / first).exists()
    q.close()
    q = make(tmp_path, sync_every=1, max_bytes_per_file=1024)
    assert q.depth() == 0 and q.read(5) == []
    q.close()


def test_a_record_inside_a_body_is_not_taken_for_the_resync_point(tmp_path: Path) -> None:
    inner = b"".join(encode_records([(b"I" * 16, b"inner", 1, 0)]))
    data = msgs(3) + [(b"%016d" % 7, b"wrapped:" + inner + b"tail", 7, 0)] + msgs(3, 10)
    q = make(tmp_path)
    q.put(data)
    q.close()
    seg = tmp_path / "t:c.tdq.000000.dat"
    raw = bytearray(seg.read_bytes())
    a, _ = bounds(data)[3]
    raw[a + 34 + 2] ^= 0x01  # the outer record's body, before the inner record
    seg.write_bytes(bytes(raw))
    q = make(tmp_path)
    assert drain(q) == data[:3] + data[4:]
    q.close()
