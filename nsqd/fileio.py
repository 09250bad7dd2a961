"""File helpers of the disk queue and the deferred store: a buffered append-only file,
atomic small-file writes, and removal that tolerates a missing file."""

from __future__ import annotations

import logging
import os

__all__ = ["AppendFile", "remove_file", "write_atomic"]

logger = logging.getLogger(__name__)


class AppendFile:
    """An append-only file with a user-space buffer (opened lazily, O_APPEND)."""

    __slots__ = ("buf", "fd", "flushed", "path", "size")

    def __init__(self, path: str, size: int = 0) -> None:
        self.path = path
        self.fd = -1
        self.buf = bytearray()
        self.size = size  # bytes in the file once ``buf`` is written
        self.flushed = size

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
