"""nsq_to_file's per-topic writer: one output file at a time, rotation, gzip members.

A message is FIN'd only once its line is in the file and the file is fsync'ed (each
sync ends a gzip member, so a synced gzip file is always complete up to there). Files
are written in ``work_dir`` and moved to ``output_dir`` when closed, never over an
existing file (the ``<REV>`` number is raised instead).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio
from trio.lowlevel import ParkingLot

from client import Consumer, Message

from ._cli import ToolError

if TYPE_CHECKING:
    from .nsq_to_file import Options

__all__ = ["FileLogger", "filename_format", "strftime"]

logger = logging.getLogger("apps.nsq_to_file")

# Go's strftime subset (jehiah/go-strftime); anything else after % stays literal
_STRFTIME = frozenset("BbmAadHIMSYypZz%")


def strftime(fmt: str, when: float | None = None) -> str:
    """Format local time with the strftime directives NSQ's nsq_to_file knows."""
    out = []
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch == "%" and i + 1 < len(fmt):
            directive = fmt[i + 1]
            out.append(f"%{directive}" if directive in _STRFTIME else f"%%{directive}")
            i += 2
            continue
        out.append("%%" if ch == "%" else ch)
        i += 1
    return time.strftime("".join(out), time.localtime(when))


def filename_format(opts: Options, topic: str) -> str:
    """The topic's file name template (``<DATETIME>`` and ``<REV>`` still to fill).

    Raises:
        ValueError: ``<REV>`` is missing while gzip, rotation or a work dir needs it.
    """
    hostname = socket.gethostname()
    short = hostname.split(".", 1)[0]
    identifier = short
    if opts.host_identifier:
        identifier = opts.host_identifier.replace("<SHORT_HOST>", short).replace("<HOSTNAME>", hostname)
    fmt = opts.filename_format
    if opts.gzip or opts.rotate_size > 0 or opts.rotate_interval > 0 or opts.work_dir != opts.output_dir:
        if "<REV>" not in fmt:
            raise ValueError("missing <REV> in --filename-format when gzip, rotation, or work dir enabled")
    else:
        fmt = fmt.replace("<REV>", "")
    fmt = fmt.replace("<TOPIC>", topic).replace("<HOST>", identifier).replace("<PID>", str(os.getpid()))
    if opts.gzip and not fmt.endswith(".gz"):
        fmt += ".gz"
    return fmt


def _rev(template: str, rev: int) -> str:
    return template.replace("<REV>", f"-{rev:06d}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _link_exclusive(src: str, dst: str) -> None:
    os.link(src, dst)  # fails with FileExistsError rather than replacing dst
    os.unlink(src)


@dataclass
class _File:
    fd: int
    path: str
    template: str  # the name before <REV> was filled
    opened: float


class FileLogger:
    """Writes one topic's messages (one line each) into rotating files.

    Args:
        opts: nsq_to_file's options.
        topic: the topic consumed.
        consumer: its consumer (opened and closed by :meth:`run`).
        on_written: called with the number of messages made durable by each sync.
    """

    def __init__(self, opts: Options, topic: str, consumer: Consumer,
                 on_written: Callable[[int], object] | None = None) -> None:
        self.opts = opts
        self.topic = topic
        self.consumer = consumer
        self.template = filename_format(opts, topic)
        self.label = f"[{topic}/{opts.channel}]"
        self._on_written = on_written
        self.file: _File | None = None
        self.filename = ""  # current name with <DATETIME> filled in
        self.rev = 0
        self.filesize = 0
        self._compressor: zlib._Compress | None = None  # the open gzip member
        self._chunk: list[bytes] = []
        self._pending: list[Message] = []  # written, not handed to the syncer yet
        self._to_sync: list[Message] = []  # handed off: FIN'd after the next fsync
        self._sync_wanted = False  # an fsync is due even without messages (closing)
        self._syncing = False
        self._sync_dead = False
        self._sync_lot = ParkingLot()
        self._idle_lot = ParkingLot()
        self._name_second = -1
        self._name_cache = ""
        self._wait_scope: trio.CancelScope | None = None
        self._terminating = False
        self._hangup = False
        self.written = 0

    # ------------------------------------------------------------------ control

    def terminate(self) -> None:
        """Sync what was received, stop consuming, close (and move) the file."""
        self._terminating = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    def hangup(self) -> None:
        """Close (and move) the current file; the next message opens a new one."""
        self._hangup = True
        if self._wait_scope is not None:
            self._wait_scope.cancel()

    # ------------------------------------------------------------------ router

    async def run(self) -> None:
        """Consume and write until :meth:`terminate` (or the consumer closes)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._syncer)
            try:
                await self._route()
            finally:
                nursery.cancel_scope.cancel()

    async def _route(self) -> None:
        opts = self.opts
        # hand a batch to the syncer at half the in-flight window, so the other half
        # keeps arriving while it is fsync'ed
        max_batch = max(1, opts.max_in_flight // 2)
        rotate_size = opts.rotate_size
        consumer = self.consumer
        chunk, pending = self._chunk, self._pending
        next_tick = trio.current_time() + opts.sync_interval
        message: Message | None = None
        async with consumer:
            try:
                while not self._terminating:
                    message = None
                    with trio.move_on_at(next_tick) as self._wait_scope:
                        try:
                            message = await consumer.__anext__()
                        except StopAsyncIteration:
                            break
                    self._wait_scope = None
                    sync = False
                    if message is not None:
                        if not pending and self._needs_rotation():
                            await self._update_file()
                        while True:
                            body = message.body
                            chunk.append(body)
                            chunk.append(b"\n")
                            self.filesize += len(body) + 1
                            pending.append(message)
                            if rotate_size > 0 and self.filesize > rotate_size:
                                logger.info("%s %s currently %d bytes (> %d), rotating...", self.label,
                                            self._path(), self.filesize, rotate_size)
                                await self._update_file()  # syncs (and FINs) the full file first
                            if len(pending) >= max_batch or not consumer.buffered:
                                break
                            try:
                                message = await consumer.__anext__()
                            except StopAsyncIteration:
                                self._terminating = True
                                break
                        sync = True
                    elif trio.current_time() >= next_tick:
                        next_tick = trio.current_time() + opts.sync_interval
                        if self._needs_rotation():
                            if opts.skip_empty_files:
                                await self._close()
                            else:
                                await self._update_file()
                        sync = True
                    if sync and pending:
                        self._hand_off()
                    if self._hangup:
                        self._hangup = False
                        await self._close()
            finally:
                with trio.CancelScope(shield=True):
                    await self._sync()  # FIN before the consumer's close requeues
                    # after a failure, what was taken and not written goes back at once
                    for taken in (message, *self._pending, *self._to_sync):
                        if taken is not None and not taken.has_responded:
                            await taken.requeue(0, backoff=False)
                    await consumer.close()
                    await self._close()

    # ------------------------------------------------------------------ files

    def _path(self) -> str:
        return self.file.path if self.file is not None else "-"

    def _current_filename(self) -> str:
        second = int(time.time())
        if second != self._name_second:
            self._name_second = second
            self._name_cache = self.template.replace("<DATETIME>", strftime(self.opts.datetime_format))
        return self._name_cache

    def _needs_rotation(self) -> bool:
        if self.file is None:
            return True
        filename = self._current_filename()
        if filename != self.filename:
            logger.info("%s new filename %s, rotating...", self.label, filename)
            return True
        interval = self.opts.rotate_interval
        if interval > 0 and (age := time.monotonic() - self.file.opened) > interval:
            logger.info("%s %.3fs since last open, rotating...", self.label, age)
            return True
        size = self.opts.rotate_size
        if size > 0 and self.filesize > size:
            logger.info("%s %s currently %d bytes (> %d), rotating...", self.label, self.file.path,
                        self.filesize, size)
            return True
        return False

    def _write_out(self) -> None:
        chunk = self._chunk
        if not chunk or self.file is None:
            return
        data = b"".join(chunk)
        chunk.clear()
        if self.opts.gzip:
            if self._compressor is None:
                self._compressor = zlib.compressobj(self.opts.gzip_level, zlib.DEFLATED, 31)
            data = self._compressor.compress(data)
        if data:
            _write_all(self.file.fd, data)

    def _hand_off(self) -> None:
        """Write what is buffered, end the gzip member; the syncer fsyncs and FINs it."""
        file = self.file
        if file is not None:
            self._write_out()
            if self._compressor is not None:
                _write_all(file.fd, self._compressor.flush())
                self._compressor = None
        if self._pending:
            self._to_sync.extend(self._pending)
            self._pending.clear()
        if self._sync_lot:
            self._sync_lot.unpark()

    async def _syncer(self) -> None:
        """fsync the file, then FIN what it holds; batches handed off meanwhile wait and
        go together (one fsync at a time)."""
        try:
            await self._sync_loop()
        finally:
            self._sync_dead = True  # nobody waits for a syncer that is gone
            self._idle_lot.unpark_all()

    async def _sync_loop(self) -> None:
        while True:
            while not self._to_sync and not self._sync_wanted:
                await self._sync_lot.park()
            batch, self._to_sync = self._to_sync, []
            self._sync_wanted = False
            self._syncing = True
            try:
                file = self.file
                if file is not None:
                    try:
                        await trio.to_thread.run_sync(os.fsync, file.fd)
                    except OSError as exc:
                        raise ToolError(f"{self.label} failed syncing messages: {exc}") from None
                if batch:
                    logger.debug("%s syncing %d records to disk", self.label, len(batch))
                    for message in batch:
                        await message.finish()
                    self.written += len(batch)
                    if self._on_written is not None:
                        self._on_written(len(batch))
            finally:
                self._syncing = False
                self._idle_lot.unpark_all()

    async def _sync(self) -> None:
        """Hand off what is pending and wait until it is fsync'ed and FIN'd."""
        self._hand_off()
        if self.file is not None:
            self._sync_wanted = True
            self._sync_lot.unpark()
        while (self._to_sync or self._sync_wanted or self._syncing) and not self._sync_dead:
            await self._idle_lot.park()

    async def _close(self) -> None:
        file = self.file
        if file is None:
            return
        await self._sync()
        self.file = None
        os.close(file.fd)
        opts = self.opts
        if opts.work_dir == opts.output_dir:
            return
        src = file.path
        # path arithmetic on the tool's own directories; the move itself runs in a thread
        dst = os.path.join(opts.output_dir, os.path.relpath(src, opts.work_dir))  # noqa: ASYNC240
        logger.info("%s moving finished file %s to %s", self.label, src, dst)
        try:
            await trio.to_thread.run_sync(_link_exclusive, src, dst)
            return
        except FileExistsError:
            pass
        except OSError as exc:
            raise ToolError(f"{self.label} unable to move file from {src} to {dst}: {exc}") from None
        template = os.path.join(os.path.dirname(dst), os.path.basename(file.template))
        rev = self.rev + 1
        while True:
            logger.warning("%s destination file already exists: %s", self.label, dst)
            dst = _rev(template, rev)
            try:
                await trio.to_thread.run_sync(_link_exclusive, src, dst)
            except FileExistsError:
                rev += 1
                continue
            except OSError as exc:
                raise ToolError(f"{self.label} unable to rename file from {src} to {dst}: {exc}") from None
            logger.info("%s renamed finished file %s to %s to avoid overwrite", self.label, src, dst)
            return

    async def _update_file(self) -> None:
        await self._close()
        opts = self.opts
        filename = self._current_filename()
        self.rev = 0 if filename != self.filename else self.rev + 1
        self.filename = filename
        template = os.path.join(opts.work_dir, filename)
        try:
            os.makedirs(os.path.dirname(template) or ".", 0o770, exist_ok=True)
        except OSError as exc:
            raise ToolError(f"{self.label} unable to create dir: {exc}") from None
        flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC
        flags |= os.O_EXCL if opts.gzip or opts.rotate_interval > 0 else os.O_APPEND
        while True:
            path = _rev(template, self.rev)
            if opts.work_dir != opts.output_dir:
                # a name already taken in the output dir would only conflict on rename
                # local metadata calls on the tool's own directories, like os.open below
                final = os.path.join(opts.output_dir, os.path.relpath(path, opts.work_dir))  # noqa: ASYNC240
                try:
                    os.makedirs(os.path.dirname(final) or ".", 0o770, exist_ok=True)
                except OSError as exc:
                    raise ToolError(f"{self.label} unable to create dir: {exc}") from None
                if os.path.lexists(final):  # noqa: ASYNC240
                    logger.warning("%s output file already exists: %s", self.label, final)
                    self.rev += 1
                    continue
            try:
                fd = os.open(path, flags, 0o666)
            except FileExistsError:
                logger.warning("%s working file already exists: %s", self.label, path)
                self.rev += 1
                continue
            except OSError as exc:
                raise ToolError(f"{self.label} unable to open {path}: {exc}") from None
            size = os.fstat(fd).st_size
            if opts.rotate_size > 0 and size > opts.rotate_size:
                logger.info("%s %s currently %d bytes (> %d), rotating...", self.label, path, size,
                            opts.rotate_size)
                os.close(fd)
                self.rev += 1
                continue
            break
        logger.info("%s opening %s", self.label, path)
        self.file = _File(fd, path, template, time.monotonic())
        self.filesize = size
