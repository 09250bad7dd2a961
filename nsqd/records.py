"""The on-disk record format of the disk queue and of deferred-message bucket files.

A record is a little-endian size word, a fixed header, the body and a crc::

    u32 size | i64 timestamp_ns | u16 attempts | 16 bytes id | body | u32 crc32

``size`` counts the header and the body (26 + len(body)), so a record takes
``8 + size`` bytes. The crc is ``zlib.crc32`` of every byte before it (the size word
included) seeded with :data:`RESIDUE`, the value the crc32 register always holds after
a message followed by its own crc: so ``crc32(record, RESIDUE) == RESIDUE`` for a valid
record, and for any run of valid records as a whole, which lets the reader check a run
of records with one call (:func:`grid_records`). A record of a deferred entry sets the
top bit of ``size`` and carries an ``i64`` wall-clock due time (ns) before the
timestamp.

Files written before the crc moved to the end hold *format 1* records (``u32 size |
u32 crc32 | ...header... | body``, the crc of the bytes after it, unseeded); the reader
takes either (the format 1 check runs only when the format 2 check fails), so queues
left by an older nsqd are read after an upgrade. Only format 2 is written.

A fixed header was measured against msgpack (``[id, body, ts, attempts]``): both encode
and decode at 1.1-1.3M records/s in CPython, msgpack's records are 5 bytes longer, and
the fixed header lets the reader validate the length before it trusts anything else.
"""

from __future__ import annotations

import functools
import operator
import re
import struct
import zlib
from collections.abc import Iterable
from typing import cast

from .backend import Msg

__all__ = ["CorruptRecord", "FileScan", "decode_record", "encode_due_records", "encode_record",
           "encode_records", "find_record", "grid_records", "record_end", "record_format",
           "scan_file"]

#: size, ts, attempts, id (format 2)
HEADER = struct.Struct("<IqH16s")
HEADER_SIZE = HEADER.size  # 30
_U32 = struct.Struct("<I")
_MID = struct.Struct("<qH16s")
#: format 2 heads (plain ones are HEADER) after the previous record's crc; a deferred
#: record's size|DUE_FLAG, due_ns, ts, attempts, id, and the same after a crc
_CRC_HEAD = struct.Struct("<IIqH16s")
_DUE_HEAD = struct.Struct("<IqqH16s")
_CRC_DUE_HEAD = struct.Struct("<IIqqH16s")
FIXED = 26
DUE_FLAG = 0x80000000
DUE_FIXED = 8 + 26
#: a deferred record's fields after its size word (format 2; after the crc in format 1):
#: due_ns, ts, attempts, id
DUE_FIELDS = struct.Struct("<qqH16s")

#: bytes read from a file at a time
READ_CHUNK = 256 * 1024

_crc32 = zlib.crc32


def _residue() -> int:
    """The crc32 register's value after any message followed by its own crc (LE)."""
    crc = _crc32(b"")
    return _crc32(_U32.pack(crc), crc)


#: the seed of a record's crc, and what crc32 of a valid record (or run) seeded with it gives
RESIDUE = _residue()


class CorruptRecord(Exception):
    """A record's length or checksum is wrong."""


def encode_record(msg_id: bytes, body: bytes, ts: int, attempts: int,
                  due_ns: int | None = None) -> bytes:
    """One record (see the module docstring); ``due_ns`` is a wall-clock due time."""
    if due_ns is None:
        head = HEADER.pack(FIXED + len(body), ts, attempts, msg_id)
    else:
        head = _DUE_HEAD.pack((DUE_FIXED + len(body)) | DUE_FLAG, due_ns, ts, attempts, msg_id)
    return head + body + _U32.pack(_crc32(body, _crc32(head, RESIDUE)))


def encode_records(msgs: Iterable[Msg]) -> list[bytes]:
    """Records of plain messages, as a list of parts to join or write.

    One running crc32 covers the parts in order: after a record's crc it is back at
    :data:`RESIDUE`, so each record's crc is the running value at its end, and the
    crc rides in the part that starts the next record (a head and a body per record,
    then the last crc).
    """
    parts: list[bytes] = []
    append = parts.append
    pack_head = HEADER.pack
    pack_crc_head = _CRC_HEAD.pack
    crc32 = _crc32
    crc = -1
    for msg_id, body, ts, attempts in msgs:
        if crc < 0:
            head = pack_head(FIXED + len(body), ts, attempts, msg_id)
            crc = crc32(head, RESIDUE)
        else:
            head = pack_crc_head(crc, FIXED + len(body), ts, attempts, msg_id)
            crc = crc32(head, crc)
        append(head)
        append(body)
        crc = crc32(body, crc)
    if crc >= 0:
        append(_U32.pack(crc))
    return parts


def encode_due_records(msgs: Iterable[Msg], dues_ns: Iterable[int]) -> list[bytes]:
    """Records of deferred messages (``encode_record`` with a due time), as parts to
    join (laid out as :func:`encode_records` lays them out)."""
    parts: list[bytes] = []
    append = parts.append
    pack_head = _DUE_HEAD.pack
    pack_crc_head = _CRC_DUE_HEAD.pack
    crc32 = _crc32
    fixed = DUE_FIXED | DUE_FLAG
    crc = -1
    for (msg_id, body, ts, attempts), due_ns in zip(msgs, dues_ns, strict=True):
        if crc < 0:
            head = pack_head(fixed + len(body), due_ns, ts, attempts, msg_id)
            crc = crc32(head, RESIDUE)
        else:
            head = pack_crc_head(crc, fixed + len(body), due_ns, ts, attempts, msg_id)
            crc = crc32(head, crc)
        append(head)
        append(body)
        crc = crc32(body, crc)
    if crc >= 0:
        append(_U32.pack(crc))
    return parts


def record_format(buf: bytes | memoryview, off: int, end: int) -> int:
    """The format (2 or 1) of the whole record ``buf[off:end]`` if its crc matches,
    else 0."""
    if _crc32(buf[off:end], RESIDUE) == RESIDUE:
        return 2
    if _crc32(buf[off + 8:end]) == _U32.unpack_from(buf, off + 4)[0]:
        return 1
    return 0


#: a decoded record: (id, body, timestamp ns, attempts), plus due time ns when deferred
Record = tuple[bytes, bytes, int, int] | tuple[bytes, bytes, int, int, int]


def decode_record(buf: bytes | memoryview, off: int, limit: int, max_size: int
                  ) -> tuple[Record | None, int]:
    """The record at ``off`` (either format): ``((id, body, ts, attempts[, due_ns]), end)``.

    Returns ``(None, off)`` when the record is not complete before ``limit``.

    Raises:
        CorruptRecord: bad length or checksum.
    """
    if off + 8 > limit:
        return None, off
    (size,) = _U32.unpack_from(buf, off)
    due = size & DUE_FLAG
    size &= ~DUE_FLAG
    fixed = DUE_FIXED if due else FIXED
    if size < fixed or size > max_size + fixed:
        raise CorruptRecord(f"invalid record size {size}")
    end = off + 8 + size
    if end > limit:
        return None, off
    fmt = record_format(buf, off, end)
    if not fmt:
        raise CorruptRecord("checksum mismatch")
    p, stop = (off + 4, end - 4) if fmt == 2 else (off + 8, end)
    if due:
        due_ns, ts, attempts, msg_id = DUE_FIELDS.unpack_from(buf, p)
        return (msg_id, bytes(buf[p + DUE_FIXED:stop]), ts, attempts, due_ns), end
    ts, attempts, msg_id = _MID.unpack_from(buf, p)
    return (msg_id, bytes(buf[p + FIXED:stop]), ts, attempts), end


def record_end(buf: bytes | memoryview, off: int, limit: int, max_size: int) -> int:
    """Where the record at ``off`` ends if a whole valid one starts there: its end;
    0 when its header is plausible but the record runs past ``limit``; -1 otherwise."""
    if off + 8 > limit:
        return 0
    (size,) = _U32.unpack_from(buf, off)
    fixed = DUE_FIXED if size & DUE_FLAG else FIXED
    size &= ~DUE_FLAG
    if size < fixed or size > max_size + fixed:
        return -1
    end = off + 8 + size
    if end > limit:
        return 0
    return end if record_format(buf, off, end) else -1


#: fewest records worth taking as a grid (below it the per-record path is as quick)
GRID_MIN = 4
#: (id, body, ts, attempts) out of the fields a grid's message struct yields
_TO_MSG = operator.itemgetter(2, 3, 0, 1)


@functools.lru_cache(maxsize=32)
def _grid_struct(size: int) -> struct.Struct:
    """For format 2 records of one ``size`` word: yields each record's (ts, attempts,
    id, body)."""
    return struct.Struct(f"<4xqH16s{size - FIXED}s4x")


def grid_records(buf: memoryview, off: int, limit: int, most: int, max_size: int
                 ) -> tuple[list[Msg], int]:
    """The run of plain format 2 records of one size at ``off`` (before ``limit``, at
    most ``most``), each checked (size word, crc) as the per-record reader checks it,
    parsed with a few C-level calls instead of Python steps per record: one crc32 call
    checks the whole run (see :data:`RESIDUE`).

    Returns ``(messages, end)``: the valid records of the run, in order, and where the
    first record not taken starts. An empty list (``end == off``) when the run is
    shorter than :data:`GRID_MIN`; the caller then reads record by record, which also
    meets any damage (or format 1 record) the run stops at.
    """
    if off + 8 > limit:
        return [], off
    (size,) = _U32.unpack_from(buf, off)
    rec = 8 + size
    k = min(most, (limit - off) // rec)
    if k < GRID_MIN or size < FIXED or size > max_size + FIXED \
            or _U32.unpack_from(buf, off + rec)[0] != size:
        return [], off
    region = buf[off:off + k * rec]
    # the size words, a byte column at a time (strided copies)
    word = buf[off:off + 4].tobytes()
    for j in range(4):
        column = region[j::rec].tobytes()
        if column.count(word[j]) != k:
            k = next(r for r, b in enumerate(column) if b != word[j])
            if k < GRID_MIN:
                return [], off
            region = region[:k * rec]
    if _crc32(region, RESIDUE) != RESIDUE:
        # take the records before the first bad one (damage, or format 1 data)
        k = 0
        while _crc32(region[k * rec:(k + 1) * rec], RESIDUE) == RESIDUE:
            k += 1
        if k < GRID_MIN:
            return [], off
        region = region[:k * rec]
    msgs = _grid_struct(size).iter_unpack(region)
    return cast("list[Msg]", list(map(_TO_MSG, msgs))), off + k * rec


def find_record(buf: bytes | memoryview, start: int, limit: int, max_size: int,
                eof: bool) -> tuple[int, bool]:
    """Resynchronise after damage: the first offset from ``start`` where a whole record
    with a sane length and a valid crc starts.

    Returns ``(offset, True)`` when found; else ``(offset, False)``: no record starts
    before ``offset``, and the search resumes there once more data follows ``limit``
    (at ``eof`` the offset is ``limit``: nothing valid is left). A random byte sequence
    passes for a record header only if its length is sane and its crc matches the
    bytes it claims (odds about 2^-32 per candidate).
    """
    unpack = _U32.unpack_from
    lo, hi = FIXED, max_size + FIXED
    lo_due, hi_due = FIXED + 8, max_size + FIXED + 8
    search = _header_pattern(max_size).search
    i = start
    last = limit - 8
    while i <= last:
        m = search(buf, i, last + 4)  # C speed over bytes that cannot start a header
        if m is None:
            break
        i = m.start()
        size = unpack(buf, i)[0]
        ok = (lo_due <= size & ~DUE_FLAG <= hi_due) if size & DUE_FLAG else (lo <= size <= hi)
        if ok:
            end = record_end(buf, i, limit, max_size)
            if end > 0:
                return i, True
            if end == 0 and not eof:
                return i, False  # plausible: read on before judging it
        i += 1
    return (limit, False) if eof else (max(start, last + 1), False)


@functools.lru_cache(maxsize=8)
def _header_pattern(max_size: int) -> re.Pattern[bytes]:
    """Four bytes that may be a record's little-endian size (with or without the due
    flag): not below ``FIXED``, not above a due record's largest size. A superset: the
    caller checks the numbers; the pattern lets ``re`` skip the rest at C speed."""
    top = max_size + FIXED + 8

    def byte_range(lo: int, hi: int) -> bytes:
        return b"\\x%02x-\\x%02x" % (lo, hi)

    b3 = min(top >> 24, 0x7F)
    b2_max = 0xFF if b3 else (top >> 16) & 0xFF
    b2 = b"[" + byte_range(0, b2_max) + b"]"
    b3_any = b"[" + byte_range(0, b3) + byte_range(0x80, 0x80 + b3) + b"]"
    alts = [b"[\\x1a-\\xff]." + b2 + b3_any, b".[\\x01-\\xff]" + b2 + b3_any]
    if b2_max:
        alts.append(b"..[" + byte_range(1, b2_max) + b"]" + b3_any)
    if b3:
        alts.append(b"...[" + byte_range(1, b3) + byte_range(0x81, 0x80 + b3) + b"]")
    return re.compile(b"(?:" + b"|".join(alts) + b")", re.DOTALL)


class FileScan:
    """What :func:`scan_file` found: valid records, and the damaged byte ranges skipped."""

    __slots__ = ("count", "damaged", "estimates", "valid_bytes", "valid_end")

    def __init__(self, start: int) -> None:
        self.count = 0
        self.valid_end = start          # end of the last valid record
        self.valid_bytes = 0
        #: ``(start, end)`` of each damaged range, in file order
        self.damaged: list[tuple[int, int]] = []
        #: records each damaged range held, where its first header tells (else None)
        self.estimates: list[int | None] = []

    def lost_estimate(self, skip: dict[int, int] | None = None) -> int:
        """Records in the damaged ranges (but those starting in ``skip``): exact where a
        header tells, else estimated from the mean valid record size (at least one per
        range)."""
        mean = self.valid_bytes / self.count if self.count else 0
        total = 0
        for (a, b), known in zip(self.damaged, self.estimates, strict=True):
            if skip and a in skip:
                continue
            total += known if known is not None else max(1, round((b - a) / mean) if mean else 1)
        return total

    def describe(self, ranges: list[tuple[int, int]]) -> str:
        """``ranges`` for a log line: the first few ``start-end``, and the byte total."""
        where = ", ".join(f"{a}-{b}" for a, b in ranges[:5]) + (" ..." if len(ranges) > 5 else "")
        return f"bytes {where}, {sum(b - a for a, b in ranges)} in all"


def scan_file(path: str, start: int, max_size: int, end: int | None = None) -> FileScan:
    """Walk the records of a file from ``start`` (to ``end`` or end-of-file), skipping
    damaged data: after a bad record the scan resumes where its length says the next one
    starts if a valid record is there (damage in the body), else at the next valid one
    byte by byte (:func:`find_record`). Never raises on bad data (OSError on I/O
    errors)."""
    scan = FileScan(start)
    pos = start
    bad = -1          # start of the damaged range being skipped
    bad_hint: int | None = None
    with open(path, "rb") as f:
        f.seek(start)
        buf = b""
        base = start
        eof = False

        def more() -> bool:
            nonlocal buf, base, eof
            want = READ_CHUNK if end is None else min(READ_CHUNK, end - base - len(buf))
            chunk = f.read(want) if want > 0 else b""
            if not chunk:
                eof = True
                return False
            buf = buf[pos - base:] + chunk
            base = pos
            return True

        while True:
            i = pos - base
            n = len(buf)
            if bad < 0:
                e = record_end(buf, i, n, max_size)
                if e > 0:
                    scan.count += 1
                    scan.valid_bytes += e - i
                    pos = base + e
                    scan.valid_end = pos
                    continue
                if e == 0 and not eof:
                    more()
                    continue
                if i >= n:
                    break  # clean end
                bad = pos
                bad_hint = _chain_hint(buf, i, n, max_size)
                pos += 1
                continue
            if bad_hint is not None:
                # the header may be intact and the damage in the body: the record after
                # it is where its length says (a record stored inside a body cannot
                # then pass for the resync point)
                target = bad + bad_hint - base
                e = record_end(buf, target, n, max_size) if target + 8 <= n else 0
                if e == 0 and not eof:
                    more()
                    continue
                if e > 0:
                    scan.damaged.append((bad, base + target))
                    scan.estimates.append(1)
                    pos = base + target
                    bad = -1
                    bad_hint = None
                    continue
                bad_hint = None
            j, found = find_record(buf, i, n, max_size, eof)
            pos = base + j
            if found:
                scan.damaged.append((bad, pos))
                scan.estimates.append(None)
                bad = -1
                continue
            if not eof:
                more()
                continue
            scan.damaged.append((bad, pos))
            scan.estimates.append(None)
            break
    return scan


def _chain_hint(buf: bytes | memoryview, off: int, limit: int, max_size: int) -> int | None:
    """The length the (damaged) record at ``off`` claims, if its header is there and the
    length is sane."""
    if off + 8 > limit:
        return None
    size = _U32.unpack_from(buf, off)[0] & ~DUE_FLAG
    return 8 + size if FIXED <= size <= max_size + FIXED + 8 else None
