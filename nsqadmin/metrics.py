"""nsqadmin's Prometheus series (``GET /metrics``): the cluster as nsqadmin sees it,
every nsqd's topics and channels labelled with its ``node`` (``broadcast_address:
http_port``), fetched from the nodes' ``/stats`` at scrape time. The names are listed in
``docs/metrics.md``; ``sum by (topic)`` gives the cluster-wide totals."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from internal.metrics import Exposition, Family, label_set, topic_channel_series
from internal.version import NSQ_VERSION

from .clusterinfo import ClusterError, ClusterInfo
from .stats import Producer

__all__ = ["cluster_metrics", "scrape_cluster"]

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
    ordered = sorted(topics, key=lambda d: (d["topic_name"], d["node"]))
    for t in ordered:  # channels sorted too
        t["channels"] = sorted(t["channels"] or (), key=lambda d: d["channel_name"])
    rows = topic_channel_series(ex, ordered, node=True, skip=("message_bytes",))
    t_lat = fam("nsq_topic_e2e_processing_latency_window_seconds", "gauge",
                "publish to FIN time quantiles over the node's latency window")
    t_latn = fam("nsq_topic_e2e_processing_latency_window_count", "gauge",
                 "FINs in the node's latency window")
    c_lat = fam("nsq_channel_e2e_processing_latency_window_seconds", "gauge",
                "publish to FIN time quantiles over the node's latency window")
    c_latn = fam("nsq_channel_e2e_processing_latency_window_count", "gauge",
                 "FINs in the node's latency window")
    for tl, t, chans in rows:
        _latency(t_lat, t_latn, tl, t["e2e_processing_latency"])
        for cl, c in chans:
            _latency(c_lat, c_latn, cl, c["e2e_processing_latency"])
    return ex


async def scrape_cluster(ci: ClusterInfo, lookupd: Sequence[str], nsqd: Sequence[str]
                         ) -> Exposition:
    """Find the nodes (nsqlookupd, else the nsqd list), read their stats, and build the
    series; failed requests are counted in ``nsqadmin_scrape_errors``, never raised."""
    errors: list[str] = []
    producers: list[Producer] = []
    stats: list[Doc] = []
    try:
        producers = await ci.producers(lookupd, nsqd, errors)
        if producers:
            stats = await ci.nsqd_stats(producers, errors, include_clients=False)
    except ClusterError as exc:
        errors.append(str(exc))
    return cluster_metrics(producers, stats, errors)
