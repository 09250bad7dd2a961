"""Server-rendered HTML pages (pure functions: data in, HTML text out).

Every page works without JavaScript for reading; ``static/nsqadmin.js`` adds the
confirmation dialog and requests behind the action buttons, live refresh of the
page body, and the animated counter. Everything user-controlled is escaped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from internal.version import NSQ_VERSION

from .charts import format_number, line_chart, sparkline
from .graphs import SeriesKey, SeriesStore
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
_NO_PRODUCERS = ' <span class="label label-muted">no producers</span>'
_OUT_OF_DATE = ' class="out-of-date"'
_TOMBSTONED = ' title="this topic is currently tombstoned on this node"'


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


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _q(segment: str) -> str:
    return quote(segment, safe=":[]")


def _u(ctx: Context, path: str) -> str:
    if ctx.base_path == "/":
        return path
    return ctx.base_path if path == "/" else ctx.base_path + path


def _n(value: int | float) -> str:
    """NSQ's ``commafy``."""
    return f"{int(value):,}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{format_number(value)}/s"


def _duration(ns: int) -> str:
    """NSQ's ``nanotohuman`` for connection ages: ``3h2m5s``."""
    seconds = max(0, ns // 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def _latency(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.2f}s"
    if ns >= 1e6:
        return f"{ns / 1e6:.1f}ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f}µs"
    return f"{ns:.0f}ns"


def _percent(q: float) -> str:
    text = f"{q * 100:.4f}".rstrip("0").rstrip(".")
    return f"p{text}"


# ------------------------------------------------------------------------------ layout
_NAV = (("topics", "/", "Topics"), ("nodes", "/nodes", "Nodes"),
        ("counter", "/counter", "Counter"), ("lookup", "/lookup", "Lookup"))


def _layout(ctx: Context, title: str, body: str, *, live: bool = True,
            warning: str = "", error: str = "") -> str:
    nav = "".join(
        f'<a href="{_e(_u(ctx, path))}"{" class=active" if key == ctx.active else ""}>{label}</a>'
        for key, path, label in _NAV)
    live_attr = (f' data-refresh="{ctx.refresh:g}"' if live
                 else f' data-charts="{max(ctx.sample_interval, 1.0):g}"')
    return (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)} · nsqadmin</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="{_e(_u(ctx, "/static/favicon.svg"))}" type="image/svg+xml">'
        f'<link rel="stylesheet" href="{_e(_u(ctx, "/static/nsqadmin.css"))}">'
        f'<script src="{_e(_u(ctx, "/static/nsqadmin.js"))}" defer></script>'
        f'</head><body data-base-path="{_e(ctx.base_path)}"{live_attr}>'
        f'<header class="topbar"><a class="brand" href="{_e(_u(ctx, "/"))}">'
        '<span class="logo">◆</span> NSQ</a>'
        f'<nav>{nav}</nav><span class="version">nsqadmin v{NSQ_VERSION}</span></header>'
        f'<main id="main">{_banners(warning, error)}{body}</main>'
        '<dialog id="confirm"><form method="dialog"><p class="confirm-text"></p>'
        '<div class="dialog-buttons"><button value="cancel" class="btn">Cancel</button>'
        '<button value="ok" class="btn btn-primary confirm-ok">OK</button></div></form></dialog>'
        "</body></html>\n"
    )


def _banners(warning: str, error: str) -> str:
    out = ['<div id="flash" class="alert alert-info" hidden></div>']
    out.append(f'<div id="warning" class="alert alert-warning"{"" if warning else " hidden"}>'
               f"{_e(warning)}</div>")
    out.append(f'<div id="error" class="alert alert-danger"{"" if error else " hidden"}>'
               f"{_e(error)}</div>")
    return "".join(out)


def _notice(title: str, text: str) -> str:
    return f'<div class="alert alert-notice"><h4>{_e(title)}</h4>{text}</div>'


def _paused(paused: bool) -> str:
    return ' <span class="label label-paused">paused</span>' if paused else ""


def _button(label: str, css: str, method: str, url: str, *, body: Any = None,
            confirm: str, then: str = "reload", extra: str = "") -> str:
    body_attr = f' data-body="{_e(json.dumps(body))}"' if body is not None else ""
    return (f'<button type="button" class="btn {css}" data-method="{method}" data-url="{_e(url)}"'
            f'{body_attr} data-confirm="{_e(confirm)}" data-then="{_e(then)}"{extra}>'
            f"{label}</button>")


def _table(headers: Iterable[str | tuple[str, int]], rows: Iterable[str], css: str = "") -> str:
    head = "".join(f"<th>{h}</th>" if isinstance(h, str) else f'<th colspan="{h[1]}">{h[0]}</th>'
                   for h in headers)
    return (f'<table class="table {css}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _breadcrumb(ctx: Context, *parts: tuple[str, str | None]) -> str:
    items = []
    for label, href in parts:
        if href is None:
            items.append(f'<li class="current">{_e(label)}</li>')
        else:
            items.append(f'<li><a href="{_e(_u(ctx, href))}">{_e(label)}</a></li>')
    return f'<ol class="breadcrumb">{"".join(items)}</ol>'


# ------------------------------------------------------------------------------ charts
def chart(store: SeriesStore, key: SeriesKey, metric: str, label: str) -> str:
    """A depth or message-rate chart of one series."""
    points = store.points(key)
    times = [p.t for p in points]
    if metric == "depth":
        values: list[float | None] = [p.depth for p in points]
        return line_chart(times, values, title=f"Depth · {label}", unit="msgs",
                          css_class="chart chart-depth", data_series="depth")
    values = [p.rate for p in points]
    return line_chart(times, values, title=f"Message rate · {label}", unit="msg/s",
                      css_class="chart chart-rate", data_series="rate")


def _charts(ctx: Context, key: SeriesKey, src: str, label: str,
            metrics: Sequence[str] = ("depth", "rate")) -> str:
    boxes = "".join(
        f'<div class="chart-box" data-src="{_e(_u(ctx, src + metric))}">'
        f"{chart(ctx.store, key, metric, label)}</div>"
        for metric in metrics)
    note = (f'<p class="muted small">Sampled by nsqadmin every {ctx.sample_interval:g}s '
            f"into an in-memory ring buffer.</p>")
    return f'<section class="charts">{boxes}</section>{note}'


def _sparks(ctx: Context, key: SeriesKey) -> tuple[str, str]:
    points = ctx.store.points(key, SPARK_POINTS)
    depth = sparkline([p.depth for p in points], css_class="spark spark-depth", title="depth")
    rate = sparkline([p.rate for p in points], css_class="spark spark-rate", title="msg/s")
    return depth, rate


def _latest_rate(ctx: Context, key: SeriesKey) -> float | None:
    point = ctx.store.latest(key)
    return None if point is None else point.rate


# ------------------------------------------------------------------------------ pages
def error_page(ctx: Context, status: int, message: str) -> str:
    """A page whose data could not be loaded: the layout and an error banner."""
    body = f"<h2>Error {status}</h2>"
    return _layout(ctx, "Error", body, error=message, live=True)


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
    all_names = sorted(set(names) | set(totals))
    rows = []
    for name in all_names:
        depth, messages, paused, channels, nodes = totals.get(name, (0, 0, False, set(), 0))
        key = ("topic", name)
        spark_depth, spark_rate = _sparks(ctx, key)
        href = _u(ctx, "/topics/" + _q(name))
        rows.append(
            f'<tr data-topic="{_e(name)}"><td><a href="{_e(href)}">{_e(name)}</a>{_paused(paused)}'
            f"{'' if nodes else _NO_PRODUCERS}</td>"
            f'<td class="num">{_n(depth)}</td><td class="spark-cell">{spark_depth}</td>'
            f'<td class="num">{_n(messages)}</td>'
            f'<td class="num rate">{_rate(_latest_rate(ctx, key))}</td>'
            f'<td class="spark-cell">{spark_rate}</td>'
            f'<td class="num">{len(channels)}</td><td class="num">{nodes}</td></tr>')
    if rows:
        body = _table(["Topic", ("Depth", 2), "Messages", ("Rate", 2), "Channels", "Nodes"],
                      rows, "topics-table")
    else:
        body = _notice("Notice", "No Topics Found")
    return _layout(ctx, "Topics", f"<h2>Topics</h2>{body}", warning=warning)


def _e2e_headers(e2e: Doc | None) -> list[str]:
    if not e2e or not e2e.get("percentiles"):
        return []
    return [_percent(p.get("quantile", 0.0)) for p in e2e["percentiles"]]


def _e2e_cells(e2e: Doc | None, width: int) -> str:
    percentiles = (e2e or {}).get("percentiles") or []
    cells = [f'<td class="num" title="min {_latency(p.get("min", 0))}, max '
             f'{_latency(p.get("max", 0))}">{_latency(p.get("average", 0))}</td>'
             for p in percentiles[:width]]
    cells += ["<td></td>"] * (width - len(cells))
    return "".join(cells)


def _node_link(ctx: Context, row: Doc) -> str:
    node = row["node"]
    port = node.rsplit(":", 1)[-1]
    hostname = row.get("hostname") or node.rsplit(":", 1)[0]
    label = f"{hostname}:{port}"
    link = f'<a href="{_e(_u(ctx, "/nodes/" + _q(node)))}">{_e(label if label != node else node)}</a>'
    if label != node:
        return f'{link} <span class="muted">({_e(node)})</span>'
    return link


def _actions(ctx: Context, kind: str, name: str, url: str, paused: bool, deleted_to: str) -> str:
    if not ctx.is_admin:
        return ""
    title = kind.capitalize()
    pause = ("unpause", "btn-success", f"UnPause {title}") if paused else \
        ("pause", "btn-primary", f"Pause {title}")
    return (
        f'<div class="actions {kind}-actions">'
        + _button("Empty Queue", "btn-warning", "POST", url, body={"action": "empty"},
                  confirm=f"Are you sure you want to empty {kind} {name}?",
                  extra=' data-action="empty"')
        + _button(f"Delete {title}", "btn-danger", "DELETE", url,
                  confirm=f"Are you sure you want to delete {kind} {name}?", then=deleted_to,
                  extra=' data-action="delete"')
        + _button(pause[2], pause[1], "POST", url, body={"action": pause[0]},
                  confirm=f"Are you sure you want to {pause[0]} {kind} {name}?",
                  extra=f' data-action="{pause[0]}"')
        + "</div>")


def _tombstone(ctx: Context, node: str, topic: str) -> str:
    if not (ctx.is_admin and ctx.lookupd):
        return ""
    return _button("✘", "btn-link btn-tombstone", "DELETE", _u(ctx, "/api/nodes/" + _q(node)),
                   body={"topic": topic},
                   confirm=f"Tombstone topic {topic} on node {node}? This deletes the topic "
                           "on that node and hides it from nsqlookupd.",
                   extra=' title="tombstone this topic on this node"')


def topic_page(ctx: Context, doc: Doc, warning: str) -> str:
    """One topic: actions, graphs, per-node queue table and its channels."""
    name = doc["topic_name"]
    parts = [_breadcrumb(ctx, ("Topics", "/"), (name, None)),
             f'<h2>Topic: <strong>{_e(name)}</strong>'
             f'<span id="topic-state">{_paused(doc["paused"])}</span></h2>']
    nodes = doc["nodes"] or []
    if not nodes:
        parts.append(_notice("Notice", "No producers exist for this topic. See "
                                       f'<a href="{_e(_u(ctx, "/lookup"))}">Lookup</a> '
                                       "for more information."))
        return _layout(ctx, name, "".join(parts), warning=warning)
    api = _u(ctx, "/api/topics/" + _q(name))
    parts.append(_actions(ctx, "topic", name, api, doc["paused"], _u(ctx, "/")))
    parts.append(_charts(ctx, ("topic", name), f"/graphs/topic/{_q(name)}/", name))
    e2e = doc["e2e_processing_latency"]
    pcts = _e2e_headers(e2e)
    rows = []
    for node in nodes:
        rows.append(
            f'<tr data-node="{_e(node["node"])}"><td>{_tombstone(ctx, node["node"], name)}'
            f'{_node_link(ctx, node)}{_paused(node["paused"])}</td>'
            f'<td class="num">{_n(node["depth"])}</td>'
            f'<td class="num">{_n(node["memory_depth"])} + {_n(node["backend_depth"])}</td>'
            f'<td class="num">{_n(node["message_count"])}</td>'
            f'<td class="num rate">{_rate(_latest_rate(ctx, ("topic", name, node["node"])))}</td>'
            f'<td class="num">{len(node["channels"] or ())}</td>'
            f'{_e2e_cells(node["e2e_processing_latency"], len(pcts))}</tr>')
    rows.append(
        f'<tr class="total"><td>Total:</td><td class="num">{_n(doc["depth"])}</td>'
        f'<td class="num">{_n(doc["memory_depth"])} + {_n(doc["backend_depth"])}</td>'
        f'<td class="num">{_n(doc["message_count"])}</td>'
        f'<td class="num rate">{_rate(_latest_rate(ctx, ("topic", name)))}</td>'
        f'<td class="num">{len(doc["channels"] or ())}</td>{_e2e_cells(e2e, len(pcts))}</tr>')
    parts.append("<h3>Topic Message Queue</h3>")
    parts.append(_table(["NSQd Host", "Depth", "Memory + Disk", "Messages", "Rate", "Channels",
                         *pcts], rows, "topic-nodes"))
    channels = doc["channels"] or []
    parts.append("<h3>Channel Message Queues</h3>")
    if not channels:
        parts.append(_notice("Notice", "No channels exist for this topic. Messages will queue "
                                       "at the topic until a channel is created."))
    else:
        crow = []
        for c in sorted(channels, key=lambda c: c["channel_name"]):
            key = ("channel", name, c["channel_name"])
            spark_depth, _ = _sparks(ctx, key)
            href = _u(ctx, f"/topics/{_q(name)}/{_q(c['channel_name'])}")
            crow.append(
                f'<tr data-channel="{_e(c["channel_name"])}"><th><a href="{_e(href)}">'
                f'{_e(c["channel_name"])}</a>{_paused(c["paused"])}</th>'
                f'<td class="num">{_n(c["depth"])}</td><td class="spark-cell">{spark_depth}</td>'
                f'<td class="num">{_n(c["memory_depth"])} + {_n(c["backend_depth"])}</td>'
                f'<td class="num">{_n(c["in_flight_count"])}</td>'
                f'<td class="num">{_n(c["deferred_count"])}</td>'
                f'<td class="num">{_n(c["requeue_count"])}</td>'
                f'<td class="num">{_n(c["timeout_count"])}</td>'
                f'<td class="num">{_n(c["message_count"])}</td>'
                f'<td class="num rate">{_rate(_latest_rate(ctx, key))}</td>'
                f'<td class="num">{_n(c["client_count"])}</td>'
                f'{_e2e_cells(c["e2e_processing_latency"], len(pcts))}</tr>')
        parts.append(_table(["Channel", ("Depth", 2), "Memory + Disk", "In-Flight", "Deferred",
                             "Requeued", "Timed Out", "Messages", "Rate", "Connections", *pcts],
                            crow, "topic-channels"))
    return _layout(ctx, name, "".join(parts), warning=warning)


def _channel_cells(c: Doc) -> str:
    return (f'<td class="num">{_n(c["depth"])}</td>'
            f'<td class="num">{_n(c["memory_depth"])} + {_n(c["backend_depth"])}</td>'
            f'<td class="num">{_n(c["in_flight_count"])}</td>'
            f'<td class="num">{_n(c["deferred_count"])}</td>'
            f'<td class="num">{_n(c["requeue_count"])}</td>'
            f'<td class="num">{_n(c["timeout_count"])}</td>'
            f'<td class="num">{_n(c["message_count"])}</td>'
            f'<td class="num">{_n(c["client_count"])}</td>')


def _client_row(ctx: Context, c: Doc) -> str:
    port = c["remote_address"].rsplit(":", 1)[-1]
    host = f'{c["hostname"]}:{port}' if c["hostname"] else c["remote_address"]
    client_id = c["client_id"]
    short = c["hostname"].split(".")[0]
    if client_id and client_id.lower() not in (short.lower(), c["hostname"].lower()):
        host += f" ({client_id})"
    attrs = []
    if c["sample_rate"]:
        attrs.append(f'<span class="label label-info">Sampled {c["sample_rate"]}%</span>')
    if c["tls"]:
        tip = " ".join(x for x in (c["tls_version"], c["tls_cipher_suite"],
                                   c["tls_negotiated_protocol"]) if x)
        attrs.append(f'<span class="label label-warning" title="{_e(tip)}">TLS</span>')
    if c["deflate"]:
        attrs.append('<span class="label label-default">Deflate</span>')
    if c["snappy"]:
        attrs.append('<span class="label label-primary">Snappy</span>')
    if c["authed"]:
        ident = f" {c['auth_identity']}" if c["auth_identity"] else ""
        attrs.append(f'<span class="label label-success">Authed{_e(ident)}</span>')
    node = c["node"]
    return (f'<tr class="client"><td title="{_e(c["remote_address"])}">{_e(host)}</td>'
            f'<td>{_e(c["version"])}</td>'
            f'<td><small>{_e(c["user_agent"])}</small></td>'
            f'<td class="attrs">{" ".join(attrs)}</td>'
            f'<td><a href="{_e(_u(ctx, "/nodes/" + _q(node)))}">{_e(node)}</a></td>'
            f'<td class="num">{_n(c["in_flight_count"])}</td>'
            f'<td class="num">{_n(c["ready_count"])}</td>'
            f'<td class="num">{_n(c["finish_count"])}</td>'
            f'<td class="num">{_n(c["requeue_count"])}</td>'
            f'<td class="num">{_n(c["message_count"])}</td>'
            f'<td class="num">{_duration(c["connected"])}</td></tr>')


def channel_page(ctx: Context, topic: str, channel: str, doc: Doc | None, warning: str) -> str:
    """One channel: actions, graphs, per-node rows and the connected clients."""
    parts = [_breadcrumb(ctx, ("Topics", "/"), (topic, "/topics/" + _q(topic)), (channel, None)),
             f'<h2>Topic: <strong>{_e(topic)}</strong> · Channel: <strong>{_e(channel)}</strong>'
             f'<span id="channel-state">{_paused(bool(doc and doc["paused"]))}</span></h2>']
    if doc is None or not doc["nodes"]:
        parts.append(_notice("Notice", "No producers exist for this topic/channel. See "
                                       f'<a href="{_e(_u(ctx, "/lookup"))}">Lookup</a> '
                                       "for more information."))
        return _layout(ctx, f"{topic}/{channel}", "".join(parts), warning=warning)
    api = _u(ctx, f"/api/topics/{_q(topic)}/{_q(channel)}")
    parts.append(_actions(ctx, "channel", channel, api, doc["paused"],
                          _u(ctx, "/topics/" + _q(topic))))
    parts.append(_charts(ctx, ("channel", topic, channel),
                         f"/graphs/channel/{_q(topic)}/{_q(channel)}/", f"{topic}/{channel}"))
    e2e = doc["e2e_processing_latency"]
    pcts = _e2e_headers(e2e)
    rows = [f'<tr data-node="{_e(n["node"])}"><td>{_node_link(ctx, n)}{_paused(n["paused"])}</td>'
            f'{_channel_cells(n)}{_e2e_cells(n["e2e_processing_latency"], len(pcts))}</tr>'
            for n in doc["nodes"]]
    rows.append(f'<tr class="total"><td>Total:</td>{_channel_cells(doc)}'
                f"{_e2e_cells(e2e, len(pcts))}</tr>")
    parts.append("<h3>Channel</h3>")
    parts.append(_table(["NSQd Host", "Depth", "Memory + Disk", "In-Flight", "Deferred",
                         "Requeued", "Timed Out", "Messages", "Connections", *pcts],
                        rows, "channel-nodes"))
    parts.append("<h3>Client Connections</h3>")
    clients = doc["clients"] or []
    if not clients:
        parts.append(_notice("Notice", "No clients connected to this channel"))
    else:
        parts.append(_table(["Client Host", "Protocol", "User-Agent", "Attributes", "NSQd Host", "In-Flight",
                             "Ready Count", "Finished", "Requeued", "Messages", "Connected"],
                            (_client_row(ctx, c) for c in clients), "clients-table"))
    return _layout(ctx, f"{topic}/{channel}", "".join(parts), warning=warning)


def nodes_page(ctx: Context, producers: Sequence[Producer], warning: str) -> str:
    """Every nsqd: address, ports, version, lookupd connections and topics."""
    rows = []
    nlookupd = len(ctx.lookupd)
    for p in producers:
        conns = ""
        if nlookupd:
            remotes = p.remote_addresses or []
            css = "" if len(remotes) == nlookupd else " label-warning"
            conns = (f'<td><span class="label label-default{css}" title="{_e(", ".join(remotes))}">'
                     f"{len(remotes)}</span></td>")
        topics = ""
        if p.topics:
            badges = "".join(
                f'<a class="label {"label-warning" if tomb else "label-primary"}" '
                f'href="{_e(_u(ctx, "/topics/" + _q(t)))}"'
                f'{_TOMBSTONED if tomb else ""}>'
                f"{_e(t)}</a> " for t, tomb in p.topics)
            topics = f'<span class="badge">{len(p.topics)}</span> {badges}'
        rows.append(
            f'<tr{_OUT_OF_DATE if p.out_of_date else ""} data-node="{_e(p.http_address)}">'
            f"<td>{_e(p.hostname)}</td>"
            f'<td><a href="{_e(_u(ctx, "/nodes/" + _q(p.http_address)))}">'
            f"{_e(p.broadcast_address)}</a></td>"
            f'<td class="num">{p.tcp_port}</td><td class="num">{p.http_port}</td>'
            f"<td>{_e(p.version)}</td>{conns}<td>{topics}</td></tr>")
    headers = ["Hostname", "Broadcast Address", "TCP Port", "HTTP Port", "Version"]
    if nlookupd:
        headers.append("Lookupd Conns.")
    headers.append("Topics")
    body = f"<h2>NSQd Nodes ({len(producers)})</h2>" + _table(headers, rows, "nodes-table")
    return _layout(ctx, "Nodes", body, warning=warning)


def node_page(ctx: Context, doc: Doc) -> str:
    """One nsqd: its topics and their channels."""
    node = doc["node"]
    parts = [_breadcrumb(ctx, ("Nodes", "/nodes"), (node, None)),
             f"<h2>Node: <strong>{_e(node)}</strong></h2>"]
    topics = doc["topics"]
    if not topics:
        parts.append(_notice("Notice", "No topics exist on this node."))
        return _layout(ctx, node, "".join(parts), warning=doc["message"])
    parts.append(f'<p class="summary"><strong>{len(topics)}</strong> Topics · '
                 f'<strong>{_n(doc["total_messages"])}</strong> Messages · '
                 f'<strong>{_n(doc["total_clients"])}</strong> Clients</p>')
    rows = []
    for t in topics:
        name = t["topic_name"]
        href = _u(ctx, "/topics/" + _q(name))
        rows.append(
            f'<tr class="topic-row" data-topic="{_e(name)}"><td colspan="2">'
            f'{_tombstone(ctx, node, name)}<a href="{_e(href)}"><strong>{_e(name)}</strong></a>'
            f'{_paused(t["paused"])}</td><td class="num">{_n(t["depth"])}</td>'
            f'<td class="num">{_n(t["memory_depth"])} + {_n(t["backend_depth"])}</td>'
            '<td></td><td></td><td></td><td></td>'
            f'<td class="num">{_n(t["message_count"])}</td>'
            f'<td class="num">{_plural(len(t["channels"] or ()), "channel")}</td></tr>')
        for c in t["channels"] or ():
            chref = _u(ctx, f"/topics/{_q(name)}/{_q(c['channel_name'])}")
            rows.append(
                f'<tr class="channel-row"><td class="indent"></td><td><a href="{_e(chref)}">'
                f'{_e(c["channel_name"])}</a>{_paused(c["paused"])}</td>{_channel_cells(c)}</tr>')
    parts.append(_table(["", "Topic / Channel", "Depth", "Memory + Disk", "In-Flight",
                         "Deferred", "Requeued", "Timed Out", "Messages", "Connections"],
                        rows, "node-table"))
    return _layout(ctx, node, "".join(parts), warning=doc["message"])


def lookup_page(ctx: Context, inactive: dict[str, list[str] | None], warning: str) -> str:
    """nsqlookupd hosts, inactive topics/channels and the create form."""
    parts = ["<h2>Lookup</h2>"]
    if not ctx.lookupd:
        parts.append(_notice("Notice", "nsqadmin is not configured with nsqlookupd hosts"))
    else:
        hosts = "".join(f"<tr><td>{_e(h)}</td></tr>" for h in ctx.lookupd)
        parts.append(_table(["nsqlookupd Host"], [hosts], "lookupd-table narrow"))
        if inactive:
            items = []
            for topic, channels in inactive.items():
                turl = _u(ctx, "/api/topics/" + _q(topic))
                chs = "".join(
                    f"<li>{_delete_link(ctx, turl + '/' + _q(c), f'channel {topic}/{c}')}"
                    f'<a href="{_e(_u(ctx, f"/topics/{_q(topic)}/{_q(c)}"))}">{_e(c)}</a></li>'
                    for c in channels or ())
                items.append(f"<li>{_delete_link(ctx, turl, f'topic {topic}')}"
                             f'<a href="{_e(_u(ctx, "/topics/" + _q(topic)))}">{_e(topic)}</a>'
                             f"<ul>{chs}</ul></li>")
            parts.append('<div class="alert alert-info">Below is a tree of Topics/Channels that '
                         "are currently inactive (i.e. not produced on any nsqd in the cluster "
                         "but are present in the lookup data)</div>"
                         f'<ul class="tree">{"".join(items)}</ul>')
        else:
            parts.append(_notice("Notice", "No inactive Topics"))
    if ctx.is_admin:
        parts.append(
            f'<form class="create-form" data-url="{_e(_u(ctx, "/api/topics"))}">'
            "<fieldset><legend>Create Topic/Channel</legend>"
            '<p class="muted">This provides a way to set up a stream hierarchy before services '
            "are deployed to production. If <em>Channel Name</em> is empty, just the topic is "
            "created.</p>"
            '<input type="text" name="topic" placeholder="Topic Name" required '
            'pattern="[.a-zA-Z0-9_\\-]+(#ephemeral)?" maxlength="64"> '
            '<input type="text" name="channel" placeholder="Channel Name" '
            'pattern="[.a-zA-Z0-9_\\-]+(#ephemeral)?" maxlength="64"> '
            '<button class="btn btn-primary" type="submit">Create</button></fieldset></form>')
    return _layout(ctx, "Lookup", "".join(parts), warning=warning, live=False)


def _delete_link(ctx: Context, url: str, what: str) -> str:
    if not ctx.is_admin:
        return ""
    return _button("✘", "btn-link btn-tombstone", "DELETE", url,
                   confirm=f"Are you sure you want to delete {what}?")


def counter_page(ctx: Context) -> str:
    """A live total of messages processed (polled by the page's script)."""
    body = (
        '<section class="counter" '
        f'data-url="{_e(_u(ctx, "/api/counter"))}">'
        '<div id="counter-total" class="counter-total">–</div>'
        '<p class="counter-label">Messages Processed</p>'
        '<p id="counter-rate" class="counter-rate"></p></section>'
        + _charts(ctx, ("cluster",), "/graphs/counter/", "all channels", ("rate",)))
    return _layout(ctx, "Counter", body, live=False)

