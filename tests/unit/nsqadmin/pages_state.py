"""A representative cluster state and every nsqadmin page rendered from it.

Shared by the page tests: two nsqd, topics with and without channels, a paused channel,
e2e percentiles, clients with every attribute, a tombstoned topic, graph samples. With
``hostile=True`` every string a client or an nsqd controls carries markup and quotes.
"""

from __future__ import annotations

from nsqadmin import pages
from nsqadmin.graphs import SeriesStore, sample_values
from nsqadmin.stats import Producer, aggregate_topic, topic_from_nsqd

NOW = 1_700_000_000.0
EVIL = "<script>alert('x')</script>\"&amp;"


def _client(n: int, hostile: bool) -> dict:
    evil = EVIL if hostile else ""
    return {
        "remote_address": f"10.0.0.{n}:5{n}000", "version": "V2",
        "client_id": f"worker-{n}{evil}", "hostname": f"app{n}.example{evil}",
        "user_agent": f"pynsq/0.9{evil}", "connect_ts": int(NOW) - 3725 * n,
        "in_flight_count": n, "ready_count": 10 * n, "finish_count": 1234 * n,
        "requeue_count": n, "message_count": 1240 * n, "sample_rate": 25 if n == 1 else 0,
        "deflate": n == 1, "snappy": n == 2, "authed": True,
        "auth_identity": f"svc{n}{evil}" if n == 1 else "", "tls": True,
        "tls_version": f"TLS1.3{evil}", "tls_cipher_suite": "TLS_AES_128_GCM_SHA256",
        "tls_negotiated_protocol": "",
    }


def _e2e(scale: float) -> dict:
    return {"count": 10, "percentiles": [{"quantile": 0.99, "value": 2.5e6 * scale},
                                         {"quantile": 0.5, "value": 800.0 * scale}]}


def _nsqd_topics(i: int, hostile: bool) -> list[dict]:
    return [
        {"topic_name": "orders", "depth": 120 + i, "backend_depth": 20, "message_count": 50_000 + i,
         "paused": i == 1, "e2e_processing_latency": _e2e(i + 1),
         "channels": [
             {"channel_name": "billing", "depth": 7, "backend_depth": 2, "in_flight_count": 3,
              "deferred_count": 1, "requeue_count": 4, "timeout_count": 2,
              "message_count": 49_000, "client_count": 2, "paused": False,
              "e2e_processing_latency": _e2e(2.0 + i),
              "clients": [_client(1 + 2 * i, hostile), _client(2 + 2 * i, hostile)]},
             {"channel_name": "audit#ephemeral", "depth": 0, "backend_depth": 0,
              "in_flight_count": 0, "deferred_count": 0, "requeue_count": 0, "timeout_count": 0,
              "message_count": 10, "client_count": 0, "paused": True, "clients": []},
         ]},
        {"topic_name": f"lonely{i}", "depth": 0, "backend_depth": 0, "message_count": 0,
         "paused": False, "channels": []},
    ]


def state(hostile: bool = False) -> dict:
    """Per-node topic docs, aggregates, producers and a sampled store."""
    evil = EVIL if hostile else ""
    nodes = [("127.0.0.1:4151", f"nsqd-a{evil}"), ("127.0.0.2:4151", "127.0.0.2")]
    per_node = [topic_from_nsqd(t, node, host, now=NOW)
                for i, (node, host) in enumerate(nodes) for t in _nsqd_topics(i, hostile)]
    store = SeriesStore(capacity=30, max_series=100)
    for k in range(6):
        for t in per_node:
            t["message_count"] += 100 * k
        store.record(NOW - 60 + 10 * k, sample_values(per_node))
    producers = []
    for i, (node, host) in enumerate(nodes):
        p = Producer(remote_address=f"127.0.0.{i + 1}:4000{i}", hostname=host,
                     broadcast_address=node.rsplit(":", 1)[0], tcp_port=4150, http_port=4151,
                     version=f"1.3.0{evil}", topics=[("orders", False), (f"lonely{i}", i == 1)])
        p.remote_addresses = [f"lookupd-1{evil}"] if i == 0 else ["lookupd-1", "lookupd-2"]
        p.out_of_date = i == 1
        producers.append(p)
    return {"per_node": per_node, "store": store, "producers": producers,
            "warning": f"nsqd 127.0.0.9:4151 unreachable{evil}"}


def render_all(hostile: bool = False) -> dict[str, str]:
    """Every page in its variants (admin or not, base path, lookupd or not, empty states)."""
    st = state(hostile)
    per_node, store, warning = st["per_node"], st["store"], st["warning"]
    orders = aggregate_topic("orders", [t for t in per_node if t["topic_name"] == "orders"])
    billing = next(c for c in orders["channels"] if c["channel_name"] == "billing")
    paused_ch = next(c for c in orders["channels"] if c["channel_name"] != "billing")
    lonely = aggregate_topic("lonely0", [t for t in per_node if t["topic_name"] == "lonely0"])
    node_topics = [t for t in per_node if t["node"] == "127.0.0.1:4151"]
    node_doc = {"node": "127.0.0.1:4151", "topics": node_topics, "total_messages": 50_121,
                "total_clients": 2, "message": warning}
    out: dict[str, str] = {}
    for base in ("/", "/admin"):
        for admin in (True, False):
            for lookupd in (["127.0.0.1:4161", "127.0.0.1:4261"], []):
                tag = f"{base.strip('/') or 'root'}-{'admin' if admin else 'user'}-{len(lookupd)}"

                def ctx(active: str, base: str = base, admin: bool = admin,
                        lookupd: list[str] = lookupd) -> pages.Context:
                    return pages.Context(base_path=base, is_admin=admin, lookupd=lookupd,
                                         active=active, refresh=5.0, sample_interval=10.0,
                                         store=store)
                out[f"topics-{tag}"] = pages.topics_page(
                    ctx("topics"), ["orders", "lonely0", "ghost"], per_node, warning)
                out[f"topics-empty-{tag}"] = pages.topics_page(ctx("topics"), [], [], "")
                out[f"topic-{tag}"] = pages.topic_page(ctx("topics"), orders, warning)
                out[f"topic-nochannels-{tag}"] = pages.topic_page(ctx("topics"), lonely, "")
                out[f"topic-noproducers-{tag}"] = pages.topic_page(
                    ctx("topics"), aggregate_topic("ghost", []), "")
                out[f"channel-{tag}"] = pages.channel_page(ctx("topics"), "orders", "billing",
                                                           billing, warning)
                out[f"channel-paused-{tag}"] = pages.channel_page(
                    ctx("topics"), "orders", paused_ch["channel_name"], paused_ch, "")
                out[f"channel-missing-{tag}"] = pages.channel_page(
                    ctx("topics"), "orders", "nope", None, "")
                out[f"nodes-{tag}"] = pages.nodes_page(ctx("nodes"), st["producers"], warning)
                out[f"node-{tag}"] = pages.node_page(ctx("nodes"), node_doc)
                out[f"node-empty-{tag}"] = pages.node_page(
                    ctx("nodes"), {**node_doc, "topics": [], "message": ""})
                out[f"lookup-{tag}"] = pages.lookup_page(
                    ctx("lookup"), {"ghost": ["c1", "c#ephemeral"], "bare": None}, warning)
                out[f"lookup-none-{tag}"] = pages.lookup_page(ctx("lookup"), {}, "")
                out[f"counter-{tag}"] = pages.counter_page(ctx("counter"))
                out[f"error-{tag}"] = pages.error_page(ctx("topics"), 502, warning)
    for metric in ("depth", "rate"):
        for key, label in ((("topic", "orders"), "orders"), (("channel", "orders", "billing"),
                                                             "orders/billing"),
                           (("cluster",), "all channels"), (("topic", "none"), "none")):
            out[f"chart-{metric}-{label.replace('/', '_').replace(' ', '_')}"] = pages.chart(
                store, key, metric, label)
    return out
