"""A topic: takes published messages and gives every channel its own copy.

While the topic has channels and is not paused, a publish fans out synchronously into
each channel (one shared immutable tuple per message). Otherwise messages wait in the
topic's queue (memory, then backend) and the topic's pump task moves them to the
channels in batches once there is somewhere to go. A write-through backend (see
``channel.py``) takes them all; in durable mode the pump acknowledges what it moved
once the channels stored their copies.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import trio

from client.protocol import is_ephemeral
from internal.quantile import WindowedQuantile, e2e_result

from .backend import Backend, BackendError, DueMsg, Entry, Msg
from .channel import Channel
from .errors import TopicError
from .statistics import (
    NO_LATENCY,
    ChannelStatistics,
    LatencyStatistics,
    TopicStatistics,
)

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["Topic"]

logger = logging.getLogger(__name__)

#: messages the pump moves per checkpoint
PUMP_BATCH = 1024


class Topic:
    """One topic. Created and owned by :class:`~nsqd.nsqd.NSQD`."""

    def __init__(self, nsqd: NSQD, name: str, backend: Backend[Entry],
                 backend_factory: Callable[[str, bool], Backend[Entry]]) -> None:
        self.nsqd = nsqd
        self.name = name
        self.ephemeral = is_ephemeral(name)
        self.backend = backend
        self._backend_factory = backend_factory
        self.memory: collections.deque[Entry] = collections.deque()
        self.channels: dict[str, Channel] = {}
        self.paused = False
        self.deleted = False
        #: True while nsqd asks lookupd for this new topic's channels; messages wait
        self.starting = False
        self.message_count = 0
        self.message_bytes = 0
        self._pump_lot = trio.lowlevel.ParkingLot()
        self._retry: tuple[list[Entry], bool] | None = None
        #: the last :meth:`latency` record and the channel records it was merged from
        self._latency: tuple[list[LatencyStatistics], LatencyStatistics] | None = None

    def __repr__(self) -> str:
        return f"<Topic {self.name}>"

    def depth(self) -> int:
        """Messages waiting in the topic itself (no channel yet, or paused)."""
        return len(self.memory) + self.backend.depth()

    def latency(self) -> LatencyStatistics:
        """Its channels' publish→FIN latencies merged (none while it has no channel)."""
        windows = []
        parts = []
        for channel in self.channels.values():
            if channel.e2e is not None:
                parts.append(channel.latency())  # the same record while unchanged
                windows.append(channel.e2e)
        if not windows:
            return NO_LATENCY
        cached = self._latency
        if cached is None or len(cached[0]) != len(parts) or any(
                a is not b for a, b in zip(cached[0], parts, strict=True)):
            merged = LatencyStatistics.of(e2e_result(windows, windows[0].percentiles), windows)
            cached = self._latency = (parts, merged)
        return cached[1]

    def statistics(self, *, channel: str = "", clients: bool = False) -> TopicStatistics:
        """A snapshot of this topic's figures and its channels' (by name; only the one
        named ``channel``, if any); with ``clients``, the channels' consumers too."""
        chans: tuple[ChannelStatistics, ...]
        if channel:
            one = self.channels.get(channel)
            chans = (one.statistics(clients=clients),) if one is not None else ()
        else:
            chans = tuple(self.channels[name].statistics(clients=clients)
                          for name in sorted(self.channels))
        return TopicStatistics(self.name, self.depth(), self.backend.depth(),
                               self.message_count, self.message_bytes, self.paused,
                               self.latency(), chans)

    # ------------------------------------------------------------------ publish
    def _flowing(self) -> bool:
        return bool(self.channels) and not self.paused and not self.starting

    def _direct(self) -> bool:
        return self._flowing() and not self.memory and not self.backend.depth()

    def put(self, msgs: list[Msg], now: float, nbytes: int | None = None) -> None:
        """Publish messages (PUB, MPUB, /pub, /mpub); ``nbytes``: their bodies' length
        (summed here if not given).

        Raises:
            TopicError: the topic is being deleted.
            BackendError: the overflow store refused them (nothing was accepted).
        """
        if self.deleted:
            raise TopicError("exiting")
        if self._direct():
            for channel in self.channels.values():
                channel.put(msgs, now)
        else:
            self._enqueue(msgs)
        self.message_count += len(msgs)
        self.message_bytes += sum([len(m[1]) for m in msgs]) if nbytes is None else nbytes

    def put_deferred(self, msgs: list[Msg], dues: list[float]) -> None:
        """Publish messages each delivered at its monotonic due time (DPUB, /pub?defer=)."""
        if self.deleted:
            raise TopicError("exiting")
        if self._direct():
            for channel in self.channels.values():
                channel.message_count += len(msgs)
                channel.defer_many(msgs, dues)
        else:
            self._enqueue([DueMsg(*msg, due) for msg, due in zip(msgs, dues, strict=True)])
        self.message_count += len(msgs)
        self.message_bytes += sum(len(m[1]) for m in msgs)

    def _enqueue(self, entries: Sequence[Entry]) -> None:
        memory = self.memory
        backend = self.backend
        room = (0 if backend.write_through or backend.depth()
                else self.nsqd.options.mem_queue_size - len(memory))
        if room >= len(entries):
            memory.extend(entries)
        else:
            if room > 0:
                memory.extend(entries[:room])
                entries = entries[room:]
            backend.put(entries)
        self._kick()

    def _kick(self) -> None:
        if self._flowing():
            self._pump_lot.unpark_all()

    def start(self) -> None:
        """Let messages flow once the channels known to lookupd exist (NSQ's Start)."""
        self.starting = False
        self._kick()

    async def pump(self) -> None:
        """Move queued messages to the channels whenever there are channels to take them.

        Runs for the life of the topic in the daemon's nursery; returns when deleted.
        """
        while not self.deleted:
            if not (self._flowing() and (self.depth() or self._retry)):
                await self._pump_lot.park()
                continue
            batch: list[Entry]
            from_backend = not self.memory
            if self._retry:
                batch, from_backend = self._retry
                self._retry = None
            elif self.memory:
                k = min(PUMP_BATCH, len(self.memory))
                popleft = self.memory.popleft
                batch = [popleft() for _ in range(k)]
            else:
                batch = self.backend.read(PUMP_BATCH)
            now = trio.current_time()
            try:
                self._fan_out(batch, now)
            except BackendError as exc:
                # a channel's disk refused them; durable mode: replayed after a restart
                logger.error("TOPIC(%s): failed to put messages to channels, retrying - %s",
                             self.name, exc)
                self._retry = (batch, from_backend)
                await trio.sleep(0.1)
            else:
                if from_backend and self.backend.ack_mode:
                    ack = self.backend.ack
                    for entry in batch:
                        ack(entry[0])
            await trio.lowlevel.checkpoint()

    def _fan_out(self, batch: list[Entry], now: float) -> None:
        for channel in self.channels.values():
            plain: list[Msg] = []
            for entry in batch:
                if isinstance(entry, DueMsg):
                    channel.message_count += 1
                    channel.defer(entry.msg(), entry.due)
                else:
                    plain.append(entry)
            if plain:
                channel.put(plain, now)

    # ------------------------------------------------------------------ channels
    def get_channel(self, name: str) -> Channel:
        """The channel, created (and registered with lookupd) if it does not exist."""
        channel = self.channels.get(name)
        if channel is None:
            if self.deleted:
                raise TopicError("exiting")
            ephemeral = is_ephemeral(name)
            backend = self._backend_factory(f"{self.name}:{name}", ephemeral)
            deferred = self.nsqd.deferred_store(f"{self.name}:{name}", ephemeral)
            opts = self.nsqd.options
            e2e = None
            if opts.e2e_processing_latency_percentiles:
                e2e = WindowedQuantile(opts.e2e_processing_latency_window_time,
                                       opts.e2e_processing_latency_percentiles)
            channel = Channel(self, name, backend, opts.mem_queue_size, ephemeral, deferred, e2e)
            self.channels[name] = channel
            self.nsqd.watch_deferred(channel)
            logger.info("TOPIC(%s): new channel(%s)", self.name, name)
            self.nsqd.channel_created(self, channel)
            self._kick()
        return channel

    def delete_channel(self, name: str, *, reason: str = "deleted") -> None:
        """Remove a channel: its consumers are disconnected and its messages dropped.

        Raises:
            TopicError: no such channel.
        """
        channel = self.channels.pop(name, None)
        if channel is None:
            raise TopicError("channel does not exist")
        logger.info("CHANNEL(%s): deleting (%s)", name, reason)
        channel.deleted = True
        channel.close_clients()
        channel.empty()
        channel.backend.delete()
        channel.deferred.delete()
        self.nsqd.channel_deleted(self, channel)
        if self.ephemeral and not self.channels and not self.deleted:
            self.nsqd.delete_topic(self.name, reason="last channel left")

    # ------------------------------------------------------------------ admin
    def pause(self) -> None:
        self.paused = True

    def unpause(self) -> None:
        self.paused = False
        self._kick()

    def empty(self) -> None:
        """Drop the messages waiting in the topic itself (not in its channels)."""
        self.memory.clear()
        self.backend.empty()

    def flush(self) -> None:
        """Shutdown: queue the in-memory messages on the backend, as NSQ's flush."""
        if self._retry is not None and not self._retry[1]:
            self.memory.extendleft(reversed(self._retry[0]))
            self._retry = None
        if not self.memory:
            return
        logger.info("TOPIC(%s): flushing %d memory messages to backend", self.name,
                    len(self.memory))
        try:
            self.backend.put(list(self.memory))
        except BackendError as exc:
            logger.error("TOPIC(%s): failed to write messages to backend - %s", self.name, exc)
            return
        self.memory.clear()

    def close(self, *, delete: bool) -> None:
        """Stop the topic: disconnect consumers; with ``delete`` also drop all data.

        Without ``delete``, every message (in memory, in flight, deferred) is persisted.
        """
        self.deleted = True
        for name in list(self.channels):
            channel = self.channels[name]
            channel.deleted = True
            channel.close_clients()
            if delete:
                channel.empty()
                channel.backend.delete()
                channel.deferred.delete()
            else:
                channel.flush()
                channel.backend.close()
                channel.deferred.close()
        if delete:
            self.channels.clear()
            self.memory.clear()
            self.backend.delete()
        else:
            self.flush()
            self.backend.close()
        self._pump_lot.unpark_all()
