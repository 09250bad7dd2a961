"""DiskQueue: records, segments, restart, corruption, write failures, ack mode."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
import trio

from nsqd import diskqueue as dq_mod
from nsqd.backend import BackendError, DueMsg
from nsqd.diskqueue import DiskQueue
from nsqd.records import (
    CorruptRecord,
    decode_record,
    encode_record,
    encode_records,
    scan_file,
)


def msgs(n: int, start: int = 0, size: int = 40) -> list[tuple[bytes, bytes, int, int]]:
    return [(b"%016d" % i, b"%d:" % i + b"x" * size, 1_000_000 + i, i % 3)
            for i in range(start, start + n)]


def make(path: Path, **kw: Any) -> DiskQueue:
    kw.setdefault("max_bytes_per_file", 4096)
    kw.setdefault("sync_every", 2500)
    kw.setdefault("max_msg_size", 1024)
    return DiskQueue("t:c", str(path), **kw)


def drain(q: DiskQueue, chunk: int = 7) -> list[Any]:
    out: list[Any] = []
    while True:
        got = q.read(chunk)
        if not got:
            return out
        out.extend(got)


def segments(path: Path, ext: str = ".dat") -> list[str]:
    return sorted(f for f in os.listdir(path) if f.endswith(ext))


# ---------------------------------------------------------------------- records
def test_record_round_trip() -> None:
    rec = encode_record(b"0123456789abcdef", b"body", 42, 3)
    assert len(rec) == 34 + 4
    assert decode_record(rec, 0, len(rec), 100) == ((b"0123456789abcdef", b"body", 42, 3), len(rec))
    assert b"".join(encode_records([(b"0123456789abcdef", b"body", 42, 3)])) == rec
    due = encode_record(b"0123456789abcdef", b"b", 1, 0, due_ns=123)
    assert decode_record(due, 0, len(due), 100)[0] == (b"0123456789abcdef", b"b", 1, 0, 123)


def test_record_incomplete_and_corrupt() -> None:
    rec = encode_record(b"0123456789abcdef", b"body", 42, 3)
    for cut in range(len(rec)):
        assert decode_record(rec[:cut], 0, cut, 100) == (None, 0)
    flipped = rec[:-1] + bytes([rec[-1] ^ 1])
    with pytest.raises(CorruptRecord, match="checksum"):
        decode_record(flipped, 0, len(flipped), 100)
    with pytest.raises(CorruptRecord, match="size"):
        decode_record(rec, 0, len(rec), 2)  # longer than max_msg_size


# ---------------------------------------------------------------------- FIFO
def test_fifo_across_segments_and_deletion(tmp_path: Path) -> None:
    q = make(tmp_path)
    data = msgs(500)
    for i in range(0, 500, 50):
        q.put(data[i:i + 50])
    assert q.depth() == 500
    q.sync_now()
    assert len(segments(tmp_path)) > 5
    assert drain(q) == data
    assert q.depth() == 0
    q.sync_now()
    assert len(segments(tmp_path)) == 1  # read segments deleted, the write one stays
    q.close()


def test_interleaved_put_read(tmp_path: Path) -> None:
    q = make(tmp_path)
    data = msgs(300)
    got: list[Any] = []
    for i in range(0, 300, 10):
        q.put(data[i:i + 10])
        got.extend(q.read(6))
    got.extend(drain(q))
    assert got == data
    q.close()


@pytest.mark.parametrize("cache", [0, 64])
def test_restart_keeps_unread(tmp_path: Path, cache: int) -> None:
    q = make(tmp_path, cache_size=cache)
    data = msgs(400)
    q.put(data[:200])
    q.put(data[200:])
    assert q.read(150) == data[:150]
    q.close()
    q = make(tmp_path, cache_size=cache)
    assert q.depth() == 250
    assert drain(q) == data[150:]
    q.close()
    q = make(tmp_path)
    assert q.depth() == 0 and q.read(10) == []
    q.put(data[:3])
    assert q.read(10) == data[:3]
    q.close()


def test_restart_without_meta_rescans(tmp_path: Path) -> None:
    q = make(tmp_path)
    data = msgs(120)
    q.put(data)
    q.close()
    os.unlink(tmp_path / "t:c.tdq.meta.json")
    q = make(tmp_path)
    assert q.depth() == 120
    assert drain(q) == data


def test_crash_recovers_tail_written_after_meta(tmp_path: Path) -> None:
    """Records flushed after the last metadata write are found by scanning."""
    q = make(tmp_path)
    data = msgs(100)
    q.put(data[:40])
    q.sync_now()
    q.put(data[40:])
    q._flush_buffers()  # reached the OS, no metadata: then the process dies
    q2 = make(tmp_path)
    assert q2.depth() == 100
    assert drain(q2) == data


def test_torn_tail_is_cut(tmp_path: Path) -> None:
    q = make(tmp_path, max_bytes_per_file=1 << 20)
    data = msgs(10)
    q.put(data)
    q.sync_now()
    seg = tmp_path / segments(tmp_path)[-1]
    good = seg.stat().st_size
    with open(seg, "ab") as f:
        f.write(encode_record(b"x" * 16, b"torn", 1, 0)[:20])
    q2 = make(tmp_path, max_bytes_per_file=1 << 20)
    assert seg.stat().st_size == good
    assert drain(q2) == data
    q2.put(data[:1])
    assert q2.read(5) == data[:1]
    q2.close()


def test_corrupt_record_costs_only_itself(tmp_path: Path, caplog: Any) -> None:
    q = make(tmp_path)
    data = msgs(300)
    for i in range(0, 300, 30):
        q.put(data[i:i + 30])
    q.close()
    first = tmp_path / segments(tmp_path)[0]
    raw = bytearray(first.read_bytes())
    raw[34 + 5] ^= 0xFF  # the body of the first record
    first.write_bytes(bytes(raw))
    q = make(tmp_path)
    got = drain(q)
    assert (tmp_path / (first.name + ".bad")).exists()
    assert "damaged data" in caplog.text and "1 message(s) lost" in caplog.text
    # everything but the damaged record is still served, in order
    assert got == data[1:]
    assert q.depth() == 0
    q.put(data[:2])
    assert q.read(5) == data[:2]
    q.close()


def test_bad_length_in_write_segment(tmp_path: Path) -> None:
    q = make(tmp_path, max_bytes_per_file=1 << 20)
    q.put(msgs(5))
    q.close()
    seg = tmp_path / segments(tmp_path)[0]
    raw = bytearray(seg.read_bytes())
    raw[0:4] = (10 ** 8).to_bytes(4, "little")
    seg.write_bytes(bytes(raw))
    q = make(tmp_path, max_bytes_per_file=1 << 20)  # the reader skips the bad record
    assert q.read(10) == msgs(5)[1:]
    q.put(msgs(2, 50))
    assert q.read(10) == msgs(2, 50)
    q.close()


# ---------------------------------------------------------------------- failures
def test_write_failure_refuses_then_recovers(tmp_path: Path, monkeypatch: Any) -> None:
    q = make(tmp_path, max_bytes_per_file=1 << 20)
    real_write = os.write
    broken = {"on": True}

    def write(fd: int, data: Any) -> int:
        if broken["on"]:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(dq_mod.os, "write", write)
    q.put(msgs(3))  # buffered: accepted
    with pytest.raises(OSError):
        q.flush_data()
    with pytest.raises(BackendError, match="No space"):
        q.put(msgs(1, 10))
    assert q.depth() == 3
    broken["on"] = False
    q.put(msgs(1, 10))
    assert drain(q) == msgs(3) + msgs(1, 10)
    q.close()


def test_partial_write_completes_later(tmp_path: Path, monkeypatch: Any) -> None:
    q = make(tmp_path, max_bytes_per_file=1 << 20)
    real_write = os.write
    calls = {"n": 0}

    def write(fd: int, data: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[:50]))  # torn in the middle of a record
        if calls["n"] == 2:
            raise OSError(errno.EFBIG, "File too large")
        return real_write(fd, data)

    monkeypatch.setattr(dq_mod.os, "write", write)
    data = msgs(20)
    q.put(data)
    with pytest.raises(OSError):
        q.flush_data()
    q.sync_now()
    q.close()
    q = make(tmp_path, max_bytes_per_file=1 << 20)
    assert drain(q) == data


# ---------------------------------------------------------------------- ack mode
def test_ack_mode_replays_unacked(tmp_path: Path) -> None:
    q = make(tmp_path, sync_every=1)
    assert q.ack_mode and q.write_through
    data = msgs(200)
    q.put(data)
    read = q.read(120)
    assert read == data[:120]
    for m in read[::2]:
        q.ack(m[0])
    q.close()
    q = make(tmp_path, sync_every=1)
    assert q.depth() == 140
    assert drain(q) == data[1:120:2] + data[120:]
    q.close()


def test_ack_mode_deletes_acked_segments(tmp_path: Path) -> None:
    q = make(tmp_path, sync_every=1)
    data = msgs(300)
    for i in range(0, 300, 30):
        q.put(data[i:i + 30])
    read = drain(q)
    assert read == data
    q.sync_now()
    assert len(segments(tmp_path)) > 3  # nothing acked: all kept
    for m in read:
        q.ack(m[0])
    q.sync_now()
    assert len(segments(tmp_path)) == 1
    q.close()
    q = make(tmp_path, sync_every=1)
    assert q.depth() == 0 and q.read(5) == []


def test_ack_mode_stale_meta_uses_ack_log(tmp_path: Path) -> None:
    """A crash long after the last metadata write: acked records are not replayed."""
    q = make(tmp_path, sync_every=1, max_bytes_per_file=1 << 20)
    data = msgs(50)
    q.put(data)
    q.sync_now()
    for m in q.read(30):
        q.ack(m[0])
    q._flush_buffers()
    q.flush_acks()  # acks reached the OS, the metadata did not
    q2 = make(tmp_path, sync_every=1, max_bytes_per_file=1 << 20)
    assert q2.depth() == 20
    assert drain(q2) == data[30:]


def test_ack_mode_duplicate_ids_delivered_once(tmp_path: Path) -> None:
    q = make(tmp_path, sync_every=1, max_bytes_per_file=1 << 20)
    m = msgs(1)[0]
    q.put([m])
    q.put([m])  # e.g. a requeued copy whose original ack was lost in a crash
    assert q.read(10) == [m]
    assert q.depth() == 0
    q.close()


def test_cache_serves_recent_writes(tmp_path: Path) -> None:
    q = make(tmp_path, sync_every=1, cache_size=100)
    data = msgs(1000)
    for i in range(0, 1000, 20):
        q.put(data[i:i + 20])
        got = q.read(20)
        assert got == data[i:i + 20]
        for m in got:
            q.ack(m[0])
    q.close()
    assert DiskQueue("t:c", str(tmp_path), max_bytes_per_file=4096, sync_every=1,
                     max_msg_size=1024).depth() == 0


def test_empty_and_delete(tmp_path: Path) -> None:
    q = make(tmp_path)
    q.put(msgs(100))
    q.read(10)
    q.empty()
    assert q.depth() == 0 and q.read(5) == []
    q.put(msgs(3, 500))
    assert q.read(5) == msgs(3, 500)
    q.delete()
    assert os.listdir(tmp_path) == []


def test_scan_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = b"".join(encode_records(msgs(10)))
    path.write_bytes(data + b"\x01\x02")
    scan = scan_file(str(path), 0, 1024)
    assert (scan.count, scan.valid_end, scan.damaged) == (10, len(data), [(len(data), len(data) + 2)])
    path.write_bytes(data)
    scan = scan_file(str(path), 0, 1024)
    assert (scan.count, scan.valid_end, scan.damaged) == (10, len(data), [])


async def test_deferred_topic_entries_keep_due(tmp_path: Path) -> None:
    """DueMsg entries (topic DPUBs) carry their due time through disk and restart."""
    q = make(tmp_path)
    now = trio.current_time()
    entry = DueMsg(b"0123456789abcdef", b"later", 5, 0, now + 30.0)
    q.put([entry, msgs(1)[0]])
    q.close()
    q = make(tmp_path)
    got = q.read(5)
    assert got[1] == msgs(1)[0] and type(got[1]) is tuple
    assert isinstance(got[0], DueMsg) and got[0].msg() == entry.msg()
    assert abs(got[0].due - (now + 30.0)) < 0.05
