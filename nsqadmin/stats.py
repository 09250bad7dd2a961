"""Cluster stats in Go nsqadmin 1.3's JSON shapes (``internal/clusterinfo/types.go``).

Pure functions over decoded JSON (and :class:`client.lookup.PeerInfo`): nothing here
does I/O. nsqd's ``/stats`` documents
are normalised into Go's ``TopicStats`` / ``ChannelStats`` / ``ClientStats`` field sets
(same keys, same order, same zero values) and aggregated across nodes like Go's
``Add`` methods.

Deliberate differences from Go 1.3, where Go's output is an accident of pointer
aliasing rather than a design:

* Go's ``TopicStats.Add`` keeps the first node's channel object as the cluster-wide
  channel and adds the others into it, which also rewrites that node's own entry in
  ``nodes[].channels`` and leaves it out of the aggregate's ``nodes``. Here per-node
  entries are never modified, and an aggregate over several nodes lists every node.
  With a single node the output is the same as Go's.
* Go merges E2E percentiles with ``min = Min(value.max, p.max)``; here ``min`` is the
  minimum of the minimums.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from client.lookup import PeerInfo

__all__ = [
    "Producer",
    "add_channel",
    "aggregate_channels",
    "aggregate_topic",
    "channel_from_nsqd",
    "client_from_nsqd",
    "counter_stats",
    "e2e_from_nsqd",
    "parse_version",
    "topic_from_nsqd",
]

Doc = dict[str, Any]

_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?")


def parse_version(text: str) -> tuple[int, int, int, int, str]:
    """Parse a semantic version for ordering; anything invalid counts as ``0.0.0``.

    Returns:
        A tuple that sorts like semver precedence (a pre-release sorts before its
        release).
    """
    m = _SEMVER.fullmatch(text or "")
    if m is None:
        return (0, 0, 0, 1, "")
    pre = m.group(4) or ""
    return (int(m.group(1)), int(m.group(2)), int(m.group(3)), 0 if pre else 1, pre)


def _join_host_port(host: str, port: int) -> str:
    if ":" in host and not host.startswith("["):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class Producer:
    """One nsqd as nsqlookupd (``/nodes``, ``/lookup``) or its own ``/info`` describes it.

    Attributes mirror Go's ``clusterinfo.Producer``; ``topics`` is a list of
    ``(topic, tombstoned)`` pairs or None (Go's nil slice).
    """

    __slots__ = ("broadcast_address", "hostname", "http_port", "out_of_date",
                 "remote_address", "remote_addresses", "tcp_port", "topics", "version",
                 "version_key")

    def __init__(self, *, remote_address: str = "", hostname: str = "",
                 broadcast_address: str = "", tcp_port: int = 0, http_port: int = 0,
                 version: str = "", topics: list[tuple[str, bool]] | None = None) -> None:
        self.remote_addresses: list[str] | None = None
        self.remote_address = remote_address
        self.hostname = hostname
        self.broadcast_address = broadcast_address
        self.tcp_port = tcp_port
        self.http_port = http_port
        self.version = version
        self.version_key = parse_version(version)
        self.topics = topics
        self.out_of_date = False

    @classmethod
    def from_peer(cls, peer: PeerInfo) -> Producer:
        """Build from nsqlookupd's description of one nsqd (:mod:`client.lookup`)."""
        tombstones = peer.tombstones
        topics = [(name, i < len(tombstones) and tombstones[i])
                  for i, name in enumerate(peer.topics)] or None
        return cls(remote_address=peer.remote_address, hostname=peer.hostname,
                   broadcast_address=peer.broadcast_address, tcp_port=peer.tcp_port,
                   http_port=peer.http_port, version=peer.version, topics=topics)

    @property
    def http_address(self) -> str:
        """``broadcast_address:http_port``, the node's identity in nsqadmin."""
        return _join_host_port(self.broadcast_address, self.http_port)

    @property
    def tcp_address(self) -> str:
        """``broadcast_address:tcp_port``."""
        return _join_host_port(self.broadcast_address, self.tcp_port)

    @property
    def address(self) -> str:
        """The address nsqlookupd saw the node connect from, or ``N/A``."""
        return self.remote_address or "N/A"

    def to_json(self) -> Doc:
        """Go's JSON encoding of ``Producer``."""
        return {
            "remote_addresses": self.remote_addresses,
            "remote_address": self.remote_address,
            "hostname": self.hostname,
            "broadcast_address": self.broadcast_address,
            "tcp_port": self.tcp_port,
            "http_port": self.http_port,
            "version": self.version,
            "topics": None if self.topics is None else
            [{"topic": t, "tombstoned": tomb} for t, tomb in self.topics],
            "out_of_date": self.out_of_date,
        }


# ------------------------------------------------------------------------------ e2e
def e2e_from_nsqd(doc: Any) -> Doc | None:
    """Go's ``E2eProcessingLatencyAggregate.UnmarshalJSON`` of an nsqd latency result."""
    if not isinstance(doc, dict):
        return None
    count = int(doc.get("count") or 0)
    percentiles = doc.get("percentiles")
    out: list[Doc] | None = None
    if isinstance(percentiles, list):
        out = []
        for p in percentiles:
            item = {k: float(v) for k, v in p.items()}
            value = item.get("value", 0.0)
            item["min"] = item["max"] = item["average"] = value
            item["count"] = float(count)
            out.append(dict(sorted(item.items())))
    return {"count": count, "percentiles": out, "topic": str(doc.get("topic") or ""),
            "channel": str(doc.get("channel") or ""), "host": str(doc.get("host") or "")}


def _e2e_copy(e: Doc | None) -> Doc | None:
    if e is None:
        return None
    out = dict(e)
    if e["percentiles"] is not None:
        out["percentiles"] = [dict(p) for p in e["percentiles"]]
    return out


def _e2e_add(e: Doc, other: Doc | None) -> None:
    """Merge ``other`` into ``e`` by averaging the percentiles (Go's ``Add``)."""
    e["host"] = "*"
    if other is None:
        return
    e["count"] += other["count"]
    for value in other["percentiles"] or []:
        plist = e["percentiles"]
        if plist is None:
            plist = e["percentiles"] = []
        target = next((p for p in plist if p.get("quantile") == value.get("quantile")), None)
        if target is None:
            target = {"average": 0.0, "count": 0.0, "max": value.get("max", 0.0),
                      "min": value.get("min", 0.0), "quantile": value.get("quantile", 0.0)}
            plist.append(target)
        target["max"] = max(value.get("max", 0.0), target["max"])
        target["min"] = min(value.get("min", 0.0), target["min"])
        target["count"] += value.get("count", 0.0)
        if target["count"] == 0:
            target["average"] = 0.0
            continue
        delta = value.get("average", 0.0) - target["average"]
        target["average"] += delta * value.get("count", 0.0) / target["count"]
    if e["percentiles"]:
        e["percentiles"].sort(key=lambda p: -p.get("quantile", 0.0))


def _e2e_new(node: str, topic: str, channel: str = "") -> Doc:
    return {"count": 0, "percentiles": None, "topic": topic, "channel": channel, "host": node}


# ------------------------------------------------------------------------------ nsqd docs
def _int(doc: Doc, key: str) -> int:
    value = doc.get(key)
    return int(value) if isinstance(value, (int, float)) else 0


def client_from_nsqd(doc: Doc, node: str, now: float | None = None) -> Doc:
    """Go's ``ClientStats`` from one nsqd ``clients`` entry (``connected`` in ns)."""
    connect_ts = _int(doc, "connect_ts")
    now_s = int(time.time() if now is None else now)
    return {
        "node": node,
        "remote_address": str(doc.get("remote_address") or ""),
        "version": str(doc.get("version") or ""),
        "client_id": str(doc.get("client_id") or ""),
        "hostname": str(doc.get("hostname") or ""),
        "user_agent": str(doc.get("user_agent") or ""),
        "connect_ts": connect_ts,
        "connected": (now_s - connect_ts) * 1_000_000_000,
        "in_flight_count": _int(doc, "in_flight_count"),
        "ready_count": _int(doc, "ready_count"),
        "finish_count": _int(doc, "finish_count"),
        "requeue_count": _int(doc, "requeue_count"),
        "message_count": _int(doc, "message_count"),
        "sample_rate": _int(doc, "sample_rate"),
        "deflate": bool(doc.get("deflate")),
        "snappy": bool(doc.get("snappy")),
        "authed": bool(doc.get("authed")),
        "auth_identity": str(doc.get("auth_identity") or ""),
        "auth_identity_url": str(doc.get("auth_identity_url") or ""),
        "tls": bool(doc.get("tls")),
        "tls_cipher_suite": str(doc.get("tls_cipher_suite") or ""),
        "tls_version": str(doc.get("tls_version") or ""),
        "tls_negotiated_protocol": str(doc.get("tls_negotiated_protocol") or ""),
        "tls_negotiated_protocol_is_mutual": bool(doc.get("tls_negotiated_protocol_is_mutual")),
    }


def channel_from_nsqd(doc: Doc, node: str, hostname: str, topic_name: str,
                      now: float | None = None) -> Doc:
    """Go's ``ChannelStats`` for one node, as ``GetNSQDStats`` fills it in."""
    depth = _int(doc, "depth")
    backend = _int(doc, "backend_depth")
    clients = doc.get("clients")
    return {
        "node": node,
        "hostname": hostname,
        "topic_name": topic_name,
        "channel_name": str(doc.get("channel_name") or ""),
        "depth": depth,
        "memory_depth": depth - backend,
        "backend_depth": backend,
        "in_flight_count": _int(doc, "in_flight_count"),
        "deferred_count": _int(doc, "deferred_count"),
        "requeue_count": _int(doc, "requeue_count"),
        "timeout_count": _int(doc, "timeout_count"),
        "message_count": _int(doc, "message_count"),
        "client_count": _int(doc, "client_count"),
        "nodes": None,
        "clients": None if clients is None else [client_from_nsqd(c, node, now) for c in clients],
        "paused": bool(doc.get("paused")),
        "e2e_processing_latency": e2e_from_nsqd(doc.get("e2e_processing_latency")),
    }


def topic_from_nsqd(doc: Doc, node: str, hostname: str, now: float | None = None) -> Doc:
    """Go's ``TopicStats`` for one node, as ``GetNSQDStats`` fills it in."""
    name = str(doc.get("topic_name") or "")
    depth = _int(doc, "depth")
    backend = _int(doc, "backend_depth")
    channels = doc.get("channels")
    return {
        "node": node,
        "hostname": hostname,
        "topic_name": name,
        "depth": depth,
        "memory_depth": depth - backend,
        "backend_depth": backend,
        "message_count": _int(doc, "message_count"),
        "nodes": None,
        "channels": None if channels is None else
        [channel_from_nsqd(c, node, hostname, name, now) for c in channels],
        "paused": bool(doc.get("paused")),
        "e2e_processing_latency": e2e_from_nsqd(doc.get("e2e_processing_latency")),
    }


# ------------------------------------------------------------------------------ aggregation
_CHANNEL_SUMS = ("depth", "memory_depth", "backend_depth", "in_flight_count", "deferred_count",
                 "requeue_count", "timeout_count", "message_count", "client_count")
_TOPIC_SUMS = ("depth", "memory_depth", "backend_depth", "message_count")


def _by_hostname(doc: Doc) -> str:
    return str(doc["hostname"])


def add_channel(agg: Doc, ch: Doc) -> None:
    """Go's ``ChannelStats.Add``: fold one node's channel stats into ``agg``."""
    agg["node"] = "*"
    for key in _CHANNEL_SUMS:
        agg[key] += ch[key]
    if ch["paused"]:
        agg["paused"] = True
    nodes = agg["nodes"]
    if nodes is None:
        nodes = agg["nodes"] = []
    nodes.append(ch)
    nodes.sort(key=_by_hostname)
    if agg["e2e_processing_latency"] is None:
        agg["e2e_processing_latency"] = _e2e_new(agg["node"], agg["topic_name"], agg["channel_name"])
    _e2e_add(agg["e2e_processing_latency"], ch["e2e_processing_latency"])
    if ch["clients"]:
        clients = agg["clients"]
        if clients is None:
            clients = agg["clients"] = []
        clients.extend(ch["clients"])
        clients.sort(key=_by_hostname)


def _empty_channel(node: str, topic: str, channel: str) -> Doc:
    return {
        "node": node, "hostname": "", "topic_name": topic, "channel_name": channel,
        "depth": 0, "memory_depth": 0, "backend_depth": 0, "in_flight_count": 0,
        "deferred_count": 0, "requeue_count": 0, "timeout_count": 0, "message_count": 0,
        "client_count": 0, "nodes": None, "clients": None, "paused": False,
        "e2e_processing_latency": None,
    }


def aggregate_channels(per_node_topics: list[Doc], *, keyed_by_topic: bool) -> dict[str, Doc]:
    """The channel map of Go's ``GetNSQDStats``: one aggregate per channel.

    Args:
        per_node_topics: Per-node topic stats (as :func:`topic_from_nsqd` builds them).
        keyed_by_topic: Key by ``topic:channel`` (all topics) instead of the channel name.
    """
    out: dict[str, Doc] = {}
    for topic in per_node_topics:
        for ch in topic["channels"] or ():
            name = ch["channel_name"]
            key = f"{topic['topic_name']}:{name}" if keyed_by_topic else name
            agg = out.get(key)
            if agg is None:
                agg = out[key] = _empty_channel(ch["node"], topic["topic_name"], name)
            add_channel(agg, ch)
    return out


def _channel_total(first: Doc) -> Doc:
    """A cluster-wide channel row that starts as a copy of one node's row."""
    total = dict(first)
    total["e2e_processing_latency"] = _e2e_copy(first["e2e_processing_latency"])
    total["clients"] = None if first["clients"] is None else list(first["clients"])
    return total


def aggregate_topic(name: str, per_node: list[Doc]) -> Doc:
    """Go's ``TopicStats{TopicName: name}`` with every node's stats ``Add``-ed to it."""
    total: Doc = {
        "node": "", "hostname": "", "topic_name": name, "depth": 0, "memory_depth": 0,
        "backend_depth": 0, "message_count": 0, "nodes": None, "channels": None,
        "paused": False, "e2e_processing_latency": None,
    }
    channels: dict[str, Doc] = {}
    firsts: dict[str, Doc] = {}
    for topic in per_node:
        total["node"] = "*"
        for key in _TOPIC_SUMS:
            total[key] += topic[key]
        if topic["paused"]:
            total["paused"] = True
        for ch in topic["channels"] or ():
            cname = ch["channel_name"]
            agg = channels.get(cname)
            if agg is None:
                channels[cname] = _channel_total(ch)
                firsts[cname] = ch
                if total["channels"] is None:
                    total["channels"] = []
                total["channels"].append(channels[cname])
                continue
            if agg["nodes"] is None:  # second node: the row becomes an aggregate of all
                agg["nodes"] = [firsts[cname]]
            add_channel(agg, ch)
        if total["nodes"] is None:
            total["nodes"] = []
        total["nodes"].append(topic)
        if total["e2e_processing_latency"] is None:
            total["e2e_processing_latency"] = _e2e_new("*", name)
        _e2e_add(total["e2e_processing_latency"], topic["e2e_processing_latency"])
    if total["nodes"]:
        total["nodes"].sort(key=_by_hostname)
    return total


def counter_stats(per_node_topics: list[Doc]) -> dict[str, Doc]:
    """The ``stats`` of Go's ``/api/counter``: message counts per ``topic:channel:node``
    (straight from per-node stats; Go builds the full channel aggregates first)."""
    out: dict[str, Doc] = {}
    for topic in per_node_topics:
        name = topic["topic_name"]
        for ch in topic["channels"] or ():
            node = ch["node"]
            key = f"{name}:{ch['channel_name']}:{node}"
            entry = out.get(key)
            if entry is None:
                entry = out[key] = {"node": node, "topic_name": name,
                                    "channel_name": ch["channel_name"], "message_count": 0}
            entry["message_count"] += ch["message_count"]
    return out
