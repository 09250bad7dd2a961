"""File helpers of the disk queue and the deferred store: a buffered append-only file,
atomic small-file writes, removal that tolerates a missing file, and the sync-cycle
bookkeeping both stores share (:class:`SyncedFiles`)."""

from __future__ import annotations

import logging
import os
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .syncer import Syncer, SyncJob

__all__ = ["AppendFile", "SyncedFiles", "remove_file", "write_atomic"]

logger = logging.getLogger(__name__)


class AppendFile:
    """An append-only file with a user-space buffer (opened lazily, O_APPEND)."""

    __slots__ = ("buf", "fd", "flushed", "path", "size", "synced", "syncing")

    def __init__(self, path: str, size: int = 0) -> None:
        self.path = path
        self.fd = -1
        self.buf = bytearray()
        self.size = size  # bytes in the file once ``buf`` is written
        self.flushed = size
        self.synced = -1  # bytes a completed fsync covered (-1: none yet)
        self.syncing = -1  # bytes the fsync under way covers

    def needs_sync(self) -> bool:
        """Whether the (written-out) file has bytes no fsync covered yet; if so, they
        are taken as covered by the fsync about to start (:meth:`sync_ended`)."""
        if self.fd < 0 or self.flushed == self.synced:
            return False
        self.syncing = self.flushed
        return True

    def sync_ended(self, ok: bool) -> None:
        """The fsync :meth:`needs_sync` announced ended (``ok``: it succeeded)."""
        if ok and self.syncing >= 0:
            self.synced = self.syncing
        self.syncing = -1

    def append(self, data: bytes) -> None:
        self.buf += data
        self.size += len(data)

    def extend(self, parts: list[bytes], nbytes: int) -> None:
        self.buf += b"".join(parts)
        self.size += nbytes

    def flush(self) -> int:
        """Write the buffer to the OS; return the fd (-1 if never opened).

        Raises:
            OSError: the write failed; what was not written stays buffered.
        """
        buf = self.buf
        if buf:
            if self.fd < 0:
                self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                                  | os.O_CLOEXEC, 0o600)
            while buf:
                n = os.write(self.fd, buf)
                del buf[:n]
                self.flushed += n
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def write_atomic(path: str, data: bytes, *, mode: int = 0o600, sync_dir: bool = False) -> None:
    """Write a small file atomically: temp file, fsync, rename (then fsync the
    directory too when ``sync_dir``, so the rename itself survives a crash)."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if sync_dir:
        dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def remove_file(path: str) -> None:
    """Delete a file; a missing one is fine, another failure is logged."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.error("failed to remove %s - %s", path, exc)


def _remove_files(paths: list[str]) -> None:
    """:func:`remove_file` each path."""
    for path in paths:
        remove_file(path)


class SyncedFiles:
    """The state and steps a file-backed store shares with every other one the
    :class:`~nsqd.syncer.Syncer` syncs: buffered writes flushed at the start of a cycle,
    files closed and unlinked only once no cycle uses them, a write failure remembered.

    Subclasses name themselves in :attr:`label` and provide :meth:`_flush_buffers`
    (write what is buffered; return the fds to fsync), :meth:`_release_fds` and their
    metadata file (:meth:`_meta_path`, :meth:`_meta_bytes`).
    """

    label = "FILES"

    def __init__(self, syncer: Syncer | None, sync_timeout: float) -> None:
        self.syncer = syncer
        self.sync_timeout = sync_timeout
        self._failed: OSError | None = None
        self._closed = False
        self._in_cycle = False
        self._closing: list[AppendFile] = []  # to close once no cycle uses the fd
        self._unlinks: list[str] = []
        self._meta_dirty = False
        self._meta_time = 0.0

    def _flush_buffers(self) -> list[int]:
        raise NotImplementedError

    def _release_fds(self) -> None:
        raise NotImplementedError

    def _write_failed(self, exc: OSError) -> None:
        if self._failed is None:
            logger.error("%s failed to write - %s", self.label, exc)
        self._failed = exc

    def flush_data(self) -> list[int]:
        """Syncable: a cycle starts; write the buffers, return the fds to fsync."""
        if self._closed:
            return []
        self._in_cycle = True
        try:
            return self._flush_buffers()
        except OSError as exc:
            self._write_failed(exc)
            raise

    def flush_acks(self) -> list[int]:
        """Syncable: write buffered acknowledgement logs; return their fds."""
        raise NotImplementedError

    def sync_jobs(self) -> list[SyncJob]:
        """Syncable: the cycle's work once everything is fsync'ed."""
        raise NotImplementedError

    def sync_done(self, ok: bool) -> None:
        """Syncable: the cycle ended."""
        raise NotImplementedError

    def _meta_path(self) -> str:
        raise NotImplementedError

    def _meta_bytes(self) -> bytes:
        raise NotImplementedError

    def _file_jobs(self, write_meta: bool, now: float) -> list[SyncJob]:
        """A cycle's post-sync jobs: the metadata file if ``write_meta``, then the removals."""
        jobs: list[SyncJob] = []
        if write_meta:
            path, data = self._meta_path(), self._meta_bytes()
            self._meta_dirty = False
            self._meta_time = now
            jobs.append(lambda: None if self._closed else write_atomic(path, data))
        if self._unlinks:
            paths, self._unlinks = self._unlinks, []
            jobs.append(partial(_remove_files, paths))
        return jobs

    def _close_idle(self) -> None:
        for f in self._closing:
            f.close()
        self._closing = []

    def _run_unlinks(self) -> None:
        paths, self._unlinks = self._unlinks, []
        _remove_files(paths)

    def _sync_or_clean_up(self) -> None:
        """Files were retired: let the next cycle close and remove them, or do it now."""
        if self.syncer is not None:
            self.syncer.request(self)
        else:
            self._close_idle()
            self._run_unlinks()

    def _stop_syncing(self) -> None:
        """Closed or deleted: never synced again; the fds go once no cycle uses them."""
        if self.syncer is not None:
            self.syncer.forget(self)
        if not self._in_cycle:
            self._release_fds()
