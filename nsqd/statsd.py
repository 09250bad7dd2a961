"""Push stats to statsd over UDP, as NSQ 1.3's ``nsqd/statsd.go``.

Every ``--statsd-interval`` nsqd sends, under ``--statsd-prefix`` (``nsq.%s``, ``%s``
being ``<broadcast-address>:<http port>`` with ``.`` and ``:`` made ``_``):

* per topic: ``topic.T.message_count`` and ``.message_bytes`` (counters: the increase
  since the last push), ``.depth``, ``.backend_depth`` and ``.e2e_processing_latency_P``
  (gauges, P = the percentile x100, the value in ns);
* per channel: ``topic.T.channel.C.message_count``, ``.requeue_count``,
  ``.timeout_count`` (counters), ``.depth``, ``.backend_depth``, ``.in_flight_count``,
  ``.deferred_count``, ``.clients``, ``.e2e_processing_latency_P`` (gauges);
* with ``--statsd-mem-stats``: ``mem.*`` gauges and the ``mem.gc_runs`` counter, from
  :func:`nsqd.stats.memory_stats` (CPython's counterparts of Go's runtime figures).

Lines (``name:value|c`` or ``|g``, newline-terminated) are packed into datagrams of at
most ``--statsd-udp-packet-size`` bytes (a single longer line goes alone, as Go's
buffered writer does) spread over the interval less a second. A statsd address that
cannot be resolved or reached is logged once (and again after it recovered and failed
anew); sends never wait, so the broker is never held up.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, TypeVar

import trio

from client.protocol import is_ephemeral
from internal.netaddr import join_host_port, split_host_port

from .stats import MemoryStats, get_stats, memory_stats

if TYPE_CHECKING:
    from .nsqd import NSQD
    from .statistics import ChannelStatistics, LatencyStatistics, TopicStatistics

__all__ = ["StatsdPusher", "host_key", "pack_datagrams", "statsd_lines", "statsd_prefix"]

logger = logging.getLogger(__name__)

_MEM_GAUGES = ("heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
               "gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes")


def host_key(address: str) -> str:
    """Go's ``statsd.HostKey``: ``.`` and ``:`` become ``_``."""
    return address.replace(".", "_").replace(":", "_")


def statsd_prefix(template: str, broadcast_address: str, http_port: int) -> str:
    """The key prefix: ``%s`` replaced by the host key, a trailing ``.`` ensured
    (an empty template stays empty)."""
    if not template:
        return ""
    prefix = template.replace("%s", host_key(join_host_port(broadcast_address, http_port)))
    return prefix if prefix.endswith(".") else prefix + "."


R = TypeVar("R", "TopicStatistics", "ChannelStatistics")

#: (statsd name, field getter, counter) of one kind of statistics record
_Table = tuple[tuple[str, Callable[[R], int], bool], ...]

#: (statsd name, record field, counter) in Go's order
_TOPIC_STATS: _Table[TopicStatistics] = tuple((name, attrgetter(field), counter) for name, field, counter in (
    ("message_count", "message_count", True), ("message_bytes", "message_bytes", True),
    ("depth", "depth", False), ("backend_depth", "backend_depth", False)))
_CHANNEL_STATS: _Table[ChannelStatistics] = tuple((name, attrgetter(field), counter) for name, field, counter in (
    ("message_count", "message_count", True), ("depth", "depth", False),
    ("backend_depth", "backend_depth", False), ("in_flight_count", "in_flight_count", False),
    ("deferred_count", "deferred_count", False), ("requeue_count", "requeue_count", True),
    ("timeout_count", "timeout_count", True), ("clients", "client_count", False)))


def _stat_lines(out: list[str], stat: str, rec: R, prev: R | None, table: _Table[R],
                e2e: LatencyStatistics) -> None:
    for name, get, counter in table:
        if counter:
            out.append(f"{stat}.{name}:{get(rec) - (get(prev) if prev else 0)}|c\n")
        else:
            out.append(f"{stat}.{name}:{get(rec)}|g\n")
    for quantile, value in e2e.percentiles or ():
        out.append(f"{stat}.e2e_processing_latency_{quantile * 100:.0f}:{int(value)}|g\n")


def statsd_lines(topics: Sequence[TopicStatistics], last: Sequence[TopicStatistics] | None,
                 prefix: str, *, exclude_ephemeral: bool = False, mem: MemoryStats | None = None,
                 last_mem: MemoryStats | None = None) -> list[str]:
    """The lines of one push: ``topics`` (:func:`~nsqd.stats.get_stats` records) against
    the ``last`` push; ``mem`` (:func:`~nsqd.stats.memory_stats`) adds ``mem.*``."""
    out: list[str] = []
    last_topics = {t.name: t for t in last or ()}
    for topic in topics:
        name = topic.name
        if exclude_ephemeral and is_ephemeral(name):
            continue
        prev = last_topics.get(name)
        _stat_lines(out, f"{prefix}topic.{name}", topic, prev, _TOPIC_STATS,
                    topic.e2e_processing_latency)
        prev_channels = {c.name: c for c in prev.channels} if prev else {}
        for channel in topic.channels:
            cname = channel.name
            if exclude_ephemeral and is_ephemeral(cname):
                continue
            _stat_lines(out, f"{prefix}topic.{name}.channel.{cname}", channel,
                        prev_channels.get(cname), _CHANNEL_STATS,
                        channel.e2e_processing_latency)
    if mem is not None:
        out.extend(f"{prefix}mem.{key}:{mem[key]}|g\n" for key in _MEM_GAUGES)
        runs = mem["gc_total_runs"] - (last_mem["gc_total_runs"] if last_mem else 0)
        out.append(f"{prefix}mem.gc_runs:{runs}|c\n")
    return out


def pack_datagrams(lines: Iterable[str], size: int) -> list[bytes]:
    """Join whole lines into datagrams of at most ``size`` bytes (Go's
    ``BoundaryBufferedWriter``: a line that does not fit starts the next datagram)."""
    out: list[bytes] = []
    buf = bytearray()
    for line in lines:
        data = line.encode()
        if buf and len(buf) + len(data) > size:
            out.append(bytes(buf))
            buf.clear()
        buf += data
        if len(buf) >= size:
            out.append(bytes(buf))
            buf.clear()
    if buf:
        out.append(bytes(buf))
    return out


class StatsdPusher:
    """nsqd's ``statsdLoop``: owned by the daemon's nursery while it runs."""

    def __init__(self, nsqd: NSQD) -> None:
        self.nsqd = nsqd
        self._last: tuple[TopicStatistics, ...] | None = None
        self._last_mem: MemoryStats | None = None
        self._failing: str | None = None

    def _fail(self, addr: str, why: str) -> None:
        if self._failing is None:
            logger.error("STATSD: failed to push stats to statsd(%s) - %s "
                         "(not logged again until it recovers)", addr, why)
        self._failing = why

    def _prefix(self) -> str:
        opts = self.nsqd.options
        bound = self.nsqd.bound
        port = opts.broadcast_http_port
        if not port and bound is not None and bound.http_address is not None:
            port = bound.http_address[1]
        return statsd_prefix(opts.statsd_prefix, opts.broadcast_address, port)

    async def run(self) -> None:
        """Push every ``--statsd-interval`` until cancelled."""
        interval = self.nsqd.options.statsd_interval
        due = trio.current_time() + interval
        while True:
            await trio.sleep_until(due)
            try:
                await self.push()
            except Exception:  # a bug here must not take the broker down
                logger.exception("STATSD: push failed")
            due += interval
            now = trio.current_time()
            if due < now:  # a push overran: skip the missed ticks, as Go's ticker
                due = now + interval - (now - due) % interval

    async def push(self) -> None:
        """One push (the stats are read at once, the datagrams then spread out)."""
        opts = self.nsqd.options
        addr = opts.statsd_address
        topics = get_stats(self.nsqd, include_clients=False).topics
        mem = memory_stats() if opts.statsd_mem_stats else None
        lines = statsd_lines(topics, self._last, self._prefix(),
                             exclude_ephemeral=opts.statsd_exclude_ephemeral,
                             mem=mem, last_mem=self._last_mem)
        self._last = topics
        if mem is not None:
            self._last_mem = mem
        datagrams = pack_datagrams(lines, opts.statsd_udp_packet_size)
        sock = await self._connect(addr)
        if sock is None:
            return
        with sock:
            spread = max(0.0, opts.statsd_interval - 1.0) / max(1, len(datagrams))
            for i, datagram in enumerate(datagrams):
                if i and spread:
                    await trio.sleep(spread)
                try:
                    sock.send(datagram)
                except BlockingIOError:
                    continue  # the socket buffer is full: drop it rather than wait
                except OSError as exc:  # e.g. ICMP port unreachable from a previous send
                    self._fail(addr, str(exc) or type(exc).__name__)
                    return
        if self._failing is not None:
            logger.info("STATSD: pushing stats to %s again", addr)
            self._failing = None

    async def _connect(self, addr: str) -> socket.socket | None:
        """A non-blocking UDP socket connected to ``addr`` (resolved within a second,
        as Go's ``DialTimeout``), or None after logging why not."""
        try:
            host, port = split_host_port(addr)
            with trio.fail_after(1.0):
                infos = await trio.socket.getaddrinfo(host or "127.0.0.1", port,
                                                      type=socket.SOCK_DGRAM)
        except trio.TooSlowError:
            self._fail(addr, "timed out resolving the address")
            return None
        except (OSError, ValueError) as exc:
            self._fail(addr, str(exc) or type(exc).__name__)
            return None
        family, kind, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            self._fail(addr, str(exc))
            return None
        return sock
