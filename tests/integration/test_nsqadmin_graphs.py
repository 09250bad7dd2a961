"""nsqadmin's pure parts without a cluster: the sample ring buffer, SVG charts, and the
aggregation of nsqd stats into Go nsqadmin's shapes (multi-node, e2e percentiles)."""

from __future__ import annotations

import math
import re

import pytest

from client.lookup import PeerInfo
from nsqadmin.charts import format_number, line_chart, nice_max, sparkline
from nsqadmin.graphs import SeriesStore, sample_values
from nsqadmin.stats import (
    Producer,
    aggregate_channels,
    aggregate_topic,
    counter_stats,
    parse_version,
    topic_from_nsqd,
)


# ------------------------------------------------------------------------------ ring buffer
def test_ring_buffer_rates_gaps_and_bounds() -> None:
    store = SeriesStore(capacity=4, max_series=10)
    key = ("topic", "t")
    store.record(100.0, [(key, 5, 0)])
    store.record(101.0, [(key, 7, 10)])
    store.record(103.0, [(key, 2, 50)])
    pts = store.points(key)
    assert [(p.t, p.depth, p.rate) for p in pts] == [(100.0, 5, None), (101.0, 7, 10.0),
                                                     (103.0, 2, 20.0)]
    latest = store.latest(key)
    assert latest is not None and latest.rate == 20.0
    # a gap: no value at this tick, then a counter reset (nsqd restarted)
    store.record(104.0, [])
    assert store.latest(key) is None
    store.record(105.0, [(key, 1, 3)])
    pts = store.points(key)
    assert [p.t for p in pts] == [101.0, 103.0, 105.0]  # the ring keeps 4 ticks, one empty
    assert pts[-1].rate is None  # 50 → 3 is a reset, not a negative rate
    # limit keeps the newest samples
    assert [p.t for p in store.points(key, limit=1)] == [105.0]


def test_ring_buffer_drops_stale_series_and_caps_count() -> None:
    store = SeriesStore(capacity=2, max_series=2)
    store.record(1.0, [(("a",), 1, 1), (("b",), 1, 1), (("c",), 1, 1)])
    stats = store.statistics()
    assert (stats.series, stats.dropped_series) == (2, 1)
    for t in range(2, 40):
        store.record(float(t), [(("a",), 1, t)])
    assert store.keys() == [("a",)]  # "b" aged out of the ring and was dropped
    assert store.points(("b",)) == []
    store.record(50.0, [(("c",), 3, 3)])
    assert ("c",) in store.keys()  # noqa: SIM118 - SeriesStore.keys() is a list


def test_ring_buffer_memory_is_preallocated() -> None:
    store = SeriesStore(capacity=360, max_series=5)
    store.record(1.0, [(("x",), 1, 1)])
    series = store._series[("x",)]
    assert len(series.depth) == len(series.count) == 360
    assert series.depth.itemsize == 8
    with pytest.raises(ValueError):
        SeriesStore(capacity=1, max_series=1)


def test_sample_values_keys() -> None:
    stats = [topic_from_nsqd({"topic_name": "t", "depth": 2, "message_count": 9, "channels": [
        {"channel_name": "c", "depth": 4, "message_count": 9}]}, "n1:1", "h1"),
        topic_from_nsqd({"topic_name": "t", "depth": 1, "message_count": 1, "channels": [
            {"channel_name": "c", "depth": 6, "message_count": 1}]}, "n2:1", "h2")]
    values = {k: (d, m) for k, d, m in sample_values(stats)}
    assert values[("topic", "t")] == (3, 10)
    assert values[("topic", "t", "n1:1")] == (2, 9)
    assert values[("channel", "t", "c")] == (10, 10)
    assert values[("cluster",)] == (0, 10)


# ------------------------------------------------------------------------------ charts
def test_nice_max_and_numbers() -> None:
    assert [nice_max(v) for v in (0, 0.3, 1, 7, 13, 240, 999)] == [1, 0.5, 1, 10, 20, 250, 1000]
    assert format_number(1234) == "1.23k" and format_number(5) == "5"
    assert format_number(2_500_000) == "2.5M" and format_number(math.nan) == "–"


def test_line_chart_draws_with_gaps() -> None:
    svg = line_chart([0, 10, 20, 30], [1, None, 3, 4], title="Depth · <t>", unit="msgs",
                     data_series="depth")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Depth · &lt;t&gt;" in svg and "<t>" not in svg
    d = re.search(r'class="line" d="([^"]+)"', svg)
    assert d is not None and d.group(1).count("M") == 2  # the gap lifts the pen
    assert 'data-points="3"' in svg and ">4 msgs<" in svg
    empty = line_chart([], [], title="x")
    assert "waiting for samples" in empty


def test_sparkline() -> None:
    svg = sparkline([1, 2, None, 4], title="depth")
    assert svg.count("M") == 2 and "<title>depth</title>" in svg
    assert "<path" not in sparkline([None, None])


# ------------------------------------------------------------------------------ stats shapes
def nsqd_topic(depth: int, *, percentiles: list[dict[str, float]] | None = None,
               clients: int = 0, paused: bool = False) -> dict[str, object]:
    e2e = {"count": 10 if percentiles else 0, "percentiles": percentiles}
    return {"topic_name": "t", "depth": depth, "backend_depth": 1, "message_count": 100,
            "paused": paused, "e2e_processing_latency": e2e,
            "channels": [{"channel_name": "c", "depth": depth, "backend_depth": 0,
                          "message_count": 50, "client_count": clients, "paused": False,
                          "e2e_processing_latency": e2e,
                          "clients": [{"client_id": f"id{i}", "hostname": f"h{i}",
                                       "remote_address": f"1.2.3.4:{i}", "connect_ts": 100}
                                      for i in range(clients)]}]}


def test_aggregate_topic_over_nodes_keeps_node_rows_intact() -> None:
    a = topic_from_nsqd(nsqd_topic(5, clients=1), "b-host:4151", "b-host", now=160)
    b = topic_from_nsqd(nsqd_topic(7, paused=True), "a-host:4151", "a-host", now=160)
    total = aggregate_topic("t", [a, b])
    assert total["node"] == "*" and total["depth"] == 12 and total["memory_depth"] == 10
    assert total["paused"] is True
    assert [n["hostname"] for n in total["nodes"]] == ["a-host", "b-host"]  # sorted by host
    [ch] = total["channels"]
    assert ch["node"] == "*" and ch["depth"] == 12 and len(ch["nodes"]) == 2
    assert a["channels"][0]["depth"] == 5 and a["channels"][0]["node"] == "b-host:4151"
    assert a["channels"][0]["clients"][0]["connected"] == 60 * 10**9

    single = aggregate_topic("t", [a])
    assert single["channels"][0]["node"] == "b-host:4151"  # as Go for one node
    assert single["channels"][0]["nodes"] is None


def test_aggregate_e2e_percentiles() -> None:
    p1 = [{"quantile": 0.99, "value": 3000.0}, {"quantile": 0.5, "value": 1000.0}]
    p2 = [{"quantile": 0.99, "value": 5000.0}]
    a = topic_from_nsqd(nsqd_topic(1, percentiles=p1), "a:1", "a")
    b = topic_from_nsqd(nsqd_topic(1, percentiles=p2), "b:1", "b")
    node_e2e = a["e2e_processing_latency"]
    assert node_e2e["percentiles"][0] == {"average": 3000.0, "count": 10.0, "max": 3000.0,
                                          "min": 3000.0, "quantile": 0.99, "value": 3000.0}
    total = aggregate_topic("t", [a, b])["e2e_processing_latency"]
    assert total["host"] == "*" and total["count"] == 20
    p99 = total["percentiles"][0]
    assert (p99["quantile"], p99["min"], p99["max"], p99["average"]) == (0.99, 3000.0, 5000.0, 4000.0)
    assert [p["quantile"] for p in total["percentiles"]] == [0.99, 0.5]


def test_channel_map_and_counter() -> None:
    a = topic_from_nsqd(nsqd_topic(1, clients=2), "a:1", "a")
    b = topic_from_nsqd(nsqd_topic(2), "b:1", "b")
    by_name = aggregate_channels([a, b], keyed_by_topic=False)
    assert list(by_name) == ["c"] and by_name["c"]["depth"] == 3
    assert len(by_name["c"]["clients"]) == 2 and by_name["c"]["clients"][0]["node"] == "a:1"
    keyed = aggregate_channels([a, b], keyed_by_topic=True)
    assert list(keyed) == ["t:c"] and keyed["t:c"]["message_count"] == 100
    assert counter_stats([a, b]) == {
        "t:c:a:1": {"node": "a:1", "topic_name": "t", "channel_name": "c", "message_count": 50},
        "t:c:b:1": {"node": "b:1", "topic_name": "t", "channel_name": "c", "message_count": 50}}


def test_producer_shape_and_versions() -> None:
    p = Producer.from_peer(PeerInfo.from_json({
        "remote_address": "1.1.1.1:5", "hostname": "h", "broadcast_address": "::1", "tcp_port": 4150,
        "http_port": 4151, "version": "1.2.1", "tombstones": [False, True], "topics": ["x", "y"]}))
    assert p.http_address == "[::1]:4151" and p.tcp_address == "[::1]:4150"
    assert p.to_json()["topics"] == [{"topic": "x", "tombstoned": False},
                                     {"topic": "y", "tombstoned": True}]
    assert parse_version("1.3.0") > parse_version("1.3.0-rc1") > parse_version("1.2.1")
    assert parse_version("garbage") == parse_version("0.0.0")
