"""nsqd's Prometheus series (``GET /metrics``), read from the live topics, channels and
connections at scrape time. The names are listed in ``docs/metrics.md``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from internal.metrics import Exposition, Family, label_set, topic_channel_series
from internal.version import NSQ_VERSION

from .stats import Stats, get_stats

if TYPE_CHECKING:
    from internal.quantile import WindowedQuantile

    from .channel import Channel
    from .nsqd import NSQD

__all__ = ["nsqd_metrics"]


def _summary(fam: Family, labels: str, result: Stats, windows: list[WindowedQuantile]) -> None:
    """A latency summary in seconds: the window's quantiles (``result``, from /stats)
    and the count and sum of every latency recorded since start."""
    pairs = [(p["quantile"], p["value"] / 1e9) for p in result["percentiles"] or ()
             ] if result["count"] else []
    fam.add_summary(labels, pairs, sum(w.total_count for w in windows),
                    sum(w.total_sum for w in windows) / 1e9)


def nsqd_metrics(nsqd: NSQD, *, per_client: bool = False) -> Exposition:
    """Every nsqd series; per-connection ones only with ``per_client``."""
    ex = Exposition()
    fam = ex.family
    opts = nsqd.options
    fam("nsqd_info", "gauge", "nsqd version and identity (always 1)").add(
        label_set(("version", NSQ_VERSION), ("broadcast_address", opts.broadcast_address)), 1)
    fam("nsqd_healthy", "gauge", "1 while nsqd is healthy (/ping answers OK)").add(
        "", 1 if nsqd.health == "OK" else 0)
    fam("nsqd_clients", "gauge", "TCP client connections").add("", len(nsqd.clients))
    fam("nsqd_topics", "gauge", "topics").add("", len(nsqd.topics))
    stats = get_stats(nsqd, include_clients=False)
    rows = topic_channel_series(ex, stats["topics"])
    t_lat = fam("nsq_topic_e2e_processing_latency_seconds", "summary",
                "publish to FIN time over the latency window, all channels of the topic")
    c_lat = fam("nsq_channel_e2e_processing_latency_seconds", "summary",
                "publish to FIN time over the latency window")
    subscribed: list[tuple[str, Channel]] = []
    for tl, t, chans in rows:
        topic = nsqd.topics[t["topic_name"]]
        windows = []
        for cl, c in chans:
            channel = topic.channels[c["channel_name"]]
            if channel.e2e is not None:
                windows.append(channel.e2e)
                _summary(c_lat, cl, c["e2e_processing_latency"], [channel.e2e])
            if per_client and channel.clients:
                subscribed.append((cl, channel))
        if windows:
            _summary(t_lat, tl, t["e2e_processing_latency"], windows)
    if per_client:
        _client_metrics(ex, nsqd, subscribed)
    return ex


def _client_metrics(ex: Exposition, nsqd: NSQD, subscribed: list[tuple[str, Channel]]) -> None:
    fam = ex.family
    ready = fam("nsq_client_ready", "gauge", "the consumer's RDY count")
    in_flight = fam("nsq_client_in_flight", "gauge", "messages in flight to the consumer")
    sent = fam("nsq_client_messages_total", "counter", "messages delivered to the consumer")
    fin = fam("nsq_client_finished_total", "counter", "messages the consumer FIN'd")
    req = fam("nsq_client_requeued_total", "counter", "messages the consumer REQ'd")
    pub = fam("nsq_client_published_total", "counter", "messages the connection published")
    for cl, channel in subscribed:
        for client in sorted(channel.clients.values(), key=lambda c: c.id):
            labels = f'{cl},{_client_labels(client)}'
            ready.add(labels, client.ready_count)
            in_flight.add(labels, client.in_flight)
            sent.add(labels, client.message_count)
            fin.add(labels, client.finish_count)
            req.add(labels, client.requeue_count)
    for client in sorted(nsqd.clients.values(), key=lambda c: c.id):
        for tname, count in sorted((client.pub_counts or {}).items()):
            pub.add(f'{label_set(("topic", tname))},{_client_labels(client)}', count)


def _client_labels(client: object) -> str:
    return label_set(("client_id", str(getattr(client, "client_id", ""))),
                     ("remote_address", str(getattr(client, "remote_address", ""))))
