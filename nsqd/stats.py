"""Statistics of a running nsqd, in the shapes of NSQ 1.3's ``/stats`` (``nsqd/stats.go``).

:func:`get_stats` snapshots the topics, channels and connections through their
``statistics()`` records (see :mod:`nsqd.statistics`): nothing awaits, so one call sees
one consistent instant. The rest renders those records only: as plain dicts whose keys
(and key order) are those of NSQ's JSON structs, ready for ``json.dumps``, or as NSQ's
text format.

Differences from Go, on purpose:

* clients (and producers) are listed in connection order, not Go's map order;
* a client's ``pub_counts`` lists every topic it published to (sorted by name). NSQ 1.3
  stops after the first map entry, which looks like a bug;
* ``memory`` maps Go's runtime numbers to CPython's cheap equivalents (see
  :func:`memory_stats`).
"""

from __future__ import annotations

import datetime
import functools
import gc
import os
import resource
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from internal.gojson import JSON
from internal.options import format_duration
from internal.version import version_string

if TYPE_CHECKING:
    from .nsqd import NSQD
    from .statistics import (
        ChannelStatistics,
        ClientStatistics,
        LatencyStatistics,
        TopicStatistics,
    )

__all__ = [
    "NSQDStatistics",
    "channel_json",
    "client_json",
    "format_client",
    "get_stats",
    "install_gc_monitor",
    "latency_json",
    "memory_stats",
    "render_text",
    "stats_document",
    "stats_json",
    "topic_json",
]

#: a JSON document of ``/stats``
Stats = dict[str, JSON]
#: :func:`memory_stats`: NSQ's ``memStats`` keys → figures
MemoryStats = dict[str, int]


@dataclass(frozen=True, slots=True)
class NSQDStatistics:
    """What one /stats request sees (NSQ's ``GetStats``)."""

    topics: tuple[TopicStatistics, ...]  #: by name
    #: connections that published, in connection order; None without clients or when none
    producers: tuple[ClientStatistics, ...] | None
    #: the topic asked for: clients' ``pub_counts`` are shown for it only
    topic: str = ""


def get_stats(nsqd: NSQD, topic: str = "", channel: str = "",
              include_clients: bool = True) -> NSQDStatistics:
    """Snapshot nsqd's topics (sorted by name), their channels and clients.

    A ``topic`` that does not exist gives no topics; a ``channel`` filter skips topics
    without that channel. ``producers`` is None without clients, or when no connection
    has published, as in NSQ.
    """
    if not topic:
        topics = [nsqd.topics[name] for name in sorted(nsqd.topics)]
    elif topic in nsqd.topics:
        topics = [nsqd.topics[topic]]
    else:
        return NSQDStatistics((), None, topic)
    out = []
    for t in topics:
        rec = t.statistics(channel=channel, clients=include_clients)
        if rec.channels or not channel:
            out.append(rec)
    producers = None
    if include_clients:
        pubs = tuple(rec for rec in (cl.statistics() for cl in
                                     sorted(nsqd.clients.values(), key=lambda c: c.id))
                     if rec.pub_counts)
        producers = pubs or None
    return NSQDStatistics(tuple(out), producers, topic)


# --------------------------------------------------------------------------- JSON
@functools.lru_cache(maxsize=16384)
def latency_json(e2e: LatencyStatistics) -> Stats:
    """NSQ's ``quantile.Result``: ``{"count": 0, "percentiles": null}`` when no window
    is kept (no ``--e2e-processing-latency-percentile``).

    Shared between equal records (channels keep theirs while unchanged): do not modify it.
    """
    pairs = e2e.percentiles
    return {"count": e2e.count,
            "percentiles": None if pairs is None else
            [{"quantile": q, "value": v} for q, v in pairs]}


def _pub_counts(client: ClientStatistics, topic_filter: str) -> tuple[tuple[str, int], ...]:
    if not topic_filter:
        return client.pub_counts
    return tuple(p for p in client.pub_counts if p[0] == topic_filter)


def client_json(client: ClientStatistics, topic_filter: str = "") -> Stats:
    """One connection (Go's ``ClientV2Stats``), ``pub_counts`` limited to
    ``topic_filter`` when given."""
    doc: Stats = {
        "client_id": client.client_id,
        "hostname": client.hostname,
        "version": "V2",
        "remote_address": client.remote_address,
        "state": client.state,
        "ready_count": client.ready_count,
        "in_flight_count": client.in_flight_count,
        "message_count": client.message_count,
        "finish_count": client.finish_count,
        "requeue_count": client.requeue_count,
        "connect_ts": client.connect_ts,
        "sample_rate": client.sample_rate,
        "deflate": client.deflate,
        "snappy": client.snappy,
        "user_agent": client.user_agent,
    }
    # Go tags these ``omitempty``
    if client.authed:
        doc["authed"] = True
    if client.auth_identity:
        doc["auth_identity"] = client.auth_identity
    if client.auth_identity_url:
        doc["auth_identity_url"] = client.auth_identity_url
    pubs = _pub_counts(client, topic_filter)
    if pubs:
        doc["pub_counts"] = [{"topic": name, "count": count} for name, count in pubs]
    doc["tls"] = client.tls
    doc["tls_cipher_suite"] = client.tls_cipher_suite
    doc["tls_version"] = client.tls_version
    doc["tls_negotiated_protocol"] = client.tls_negotiated_protocol
    # Python's ssl does not say (Go's field is deprecated): false, as before
    doc["tls_negotiated_protocol_is_mutual"] = False
    return doc


def channel_json(channel: ChannelStatistics, topic_filter: str = "") -> Stats:
    """One channel (Go's ``ChannelStats``); ``clients`` null when not asked for."""
    clients = channel.clients
    return {
        "channel_name": channel.name,
        "depth": channel.depth,
        "backend_depth": channel.backend_depth,
        "in_flight_count": channel.in_flight_count,
        "deferred_count": channel.deferred_count,
        "message_count": channel.message_count,
        "requeue_count": channel.requeue_count,
        "timeout_count": channel.timeout_count,
        "client_count": channel.client_count,
        "clients": None if clients is None else
        [client_json(c, topic_filter) for c in clients],
        "paused": channel.paused,
        "e2e_processing_latency": latency_json(channel.e2e_processing_latency),
    }


def topic_json(topic: TopicStatistics, topic_filter: str = "") -> Stats:
    """One topic (Go's ``TopicStats``)."""
    return {
        "topic_name": topic.name,
        "channels": [channel_json(c, topic_filter) for c in topic.channels],
        "depth": topic.depth,
        "backend_depth": topic.backend_depth,
        "message_count": topic.message_count,
        "message_bytes": topic.message_bytes,
        "paused": topic.paused,
        "e2e_processing_latency": latency_json(topic.e2e_processing_latency),
    }


def stats_json(stats: NSQDStatistics) -> Stats:
    """``{"topics": [...], "producers": [...] | None}`` in NSQ's JSON shapes."""
    producers = stats.producers
    return {"topics": [topic_json(t, stats.topic) for t in stats.topics],
            "producers": None if producers is None else
            [client_json(p, stats.topic) for p in producers]}


# --------------------------------------------------------------------------- memory
#: durations (ns) of the last 256 garbage collections, as Go's ``MemStats.PauseNs``
_gc_pauses: deque[int] = deque(maxlen=256)
_gc_started = 0


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter_ns()
    elif _gc_started:
        _gc_pauses.append(time.perf_counter_ns() - _gc_started)
        _gc_started = 0


def install_gc_monitor() -> None:
    """Time garbage collections for ``gc_pause_usec_*`` (idempotent; two clock reads
    per collection)."""
    if _gc_callback not in gc.callbacks:
        gc.callbacks.append(_gc_callback)


def _percentile(perc: float, values: list[int]) -> int:
    """Go's ``percentile()`` over sorted values (nearest rank, rounded half up)."""
    if not values:
        return 0
    idx = int(perc / 100.0 * len(values) + 0.5)
    return values[min(idx, len(values) - 1)]


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _rss_bytes() -> int:
    """Current resident set size; peak RSS where /proc is missing."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def memory_stats() -> MemoryStats:
    """NSQ's ``memStats`` keys with CPython's cheap counterparts.

    * ``heap_objects``: ``sys.getallocatedblocks()`` (live small-object blocks; walking
      ``gc.get_objects()`` would cost milliseconds on a deep backlog);
    * ``heap_in_use_bytes``: the process's resident set size;
    * ``heap_idle_bytes``, ``heap_released_bytes``, ``next_gc_bytes``: 0 (CPython's
      allocator and count-based GC have no such figures);
    * ``gc_pause_usec_100/99/95``: over the last 256 collections timed since
      :func:`install_gc_monitor`;
    * ``gc_total_runs``: collections of every generation.
    """
    pauses = sorted(_gc_pauses)
    return {
        "heap_objects": sys.getallocatedblocks(),
        "heap_idle_bytes": 0,
        "heap_in_use_bytes": _rss_bytes(),
        "heap_released_bytes": 0,
        "gc_pause_usec_100": _percentile(100.0, pauses) // 1000,
        "gc_pause_usec_99": _percentile(99.0, pauses) // 1000,
        "gc_pause_usec_95": _percentile(95.0, pauses) // 1000,
        "next_gc_bytes": 0,
        "gc_total_runs": sum(s["collections"] for s in gc.get_stats()),
    }


# --------------------------------------------------------------------------- documents
def stats_document(nsqd: NSQD, *, version: str, topic: str = "", channel: str = "",
                   include_clients: bool = True, include_mem: bool = True) -> Stats:
    """The JSON body of ``GET /stats?format=json``."""
    stats = stats_json(get_stats(nsqd, topic, channel, include_clients))
    doc: Stats = {
        "version": version,
        "health": nsqd.health,
        "start_time": int(nsqd.start_time),
        "topics": stats["topics"],
    }
    if include_mem:
        doc["memory"] = memory_stats()
    doc["producers"] = stats["producers"]
    return doc


def _rfc3339(ts: float) -> str:
    local = datetime.datetime.fromtimestamp(int(ts)).astimezone()
    text = local.isoformat(timespec="seconds")
    return text[:-6] + "Z" if local.utcoffset() == datetime.timedelta(0) else text


def _ns_to_human(ns: float) -> str:
    """Go's ``stringy.NanoSecondToHuman``."""
    for div, suffix in ((1e9, "s"), (1e6, "ms"), (1e3, "us")):
        if ns > div:
            return f"{ns / div:0.1f}{suffix}"
    return f"{ns:0.1f}ns"


def _e2e_text(e2e: LatencyStatistics) -> str:
    """Go's ``quantile.Result.String()``: the percentile values, comma separated."""
    return ", ".join(_ns_to_human(value) for _, value in e2e.percentiles or ())


def format_client(client: ClientStatistics, now: float | None = None,
                  topic_filter: str = "") -> str:
    """One client line of the text format (Go's ``ClientV2Stats.String``)."""
    now = time.time() if now is None else now
    connected = format_duration(max(0, int(now) - client.connect_ts))
    port = client.remote_address.rsplit(":", 1)[-1]
    ident = f"{client.hostname}:{port} {client.user_agent}"
    pubs = _pub_counts(client, topic_filter)
    if pubs:
        total = sum(count for _, count in pubs)
        topics = ",".join(f"{name}={count}" for name, count in pubs)
        return (f"[V2 {ident:<21}] msgs: {total:<8} topics: {topics} "
                f"connected: {connected}")
    return (f"[V2 {ident:<21}] state: {client.state} "
            f"inflt: {client.in_flight_count:<4} rdy: {client.ready_count:<4} "
            f"fin: {client.finish_count:<8} re-q: {client.requeue_count:<8} "
            f"msgs: {client.message_count:<8} connected: {connected}")


_MEM_KEYS = ("heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
             "gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes",
             "gc_total_runs")


def render_text(stats: NSQDStatistics, memory: MemoryStats | None, health: str, start_time: float,
                now: float | None = None) -> str:
    """The text body of ``GET /stats`` (Go's ``printStats``), byte for byte.

    Args:
        stats: :func:`get_stats` output.
        memory: :func:`memory_stats` output, or None to leave the section out.
        health: ``"OK"`` or ``"NOK - <error>"``.
        start_time: Unix time the daemon started.
        now: Unix time of the report (defaults to the clock).
    """
    now = time.time() if now is None else now
    out = [
        f"{version_string('nsqd')}\n",
        f"start_time {_rfc3339(start_time)}\n",
        f"uptime {format_duration(max(0.0, now - start_time))}\n",
        f"\nHealth: {health}\n",
    ]
    if memory is not None:
        out.append("\nMemory:\n")
        out.extend(f"   {key:<25}\t{memory[key]}\n" for key in _MEM_KEYS)
    topics = stats.topics
    tf = stats.topic
    out.append("\nTopics:" if topics else "\nTopics: None\n")
    for t in topics:
        prefix = "*P " if t.paused else "   "
        out.append(f"\n{prefix}[{t.name:<15}] depth: {t.depth:<5} "
                   f"be-depth: {t.backend_depth:<5} msgs: {t.message_count:<8} "
                   f"e2e%: {_e2e_text(t.e2e_processing_latency)}\n")
        for c in t.channels:
            prefix = "   *P " if c.paused else "      "
            out.append(f"{prefix}[{c.name:<25}] depth: {c.depth:<5} "
                       f"be-depth: {c.backend_depth:<5} inflt: {c.in_flight_count:<4} "
                       f"def: {c.deferred_count:<4} re-q: {c.requeue_count:<5} "
                       f"timeout: {c.timeout_count:<5} msgs: {c.message_count:<8} "
                       f"e2e%: {_e2e_text(c.e2e_processing_latency)}\n")
            for client in c.clients or ():
                out.append(f"        {format_client(client, now, tf)}\n")
    producers = stats.producers
    if not producers:
        out.append("\nProducers: None\n")
    else:
        out.append("\nProducers:\n")
        out.extend(f"   {format_client(p, now, tf)}\n" for p in producers)
    return "".join(out)
