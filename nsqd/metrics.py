"""nsqd's Prometheus series (``GET /metrics``), read from the live topics, channels and
connections at scrape time. The names are listed in ``docs/metrics.md``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from internal.metrics import Exposition, label_set
from internal.quantile import query
from internal.version import NSQ_VERSION

if TYPE_CHECKING:
    from internal.quantile import WindowedQuantile

    from .channel import Channel
    from .nsqd import NSQD

__all__ = ["nsqd_metrics"]


def _latency(windows: list[WindowedQuantile], percentiles: list[float]
             ) -> tuple[list[tuple[float, float]], int, float]:
    """Summary parts in seconds: (quantile, value) pairs over the window, and the
    count and sum of every latency recorded since start."""
    count, values = query([s for w in windows for s in w.sketches()], percentiles)
    pairs = [(q, v / 1e9) for q, v in zip(percentiles, values)] if count else []
    return (pairs, sum(w.total_count for w in windows),
            sum(w.total_sum for w in windows) / 1e9)


def nsqd_metrics(nsqd: NSQD, *, per_client: bool = False) -> Exposition:
    """Every nsqd series; per-connection ones only with ``per_client``."""
    ex = Exposition()
    fam = ex.family
    info = fam("nsqd_info", "gauge", "nsqd version and identity (always 1)")
    healthy = fam("nsqd_healthy", "gauge", "1 while nsqd is healthy (/ping answers OK)")
    conns = fam("nsqd_clients", "gauge", "TCP client connections")
    ntopics = fam("nsqd_topics", "gauge", "topics")
    t_msgs = fam("nsq_topic_messages_total", "counter", "messages published to the topic")
    t_bytes = fam("nsq_topic_message_bytes_total", "counter",
                  "bytes of message bodies published to the topic")
    t_depth = fam("nsq_topic_depth", "gauge",
                  "messages waiting in the topic for a channel (memory + disk)")
    t_bdepth = fam("nsq_topic_backend_depth", "gauge", "messages of the topic waiting on disk")
    t_paused = fam("nsq_topic_paused", "gauge", "1 if the topic is paused")
    t_lat = fam("nsq_topic_e2e_processing_latency_seconds", "summary",
                "publish to FIN time over the latency window, all channels of the topic")
    c_msgs = fam("nsq_channel_messages_total", "counter", "messages the channel received")
    c_req = fam("nsq_channel_requeued_total", "counter", "messages requeued (REQ, disconnect)")
    c_tout = fam("nsq_channel_timed_out_total", "counter",
                 "in-flight messages that timed out and were requeued")
    c_depth = fam("nsq_channel_depth", "gauge", "messages waiting for a consumer (memory + disk)")
    c_bdepth = fam("nsq_channel_backend_depth", "gauge", "messages of the channel waiting on disk")
    c_infl = fam("nsq_channel_in_flight", "gauge", "messages delivered and not yet FIN'd")
    c_def = fam("nsq_channel_deferred", "gauge", "deferred messages (DPUB, REQ with delay)")
    c_clients = fam("nsq_channel_clients", "gauge", "consumers subscribed to the channel")
    c_paused = fam("nsq_channel_paused", "gauge", "1 if the channel is paused")
    c_lat = fam("nsq_channel_e2e_processing_latency_seconds", "summary",
                "publish to FIN time over the latency window")

    opts = nsqd.options
    info.add(label_set(("version", NSQ_VERSION), ("broadcast_address", opts.broadcast_address)), 1)
    healthy.add("", 1 if nsqd.health == "OK" else 0)
    conns.add("", len(nsqd.clients))
    ntopics.add("", len(nsqd.topics))
    percentiles = opts.e2e_processing_latency_percentiles

    subscribed: list[tuple[str, Channel]] = []
    for tname in sorted(nsqd.topics):
        topic = nsqd.topics[tname]
        tl = label_set(("topic", tname))
        t_msgs.add(tl, topic.message_count)
        t_bytes.add(tl, topic.message_bytes)
        t_depth.add(tl, topic.depth())
        t_bdepth.add(tl, topic.backend.depth())
        t_paused.add(tl, int(topic.paused))
        windows = []
        for cname in sorted(topic.channels):
            channel = topic.channels[cname]
            cl = f'{tl},channel="{cname}"'  # names are [.a-zA-Z0-9_-#]: nothing to escape
            c_msgs.add(cl, channel.message_count)
            c_req.add(cl, channel.requeue_count)
            c_tout.add(cl, channel.timeout_count)
            c_depth.add(cl, channel.depth())
            c_bdepth.add(cl, channel.backend.depth())
            c_infl.add(cl, len(channel.in_flight))
            c_def.add(cl, len(channel.deferred))
            c_clients.add(cl, len(channel.clients))
            c_paused.add(cl, int(channel.paused))
            if channel.e2e is not None:
                channel.fold_e2e()
                windows.append(channel.e2e)
                c_lat.add_summary(cl, *_latency([channel.e2e], percentiles))
            if per_client and channel.clients:
                subscribed.append((cl, channel))
        if windows:
            t_lat.add_summary(tl, *_latency(windows, percentiles))
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
