"""Server-rendered HTML pages: each function gathers a page's data and renders its
template (``nsqadmin/templates``, autoescaped, see :mod:`nsqadmin.render`).

Every page works without JavaScript for reading; ``static/nsqadmin.js`` adds the
confirmation dialog and requests behind the action buttons, live refresh of the
page body, and the animated counter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import charts
from .graphs import SeriesKey, SeriesStore
from .render import render, render_macro, url_segment
from .stats import Doc, Producer

__all__ = [
    "Context",
    "channel_page",
    "chart",
    "counter_page",
    "error_page",
    "lookup_page",
    "node_page",
    "nodes_page",
    "topic_page",
    "topics_page",
]

SPARK_POINTS = 60


@dataclass(frozen=True, slots=True)
class Context:
    """What every page needs besides its data."""

    base_path: str
    is_admin: bool
    lookupd: list[str]
    active: str
    refresh: float
    sample_interval: float
    store: SeriesStore


def _prefix(ctx: Context) -> str:
    """What every link but the home page's (``ctx.base_path``) starts with."""
    return "" if ctx.base_path == "/" else ctx.base_path


def _page(ctx: Context, template: str, title: str, *, warning: str = "", error: str = "",
          live: bool = True, **variables: Any) -> str:
    store = ctx.store

    def sparks(key: SeriesKey) -> tuple[charts.Spark, charts.Spark]:
        points = store.points(key, SPARK_POINTS)
        return (charts.spark([p.depth for p in points], css_class="spark spark-depth",
                             title="depth"),
                charts.spark([p.rate for p in points], css_class="spark spark-rate",
                             title="msg/s"))

    def latest_rate(key: SeriesKey) -> float | None:
        point = store.latest(key)
        return None if point is None else point.rate

    return render(template, ctx=ctx, base=_prefix(ctx), title=title, warning=warning,
                  error=error, live=live, sparks=sparks, latest_rate=latest_rate, **variables)


# ------------------------------------------------------------------------------ charts
def _chart(store: SeriesStore, key: SeriesKey, metric: str, label: str) -> charts.Chart:
    points = store.points(key)
    times = [p.t for p in points]
    if metric == "depth":
        return charts.chart(times, [p.depth for p in points], title=f"Depth · {label}",
                            unit="msgs", css_class="chart chart-depth", data_series="depth")
    return charts.chart(times, [p.rate for p in points], title=f"Message rate · {label}",
                        unit="msg/s", css_class="chart chart-rate", data_series="rate")


def chart(store: SeriesStore, key: SeriesKey, metric: str, label: str) -> str:
    """A depth or message-rate chart of one series, as SVG text."""
    return render_macro("charts.svg", "line_chart")(_chart(store, key, metric, label))


def _charts(ctx: Context, key: SeriesKey, src: str, label: str,
            metrics: Sequence[str] = ("depth", "rate")) -> list[tuple[str, charts.Chart]]:
    base = _prefix(ctx)
    return [(base + src + metric, _chart(ctx.store, key, metric, label)) for metric in metrics]


def _percentiles(e2e: Doc | None) -> list[str]:
    """The percentile column headers (``p99``, ``p99.9``)."""
    if not e2e or not e2e.get("percentiles"):
        return []
    return [_percent(p.get("quantile", 0.0)) for p in e2e["percentiles"]]


def _percent(q: float) -> str:
    text = f"{q * 100:.4f}".rstrip("0").rstrip(".")
    return f"p{text}"


# ------------------------------------------------------------------------------ pages
def error_page(ctx: Context, status: int, message: str) -> str:
    """A page whose data could not be loaded: the layout and an error banner."""
    return _page(ctx, "error.html", "Error", error=message, status=status)


def topics_page(ctx: Context, names: Sequence[str], stats: Sequence[Doc], warning: str) -> str:
    """The Topics list: depth, messages and rate per topic, with sparklines."""
    totals: dict[str, list[Any]] = {}
    for t in stats:
        row = totals.setdefault(t["topic_name"], [0, 0, False, set(), 0])
        row[0] += t["depth"]
        row[1] += t["message_count"]
        row[2] = row[2] or t["paused"]
        row[3].update(c["channel_name"] for c in t["channels"] or ())
        row[4] += 1
    rows = []
    for name in sorted(set(names) | set(totals)):
        depth, messages, paused, channels, nodes = totals.get(name, (0, 0, False, set(), 0))
        rows.append((name, depth, messages, paused, len(channels), nodes))
    return _page(ctx, "topics.html", "Topics", warning=warning, rows=rows)


def topic_page(ctx: Context, doc: Doc, warning: str) -> str:
    """One topic: actions, graphs, per-node queue table and its channels."""
    name = doc["topic_name"]
    boxes = _charts(ctx, ("topic", name), f"/graphs/topic/{url_segment(name)}/", name) \
        if doc["nodes"] else []
    channels = sorted(doc["channels"] or [], key=lambda c: c["channel_name"])
    return _page(ctx, "topic.html", name, warning=warning, name=name, doc=doc, charts=boxes,
                 pcts=_percentiles(doc["e2e_processing_latency"]), channels=channels)


def channel_page(ctx: Context, topic: str, channel: str, doc: Doc | None, warning: str) -> str:
    """One channel: actions, graphs, per-node rows and the connected clients."""
    boxes: list[tuple[str, charts.Chart]] = []
    pcts: list[str] = []
    if doc is not None and doc["nodes"]:
        boxes = _charts(ctx, ("channel", topic, channel),
                        f"/graphs/channel/{url_segment(topic)}/{url_segment(channel)}/",
                        f"{topic}/{channel}")
        pcts = _percentiles(doc["e2e_processing_latency"])
    return _page(ctx, "channel.html", f"{topic}/{channel}", warning=warning, topic=topic,
                 channel=channel, doc=doc, charts=boxes, pcts=pcts, client_host=_client_host,
                 client_labels=_client_labels)


def _client_host(c: Doc) -> str:
    """``hostname:port (client_id)``, as NSQ's client table shows a connection."""
    port = c["remote_address"].rsplit(":", 1)[-1]
    host = f'{c["hostname"]}:{port}' if c["hostname"] else c["remote_address"]
    client_id = c["client_id"]
    short = c["hostname"].split(".")[0]
    if client_id and client_id.lower() not in (short.lower(), c["hostname"].lower()):
        host += f" ({client_id})"
    return host


def _client_labels(c: Doc) -> list[tuple[str, str, str | None]]:
    """The attribute labels of a client: ``(css class, text, title or None)``."""
    labels: list[tuple[str, str, str | None]] = []
    if c["sample_rate"]:
        labels.append(("label-info", f'Sampled {c["sample_rate"]}%', None))
    if c["tls"]:
        tip = " ".join(x for x in (c["tls_version"], c["tls_cipher_suite"],
                                   c["tls_negotiated_protocol"]) if x)
        labels.append(("label-warning", "TLS", tip))
    if c["deflate"]:
        labels.append(("label-default", "Deflate", None))
    if c["snappy"]:
        labels.append(("label-primary", "Snappy", None))
    if c["authed"]:
        ident = f" {c['auth_identity']}" if c["auth_identity"] else ""
        labels.append(("label-success", f"Authed{ident}", None))
    return labels


def nodes_page(ctx: Context, producers: Sequence[Producer], warning: str) -> str:
    """Every nsqd: address, ports, version, lookupd connections and topics."""
    return _page(ctx, "nodes.html", "Nodes", warning=warning, producers=producers)


def node_page(ctx: Context, doc: Doc) -> str:
    """One nsqd: its topics and their channels."""
    return _page(ctx, "node.html", doc["node"], warning=doc["message"], node=doc["node"],
                 topics=doc["topics"], total_messages=doc["total_messages"],
                 total_clients=doc["total_clients"])


def lookup_page(ctx: Context, inactive: dict[str, list[str] | None], warning: str) -> str:
    """nsqlookupd hosts, inactive topics/channels and the create form."""
    return _page(ctx, "lookup.html", "Lookup", warning=warning, live=False, inactive=inactive)


def counter_page(ctx: Context) -> str:
    """A live total of messages processed (polled by the page's script)."""
    boxes = _charts(ctx, ("cluster",), "/graphs/counter/", "all channels", ("rate",))
    return _page(ctx, "counter.html", "Counter", live=False, charts=boxes)
