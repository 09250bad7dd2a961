"""nsqd's Prometheus series (``GET /metrics``), read from the live topics, channels and
connections at scrape time. The names are listed in ``docs/metrics.md``."""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import TYPE_CHECKING

from internal.metrics import (
    CHANNEL_SERIES,
    TOPIC_SERIES,
    Exposition,
    Family,
    add_samples,
    label_set,
    series_families,
)
from internal.version import NSQ_VERSION

from .stats import get_stats

if TYPE_CHECKING:
    from .nsqd import NSQD
    from .statistics import (
        ChannelStatistics,
        ClientStatistics,
        LatencyStatistics,
        TopicStatistics,
    )

__all__ = ["nsqd_metrics"]

_Rows = list[tuple[str, "TopicStatistics", list[tuple[str, "ChannelStatistics"]]]]


def _summary(fam: Family, labels: str, e2e: LatencyStatistics) -> None:
    """A latency summary in seconds: the window's quantiles and the count and sum of
    every latency recorded since start."""
    pairs = [(q, v / 1e9) for q, v in e2e.percentiles or ()] if e2e.count else []
    fam.add_summary(labels, pairs, e2e.total_count, e2e.total_sum / 1e9)


def _topic_channel_series(ex: Exposition, topics: Sequence[TopicStatistics]) -> _Rows:
    """:data:`~internal.metrics.TOPIC_SERIES` and ``CHANNEL_SERIES`` of the records
    (labels ``topic`` and ``channel``); returns the labels of each for further series."""
    t_fams = series_families(ex, TOPIC_SERIES, attrgetter)
    c_fams = series_families(ex, CHANNEL_SERIES, attrgetter)
    rows: _Rows = []
    for t in topics:
        tl = label_set(("topic", t.name))
        add_samples(t_fams, tl, t)
        chans = [(f'{tl},{label_set(("channel", c.name))}', c) for c in t.channels]
        for cl, c in chans:
            add_samples(c_fams, cl, c)
        rows.append((tl, t, chans))
    return rows


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
    stats = get_stats(nsqd, include_clients=per_client)
    rows = _topic_channel_series(ex, stats.topics)
    t_lat = fam("nsq_topic_e2e_processing_latency_seconds", "summary",
                "publish to FIN time over the latency window, all channels of the topic")
    c_lat = fam("nsq_channel_e2e_processing_latency_seconds", "summary",
                "publish to FIN time over the latency window")
    subscribed: list[tuple[str, ChannelStatistics]] = []
    for tl, t, chans in rows:
        for cl, c in chans:
            if c.e2e_processing_latency.windows:
                _summary(c_lat, cl, c.e2e_processing_latency)
            if c.clients:
                subscribed.append((cl, c))
        if t.e2e_processing_latency.windows:
            _summary(t_lat, tl, t.e2e_processing_latency)
    if per_client:
        _client_metrics(ex, subscribed, stats.producers or ())
    return ex


def _client_metrics(ex: Exposition, subscribed: list[tuple[str, ChannelStatistics]],
                    producers: Sequence[ClientStatistics]) -> None:
    fam = ex.family
    ready = fam("nsq_client_ready", "gauge", "the consumer's RDY count")
    in_flight = fam("nsq_client_in_flight", "gauge", "messages in flight to the consumer")
    sent = fam("nsq_client_messages_total", "counter", "messages delivered to the consumer")
    fin = fam("nsq_client_finished_total", "counter", "messages the consumer FIN'd")
    req = fam("nsq_client_requeued_total", "counter", "messages the consumer REQ'd")
    pub = fam("nsq_client_published_total", "counter", "messages the connection published")
    for cl, channel in subscribed:
        for client in channel.clients or ():
            labels = f'{cl},{_client_labels(client)}'
            ready.add(labels, client.ready_count)
            in_flight.add(labels, client.in_flight_count)
            sent.add(labels, client.message_count)
            fin.add(labels, client.finish_count)
            req.add(labels, client.requeue_count)
    for client in producers:
        for tname, count in client.pub_counts:
            pub.add(f'{label_set(("topic", tname))},{_client_labels(client)}', count)


def _client_labels(client: ClientStatistics) -> str:
    return label_set(("client_id", client.client_id), ("remote_address", client.remote_address))
