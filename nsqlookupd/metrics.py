"""nsqlookupd's Prometheus series (``GET /metrics``), read from the registration
database at scrape time. The names are listed in ``docs/metrics.md``."""

from __future__ import annotations

from internal.metrics import Exposition, label_set
from internal.netaddr import join_host_port
from internal.version import NSQ_VERSION

from .options import Options
from .registration_db import RegistrationDB, filter_by_active

__all__ = ["lookupd_metrics"]


def lookupd_metrics(db: RegistrationDB, options: Options, now: float) -> Exposition:
    """Every nsqlookupd series; ``now`` on the clock producers' pings are stamped with."""
    ex = Exposition()
    fam = ex.family
    fam("nsqlookupd_info", "gauge", "nsqlookupd version (always 1)").add(
        label_set(("version", NSQ_VERSION)), 1)
    nodes = fam("nsqlookupd_nodes", "gauge", "nsqd nodes connected")
    active_nodes = fam("nsqlookupd_active_nodes", "gauge",
                       "nsqd nodes that pinged within --inactive-producer-timeout")
    topics = fam("nsqlookupd_topics", "gauge", "topics registered")
    channels = fam("nsqlookupd_channels", "gauge", "channels registered")
    t_prod = fam("nsqlookupd_topic_producers", "gauge",
                 "active, not tombstoned nsqd nodes that have the topic (what /lookup returns)")
    t_tomb = fam("nsqlookupd_topic_tombstoned_producers", "gauge",
                 "nsqd nodes tombstoned for the topic")
    c_prod = fam("nsqlookupd_channel_producers", "gauge", "nsqd nodes that have the channel")
    n_topics = fam("nsqlookupd_node_topics", "gauge", "topics a node registered")
    n_age = fam("nsqlookupd_node_last_update_age_seconds", "gauge",
                "seconds since the node's last IDENTIFY or PING")

    timeout = options.inactive_producer_timeout
    lifetime = options.tombstone_lifetime
    clients = db.find_producers("client", "", "")
    nodes.add("", len(clients))
    active_nodes.add("", len(filter_by_active(clients, now, timeout, 0)))
    n_topic = n_channel = 0
    per_node: dict[str, int] = {}
    for reg, producers in sorted(db.items()):
        if reg.category == "topic":
            n_topic += 1
            labels = label_set(("topic", reg.key))
            t_prod.add(labels, len(filter_by_active(producers, now, timeout, lifetime)))
            t_tomb.add(labels, sum(p.is_tombstoned(lifetime, now) for p in producers))
            for p in producers:
                per_node[p.peer_info.id] = per_node.get(p.peer_info.id, 0) + 1
        elif reg.category == "channel":
            n_channel += 1
            c_prod.add(label_set(("topic", reg.key), ("channel", reg.subkey)), len(producers))
    topics.add("", n_topic)
    channels.add("", n_channel)
    for client in sorted(clients, key=lambda p: p.peer_info.id):
        pi = client.peer_info
        labels = label_set(("node", join_host_port(pi.broadcast_address, pi.http_port)),
                           ("remote_address", pi.remote_address))
        n_topics.add(labels, per_node.get(pi.id, 0))
        n_age.add(labels, max(0.0, now - pi.last_update))
    return ex
