"""Statistics of a running nsqd, in the shapes of NSQ 1.3's ``/stats`` (``nsqd/stats.go``).

Everything here is a pure read of the live objects: no locks are needed on Trio, and
nothing awaits, so one call sees one consistent instant. The functions return plain
dicts whose keys (and key order) are those of NSQ's JSON structs, ready for
``json.dumps``; nsqadmin and the statsd loop read the same dicts.

Differences from Go, on purpose:

* clients (and producers) are listed in connection order, not Go's map order;
* a client's ``pub_counts`` lists every topic it published to (sorted by name). NSQ 1.3
  stops after the first map entry, which looks like a bug;
* ``memory`` maps Go's runtime numbers to CPython's cheap equivalents (see
  :func:`memory_stats`).
"""

from __future__ import annotations

import datetime
import gc
import os
import resource
import sys
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from internal.options import format_duration
from internal.quantile import e2e_result
from internal.version import version_string

if TYPE_CHECKING:
    from .channel import Channel
    from .client_v2 import ClientV2
    from .nsqd import NSQD
    from .topic import Topic

__all__ = [
    "channel_e2e",
    "channel_stats",
    "client_stats",
    "format_client",
    "get_stats",
    "install_gc_monitor",
    "memory_stats",
    "render_text",
    "stats_document",
    "topic_e2e",
    "topic_stats",
]

Stats = dict[str, Any]


def channel_e2e(channel: Channel) -> Stats:
    """A channel's publish→FIN latency quantiles (NSQ's ``quantile.Result``).

    Without ``--e2e-processing-latency-percentile`` NSQ keeps no stream and the result
    is ``{"count": 0, "percentiles": null}``.
    """
    if channel.e2e is None:
        return e2e_result((), ())
    channel.fold_e2e()
    return channel.e2e.result()


def topic_e2e(topic: Topic) -> Stats:
    """A topic's latency quantiles: its channels' windows merged, as NSQ's
    ``AggregateChannelE2eProcessingLatency`` (empty while it has no channel)."""
    windows = []
    for channel in topic.channels.values():
        if channel.e2e is not None:
            channel.fold_e2e()
            windows.append(channel.e2e)
    return e2e_result(windows, windows[0].percentiles if windows else ())


# --------------------------------------------------------------------------- clients
def client_stats(client: ClientV2, topic_filter: str = "") -> Stats:
    """One connection's stats (Go's ``ClientV2Stats``), ``pub_counts`` limited to
    ``topic_filter`` when given."""
    doc: Stats = {
        "client_id": client.client_id,
        "hostname": client.hostname,
        "version": "V2",
        "remote_address": client.remote_address,
        "state": int(client.state),
        "ready_count": client.ready_count,
        "in_flight_count": client.in_flight,
        "message_count": client.message_count,
        "finish_count": client.finish_count,
        "requeue_count": client.requeue_count,
        "connect_ts": int(client.connect_time),
        "sample_rate": client.sample_rate,
        "deflate": bool(client.deflate),
        "snappy": bool(client.snappy),
        "user_agent": client.user_agent,
    }
    # Go tags these ``omitempty``
    if getattr(client, "authed", False):
        doc["authed"] = True
    if client.auth_identity:
        doc["auth_identity"] = client.auth_identity
    if client.auth_identity_url:
        doc["auth_identity_url"] = client.auth_identity_url
    counts = client.pub_counts
    if counts:
        pubs = [{"topic": name, "count": counts[name]} for name in sorted(counts)
                if not topic_filter or name == topic_filter]
        if pubs:
            doc["pub_counts"] = pubs
    tls = bool(client.tls)
    doc["tls"] = tls
    doc["tls_cipher_suite"] = getattr(client, "tls_cipher_suite", "") if tls else ""
    doc["tls_version"] = getattr(client, "tls_version", "") if tls else ""
    doc["tls_negotiated_protocol"] = getattr(client, "tls_negotiated_protocol", "") if tls else ""
    doc["tls_negotiated_protocol_is_mutual"] = (
        bool(getattr(client, "tls_negotiated_protocol_is_mutual", False)) if tls else False)
    return doc


# --------------------------------------------------------------------------- channels, topics
def channel_stats(channel: Channel, clients: list[Stats] | None) -> Stats:
    """One channel's stats (Go's ``ChannelStats``); ``clients`` None marshals as null,
    as NSQ does with ``include_clients=false``."""
    return {
        "channel_name": channel.name,
        "depth": channel.depth(),
        "backend_depth": channel.backend.depth(),
        "in_flight_count": len(channel.in_flight),
        "deferred_count": len(channel.deferred),
        "message_count": channel.message_count,
        "requeue_count": channel.requeue_count,
        "timeout_count": channel.timeout_count,
        "client_count": len(channel.clients),
        "clients": clients,
        "paused": channel.paused,
        "e2e_processing_latency": channel_e2e(channel),
    }


def topic_stats(topic: Topic, channels: list[Stats]) -> Stats:
    """One topic's stats (Go's ``TopicStats``)."""
    return {
        "topic_name": topic.name,
        "channels": channels,
        "depth": topic.depth(),
        "backend_depth": topic.backend.depth(),
        "message_count": topic.message_count,
        "message_bytes": topic.message_bytes,
        "paused": topic.paused,
        "e2e_processing_latency": topic_e2e(topic),
    }


def _clients_in_order(clients: Iterable[Any]) -> list[Any]:
    return sorted(clients, key=lambda c: c.id)


def get_stats(nsqd: NSQD, topic: str = "", channel: str = "",
              include_clients: bool = True) -> Stats:
    """NSQ's ``GetStats``: ``{"topics": [...], "producers": [...] | None}``.

    Topics and channels are sorted by name. A ``topic`` that does not exist gives no
    topics; a ``channel`` filter skips topics without that channel. ``producers`` is
    None (null) without clients, or when no connection has published, as in NSQ.
    """
    if not topic:
        topics = [nsqd.topics[name] for name in sorted(nsqd.topics)]
    elif topic in nsqd.topics:
        topics = [nsqd.topics[topic]]
    else:
        return {"topics": [], "producers": None}

    out = []
    for t in topics:
        if not channel:
            chans = [t.channels[name] for name in sorted(t.channels)]
        elif channel in t.channels:
            chans = [t.channels[channel]]
        else:
            continue
        channels = []
        for c in chans:
            clients = None
            if include_clients:
                clients = [client_stats(cl, topic)
                           for cl in _clients_in_order(c.clients.values())]
            channels.append(channel_stats(c, clients))
        out.append(topic_stats(t, channels))

    producers = None
    if include_clients:
        pubs = [client_stats(cl, topic) for cl in _clients_in_order(nsqd.clients.values())
                if cl.pub_counts]
        producers = pubs or None
    return {"topics": out, "producers": producers}


# --------------------------------------------------------------------------- memory
#: durations (ns) of the last 256 garbage collections, as Go's ``MemStats.PauseNs``
_gc_pauses: deque[int] = deque(maxlen=256)
_gc_started = 0


def _gc_callback(phase: str, info: dict[str, Any]) -> None:
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


def memory_stats() -> Stats:
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
    stats = get_stats(nsqd, topic, channel, include_clients)
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


def _e2e_text(result: Stats) -> str:
    """Go's ``quantile.Result.String()``: the percentile values, comma separated."""
    values = result.get("percentiles") or []
    return ", ".join(_ns_to_human(p["value"]) for p in values)


def format_client(doc: Stats, now: float | None = None) -> str:
    """One client line of the text format (Go's ``ClientV2Stats.String``)."""
    now = time.time() if now is None else now
    connected = format_duration(max(0, int(now) - doc["connect_ts"]))
    port = doc["remote_address"].rsplit(":", 1)[-1]
    ident = f"{doc['hostname']}:{port} {doc['user_agent']}"
    pubs = doc.get("pub_counts")
    if pubs:
        total = sum(p["count"] for p in pubs)
        topics = ",".join(f"{p['topic']}={p['count']}" for p in pubs)
        return (f"[{doc['version']} {ident:<21}] msgs: {total:<8} topics: {topics} "
                f"connected: {connected}")
    return (f"[{doc['version']} {ident:<21}] state: {doc['state']} "
            f"inflt: {doc['in_flight_count']:<4} rdy: {doc['ready_count']:<4} "
            f"fin: {doc['finish_count']:<8} re-q: {doc['requeue_count']:<8} "
            f"msgs: {doc['message_count']:<8} connected: {connected}")


_MEM_KEYS = ("heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
             "gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes",
             "gc_total_runs")


def render_text(stats: Stats, memory: Stats | None, health: str, start_time: float,
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
    topics = stats["topics"]
    out.append("\nTopics:" if topics else "\nTopics: None\n")
    for t in topics:
        prefix = "*P " if t["paused"] else "   "
        out.append(f"\n{prefix}[{t['topic_name']:<15}] depth: {t['depth']:<5} "
                   f"be-depth: {t['backend_depth']:<5} msgs: {t['message_count']:<8} "
                   f"e2e%: {_e2e_text(t['e2e_processing_latency'])}\n")
        for c in t["channels"]:
            prefix = "   *P " if c["paused"] else "      "
            out.append(f"{prefix}[{c['channel_name']:<25}] depth: {c['depth']:<5} "
                       f"be-depth: {c['backend_depth']:<5} inflt: {c['in_flight_count']:<4} "
                       f"def: {c['deferred_count']:<4} re-q: {c['requeue_count']:<5} "
                       f"timeout: {c['timeout_count']:<5} msgs: {c['message_count']:<8} "
                       f"e2e%: {_e2e_text(c['e2e_processing_latency'])}\n")
            for client in c["clients"] or ():
                out.append(f"        {format_client(client, now)}\n")
    producers = stats["producers"]
    if not producers:
        out.append("\nProducers: None\n")
    else:
        out.append("\nProducers:\n")
        out.extend(f"   {format_client(p, now)}\n" for p in producers)
    return "".join(out)
