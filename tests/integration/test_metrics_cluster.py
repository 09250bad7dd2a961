"""``GET /metrics`` of nsqlookupd and nsqadmin over a real cluster (one nsqlookupd, two
nsqd): parsed by prometheus_client's parser, checked by promtool where installed."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from test_metrics_nsqd import promtool_check, value
from test_nsqadmin import (  # noqa: F401  (fixtures)
    Cluster,
    cluster,
    lookupd_cluster,
)


async def _scrape(c: Cluster, url: str) -> tuple[str, dict]:
    resp = await c.http.get(url + "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return resp.text, {f.name: f for f in text_string_to_metric_families(resp.text)}


async def test_lookupd_and_admin_metrics(lookupd_cluster: Cluster) -> None:  # noqa: F811
    c = lookupd_cluster
    await c.make_topic("cm", "ch", nodes=(0, 1), messages=2)
    await c.make_topic("solo", nodes=(1,), messages=1)

    text, fams = await _scrape(c, f"http://{c.lookupd_http}")
    assert value(fams, "nsqlookupd_nodes") == 2
    assert value(fams, "nsqlookupd_active_nodes") == 2
    assert value(fams, "nsqlookupd_topics") == 2
    assert value(fams, "nsqlookupd_topic_producers", topic="cm") == 2
    assert value(fams, "nsqlookupd_topic_producers", topic="solo") == 1
    assert value(fams, "nsqlookupd_channel_producers", topic="cm", channel="ch") == 2
    node1 = c.nsqd_http(1)
    assert value(fams, "nsqlookupd_node_topics", node=node1) == 2
    assert value(fams, "process_resident_memory_bytes") > 0
    promtool_check(text)

    text, fams = await _scrape(c, c.admin_url)
    assert value(fams, "nsqadmin_nodes") == 2
    assert value(fams, "nsqadmin_scrape_errors") == 0
    for i in (0, 1):
        node = c.nsqd_http(i)
        assert value(fams, "nsq_topic_messages", node=node, topic="cm") == 2
        assert value(fams, "nsq_channel_depth", node=node, topic="cm", channel="ch") == 2
    assert value(fams, "nsq_topic_depth", node=node1, topic="solo") == 1
    promtool_check(text)


async def test_admin_metrics_with_dead_nsqd(cluster: Cluster) -> None:  # noqa: F811
    from helpers import dead_address
    await cluster.start_admin(nsqd_http_addresses=[dead_address()])
    text, fams = await _scrape(cluster, cluster.admin_url)
    assert value(fams, "nsqadmin_scrape_errors") >= 1
    assert value(fams, "nsqadmin_nodes") == 0
    promtool_check(text)
