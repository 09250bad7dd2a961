"""A channel's deferred messages (DPUB, REQ with a delay): RAM for the next seconds only.

NSQ keeps every deferred message in a heap in memory, loses them all on a crash and
their delay on a restart. Here a message due within the next few seconds waits in a
heap in memory; one due later is appended to a *time bucket* file on disk, keyed by its
wall-clock due time, and comes back into the heap shortly before its bucket begins:

* level 0: one-second buckets, loaded ``LOOKAHEAD`` seconds ahead (in chunks, so a
  bucket of 100k messages never stalls the event loop), then sorted once by due time
  into a *run*: runs are released from their front, which costs far less than a heap
  (the heap only takes messages due within the next seconds when they are published);
* level 1: one-hour buckets for messages due more than an hour ahead; an hour before it
  begins, a level-1 bucket is *cascaded*: its records are re-filed into level-0 buckets.

Memory thus holds about ``rate x (LOOKAHEAD + 1 s)`` messages, whatever the backlog, and
delays of days cost a file per hour (the files: :mod:`nsqd.deferred_buckets`). Records
are :mod:`nsqd.records`' with a due time; due times are wall-clock nanoseconds, so a
restart keeps every remaining delay.

Two modes:

* default: a message is on disk *or* in the heap; a loaded bucket file is deleted and
  the heap is written back to buckets on a clean shutdown;
* write-through (durable mode, ``--sync-every=1``): every message is appended to its
  bucket file, DPUB waits for the group commit, and a message released from the heap
  appends its offset to the bucket's ``.rel`` log (always after the requeued copy it was
  turned into reached the OS); a restart reloads each bucket without released records,
  and a bucket is deleted once every record in it was released.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
import os
import time
from collections.abc import Callable, Sequence

import trio

from .backend import BackendError, Msg
from .deferred_buckets import NS, WIDTH0, WIDTH1, Bucket, BucketFiles, HeapEntry
from .fileio import remove_file, write_atomic
from .records import DUE_FIELDS, DUE_FIXED, DUE_FLAG, record_format
from .syncer import Syncer

__all__ = ["DeferredStore"]

logger = logging.getLogger(__name__)

#: level-0 buckets are loaded this far ahead of their start
LOOKAHEAD = 2 * NS
#: level-1 buckets are cascaded this far ahead of their start
CASCADE_AHEAD = 3600 * NS
#: records loaded or cascaded per :meth:`DeferredStore.advance` call
STEP_RECORDS = 4096
#: loading pauses while the heap holds this many messages (a restart after a long outage)
HEAP_CAP = 1_000_000
#: bytes read from a bucket file at a time while loading
LOAD_CHUNK = 512 * 1024


def _read_chunk(path: str, offset: int, size: int) -> bytes:
    """Read ``size`` bytes of a bucket file (in a worker thread); b"" if it fails."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, size, offset)
        finally:
            os.close(fd)
    except OSError as exc:
        logger.error("DEFERRED failed to read %s - %s", path, exc)
        return b""


class DeferredStore(BucketFiles):
    """The deferred messages of one channel.

    Args:
        directory: Where bucket files live; None keeps everything in memory (ephemeral).
        write_through: Durable mode (see the module docstring).
        syncer: Runs the syncs (None: only on close).
        max_msg_size: Largest body; a longer record is corrupt.
        wake: Called with a monotonic due time when a message becomes the earliest.
        clock: Monotonic clock (trio's by default).
        wall_ns: Wall clock in ns (``time.time_ns`` by default).
    """

    def __init__(self, directory: str | None, *, write_through: bool = False,
                 syncer: Syncer | None = None, max_msg_size: int = 1024 * 1024,
                 wake: Callable[[DeferredStore, float], None] | None = None,
                 clock: Callable[[], float] = trio.current_time,
                 wall_ns: Callable[[], int] = time.time_ns,
                 sync_timeout: float = 2.0) -> None:
        super().__init__(directory, write_through=write_through, syncer=syncer,
                         max_msg_size=max_msg_size, sync_timeout=sync_timeout)
        self._wake = wake
        #: the daemon's deferred loop serves this store (set and cleared by that loop)
        self.watched = False
        self._clock = clock
        self._wall_ns = wall_ns
        self.heap: list[HeapEntry] = []
        #: loaded level-0 buckets, each sorted by due time, in bucket order
        self._runs: collections.deque[collections.deque[HeapEntry]] = collections.deque()
        self._runs_len = 0
        self._seq = itertools.count()
        self._work: list[Bucket] = []  # opened, not loaded yet
        self._offset_ns = 0
        if directory is not None:
            self._sync_clock()
            if os.path.isdir(directory):
                self._open()
            self._advance_horizons()

    def set_wake(self, wake: Callable[[DeferredStore, float], None] | None) -> None:
        """Call ``wake(store, due)`` from now on when a message becomes the earliest (or,
        with ``due`` infinite, when the store has buckets to load and is not watched)."""
        self._wake = wake

    # ------------------------------------------------------------------ clocks
    def _sync_clock(self) -> None:
        self._offset_ns = self._wall_ns() - int(self._clock() * NS)

    def _to_wall(self, due: float) -> int:
        return self._offset_ns + int(due * NS)

    # ------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def next_due(self) -> float | None:
        """The earliest due time in memory (monotonic), if any."""
        runs = self._runs
        while runs and not runs[0]:
            runs.popleft()
        if runs:
            r = runs[0][0][0]
            return min(r, self.heap[0][0]) if self.heap else r
        return self.heap[0][0] if self.heap else None

    def in_memory(self) -> int:
        """Deferred messages held in memory."""
        return len(self.heap) + self._runs_len + sum(len(b.entries) for b in self._work)

    def has_work(self) -> bool:
        """Buckets wait to be loaded or cascaded."""
        return bool(self._work) or bool(self._pending)

    # ------------------------------------------------------------------ push / pop
    def push(self, msg: Msg, due: float) -> None:
        """Hold ``msg`` until the monotonic time ``due``.

        Raises:
            BackendError: write-through mode and the disk refuses writes.
        """
        self.push_many((msg,), (due,))

    def push_many(self, msgs: Sequence[Msg], dues: Sequence[float]) -> None:
        """Hold each message until its monotonic due time (a run of DPUBs).

        Raises:
            BackendError: write-through mode and the disk refuses writes (the messages
            before the failing one are held).
        """
        if self._closed:
            raise BackendError("exiting")
        if self._failed is not None:
            try:
                self._flush_dirty()
            except OSError as exc:
                raise BackendError(f"write failed - {exc}") from exc
        place = self._place
        offset = self._offset_ns
        earliest = math.inf  # of those that went to the heap
        placed = 0
        # messages for a level-0 bucket past the horizon (the bulk of a DPUB run) are
        # encoded together and appended to their bucket at once
        spill = self.directory is not None
        h0, h1 = self._h0, self._h1
        group_idx = -1
        group: list[Msg] = []
        group_due: list[int] = []
        try:
            for msg, due in zip(msgs, dues, strict=True):
                due_ns = offset + int(due * NS)
                i0 = due_ns // WIDTH0
                if spill and i0 >= h0 and due_ns // WIDTH1 < h1:
                    if i0 != group_idx:
                        if group:
                            self._append_group(group_idx, group, group_due)
                            placed += len(group)
                            group, group_due = [], []
                        group_idx = i0
                    group.append(msg)
                    group_due.append(due_ns)
                    continue
                if place(msg, due, due_ns) and due < earliest:
                    earliest = due
                placed += 1
            if group:
                self._append_group(group_idx, group, group_due)
                placed += len(group)
        except OSError as exc:
            raise BackendError(f"write failed - {exc}") from exc
        finally:
            if placed:
                self._count += placed
                if self.write_through and self.syncer is not None:
                    self.syncer.durable_write(self)
                wake = self._wake
                if wake is not None and (earliest < math.inf or not self.watched):
                    wake(self, earliest)

    def _place(self, msg: Msg, due: float, due_ns: int) -> bool:
        """File or heap ``msg``; return True if it went into the heap."""
        if self.directory is None:
            heapq.heappush(self.heap, (due, next(self._seq), msg, None, 0))
            return True
        i1 = due_ns // WIDTH1
        if i1 >= self._h1:
            self._append(1, i1, msg, due_ns)
            return False
        i0 = due_ns // WIDTH0
        if i0 >= self._h0:
            self._append(0, i0, msg, due_ns)
            return False
        if self.write_through:
            bucket, off = self._append(0, i0, msg, due_ns)
            heapq.heappush(self.heap, (due, next(self._seq), msg, bucket, off))
        else:
            heapq.heappush(self.heap, (due, next(self._seq), msg, None, 0))
        return True

    def pop_due(self, now: float) -> list[Msg]:
        """Remove and return every message due at ``now`` (monotonic), earliest first."""
        heap = self.heap
        runs = self._runs
        out: list[Msg] = []
        append = out.append
        pop = heapq.heappop
        inf = math.inf
        while True:
            h = heap[0][0] if heap else inf
            limit = h if h < now else now
            while runs:
                run = runs[0]
                taken = 0
                popleft = run.popleft
                while run and run[0][0] <= limit:
                    _, _, msg, bucket, off = popleft()
                    append(msg)
                    taken += 1
                    if bucket is not None:
                        self._release(bucket, off)
                self._runs_len -= taken
                if run:
                    break
                runs.popleft()
            if h > now:
                break
            _, _, msg, bucket, off = pop(heap)
            append(msg)
            if bucket is not None:
                self._release(bucket, off)
        self._count -= len(out)
        return out

    # ------------------------------------------------------------------ loading
    def _advance_horizons(self) -> None:
        wall = self._offset_ns + int(self._clock() * NS)
        h1 = (wall + CASCADE_AHEAD) // WIDTH1 + 1
        h0 = (wall + LOOKAHEAD) // WIDTH0 + 1
        self._h1 = max(self._h1, h1)
        self._h0 = max(self._h0, h0)
        pending = self._pending
        while pending:
            bucket = self._buckets.get(pending[0][1])
            if bucket is None or bucket.opened:
                heapq.heappop(pending)
                continue
            level, idx = bucket.level, bucket.idx
            if (level == 0 and idx >= self._h0) or (level == 1 and idx >= self._h1):
                break
            heapq.heappop(pending)
            bucket.opened = True
            bucket.end = bucket.file.size
            self._work.append(bucket)
        if len(self._work) > 1:
            self._work.sort(key=lambda b: b.start_ns)

    def _start_advance(self) -> bool:
        """Bring the horizons up to now; False when there is nothing to load (closed, RAM only)."""
        if self._closed or self.directory is None:
            return False
        self._sync_clock()
        self._advance_horizons()
        return True

    def _heap_full(self) -> bool:
        return len(self.heap) + self._runs_len >= HEAP_CAP

    def advance(self, budget: int = STEP_RECORDS) -> bool:
        """Open buckets that came within the horizon and load about ``budget`` records.

        Reads the files in the calling thread (tests, shutdown); the daemon uses
        :meth:`advance_async`. Returns True if loading work remains.
        """
        if not self._start_advance():
            return False
        while budget > 0 and self._work:
            if self._heap_full():
                return False
            budget -= self._load_step(self._work[0])
        return bool(self._work)

    async def advance_async(self, budget: int = STEP_RECORDS) -> bool:
        """:meth:`advance`, reading the files in a worker thread.

        A bucket written long ago may no longer be in the page cache: its read must not
        stall the event loop (and the release of messages that are due meanwhile).
        """
        if not self._start_advance():
            return False
        while budget > 0 and self._work:
            if self._heap_full():
                return False
            bucket = self._work[0]
            plan = self._read_plan(bucket)
            if plan is None:
                return True
            data = await trio.to_thread.run_sync(_read_chunk, *plan) if plan[2] else b""
            if (self._closed or self._buckets.get(bucket.gen) is not bucket or bucket.loaded
                    or bucket.load_off != plan[1]):
                continue  # emptied, deleted or closed meanwhile
            budget -= self._load_chunk(bucket, data, plan[2])
            self._pop_loaded()
        return bool(self._work)

    def _pop_loaded(self) -> None:
        while self._work and self._work[0].loaded:
            self._work.pop(0)

    def _read_plan(self, bucket: Bucket) -> tuple[str, int, int] | None:
        """(path, offset, size) of the bucket's next chunk; None: its data is unwritten."""
        f = bucket.file
        if f.flushed < bucket.end:
            try:
                f.flush()
            except OSError as exc:
                logger.error("DEFERRED(%s) failed to write %s - %s", self.directory, f.path, exc)
                return None
        want = min(bucket.end - bucket.load_off, max(LOAD_CHUNK, self.max_msg_size + 64))
        return f.path, bucket.load_off, want

    def _load_step(self, bucket: Bucket) -> int:
        """Read and load one chunk of ``bucket`` in this thread; return records loaded."""
        plan = self._read_plan(bucket)
        if plan is None:
            return STEP_RECORDS
        n = self._load_chunk(bucket, _read_chunk(*plan) if plan[2] else b"", plan[2])
        self._pop_loaded()
        return n

    def _load_chunk(self, bucket: Bucket, data: bytes, want: int) -> int:
        """Load (or cascade) the records of ``data``, read at the bucket's load offset;
        return how many."""
        f = bucket.file
        i = 0
        n = 0
        limit = len(data)
        mv = memoryview(data)
        entries = bucket.entries
        seq = self._seq
        skip = bucket.skip
        cascading = bucket.level == 1
        write_through = self.write_through
        base = bucket.load_off
        offset = self._offset_ns
        unpack = DUE_FIELDS.unpack_from
        fields = DUE_FIELDS.size
        max_size = self.max_msg_size + DUE_FIXED
        bad = False
        if want > 0 and len(data) < min(want, 4 + fields):
            data = b""  # the file is shorter than it was
            limit = 0
        while i + 8 <= limit:
            size = int.from_bytes(data[i:i + 4], "little")
            e = i + 8 + (size & ~DUE_FLAG)
            fmt = 0
            if size & DUE_FLAG and DUE_FIXED <= size & ~DUE_FLAG <= max_size \
                    and base + e <= bucket.end:
                if e > limit:
                    break
                fmt = record_format(mv, i, e)
            if not fmt:
                resume = self._damage_at(bucket, base + i)
                if resume is None:
                    logger.error("DEFERRED(%s) unreadable record at %d of %s; saving it as "
                                 "%s.bad", self.directory, base + i, f.path, f.path)
                    bad = True
                    break
                i = resume - base
                continue
            p, stop = (i + 4, e - 4) if fmt == 2 else (i + 8, e)
            due_ns, ts, attempts, msg_id = unpack(data, p)
            off = base + i
            msg = (msg_id, data[p + fields:stop], ts, attempts)
            i = e
            n += 1
            if skip and off in skip:
                continue
            due = (due_ns - offset) / NS
            if cascading:
                self._place(msg, due, due_ns)
                if write_through:
                    self._release_cascaded(bucket, off)
            elif write_through:
                entries.append((due, next(seq), msg, bucket, off))
            else:
                entries.append((due, next(seq), msg, None, 0))
        if not bad and i == 0 and n == 0 and want > 0:
            # not even one whole record where the file says there is one
            resume = self._damage_at(bucket, base)
            if resume is None:
                bad = True
            else:
                i = resume - base
        bucket.load_off = base + i
        if bad:
            self._quarantine(bucket)
            return max(n, 1)
        if bucket.load_off >= bucket.end:
            bucket.loaded = True
            self._add_run(bucket)
            # cascaded, or all in the heap (default mode), or all released: file done
            if cascading or not self.write_through or bucket.rel_count >= bucket.records:
                self._drop(bucket)
            due = self.next_due()
            if self._wake is not None and due is not None:
                self._wake(self, due)
        return max(n, 1)

    def _add_run(self, bucket: Bucket) -> None:
        entries, bucket.entries = bucket.entries, []
        if not entries:
            return
        entries.sort()
        runs = self._runs
        if runs and runs[-1] and runs[-1][-1][0] > entries[0][0]:
            # overlaps the previous run (two files of one second): merge them
            entries = sorted([*runs.pop(), *entries])
        runs.append(collections.deque(entries))
        self._runs_len += len(entries)

    def _quarantine(self, bucket: Bucket) -> None:
        lost = 0
        if not bucket.loaded:
            lost = max(0, bucket.records - bucket.rel_count - len(bucket.entries))
            self._add_run(bucket)
        self._count = max(0, self._count - lost)
        path = bucket.file.path
        logger.error("DEFERRED(%s) quarantining %s: %d message(s) lost", self.directory, path, lost)
        bucket.loaded = True
        self._buckets.pop(bucket.gen, None)
        if self._current.get((bucket.level, bucket.idx)) is bucket:
            del self._current[(bucket.level, bucket.idx)]
        self._dirty.pop(bucket.gen, None)
        self._open_prev.pop(bucket.gen, None)
        self._closing.append(bucket.file)
        try:
            os.rename(path, path + ".bad")
        except OSError as exc:
            logger.error("DEFERRED(%s) failed to rename %s - %s", self.directory, path, exc)
        if bucket in self._work:
            self._work.remove(bucket)

    # ------------------------------------------------------------------ admin
    def empty(self) -> None:
        """Drop every deferred message (channel emptied)."""
        self.heap.clear()
        self._runs.clear()
        self._runs_len = 0
        self._count = 0
        for bucket in list(self._buckets.values()):
            self._drop(bucket)
        self._pending.clear()
        self._work.clear()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Persist every deferred message (default mode: the heap goes back to disk)."""
        if self._closed:
            return
        if self.directory is not None:
            if not self.write_through:
                # half-loaded buckets: load the rest, the heap is then written back whole
                self._pop_loaded()
                while self._work:
                    self._load_step(self._work[0])
                held = [*self.heap, *(e for run in self._runs for e in run)]
                if held:
                    logger.info("DEFERRED(%s): writing %d in-memory deferred messages to disk",
                                self.directory, len(held))
                    self._sync_clock()
                    self._h0 = 0  # nothing is opened any more: every message to a bucket
                    self._current = {k: b for k, b in self._current.items() if not b.opened}
                    self.heap, self._runs, self._runs_len = [], collections.deque(), 0
                    for due, _, msg, _, _ in held:
                        self._place(msg, due, self._to_wall(due))
            try:
                fds = [b.file.flush() for b in self._buckets.values()]
                fds += [b.rel.flush() for b in self._buckets.values() if b.rel is not None]
                for fd in fds:
                    if fd >= 0:
                        os.fsync(fd)
                self._run_unlinks()
                if self._buckets:
                    write_atomic(self._meta_path(), self._meta_bytes())
                else:
                    remove_file(self._meta_path())
            except OSError as exc:
                logger.error("DEFERRED(%s) failed to persist - %s", self.directory, exc)
        self._closed = True
        self._stop_syncing()

    def delete(self) -> None:
        """Remove every deferred message and file."""
        self.heap.clear()
        self._runs.clear()
        self._count = 0
        self._closed = True
        if self.directory is not None:
            for bucket in self._buckets.values():
                self._unlinks.append(bucket.file.path)
                self._unlinks.append(self._path(bucket, "rel"))
            self._unlinks.append(self._meta_path())
            self._run_unlinks()
            try:
                os.rmdir(self.directory)
            except OSError:
                pass
        self._stop_syncing()

    def statistics(self) -> dict[str, int]:
        return {"count": self._count, "in_memory": self.in_memory(),
                "buckets": len(self._buckets), "spilled": self.spilled}
