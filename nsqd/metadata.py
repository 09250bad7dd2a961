"""nsqd's metadata file (``nsqd.dat``): its topics and channels and their paused flags.

:class:`MetadataFile` reads it at start-up, rewrites it (atomically, in a worker thread)
after every change, retrying while the disk refuses, and lets the request that made a
change wait for the write that covers it: a topic or channel created while the disk is
full is an error to its creator, not a 200 that a restart forgets.

Without the file (moved aside, or never written), :func:`discover_queues` finds the
topics and channels whose queue files are in the data path, so their messages stay.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Callable

import trio

from internal.gojson import JSON

from .backend import BackendError
from .fileio import write_atomic

__all__ = ["METADATA_FILE", "MetadataError", "MetadataFile", "discover_queues"]

logger = logging.getLogger(__name__)

METADATA_FILE = "nsqd.dat"

#: pause before retrying a failed write
RETRY = 1.0

_QUEUE_FILE = re.compile(r"(.+)\.tdq\.(?:meta\.json|\d{6,}\.dat)")
_DEFERRED_DIR = re.compile(r"(.+)\.deferred")


class MetadataError(BackendError):
    """The metadata file could not be written: a change would not survive a restart."""


class MetadataFile:
    """The metadata file of a data path and its writer.

    Args:
        path: The file (``<data-path>/nsqd.dat``).
        document: Builds the document to write (called in the event loop).
    """

    def __init__(self, path: str, document: Callable[[], dict[str, JSON]]) -> None:
        self.path = path
        self._document = document
        #: changes so far; a write covers every change made before it began
        self.changes = 0
        self._saved = 0
        self._tried = 0
        self._error: OSError | None = None
        self._wake = trio.lowlevel.ParkingLot()
        self._written = trio.Event()

    # ------------------------------------------------------------------ reading
    def load(self) -> list[dict[str, JSON]] | None:
        """The topics of the file; None when there is none.

        Raises:
            RuntimeError: the file is unreadable or not metadata, with the way out.
        """
        try:
            with open(self.path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise RuntimeError(f"failed to read metadata from {self.path} - "
                               f"{exc.strerror or exc}") from exc
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict):
                raise ValueError("not a JSON object")
            topics = doc.get("topics") or []
            if not isinstance(topics, list) or not all(isinstance(t, dict) for t in topics):
                raise ValueError("\"topics\" is not a list of objects")
            for t in topics:
                channels = t.get("channels") or []
                if not isinstance(channels, list) or not all(isinstance(c, dict)
                                                             for c in channels):
                    raise ValueError("\"channels\" is not a list of objects")
        except ValueError as exc:
            raise RuntimeError(
                f"failed to parse metadata in {self.path} - {exc}; move the file aside "
                f"to start without it: nsqd then keeps the topic and channel queues it "
                f"finds in the data path (paused flags are lost)") from exc
        return topics

    # ------------------------------------------------------------------ writing
    def changed(self) -> None:
        """A topic or channel was created, deleted, paused or unpaused."""
        self.changes += 1
        self._wake.unpark_all()

    def mark(self) -> int:
        """Take before a request may change the metadata; see :meth:`changed_since`."""
        return self.changes

    def changed_since(self, mark: int) -> bool:
        return self.changes != mark

    async def saved(self) -> None:
        """Return once a write covering every change made so far succeeded.

        Raises:
            MetadataError: that write failed (the change stays in memory; the writer
                retries, and a later request is told again until it succeeds).
        """
        target = self.changes
        while self._saved < target:
            written = self._written
            await written.wait()
            if self._saved < target and self._tried >= target and self._error is not None:
                raise MetadataError(f"failed to persist metadata - "
                                    f"{self._error.strerror or self._error}")

    def write_now(self) -> None:
        """Write the file synchronously (start-up, shutdown).

        Raises:
            OSError: the write failed.
        """
        gen = self.changes
        write_atomic(self.path, self._encode(), mode=0o644, sync_dir=True)
        self._saved = max(self._saved, gen)

    def _encode(self) -> bytes:
        return json.dumps(self._document(), separators=(",", ":")).encode()

    async def run(self) -> None:
        """Write the file after changes until cancelled (started in nsqd's nursery)."""
        while True:
            if self._saved >= self.changes:
                await self._wake.park()
                continue
            gen = self.changes
            data = self._encode()
            try:
                await trio.to_thread.run_sync(
                    functools.partial(write_atomic, self.path, data, mode=0o644, sync_dir=True))
            except OSError as exc:
                if self._error is None:
                    logger.error("failed to persist metadata to %s - %s (retrying)",
                                 self.path, exc)
                self._error = exc
            else:
                if self._error is not None:
                    logger.info("NSQ: persisted metadata to %s again", self.path)
                self._error = None
                self._saved = max(self._saved, gen)
            self._tried = gen
            self._written.set()
            self._written = trio.Event()
            # changes made during a write share the next one: no pause needed for that
            if self._error is not None:
                await trio.sleep(RETRY)


def discover_queues(data_path: str) -> dict[str, list[str]]:
    """Topics and their channels that have queue files in ``data_path`` (disk queues,
    deferred-message directories), for a start without metadata."""
    found: dict[str, list[str]] = {}
    try:
        names = os.listdir(data_path)
    except OSError:
        return found
    for fn in sorted(names):
        m = _QUEUE_FILE.fullmatch(fn) or _DEFERRED_DIR.fullmatch(fn)
        if m is None:
            continue
        topic, _, channel = m.group(1).partition(":")
        channels = found.setdefault(topic, [])
        if channel and channel not in channels:
            channels.append(channel)
    return found
