"""A topic's or channel's overflow on disk: a FIFO of framed records in rolling segments.

The files (segments, their ``.acks`` logs, the metadata) are kept by
:mod:`nsqd.diskqueue_segments`. A segment is a sequence of :mod:`nsqd.records` records
(a size word, a fixed header, the body, then a crc); the record of a deferred topic
entry carries its wall-clock due time.

Reads and writes are synchronous and buffered (the hot path never awaits); the
:class:`~nsqd.syncer.Syncer` writes buffers out, fsyncs and writes the metadata in its
cycles. Two consumption modes:

* default (``--sync-every`` > 1, as NSQ): reading advances the cursor; the cursor is
  persisted in the metadata every ``sync_every`` operations or ``--sync-timeout``;
* ack mode (``--sync-every=1``): a record read stays live until :meth:`DiskQueue.ack`;
  acks are appended to the segment's ``.acks`` log (always after the data they may
  retire reached the OS), a segment is deleted once every record in it is acked, and a
  restart replays every record of the remaining segments that has no ack.

A damaged record (bad length or crc) costs only itself: the reader resynchronises on the
next valid record of the segment (a sane length and a matching crc, searched byte by
byte), logs how many records the damage took and, once the segment is read, keeps the
file as ``.bad``. A read error quarantines the rest of its segment. A torn record at the
very end of the newest segment (a crash mid-write) is cut off at start-up. A write error
(disk full, EFBIG) makes :meth:`DiskQueue.put` raise :class:`~nsqd.backend.BackendError`
until a retried write succeeds.
"""

from __future__ import annotations

import collections
import logging
import os
import time
import zlib
from collections.abc import Iterable
from typing import cast

from .backend import BackendError, DueMsg, Entry, Msg
from .diskqueue_segments import Segment, SegmentFiles, unpack_pos
from .fileio import AppendFile
from .records import (
    DUE_FIXED,
    DUE_FLAG,
    FIXED,
    HEADER,
    HEADER_SIZE,
    READ_CHUNK,
    RESIDUE,
    CorruptRecord,
    decode_record,
    encode_record,
    encode_records,
    grid_records,
    scan_file,
)
from .syncer import Syncer

__all__ = ["DiskQueue"]

logger = logging.getLogger(__name__)

#: bytes buffered before a write reaches the OS outside a sync cycle
FLUSH_BYTES = 256 * 1024
#: records read one by one after a failed grid attempt before the next attempt
GRID_RETRY = 32


class DiskQueue(SegmentFiles):
    """A FIFO of messages in rolling segment files (the :class:`~nsqd.backend.Backend`).

    Args:
        name: Queue name; file names start with it.
        data_path: Directory of the files.
        max_bytes_per_file: Roll to a new segment past this size.
        sync_every: Operations per sync (NSQ's --sync-every); 1 turns on ack mode.
        max_msg_size: Largest body; a longer record is corrupt.
        syncer: Runs the syncs; None syncs only on :meth:`close` (tests).
        cache_size: Records kept in memory after a write for the next read (0: off).
        write_through: Tell the owner to put every message here (no memory queue);
            always so in ack mode.
    """

    def __init__(self, name: str, data_path: str, *, max_bytes_per_file: int,
                 sync_every: int, max_msg_size: int, syncer: Syncer | None = None,
                 cache_size: int = 0, sync_timeout: float = 2.0,
                 write_through: bool = False) -> None:
        super().__init__(name, data_path, max_bytes_per_file=max_bytes_per_file,
                         sync_every=sync_every, max_msg_size=max_msg_size, syncer=syncer,
                         sync_timeout=sync_timeout)
        self.write_through = write_through or self.ack_mode
        self._cache_size = cache_size
        self._ops = 0
        self._cache: collections.deque[Entry] | None = None
        self._cache_pos: collections.deque[int] = collections.deque()
        self._open()

    def __repr__(self) -> str:
        return f"<DiskQueue {self.name} depth={self._depth}>"

    # ------------------------------------------------------------------ Backend
    def depth(self) -> int:
        return self._depth

    def put(self, msgs: Iterable[Entry]) -> None:
        """Append messages (a topic's also :class:`~nsqd.backend.DueMsg` entries).

        Raises:
            BackendError: the queue is closed, or the disk refuses writes; nothing of
                this call was stored.
        """
        if self._closed:
            raise BackendError("exiting")
        if self._failed is not None:
            try:
                self._flush_buffers()
            except OSError as exc:
                raise BackendError(f"write failed - {exc}") from exc
        msgs = msgs if isinstance(msgs, list) else list(msgs)
        if not msgs:
            return
        if DueMsg not in map(type, msgs):
            parts = encode_records(cast(list[Msg], msgs))
        else:
            parts = [_encode_entry(m) for m in msgs]
        nbytes = sum(map(len, parts))
        wfile = self._wfile
        if wfile.size and wfile.size + nbytes > self.max_bytes_per_file:
            self._roll()
            wfile = self._wfile
        cache = self._cache
        if cache is None and self._depth == 0 and self._cache_size:
            cache = self._cache = collections.deque()
            self._cache_pos.clear()
        if cache is not None:
            if len(cache) + len(msgs) > self._cache_size:
                self._cache = None
                self._cache_pos.clear()
            else:
                seg = self._segs[self._wseg]
                off = wfile.size
                idx = seg.total
                base = self._wseg << 56
                cpos = self._cache_pos
                for m in msgs:
                    cpos.append(base | (idx << 32) | off)
                    idx += 1
                    off += (DUE_FIXED + 8 if type(m) is DueMsg else FIXED + 8) + len(m[1])
                cache.extend(msgs)
        wfile.extend(parts, nbytes)
        self._segs[self._wseg].total += len(msgs)
        self._depth += len(msgs)
        if len(wfile.buf) >= FLUSH_BYTES:
            try:
                wfile.flush()
            except OSError as exc:
                self._write_failed(exc)
        if wfile.size >= self.max_bytes_per_file:
            self._roll()
        self._after_op(len(msgs), durable=True)

    def _after_op(self, n: int, *, durable: bool) -> None:
        syncer = self.syncer
        if syncer is None:
            return
        self._meta_dirty = True
        if self.ack_mode:
            if durable:
                syncer.durable_write(self)
            else:
                syncer.active(self)
            return
        self._ops += n
        if self._ops >= self.sync_every:
            self._ops = 0
            syncer.request(self)
        else:
            syncer.active(self)

    # ------------------------------------------------------------------ reading
    def read(self, n: int) -> list[Entry]:
        """Remove and return up to ``n`` messages, oldest first (ack mode: until acked)."""
        out: list[Entry] = []
        if n <= 0 or not self._depth or self._closed:
            return out
        cache = self._cache
        if cache is not None and cache:
            cpos = self._cache_pos
            head = cpos[0]
            if (head >> 56) == self._rseg and (head & 0xFFFFFFFF) == self._rpos:
                k = min(n, len(cache))
                popleft = cache.popleft
                pop_pos = cpos.popleft
                if self.ack_mode:
                    unacked = self._unacked
                    for _ in range(k):
                        msg = popleft()
                        pos = pop_pos()
                        if msg[0] in unacked:
                            self._ack_pos(pos)
                            continue
                        unacked[msg[0]] = pos
                        out.append(msg)
                else:
                    out = [popleft() for _ in range(k)]
                    for _ in range(k):
                        pop_pos()
                self._depth -= k
                if cpos:
                    seg, idx, off = unpack_pos(cpos[0])
                else:
                    seg, idx, off = self._wseg, self._segs[self._wseg].total, self._wfile.size
                self._move_reader(seg, off, idx)
                self._after_op(k, durable=False)
                if len(out) >= n or not self._depth:
                    return out
            else:
                self._cache = None
                cpos.clear()
        got = len(out)
        self._read_disk(n, out)
        if len(out) > got:
            self._after_op(len(out) - got, durable=False)
        return out

    def _move_reader(self, seg: int, off: int, idx: int) -> None:
        while self._rseg < seg:
            self._leave_segment()
        self._rpos = off
        self._ridx = idx

    def _read_disk(self, n: int, out: list[Entry]) -> None:
        unpack = HEADER.unpack_from
        crc32 = zlib.crc32
        max_body = self.max_msg_size
        max_size = max_body + FIXED
        # a plain record's size word is in [FIXED, plain_max]; anything else (the due
        # flag, or a corrupt length) takes the slow branch
        plain_max = min(max_size, DUE_FLAG - 1)
        header_size = HEADER_SIZE
        ack_mode = self.ack_mode
        unacked = self._unacked
        append = out.append
        while len(out) < n and self._depth > 0:
            seg = self._segs.get(self._rseg)
            if seg is None:  # quarantined or dropped
                if self._rseg >= self._wseg:
                    self._depth = 0
                    break
                self._rseg += 1
                self._rpos = self._ridx = 0
                self._enter_segment()
                continue
            end = seg.end if seg.end is not None else self._wfile.size
            if self._rpos >= end:
                if self._rseg < self._wseg:
                    self._leave_segment()
                    continue
                logger.error("DISKQUEUE(%s) depth %d at the end of the queue, resetting to 0",
                             self.name, self._depth)
                self._depth = 0
                break
            if end - self._rpos < HEADER_SIZE:
                if not self._skip_damage(seg, "truncated record"):
                    break
                continue
            buf = self._rbuf
            start = self._rbuf_start
            i = self._rpos - start
            limit = min(len(buf), end - start)
            if i < 0 or i + HEADER_SIZE > limit:
                if not self._refill(seg, end, HEADER_SIZE):
                    break
                continue
            mv = self._rmv
            skip = seg.skip
            base = self._rseg << 56
            idx = self._ridx
            need = 0
            corrupt = None
            msg: Entry
            # the depth and the room left in ``out`` live in locals while records are
            # taken (written back once the loop stops)
            depth = self._depth
            room = n - len(out)
            # runs of equal-sized plain records go through grid_records (C-level calls
            # per run); ack mode and skip sets need the per-record path's bookkeeping
            grid = not ack_mode and not skip
            wait = 0
            while True:
                if grid and wait <= 0:
                    run, e = grid_records(mv, i, limit, min(room, depth), max_body)
                    if run:
                        k = len(run)
                        out.extend(run)
                        i = e
                        idx += k
                        depth -= k
                        room -= k
                        if room <= 0 or not depth:
                            break
                        continue
                    wait = GRID_RETRY
                wait -= 1
                if i + header_size > limit:
                    need = header_size
                    break
                size, ts, attempts, msg_id = unpack(buf, i)
                if FIXED <= size <= plain_max:
                    e = i + 8 + size
                    if e > limit:
                        need = e - i
                        break
                    if crc32(mv[i:e], RESIDUE) == RESIDUE:
                        msg = (msg_id, buf[i + header_size:e - 4], ts, attempts)
                    else:  # a format 1 record, or damage
                        try:
                            rec, e = decode_record(mv, i, limit, max_body)
                        except CorruptRecord as exc:
                            corrupt = str(exc)
                            break
                        assert rec is not None and len(rec) == 4
                        msg = rec
                elif size & DUE_FLAG:
                    e = i + 8 + (size & ~DUE_FLAG)
                    if e > limit:
                        need = e - i
                        break
                    try:
                        rec, e = decode_record(mv, i, limit, self.max_msg_size)
                    except CorruptRecord as exc:
                        corrupt = str(exc)
                        break
                    assert rec is not None and len(rec) == 5
                    msg = DueMsg(rec[0], rec[1], rec[2], rec[3], _wall_ns_to_mono(rec[4]))
                else:
                    corrupt = f"invalid record size {size}"
                    break
                off = i
                i = e
                idx += 1
                if skip and start + off in skip:
                    skip.discard(start + off)
                    continue
                depth -= 1
                if ack_mode:
                    pos = base | ((idx - 1) << 32) | (start + off)
                    if msg[0] in unacked:
                        self._ack_pos(pos)
                        continue
                    unacked[msg[0]] = pos
                append(msg)
                room -= 1
                if room <= 0 or not depth:
                    break
            self._depth = depth
            self._rpos = start + i
            self._ridx = idx
            if corrupt is not None:
                if not self._skip_damage(seg, corrupt):
                    break
                continue
            if need and len(out) < n and self._depth and self._rpos < end:
                if self._rpos + need > end:
                    # whole records are appended: one that overruns the end is corrupt
                    if not self._skip_damage(seg, "truncated record"):
                        break
                    continue
                if not self._refill(seg, end, need):
                    break

    def _refill(self, seg: Segment, end: int, need: int) -> bool:
        """Read from the current position; False when the data is not available."""
        pos = self._rpos
        writer = self._writer_of(seg.num)
        if writer is not None:
            if writer.flushed < min(end, pos + max(need, READ_CHUNK)):
                try:
                    self._flush_buffers()
                except OSError as exc:
                    self._write_failed(exc)
            end = min(end, writer.flushed)
        if pos + need > end:
            return False
        try:
            if self._rfd < 0:
                self._rfd = os.open(self._seg_path(seg.num), os.O_RDONLY | os.O_CLOEXEC)
            data = os.pread(self._rfd, max(need, READ_CHUNK), pos)
        except OSError as exc:
            logger.error("DISKQUEUE(%s) reading at %d of %s - %s", self.name, pos,
                         self._seg_path(seg.num), exc)
            self._quarantine(seg, str(exc))
            return True
        if len(data) < need:
            return self._skip_damage(seg, "unexpected end of file")
        self._rbuf = data
        self._rmv = memoryview(data)
        self._rbuf_start = pos
        return True

    def _enter_segment(self) -> None:
        seg = self._segs.get(self._rseg)
        if seg is not None and seg.acks_on_disk:
            seg.skip = set(self._load_acks(seg.num))
            seg.acks_on_disk = 0

    def _leave_segment(self) -> None:
        """The reader passed the end of its segment: move to the next one."""
        num = self._rseg
        seg = self._segs.get(num)
        self._close_reader()
        if seg is not None and (not self.ack_mode or seg.done >= seg.total):
            self._drop_segment(num)
        self._rseg = num + 1
        self._rpos = self._ridx = 0
        self._enter_segment()

    def _skip_damage(self, seg: Segment, reason: str) -> bool:
        """The record at the read position is damaged: move on to the next valid record
        of the segment. False when the data is not readable yet (stop reading)."""
        pos = self._rpos
        resume = seg.damaged.get(pos) if seg.damaged else None
        if resume is None:
            resume = self._find_damage(seg, reason)
            if resume is None:
                return False
            if resume < 0:
                return True  # quarantined instead
        self._rpos = resume
        self._cache = None
        self._cache_pos.clear()
        return True

    def _find_damage(self, seg: Segment, reason: str) -> int | None:
        """Scan the rest of the segment past the damage at the read position: drop the
        damaged records from the counts, log the loss; return where reading resumes
        (-1: quarantined; None: unwritten data, not damage)."""
        pos = self._rpos
        path = self._seg_path(seg.num)
        end = seg.end if seg.end is not None else self._wfile.size
        writer = self._writer_of(seg.num)
        if writer is not None and writer.flushed < end:
            try:
                self._flush_buffers()
            except OSError as exc:
                self._write_failed(exc)
                return None
        try:
            scan = scan_file(path, pos, self.max_msg_size, end)
        except OSError as exc:
            scan = None
            reason = f"{reason}; {exc}"
        if scan is None or not scan.damaged or scan.damaged[0][0] != pos:
            self._quarantine(seg, reason)
            return -1
        known = seg.damaged or {}
        new = [r for r in scan.damaged if r[0] not in known]
        skip = seg.skip
        acked = {o for o in skip if any(a <= o < b for a, b in new)} if skip else set()
        if skip:
            skip -= acked
        dropped = seg.total - self._ridx - scan.count
        exact = dropped >= len(new)
        lost = dropped - len(acked) if exact else scan.lost_estimate(known)
        self._depth = max(0, self._depth - max(0, dropped - len(acked)))
        seg.total = self._ridx + scan.count
        seg.done = max(0, seg.done - len(acked))
        seg.damaged = {**known, **dict(scan.damaged)}
        tail = scan.damaged[-1]
        if seg.end is not None and tail[0] >= scan.valid_end and tail[1] < seg.end:
            seg.end = tail[1]  # the file is shorter than it was
        self._log_damage(path, scan.describe(new), max(lost, 0), exact=exact)
        return scan.damaged[0][1]

    def _quarantine(self, seg: Segment, reason: str) -> None:
        num = seg.num
        lost = max(0, seg.total - self._ridx - len(seg.skip or ()))
        logger.error("DISKQUEUE(%s) corrupt data at %d of %s - %s; %d message(s) lost, "
                     "saving the file as %s.bad", self.name, self._rpos, self._seg_path(num),
                     reason, lost, self._seg_path(num))
        self._depth = max(0, self._depth - lost)
        self._cache = None
        self._cache_pos.clear()
        if num == self._wseg:
            self._roll()
        self._quarantine_file(seg)
        self._close_reader()
        self._rseg = num + 1
        self._rpos = self._ridx = 0
        self._enter_segment()

    # ------------------------------------------------------------------ acks and admin
    def ack(self, msg_id: bytes) -> None:
        """A message read in ack mode is done (FIN, or its requeued copy was stored)."""
        pos = self._unacked.pop(msg_id, None)
        if pos is not None:
            self._ack_pos(pos)

    def in_flight(self) -> int:
        """Messages read in ack mode and not acked yet."""
        return len(self._unacked)

    def empty(self) -> None:
        """Drop every stored message (and every unacked one)."""
        logger.info("DISKQUEUE(%s): emptying", self.name)
        for num in list(self._segs):
            seg = self._segs[num]
            if seg.acks is not None:
                self._closing.append(seg.acks)
            self._unlinks.append(self._seg_path(num))
            self._unlinks.append(self._ack_path(num))
        self._closing.extend(self._retired)
        self._retired = []
        self._closing.append(self._wfile)
        self._dirty_acks.clear()
        self._close_reader()
        self._wseg += 1
        self._segs = {self._wseg: Segment(self._wseg)}
        self._wfile = AppendFile(self._seg_path(self._wseg), 0)
        self._rseg, self._rpos, self._ridx = self._wseg, 0, 0
        self._depth = 0
        self._unacked.clear()
        self._cache = None
        self._cache_pos.clear()
        self._failed = None
        self._meta_dirty = True
        self._sync_or_clean_up()


# ---------------------------------------------------------------------- clocks
def _encode_entry(m: Entry) -> bytes:
    if isinstance(m, DueMsg):
        return encode_record(m.msg_id, m.body, m.timestamp, m.attempts, _mono_to_wall_ns(m.due))
    return encode_record(*m)


def _mono_to_wall_ns(due: float) -> int:
    """A monotonic (trio) due time as wall-clock ns, to survive a restart."""
    import trio

    return time.time_ns() + int((due - trio.current_time()) * 1e9)


def _wall_ns_to_mono(due_ns: int) -> float:
    import trio

    return trio.current_time() + (due_ns - time.time_ns()) / 1e9
