"""The files of a channel's deferred messages: time buckets and their release logs.

Files, in the channel's deferred directory::

    L0-IDX-GEN.dat    a level-0 bucket: records due in second IDX (wall clock)
    L1-IDX-GEN.dat    a level-1 bucket: records due in hour IDX
    L0-IDX-GEN.rel    offsets of the bucket's records released (write-through mode)
    meta.json         records and flushed size of each bucket (spares the restart scan)

``GEN`` makes each file name unique (a bucket can be written again after its first file
was loaded). At start-up every bucket is reloaded without its released records; a file
whose size is not the one in the metadata is rescanned: a torn record at its end is cut
off, damaged records elsewhere are skipped (loading resynchronises on the next valid
record) and their loss logged, as is a bucket file the metadata lists but the directory
lacks. :class:`BucketFiles` appends the records, writes the release logs and takes part
in the group commit for :class:`~nsqd.deferred_store.DeferredStore`, which holds the
heap and the runs.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import re
import struct
import time

from .backend import Msg
from .fileio import AppendFile, SyncedFiles, remove_file
from .records import encode_due_records, encode_record, scan_file
from .syncer import Syncer, SyncJob

__all__ = ["Bucket", "BucketFiles", "HeapEntry"]

logger = logging.getLogger(__name__)

NS = 1_000_000_000
#: level-0 bucket width and level-1 bucket width (ns)
WIDTH0 = NS
WIDTH1 = 3600 * NS
#: bytes buffered per bucket before they are written out
FLUSH_BYTES = 64 * 1024

_U32 = struct.Struct("<I")
_NAME = re.compile(r"L([01])-(\d+)-(\d+)\.dat")

#: a deferred message held in memory: ``(due, seq, msg, bucket, offset)``: its monotonic
#: due time, a tie-breaker (entries sort by due time, then arrival), the message, and in
#: write-through mode the bucket and offset of its record (else None and 0). A plain
#: tuple: the heap and the sorted runs compare them at C speed, and millions are cheap.
HeapEntry = tuple[float, int, Msg, "Bucket | None", int]


class Bucket:
    """One time bucket's file, release log and loading state."""

    __slots__ = ("damaged", "end", "entries", "file", "gen", "idx", "level", "load_off",
                 "loaded", "opened", "records", "rel", "rel_count", "skip")

    def __init__(self, level: int, idx: int, gen: int, file: AppendFile,
                 records: int = 0) -> None:
        self.level = level
        self.idx = idx
        self.gen = gen
        self.file = file
        self.records = records      # records in the file
        self.rel: AppendFile | None = None
        self.rel_count = 0          # records released (write-through)
        self.skip: set[int] | None = None  # offsets released before a restart
        self.opened = False         # past the horizon: new messages go to the heap
        self.loaded = False         # every record up to ``end`` is in the heap
        self.load_off = 0
        self.end = 0
        self.entries: list[HeapEntry] = []  # loaded so far, sorted into a run once complete
        #: damaged byte ranges (start -> end) loading skips
        self.damaged: dict[int, int] | None = None

    @property
    def start_ns(self) -> int:
        return self.idx * (WIDTH0 if self.level == 0 else WIDTH1)

    @property
    def name(self) -> str:
        return f"L{self.level}-{self.idx}-{self.gen}"

    def path(self, directory: str, ext: str = "dat") -> str:
        return os.path.join(directory, f"{self.name}.{ext}")


class BucketFiles(SyncedFiles):
    """The bucket files of a :class:`~nsqd.deferred_store.DeferredStore` (its base).

    Args:
        directory: Where bucket files live; None keeps nothing on disk.
        write_through: Durable mode: every message is appended to its bucket file.
        syncer: Runs the syncs (None: only on close).
        max_msg_size: Largest body; a longer record is corrupt.
        sync_timeout: How often metadata is rewritten in write-through mode at most.
    """

    def __init__(self, directory: str | None, *, write_through: bool, syncer: Syncer | None,
                 max_msg_size: int, sync_timeout: float) -> None:
        self.directory = directory
        self.write_through = write_through and directory is not None
        self.max_msg_size = max_msg_size
        super().__init__(syncer, sync_timeout)
        self.label = f"DEFERRED({directory})"
        #: messages held, in memory or on disk
        self._count = 0
        #: every bucket by generation; ``_current`` is where (level, idx) appends go
        self._buckets: dict[int, Bucket] = {}
        self._current: dict[tuple[int, int], Bucket] = {}
        self._gen = 0
        self._pending: list[tuple[int, int]] = []  # (start_ns, gen) not opened yet
        self._h0 = 0
        self._h1 = 0
        self._dirty: dict[int, Bucket] = {}
        self._dirty_rel: dict[int, Bucket] = {}
        self._open_prev: dict[int, Bucket] = {}
        self._cycle_open: dict[int, Bucket] = {}
        self.spilled = 0

    # ------------------------------------------------------------------ paths and start-up
    def _meta_path(self) -> str:
        assert self.directory is not None
        return os.path.join(self.directory, "meta.json")

    def _path(self, bucket: Bucket, ext: str = "dat") -> str:
        assert self.directory is not None
        return bucket.path(self.directory, ext)

    def _open(self) -> None:
        assert self.directory is not None
        try:
            with open(self._meta_path(), "rb") as f:
                meta = json.loads(f.read()).get("buckets", {})
        except FileNotFoundError:
            meta = {}
        except (OSError, ValueError, AttributeError) as exc:
            logger.error("DEFERRED(%s) failed to read metadata, rescanning - %s",
                         self.directory, exc)
            meta = {}
        restored = 0
        names = sorted(os.listdir(self.directory))
        for name, known in meta.items() if isinstance(meta, dict) else ():
            if f"{name}.dat" not in names and isinstance(known, list) and known:
                logger.warning("DEFERRED(%s) bucket file %s.dat is missing: up to %s deferred "
                               "message(s) lost", self.directory,
                               os.path.join(self.directory, name), known[0])
        for fn in names:
            m = _NAME.fullmatch(fn)
            if not m:
                continue
            level, idx, gen = int(m.group(1)), int(m.group(2)), int(m.group(3))
            self._gen = max(self._gen, gen + 1)
            path = os.path.join(self.directory, fn)
            size = os.path.getsize(path)
            known = meta.get(fn[:-4])
            damaged = None
            if isinstance(known, list) and len(known) == 2 and known[1] == size:
                records = int(known[0])
            else:
                scan = scan_file(path, 0, self.max_msg_size)
                records = scan.count
                if scan.damaged and scan.damaged[-1][1] == size:
                    cut = scan.damaged.pop()[0]
                    scan.estimates.pop()
                    logger.warning("DEFERRED(%s) cutting a torn record at %d of %s",
                                   self.directory, cut, path)
                    os.truncate(path, cut)
                    size = cut
                if scan.damaged:
                    damaged = dict(scan.damaged)
                    self._log_damage(path, scan.describe(scan.damaged), scan.lost_estimate())
            bucket = Bucket(level, idx, gen, AppendFile(path, size), records)
            bucket.damaged = damaged
            rel_path = self._path(bucket, "rel")
            try:
                with open(rel_path, "rb") as f:
                    rel = f.read()
            except FileNotFoundError:
                rel = b""
            if rel:
                n = len(rel) // 4
                bucket.skip = set(struct.unpack_from(f"<{n}I", rel))
                bucket.rel_count = len(bucket.skip)
                bucket.rel = AppendFile(rel_path, len(rel))
            live = bucket.records - bucket.rel_count
            if live <= 0:
                self._unlinks.extend((path, rel_path))
                continue
            self._buckets[gen] = bucket
            self._current[(level, idx)] = bucket
            heapq.heappush(self._pending, (bucket.start_ns, gen))
            self._count += live
            restored += live
        if self._unlinks:
            paths, self._unlinks = self._unlinks, []
            for p in paths:
                remove_file(p)
        if restored:
            logger.info("DEFERRED(%s) restored %d deferred messages in %d bucket(s)",
                        self.directory, restored, len(self._buckets))

    def _log_damage(self, path: str, where: str, lost: int) -> None:
        logger.warning("DEFERRED(%s) damaged data in %s (%s): about %d deferred "
                       "message(s) lost, the records around it are kept", self.directory,
                       path, where, lost)

    def _damage_at(self, bucket: Bucket, off: int) -> int | None:
        """The record at ``off`` of ``bucket`` is damaged: where loading resumes (None:
        the file cannot be read; quarantine it). New damage is logged and counted."""
        known = bucket.damaged.get(off) if bucket.damaged else None
        if known is not None:
            return known
        try:
            scan = scan_file(bucket.file.path, off, self.max_msg_size, bucket.end)
        except OSError as exc:
            logger.error("DEFERRED(%s) failed to read %s - %s", self.directory,
                         bucket.file.path, exc)
            return None
        if not scan.damaged or scan.damaged[0][0] != off:
            return None
        old = bucket.damaged or {}
        new = [r for r in scan.damaged if r[0] not in old]
        skip = bucket.skip
        released = {o for o in skip if any(a <= o < b for a, b in new)} if skip else set()
        lost = max(0, scan.lost_estimate(old) - len(released))
        if skip:
            skip -= released
            bucket.rel_count -= len(released)
        bucket.records = max(bucket.rel_count, bucket.records - lost - len(released))
        self._count = max(0, self._count - lost)
        bucket.damaged = {**old, **dict(scan.damaged)}
        tail = scan.damaged[-1]
        if tail[0] >= scan.valid_end and tail[1] < bucket.end:
            bucket.end = tail[1]  # the file is shorter than it was
        self._log_damage(bucket.file.path, scan.describe(new), lost)
        return scan.damaged[0][1]

    # ------------------------------------------------------------------ appending
    def _bucket(self, level: int, idx: int) -> Bucket:
        """The bucket new messages of ``(level, idx)`` are appended to (created if none)."""
        bucket = self._current.get((level, idx))
        if bucket is not None:
            return bucket
        assert self.directory is not None
        if not self._buckets:
            os.makedirs(self.directory, exist_ok=True)
        gen = self._gen
        self._gen += 1
        bucket = Bucket(level, idx, gen, AppendFile(""))
        bucket.file.path = self._path(bucket)
        self._buckets[gen] = bucket
        self._current[(level, idx)] = bucket
        if (level == 0 and idx < self._h0) or (level == 1 and idx < self._h1):
            # a bucket within the horizon: its messages already go to the heap
            bucket.opened = bucket.loaded = True
        else:
            heapq.heappush(self._pending, (bucket.start_ns, gen))
        return bucket

    def _append(self, level: int, idx: int, msg: Msg, due_ns: int) -> tuple[Bucket, int]:
        bucket = self._bucket(level, idx)
        off = bucket.file.size
        self._appended(bucket, [encode_record(msg[0], msg[1], msg[2], msg[3], due_ns)], 1)
        return bucket, off

    def _appended(self, bucket: Bucket, records: list[bytes], count: int) -> None:
        """Append ``count`` encoded records (``records`` joined) to ``bucket``'s file."""
        f = bucket.file
        f.append(records[0] if len(records) == 1 else b"".join(records))
        bucket.records += count
        self._dirty[bucket.gen] = bucket
        self._meta_dirty = True
        if not bucket.opened:
            self.spilled += count
        if len(f.buf) >= FLUSH_BYTES and not self.write_through:
            try:
                f.flush()
            except OSError as exc:
                self._write_failed(exc)
        if self.syncer is not None and not self.write_through:
            self.syncer.active(self)

    def _append_group(self, idx: int, msgs: list[Msg], dues_ns: list[int]) -> None:
        self._appended(self._bucket(0, idx), encode_due_records(msgs, dues_ns), len(msgs))

    def _flush_dirty(self) -> list[int]:
        fds = []
        for bucket in self._dirty.values():
            fd = bucket.file.flush()
            if fd >= 0:
                fds.append(fd)
                self._open_prev[bucket.gen] = bucket
        self._dirty.clear()
        self._failed = None
        return fds

    # ------------------------------------------------------------------ releasing
    def _release(self, bucket: Bucket, off: int) -> None:
        self._release_cascaded(bucket, off)
        if bucket.loaded and bucket.rel_count >= bucket.records:
            self._drop(bucket)
        if self.syncer is not None:
            self.syncer.request(self)

    def _release_cascaded(self, bucket: Bucket, off: int) -> None:
        """Log the record at ``off`` as released (its copy lives on elsewhere)."""
        rel = bucket.rel
        if rel is None:
            rel = bucket.rel = AppendFile(self._path(bucket, "rel"))
        rel.append(_U32.pack(off))
        bucket.rel_count += 1
        self._dirty_rel[bucket.gen] = bucket

    def _drop(self, bucket: Bucket) -> None:
        if self._buckets.pop(bucket.gen, None) is None:
            return
        key = (bucket.level, bucket.idx)
        if self._current.get(key) is bucket:
            del self._current[key]
        self._dirty.pop(bucket.gen, None)
        self._dirty_rel.pop(bucket.gen, None)
        self._open_prev.pop(bucket.gen, None)
        bucket.file.buf.clear()
        self._closing.append(bucket.file)
        if bucket.rel is not None:
            self._closing.append(bucket.rel)
        self._unlinks.append(bucket.file.path)
        self._unlinks.append(self._path(bucket, "rel"))
        self._meta_dirty = True
        self._sync_or_clean_up()

    # ------------------------------------------------------------------ sync (Syncable)
    def _flush_buffers(self) -> list[int]:
        """A cycle starts: the files it writes stay open until it ends."""
        self._cycle_open = dict(self._open_prev)
        self._open_prev.clear()
        return self._flush_dirty()

    def flush_acks(self) -> list[int]:
        if self._closed:
            return []
        fds = []
        for bucket in list(self._dirty_rel.values()):
            if bucket.rel is not None:
                fd = bucket.rel.flush()
                if fd >= 0:
                    fds.append(fd)
        self._dirty_rel.clear()
        return fds

    def sync_jobs(self) -> list[SyncJob]:
        if self._closed or self.directory is None:
            return []
        now = time.monotonic()
        return self._file_jobs(
            self._meta_dirty and bool(self._buckets) and (
                not self.write_through or now - self._meta_time >= self.sync_timeout),
            now)

    def sync_done(self, ok: bool) -> None:
        self._in_cycle = False
        # files written in this cycle stay open for the next; the others are closed
        for gen, bucket in self._cycle_open.items():
            if gen not in self._open_prev and gen not in self._dirty:
                bucket.file.close()
        self._cycle_open = {}
        self._close_idle()
        if self._closed:
            self._release_fds()

    def _meta_bytes(self) -> bytes:
        doc = {"buckets": {b.name: [b.records, b.file.flushed]
                           for b in self._buckets.values() if not b.file.buf}}
        return json.dumps(doc, separators=(",", ":")).encode()

    def _release_fds(self) -> None:
        for bucket in self._buckets.values():
            bucket.file.close()
            if bucket.rel is not None:
                bucket.rel.close()
        self._close_idle()
