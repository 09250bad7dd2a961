"""nsqadmin's Prometheus series (``GET /metrics``): the cluster as nsqadmin sees it,
every nsqd's topics and channels labelled with its ``node`` (``broadcast_address:
http_port``), fetched from the nodes' ``/stats`` at scrape time. The names are listed in
``docs/metrics.md``; ``sum by (topic)`` gives the cluster-wide totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from internal.metrics import Exposition, Family, label_set
from internal.version import NSQ_VERSION

from .stats import Producer

__all__ = ["cluster_metrics"]

Doc = dict[str, Any]


def _latency(fam: Family, count: Family, labels: str, e2e: Doc | None) -> None:
    """An nsqd latency result (window quantiles, not a cumulative summary) as gauges."""
    if not e2e or not e2e.get("percentiles"):
        return
    for p in e2e["percentiles"]:
        fam.add(f'{labels},quantile="{p.get("quantile", 0.0)!r}"', p.get("value", 0.0) / 1e9)
    count.add(labels, e2e.get("count", 0))


def cluster_metrics(producers: Sequence[Producer], topics: Sequence[Doc],
                    errors: Sequence[str]) -> Exposition:
    """Series for the ``producers`` nsqadmin found and their per-node ``topics``
    (:meth:`ClusterInfo.nsqd_stats` output); ``errors``: nodes or lookupds that failed."""
    ex = Exposition()
    fam = ex.family
    fam("nsqadmin_info", "gauge", "nsqadmin version (always 1)").add(
        label_set(("version", NSQ_VERSION)), 1)
    fam("nsqadmin_nodes", "gauge", "nsqd nodes found (from nsqlookupd or --nsqd-http-address)"
        ).add("", len(producers))
    fam("nsqadmin_scrape_errors", "gauge",
        "nsqlookupd or nsqd requests of this scrape that failed").add("", len(errors))
    t_msgs = fam("nsq_topic_messages_total", "counter", "messages published to the topic")
    t_depth = fam("nsq_topic_depth", "gauge", "messages waiting in the topic (memory + disk)")
    t_bdepth = fam("nsq_topic_backend_depth", "gauge", "messages of the topic waiting on disk")
    t_paused = fam("nsq_topic_paused", "gauge", "1 if the topic is paused")
    t_lat = fam("nsq_topic_e2e_processing_latency_window_seconds", "gauge",
                "publish to FIN time quantiles over the node's latency window")
    t_latn = fam("nsq_topic_e2e_processing_latency_window_count", "gauge",
                 "FINs in the node's latency window")
    c_msgs = fam("nsq_channel_messages_total", "counter", "messages the channel received")
    c_req = fam("nsq_channel_requeued_total", "counter", "messages requeued")
    c_tout = fam("nsq_channel_timed_out_total", "counter", "in-flight messages that timed out")
    c_depth = fam("nsq_channel_depth", "gauge", "messages waiting for a consumer")
    c_bdepth = fam("nsq_channel_backend_depth", "gauge", "messages of the channel waiting on disk")
    c_infl = fam("nsq_channel_in_flight", "gauge", "messages delivered and not yet FIN'd")
    c_def = fam("nsq_channel_deferred", "gauge", "deferred messages")
    c_clients = fam("nsq_channel_clients", "gauge", "consumers subscribed to the channel")
    c_paused = fam("nsq_channel_paused", "gauge", "1 if the channel is paused")
    c_lat = fam("nsq_channel_e2e_processing_latency_window_seconds", "gauge",
                "publish to FIN time quantiles over the node's latency window")
    c_latn = fam("nsq_channel_e2e_processing_latency_window_count", "gauge",
                 "FINs in the node's latency window")
    for t in sorted(topics, key=lambda d: (d["topic_name"], d["node"])):
        tl = label_set(("node", t["node"]), ("topic", t["topic_name"]))
        t_msgs.add(tl, t["message_count"])
        t_depth.add(tl, t["depth"])
        t_bdepth.add(tl, t["backend_depth"])
        t_paused.add(tl, int(t["paused"]))
        _latency(t_lat, t_latn, tl, t["e2e_processing_latency"])
        for c in sorted(t["channels"] or (), key=lambda d: d["channel_name"]):
            cl = f'{tl},{label_set(("channel", c["channel_name"]))}'
            c_msgs.add(cl, c["message_count"])
            c_req.add(cl, c["requeue_count"])
            c_tout.add(cl, c["timeout_count"])
            c_depth.add(cl, c["depth"])
            c_bdepth.add(cl, c["backend_depth"])
            c_infl.add(cl, c["in_flight_count"])
            c_def.add(cl, c["deferred_count"])
            c_clients.add(cl, c["client_count"])
            c_paused.add(cl, int(c["paused"]))
            _latency(c_lat, c_latn, cl, c["e2e_processing_latency"])
    return ex
