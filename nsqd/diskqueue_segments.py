"""The segment files of a disk queue: naming, the restart scan, rolling, acks, metadata.

Files, in the data path, for a queue named ``NAME`` (``topic`` or ``topic:channel``)::

    NAME.tdq.000000.dat     segments, rolled past --max-bytes-per-file
    NAME.tdq.000000.acks    offsets of records consumed out of order (durable mode)
    NAME.tdq.meta.json      read cursor, flushed write end, records per segment

At start-up, segments before the read cursor are removed, a segment the metadata counts
but the data path lacks is reported with its message count, sealed segments the metadata
knows are trusted and the others are scanned: a torn record at the very end of the
newest segment (a crash mid-write) is cut off, damaged records elsewhere are noted for
the reader to skip (:func:`~nsqd.records.scan_file` resynchronises past them).
:class:`SegmentFiles` also writes buffers out, rolls segments, logs acks, deletes
consumed segments and takes part in the group commit for
:class:`~nsqd.diskqueue.DiskQueue`, which reads and writes the records.
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
import time

from internal.gojson import JSON

from .fileio import AppendFile, SyncedFiles, remove_file, write_atomic
from .records import scan_file
from .syncer import Syncer, SyncJob

__all__ = ["Segment", "SegmentFiles", "unpack_pos"]

logger = logging.getLogger(__name__)

_U32 = struct.Struct("<I")

#: how often metadata is rewritten in ack mode at most (acks make it a hint only)
ACK_MODE_META_INTERVAL = 2.0


def unpack_pos(pos: int) -> tuple[int, int, int]:
    """A record's position ``(seg << 56) | (idx << 32) | off``, as ``(segment, index in
    the segment, byte offset)``."""
    return pos >> 56, (pos >> 32) & 0xFFFFFF, pos & 0xFFFFFFFF


class Segment:
    """One segment file's record counts, ack log and restart state."""

    __slots__ = ("acks", "acks_on_disk", "damaged", "done", "end", "num", "skip", "total")

    def __init__(self, num: int, total: int = 0) -> None:
        self.num = num
        self.total = total        # records in the file
        self.done = 0             # records acked (ack mode), counted for deletion
        self.end: int | None = None   # file size once sealed
        self.skip: set[int] | None = None  # offsets acked before a restart, unread yet
        self.acks: AppendFile | None = None
        self.acks_on_disk = 0     # ack entries on disk not loaded into ``skip`` yet
        #: damaged byte ranges (start -> end) the reader skips; kept as ``.bad`` once read
        self.damaged: dict[int, int] | None = None


class SegmentFiles(SyncedFiles):
    """The segment files of a :class:`~nsqd.diskqueue.DiskQueue` (its base).

    Takes the disk queue's arguments but for its read cache and write-through flag; the
    subclass calls :meth:`_open` once its own state is set.
    """

    def __init__(self, name: str, data_path: str, *, max_bytes_per_file: int,
                 sync_every: int, max_msg_size: int, syncer: Syncer | None,
                 sync_timeout: float) -> None:
        self.name = name
        self.data_path = data_path
        self.max_bytes_per_file = min(max(max_bytes_per_file, 1024), 0xFFFFFFFF - (1 << 28))
        self.sync_every = max(1, sync_every)
        self.ack_mode = self.sync_every == 1
        self.max_msg_size = max_msg_size
        super().__init__(syncer, sync_timeout)
        self.label = f"DISKQUEUE({name})"
        self._segs: dict[int, Segment] = {}
        self._depth = 0
        self._unacked: dict[bytes, int] = {}
        self._retired: list[AppendFile] = []   # rolled segments awaiting flush+fsync
        self._dirty_acks: dict[int, AppendFile] = {}
        self._rfd = -1
        self._rbuf = b""
        self._rmv = memoryview(b"")
        self._rbuf_start = 0
        self._pattern = re.compile(re.escape(name) + r"\.tdq\.(\d{6,})\.dat")

    # ------------------------------------------------------------------ paths
    def _seg_path(self, num: int) -> str:
        return os.path.join(self.data_path, f"{self.name}.tdq.{num:06d}.dat")

    def _ack_path(self, num: int) -> str:
        return os.path.join(self.data_path, f"{self.name}.tdq.{num:06d}.acks")

    def _meta_path(self) -> str:
        return os.path.join(self.data_path, f"{self.name}.tdq.meta.json")

    # ------------------------------------------------------------------ start-up
    def _load_meta(self) -> dict[str, JSON] | None:
        try:
            with open(self._meta_path(), "rb") as f:
                meta: dict[str, JSON] = json.loads(f.read())
            meta["read"] = [int(x) for x in meta["read"]]
            meta["write"] = [int(x) for x in meta["write"]]
            meta["totals"] = {int(k): int(v) for k, v in meta["totals"].items()}
            return meta
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.error("DISKQUEUE(%s) failed to read metadata, rescanning - %s", self.name, exc)
            return None

    def _open(self) -> None:
        meta = self._load_meta()
        nums = []
        for fn in os.listdir(self.data_path):
            m = self._pattern.fullmatch(fn)
            if m:
                nums.append(int(m.group(1)))
        nums.sort()
        if meta is not None:
            rseg, roff, ridx = meta["read"]
            wseg_m, woff_m = meta["write"]
            totals: dict[int, int] = meta["totals"]
        else:
            rseg = nums[0] if nums else 0
            roff = ridx = 0
            wseg_m, woff_m = rseg, 0
            totals = {}
        if meta is not None:
            self._missing_segments(set(nums), rseg, ridx, wseg_m, totals)
        for num in [n for n in nums if n < rseg]:
            logger.info("DISKQUEUE(%s) removing consumed segment %d", self.name, num)
            remove_file(self._seg_path(num))
            remove_file(self._ack_path(num))
        nums = [n for n in nums if n >= rseg]
        if rseg not in nums:
            rseg = nums[0] if nums else max(rseg, wseg_m + (1 if woff_m else 0))
            roff = ridx = 0
        for i, num in enumerate(nums):
            seg = Segment(num)
            path = self._seg_path(num)
            size = os.path.getsize(path)
            if num < wseg_m and num in totals:
                seg.total = totals[num]
                seg.end = size
            else:
                base, start = 0, 0
                if num == wseg_m and num in totals and woff_m <= size:
                    base, start = totals[num], woff_m
                scan = scan_file(path, start, self.max_msg_size)
                seg.total = base + scan.count
                seg.end = size
                if scan.damaged and i == len(nums) - 1 and scan.damaged[-1][1] == size:
                    # the newest segment ends in a torn record (a crash mid-write)
                    cut = scan.damaged.pop()[0]
                    scan.estimates.pop()
                    logger.warning("DISKQUEUE(%s) cutting a torn record at %d of %s",
                                   self.name, cut, path)
                    os.truncate(path, cut)
                    seg.end = cut
                if scan.damaged:
                    seg.damaged = dict(scan.damaged)
                    self._log_damage(path, scan.describe(scan.damaged), scan.lost_estimate(),
                                     exact=False)
            try:
                acks_size = os.path.getsize(self._ack_path(num))
            except FileNotFoundError:
                acks_size = 0
            if num == rseg:
                seg.skip = {o for o in self._load_acks(num) if o >= roff}
                seg.done = ridx + len(seg.skip)
            else:
                seg.acks_on_disk = acks_size // 4
                seg.done = seg.acks_on_disk
            if acks_size:
                seg.acks = AppendFile(self._ack_path(num), acks_size)
            self._segs[num] = seg
        # the newest segment takes the writes
        if nums:
            wseg = nums[-1]
            last = self._segs[wseg]
            wsize = last.end or 0
            last.end = None
        else:
            wseg, wsize = rseg, 0
            self._segs[wseg] = Segment(wseg)
        self._wseg = wseg
        self._wfile = AppendFile(self._seg_path(wseg), wsize)
        self._rseg, self._rpos, self._ridx = rseg, roff, ridx
        depth = 0
        for num, seg in self._segs.items():
            if num >= rseg:
                depth += seg.total - (ridx + len(seg.skip or ()) if num == rseg else seg.done)
        self._depth = max(0, depth)
        # fully acked sealed segments left by a crash
        for num in [n for n, s in self._segs.items()
                    if n < self._wseg and n != rseg and s.total and s.done >= s.total]:
            self._drop_segment(num)
        if self._wfile.size >= self.max_bytes_per_file:
            self._roll()
        if self._depth:
            logger.info("DISKQUEUE(%s) restored %d messages in %d segment(s)",
                        self.name, self._depth, len(self._segs))

    def _missing_segments(self, present: set[int], rseg: int, ridx: int, wseg: int,
                          totals: dict[int, int]) -> None:
        """Warn about segments the metadata counts but the data path no longer has."""
        for num in sorted(totals):
            if num < rseg or num > wseg or num in present:
                continue
            unread = totals[num] - (ridx if num == rseg else 0)
            if unread > 0 or num < wseg:
                logger.warning("DISKQUEUE(%s) segment file %s is missing: %d message(s) "
                               "lost", self.name, self._seg_path(num), max(0, unread))

    def _log_damage(self, path: str, where: str, lost: int, *, exact: bool) -> None:
        logger.warning("DISKQUEUE(%s) damaged data in %s (%s): %s%d message(s) lost, the "
                       "records around it are kept; the file is saved as %s.bad once read",
                       self.name, path, where, "" if exact else "about ", lost, path)

    def _load_acks(self, num: int) -> list[int]:
        try:
            with open(self._ack_path(num), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        n = len(data) // 4
        return list(struct.unpack_from(f"<{n}I", data)) if n else []

    # ------------------------------------------------------------------ writing
    def _flush_buffers(self) -> list[int]:
        fds = []
        for f in self._retired:
            fds.append(f.flush())
        fds.append(self._wfile.flush())
        self._failed = None
        return [fd for fd in fds if fd >= 0]

    def flush_data(self) -> list[int]:
        """Syncable: write the buffers; the fds of the segments written since their last
        fsync (a cycle that only moved the read cursor fsyncs no data file)."""
        super().flush_data()
        return [f.fd for f in (*self._retired, self._wfile) if f.needs_sync()]

    def _roll(self) -> None:
        seg = self._segs[self._wseg]
        seg.end = self._wfile.size
        self._retired.append(self._wfile)
        self._wseg += 1
        self._segs[self._wseg] = Segment(self._wseg)
        self._wfile = AppendFile(self._seg_path(self._wseg), 0)
        if self.syncer is not None:
            self.syncer.request(self)
        # a fully acked segment can go once sealed
        if self.ack_mode and seg.num != self._rseg and seg.total and seg.done >= seg.total:
            self._drop_segment(seg.num)

    def _writer_of(self, num: int) -> AppendFile | None:
        if num == self._wseg:
            return self._wfile
        path = self._seg_path(num)
        for f in self._retired:
            if f.path == path:
                return f
        return None

    # ------------------------------------------------------------------ segments
    def _close_reader(self) -> None:
        if self._rfd >= 0:
            os.close(self._rfd)
            self._rfd = -1
        self._rbuf = b""
        self._rmv = memoryview(b"")
        self._rbuf_start = 0

    def _drop_segment(self, num: int) -> None:
        """Every record of a sealed segment is consumed: delete its files."""
        seg = self._segs.pop(num, None)
        if seg is None:
            return
        if seg.acks is not None:
            self._dirty_acks.pop(num, None)
            self._closing.append(seg.acks)
        writer = self._writer_of(num)
        if writer is not None and writer is not self._wfile:
            # consumed (from the cache) before it was written out: nothing to write
            self._retired.remove(writer)
            writer.buf.clear()
            self._closing.append(writer)
        if seg.damaged:
            self._keep_bad(self._seg_path(num))
        else:
            self._unlinks.append(self._seg_path(num))
        self._unlinks.append(self._ack_path(num))
        self._meta_dirty = True
        if self.syncer is not None:
            self.syncer.request(self)
        else:
            self._run_unlinks()

    def _keep_bad(self, path: str) -> None:
        try:
            os.rename(path, path + ".bad")
        except OSError as exc:
            logger.error("DISKQUEUE(%s) failed to rename bad file %s - %s", self.name, path, exc)

    def _quarantine_file(self, seg: Segment) -> None:
        self._segs.pop(seg.num, None)
        self._keep_bad(self._seg_path(seg.num))
        if seg.acks is not None:
            self._dirty_acks.pop(seg.num, None)
            self._closing.append(seg.acks)
        self._unlinks.append(self._ack_path(seg.num))
        self._meta_dirty = True
        if self.syncer is not None:
            self.syncer.request(self)

    def _ack_pos(self, pos: int) -> None:
        num = pos >> 56
        seg = self._segs.get(num)
        if seg is None:
            return
        acks = seg.acks
        if acks is None:
            acks = seg.acks = AppendFile(self._ack_path(num), 0)
        acks.append(_U32.pack(pos & 0xFFFFFFFF))
        self._dirty_acks[num] = acks
        seg.done += 1
        if seg.done >= seg.total and num < self._wseg and num != self._rseg:
            self._drop_segment(num)
        elif self.syncer is not None:
            self.syncer.request(self)

    # ------------------------------------------------------------------ sync (Syncable)
    def flush_acks(self) -> list[int]:
        if self._closed:
            return []
        fds = []
        for acks in self._dirty_acks.values():
            fd = acks.flush()
            if fd >= 0:
                fds.append(fd)
        self._dirty_acks.clear()
        return fds

    def sync_jobs(self) -> list[SyncJob]:
        if self._closed:
            return []
        now = time.monotonic()
        return self._file_jobs(
            self._meta_dirty and (not self.ack_mode or bool(self._unlinks)
                                  or now - self._meta_time >= min(self.sync_timeout,
                                                                  ACK_MODE_META_INTERVAL)),
            now)

    def sync_done(self, ok: bool) -> None:
        self._in_cycle = False
        for f in (*self._retired, self._wfile):
            f.sync_ended(ok)
        if ok:
            self._failed = None
            still = [f for f in self._retired if f.buf]
            for f in self._retired:
                if not f.buf:
                    f.close()
            self._retired = still
        self._close_idle()
        if self._closed:
            self._release_fds()

    def _meta_bytes(self) -> bytes:
        """Consumed-up-to cursor, flushed write end and per-segment totals."""
        if self.ack_mode and self._unacked:
            rseg, ridx, roff = unpack_pos(next(iter(self._unacked.values())))
        else:
            rseg, roff, ridx = self._rseg, self._rpos, self._ridx
        wseg = self._wseg
        wseg_total = self._segs[wseg].total if wseg in self._segs else 0
        if self._wfile.buf:  # cannot happen after a successful flush; stay conservative
            wseg_total = 0
        totals = {str(n): s.total for n, s in self._segs.items() if n >= rseg}
        totals[str(wseg)] = wseg_total
        doc = {"read": [rseg, roff, ridx], "write": [wseg, self._wfile.flushed],
               "totals": totals, "depth": self._depth}
        return json.dumps(doc, separators=(",", ":")).encode()

    # ------------------------------------------------------------------ lifecycle
    def sync_now(self) -> None:
        """Flush, fsync and write the metadata synchronously (shutdown, tests)."""
        fds = self._flush_buffers()
        ack_fds = self.flush_acks()
        for fd in fds + ack_fds:
            os.fsync(fd)
        for f in self._retired:
            f.close()
        self._retired = []
        write_atomic(self._meta_path(), self._meta_bytes())
        self._meta_dirty = False
        self._close_idle()
        self._run_unlinks()

    def close(self) -> None:
        """Persist everything and release the files (the data stays)."""
        if self._closed:
            return
        logger.info("DISKQUEUE(%s): closing", self.name)
        try:
            self.sync_now()
        except OSError as exc:
            logger.error("DISKQUEUE(%s) failed to sync on close - %s", self.name, exc)
        self._closed = True
        self._stop_syncing()

    def delete(self) -> None:
        """Release the files and remove every one of them."""
        logger.info("DISKQUEUE(%s): deleting", self.name)
        self._closed = True
        for num in list(self._segs):
            self._unlinks.append(self._seg_path(num))
            self._unlinks.append(self._ack_path(num))
        self._unlinks.append(self._meta_path())
        self._run_unlinks()
        self._stop_syncing()

    def _release_fds(self) -> None:
        self._close_reader()
        for f in [*self._retired, self._wfile, *self._closing,
                  *(s.acks for s in self._segs.values() if s.acks is not None)]:
            f.close()
        self._closing = []
