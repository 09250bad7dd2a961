"""nsqadmin's HTTP server: NSQ 1.3's JSON API (``nsqadmin/http.go``), the pages, graphs
and static assets.

The JSON API keeps Go's paths, methods, bodies, field names and status codes; a node
that fails answers with a ``"WARNING: ..."`` ``message`` next to the data of the
others, and only when every node fails does a read answer 502 ``UPSTREAM_ERROR: ...``.
Pages are rendered on the server (:mod:`nsqadmin.pages`) from the same data; a page
whose data can't be read is still a page, with the error in a banner.

Additions to NSQ's API: ``GET /api/graphs/...`` (sampled series as JSON) and
``GET /graphs/...`` (the same as SVG charts). Differences: ``POST /api/topics``
without nsqlookupd creates the topic/channel on every configured nsqd (Go does
nothing); Graphite endpoints (``/api/graphite``, ``/render``) do not exist.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import mimetypes
import os
import re
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

import trio

from client.protocol import is_valid_channel_name, is_valid_topic_name
from internal.gojson import loads
from internal.http import HTTPError, Request, Response, Router, json_response, text
from internal.logs import parse_level, set_level
from internal.metrics import metrics_response
from internal.netaddr import split_host_port
from internal.options import format_duration, option_specs

from . import pages
from .clusterinfo import ClusterError, ClusterInfo
from .graphs import SeriesKey
from .metrics import scrape_cluster
from .options import Options
from .stats import Doc, aggregate_channels, aggregate_topic, counter_stats

if TYPE_CHECKING:
    from .nsqadmin import NSQAdmin

__all__ = ["make_router"]

logger = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
_NSQ_LOG_LEVELS = {"debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}
_HTML = "text/html; charset=utf-8"
_ACTIONS = ("pause", "unpause", "empty")
#: what a static asset's name may be: a plain file name (no NUL, slash, dot-file, ...)
_ASSET_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


def _warn(messages: list[str]) -> str:
    """Go's ``maybeWarnMsg``."""
    return "WARNING: " + "; ".join(messages) if messages else ""


def _upstream(what: str, exc: ClusterError) -> HTTPError:
    logger.error("failed to %s - %s", what, exc)
    return HTTPError(502, f"UPSTREAM_ERROR: {exc}")


def _json_body(req: Request) -> Any:
    try:
        return loads(req.body or b"null")
    except ValueError as exc:
        raise HTTPError(400, str(exc)) from None


def _str_field(doc: Any, key: str) -> str:
    value = doc.get(key, "") if isinstance(doc, dict) else ""
    if not isinstance(value, str):
        raise HTTPError(400, f"json: cannot unmarshal {type(value).__name__} into field {key}")
    return value


def _logged(handler: Handler) -> Handler:
    """NSQ's ``http_api.Log``: ``<status> <method> <uri> (<remote>) <elapsed>``."""
    async def wrapped(req: Request) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            resp = await handler(req)
            status = resp.status
            return resp
        except HTTPError as exc:
            status = exc.status
            raise
        finally:
            uri = req.path + ("?" + req.query_string if req.query_string else "")
            logger.info("%d %s %s (%s) %s", status, req.method, uri, req.remote_addr,
                        format_duration(time.perf_counter() - start))
    return wrapped


class _Server:
    """Handlers bound to one :class:`NSQAdmin`."""

    def __init__(self, admin: NSQAdmin) -> None:
        self.admin = admin
        ci = admin.ci
        assert ci is not None
        self.ci: ClusterInfo = ci
        self._static_root = resources.files("nsqadmin") / "static"

    # ------------------------------------------------------------------ helpers
    @property
    def opts(self) -> Options:
        return self.admin.options

    def is_admin(self, req: Request) -> bool:
        users = self.opts.admin_users
        if not users:
            return True
        return req.headers.get(self.opts.acl_http_header.lower(), "") in users

    def _require_admin(self, req: Request) -> None:
        if not self.is_admin(req):
            raise HTTPError(403, "FORBIDDEN")

    def _notify(self, action: str, topic: str, channel: str, node: str, req: Request) -> None:
        notifier = self.admin.notifier
        if notifier is not None:
            notifier.notify(action, topic, channel, node, req)

    def _ctx(self, req: Request, active: str) -> pages.Context:
        opts = self.opts
        return pages.Context(base_path=opts.base_path, is_admin=self.is_admin(req),
                             lookupd=list(opts.lookupd_http_addresses), active=active,
                             refresh=max(opts.graph_sample_interval, 5.0),
                             sample_interval=opts.graph_sample_interval, store=self.admin.store)

    # ------------------------------------------------------------------ data
    async def topics_data(self, inactive: bool, messages: list[str]) -> Any:
        lookupd, nsqd = self.admin.targets()
        try:
            topics = await self.ci.topics(lookupd, nsqd, messages)
        except ClusterError as exc:
            raise _upstream("get topics", exc) from None
        if not inactive:
            return topics
        result: dict[str, list[str] | None] = {}
        if not lookupd or not topics:
            return result
        # a topic is active when some nsqd registered it (and is not tombstoned for it):
        # one /nodes per nsqlookupd instead of Go's /lookup per topic
        ignored: list[str] = []
        try:
            producers = await self.ci.lookupd_producers(lookupd, ignored)
        except ClusterError:
            return result
        active = {t for p in producers for t, tombstoned in p.topics or () if not tombstoned}

        async def channels(name: str) -> None:
            try:
                result[name] = await self.ci.lookupd_topic_channels(name, lookupd, ignored)
            except ClusterError:
                result[name] = None

        async with trio.open_nursery() as nursery:
            for name in topics:
                if name not in active:
                    nursery.start_soon(channels, name)
        return dict(sorted(result.items()))

    async def topic_data(self, topic: str, messages: list[str]) -> Doc:
        lookupd, nsqd = self.admin.targets()
        try:
            producers = await self.ci.topic_producers(topic, lookupd, nsqd, messages)
        except ClusterError as exc:
            raise _upstream("get topic producers", exc) from None
        stats: list[Doc] = []
        if producers:
            try:
                stats = await self.ci.nsqd_stats(producers, messages, topic=topic,
                                                 include_clients=False)
            except ClusterError as exc:
                raise _upstream("get topic metadata", exc) from None
        return aggregate_topic(topic, stats)

    async def channel_data(self, topic: str, channel: str, messages: list[str]) -> Doc | None:
        lookupd, nsqd = self.admin.targets()
        try:
            producers = await self.ci.topic_producers(topic, lookupd, nsqd, messages)
        except ClusterError as exc:
            raise _upstream("get topic producers", exc) from None
        if not producers:
            return None
        try:
            stats = await self.ci.nsqd_stats(producers, messages, topic=topic, channel=channel,
                                             include_clients=True)
        except ClusterError as exc:
            raise _upstream("get channel metadata", exc) from None
        return aggregate_channels(stats, keyed_by_topic=False).get(channel)

    async def nodes_data(self, messages: list[str]) -> list[Any]:
        lookupd, nsqd = self.admin.targets()
        try:
            return await self.ci.producers(lookupd, nsqd, messages)
        except ClusterError as exc:
            raise _upstream("get nodes", exc) from None

    async def node_data(self, node: str, messages: list[str]) -> Doc:
        producers = await self.nodes_data(messages)
        producer = next((p for p in producers if p.http_address == node), None)
        if producer is None:
            raise HTTPError(404, "NODE_NOT_FOUND")
        try:
            topics = await self.ci.nsqd_stats([producer], [], include_clients=True)
        except ClusterError as exc:
            raise _upstream("get nsqd stats", exc) from None
        total_clients = sum(len(c["clients"] or ()) for t in topics for c in t["channels"] or ())
        total_messages = sum(t["message_count"] for t in topics)
        return {"node": node, "topics": topics, "total_messages": total_messages,
                "total_clients": total_clients, "message": _warn(messages)}

    async def counter_data(self, messages: list[str]) -> dict[str, Doc]:
        lookupd, nsqd = self.admin.targets()
        try:
            return counter_stats(await self.ci.all_stats(lookupd, nsqd, messages))
        except ClusterError as exc:
            raise _upstream("get nsqd stats", exc) from None

    async def metrics(self, req: Request) -> Response:
        """Prometheus' ``GET /metrics`` (not in NSQ): every node's topics and channels."""
        return metrics_response(await scrape_cluster(self.ci, *self.admin.targets()))

    # ------------------------------------------------------------------ JSON API
    async def ping(self, req: Request) -> Response:
        return text("OK", v1=False)

    async def api_topics(self, req: Request) -> Response:
        messages: list[str] = []
        topics = await self.topics_data(req.arg("inactive") == "true", messages)
        return json_response({"topics": topics, "message": _warn(messages)})

    async def api_topic(self, req: Request) -> Response:
        messages: list[str] = []
        doc = await self.topic_data(req.params["topic"], messages)
        doc["message"] = _warn(messages)
        return json_response(doc)

    async def api_channel(self, req: Request) -> Response:
        messages: list[str] = []
        doc = await self.channel_data(req.params["topic"], req.params["channel"], messages)
        out = dict(doc) if doc is not None else {}
        out["message"] = _warn(messages)
        return json_response(out)

    async def api_nodes(self, req: Request) -> Response:
        messages: list[str] = []
        producers = await self.nodes_data(messages)
        return json_response({"nodes": [p.to_json() for p in producers] or None,
                              "message": _warn(messages)})

    async def api_node(self, req: Request) -> Response:
        messages: list[str] = []
        return json_response(await self.node_data(req.params["node"], messages))

    async def api_counter(self, req: Request) -> Response:
        messages: list[str] = []
        stats = await self.counter_data(messages)
        return json_response({"stats": stats, "message": _warn(messages)})

    async def api_create(self, req: Request) -> Response:
        self._require_admin(req)
        body = _json_body(req)
        topic, channel = _str_field(body, "topic"), _str_field(body, "channel")
        if not is_valid_topic_name(topic):
            raise HTTPError(400, "INVALID_TOPIC")
        if channel and not is_valid_channel_name(channel):
            raise HTTPError(400, "INVALID_CHANNEL")
        lookupd, nsqd = self.admin.targets()
        try:
            if lookupd:
                errors = await self.ci.create_topic_channel(topic, channel, lookupd)
            else:
                errors = await self.ci.create_on_nsqd(topic, channel, nsqd)
        except ClusterError as exc:
            raise _upstream("create topic/channel", exc) from None
        self._notify("create_topic", topic, "", "", req)
        if channel:
            self._notify("create_channel", topic, channel, "", req)
        return self._result(errors)

    def _result(self, errors: list[str]) -> Response:
        if errors:
            logger.warning("%s", "\n".join(errors))
        return json_response({"message": _warn(["\n".join(errors)] if errors else [])})

    async def _action(self, req: Request, topic: str, channel: str) -> Response:
        self._require_admin(req)
        action = _str_field(_json_body(req), "action")
        if action not in _ACTIONS:
            raise HTTPError(400, "INVALID_ACTION")
        what = "channel" if channel else "topic"
        lookupd, nsqd = self.admin.targets()
        try:
            errors = await self.ci.node_action(f"{what}/{action}", topic, channel, lookupd, nsqd)
        except ClusterError as exc:
            raise _upstream(f"{action} topic/channel", exc) from None
        finally:
            self._notify(f"{action}_{what}", topic, channel, "", req)
        return self._result(errors)

    async def api_topic_action(self, req: Request) -> Response:
        return await self._action(req, req.params["topic"], "")

    async def api_channel_action(self, req: Request) -> Response:
        return await self._action(req, req.params["topic"], req.params["channel"])

    async def api_delete_topic(self, req: Request) -> Response:
        self._require_admin(req)
        topic = req.params["topic"]
        lookupd, nsqd = self.admin.targets()
        try:
            errors = await self.ci.delete_topic(topic, lookupd, nsqd)
        except ClusterError as exc:
            raise _upstream("delete topic", exc) from None
        self._notify("delete_topic", topic, "", "", req)
        return self._result(errors)

    async def api_delete_channel(self, req: Request) -> Response:
        self._require_admin(req)
        topic, channel = req.params["topic"], req.params["channel"]
        lookupd, nsqd = self.admin.targets()
        try:
            errors = await self.ci.delete_channel(topic, channel, lookupd, nsqd)
        except ClusterError as exc:
            raise _upstream("delete channel", exc) from None
        self._notify("delete_channel", topic, channel, "", req)
        return self._result(errors)

    async def api_tombstone(self, req: Request) -> Response:
        self._require_admin(req)
        node = req.params["node"]
        try:
            body = loads(req.body)
        except ValueError:
            raise HTTPError(400, "INVALID_BODY") from None
        topic = body.get("topic") if isinstance(body, dict) else None
        if not isinstance(topic, str) or not is_valid_topic_name(topic):
            raise HTTPError(400, "INVALID_TOPIC")
        lookupd, _ = self.admin.targets()
        try:
            errors = await self.ci.tombstone_node_for_topic(topic, node, lookupd)
        except ClusterError as exc:
            raise _upstream("tombstone node for topic", exc) from None
        self._notify("tombstone_topic_producer", topic, "", node, req)
        return self._result(errors)

    async def config(self, req: Request) -> Response:
        opts = self.opts
        if opts.allow_config_from_cidr:
            network = ipaddress.ip_network(opts.allow_config_from_cidr, strict=False)
            try:
                host, _ = split_host_port(req.remote_addr)
                ip = ipaddress.ip_address(host)
            except ValueError:
                logger.error("failed to parse RemoteAddr %s", req.remote_addr)
                raise HTTPError(400, "INVALID_REMOTE_ADDR") from None
            if ip not in network:
                raise HTTPError(403, "FORBIDDEN")
        name = req.params["opt"]
        if req.method == "PUT":
            body = req.body
            if not body or len(body) > 1024 * 1024:
                raise HTTPError(413, "INVALID_VALUE")
            if name == "nsqlookupd_http_addresses":
                try:
                    value = loads(body)
                except ValueError:
                    raise HTTPError(400, "INVALID_VALUE") from None
                if value is None:
                    value = []
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise HTTPError(400, "INVALID_VALUE")
                try:
                    self.admin.swap_options(dataclasses.replace(self.admin.options, lookupd_http_addresses=value))
                except ValueError:  # e.g. neither nsqd nor lookupd addresses left
                    raise HTTPError(400, "INVALID_VALUE") from None
            elif name == "log_level":
                level = body.decode("utf-8", "replace")
                try:
                    parse_level(level)
                except ValueError:
                    raise HTTPError(400, "INVALID_VALUE") from None
                set_level(level)
                self.admin.swap_options(dataclasses.replace(self.admin.options, log_level=level.lower()))
            else:
                raise HTTPError(400, "INVALID_OPTION")
        for spec in option_specs(Options):
            if spec.cfg == name:
                value = getattr(self.opts, spec.name)
                if name == "log_level":
                    value = _NSQ_LOG_LEVELS.get(value.lower(), value)
                elif spec.kind == "duration":
                    value = round(value * 1e9)
                return json_response(value)
        raise HTTPError(400, "INVALID_OPTION")

    # ------------------------------------------------------------------ graphs
    def _series(self, req: Request) -> tuple[SeriesKey, str]:
        kind = req.params.get("kind", "")
        topic = req.params.get("topic", "")
        channel = req.params.get("channel", "")
        node = req.arg("node", "") or ""
        if kind not in ("topic", "channel", "counter") or (kind == "channel") != bool(channel):
            raise HTTPError(404, "NOT_FOUND")
        if kind == "counter":
            return ("cluster",), "all channels"
        if channel:
            return ("channel", topic, channel), f"{topic}/{channel}"
        if node:
            return ("topic", topic, node), f"{topic} on {node}"
        return ("topic", topic), topic

    async def api_graph(self, req: Request) -> Response:
        key, _ = self._series(req)
        limit = req.arg("limit")
        points = self.admin.store.points(key, int(limit) if limit and limit.isdigit() else None)
        return json_response({
            "series": list(key), "interval": self.opts.graph_sample_interval,
            "points": [{"t": p.t, "depth": p.depth, "rate": p.rate} for p in points],
        })

    async def graph_svg(self, req: Request) -> Response:
        key, label = self._series(req)
        metric = req.params["metric"]
        if metric not in ("depth", "rate"):
            raise HTTPError(404, "NOT_FOUND")
        svg = pages.chart(self.admin.store, key, metric, label)
        return Response(200, svg.encode(), "image/svg+xml; charset=utf-8",
                        [("Cache-Control", "no-store")])

    # ------------------------------------------------------------------ static
    def static(self, req: Request) -> Response:
        name = req.params["asset"]
        if not _ASSET_NAME.fullmatch(name):
            raise HTTPError(404, "NOT_FOUND")
        try:
            if self.opts.dev_static_dir:
                with open(os.path.join(self.opts.dev_static_dir, name), "rb") as fh:
                    data = fh.read()
            else:
                data = (self._static_root / name).read_bytes()
        except (OSError, ValueError):
            raise HTTPError(404, "NOT_FOUND") from None
        ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript", "image/svg+xml"):
            ctype += "; charset=utf-8"
        return Response(200, data, ctype, [("Cache-Control", "public, max-age=300")])

    # ------------------------------------------------------------------ pages
    async def _page(self, req: Request, active: str,
                    build: Callable[[pages.Context, list[str]], Awaitable[str]]) -> Response:
        ctx = self._ctx(req, active)
        messages: list[str] = []
        try:
            body = await build(ctx, messages)
            status = 200
        except HTTPError as exc:
            body = pages.error_page(ctx, exc.status, exc.message)
            status = exc.status
        return Response(status, body.encode(), _HTML, [("Cache-Control", "no-store")])

    async def page_topics(self, req: Request) -> Response:
        async def build(ctx: pages.Context, messages: list[str]) -> str:
            lookupd, nsqd = self.admin.targets()
            names: list[str] | None = None
            stats: list[Doc] = []
            failures: list[str] = []
            fatal: list[HTTPError] = []

            async def get_names() -> None:
                nonlocal names
                try:
                    names = await self.topics_data(False, messages)
                except HTTPError as exc:
                    fatal.append(exc)

            async def get_stats() -> None:
                nonlocal stats
                try:
                    stats = await self.ci.all_stats(lookupd, nsqd, messages)
                except ClusterError as exc:
                    failures.append(str(exc))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(get_names)
                nursery.start_soon(get_stats)
            if fatal:
                raise fatal[0]
            messages.extend(failures)
            return pages.topics_page(ctx, names or [], stats, _warn(messages))
        return await self._page(req, "topics", build)

    async def page_topic(self, req: Request) -> Response:
        topic = req.params["topic"]

        async def build(ctx: pages.Context, messages: list[str]) -> str:
            doc = await self.topic_data(topic, messages)
            return pages.topic_page(ctx, doc, _warn(messages))
        return await self._page(req, "topics", build)

    async def page_channel(self, req: Request) -> Response:
        topic, channel = req.params["topic"], req.params["channel"]

        async def build(ctx: pages.Context, messages: list[str]) -> str:
            doc = await self.channel_data(topic, channel, messages)
            return pages.channel_page(ctx, topic, channel, doc, _warn(messages))
        return await self._page(req, "topics", build)

    async def page_nodes(self, req: Request) -> Response:
        async def build(ctx: pages.Context, messages: list[str]) -> str:
            producers = await self.nodes_data(messages)
            return pages.nodes_page(ctx, producers, _warn(messages))
        return await self._page(req, "nodes", build)

    async def page_node(self, req: Request) -> Response:
        node = req.params["node"]

        async def build(ctx: pages.Context, messages: list[str]) -> str:
            doc = await self.node_data(node, messages)
            return pages.node_page(ctx, doc)
        return await self._page(req, "nodes", build)

    async def page_lookup(self, req: Request) -> Response:
        async def build(ctx: pages.Context, messages: list[str]) -> str:
            inactive: dict[str, list[str] | None] = {}
            if ctx.lookupd:
                inactive = await self.topics_data(True, messages)
            return pages.lookup_page(ctx, inactive, _warn(messages))
        return await self._page(req, "lookup", build)

    async def page_counter(self, req: Request) -> Response:
        async def build(ctx: pages.Context, messages: list[str]) -> str:
            return pages.counter_page(ctx)
        return await self._page(req, "counter", build)


def make_router(admin: NSQAdmin) -> Router:
    """Build the router (every path under ``--base-path``)."""
    s = _Server(admin)
    r = Router(base_path=admin.options.base_path)

    def add(method: str, path: str, handler: Handler) -> None:
        r.add(method, path, _logged(handler))

    r.add("GET", "/ping", s.ping)
    for path in ("/", "/topics"):
        add("GET", path, s.page_topics)
    add("GET", "/topics/:topic", s.page_topic)
    add("GET", "/topics/:topic/:channel", s.page_channel)
    add("GET", "/nodes", s.page_nodes)
    add("GET", "/nodes/:node", s.page_node)
    add("GET", "/counter", s.page_counter)
    add("GET", "/lookup", s.page_lookup)
    r.add("GET", "/static/:asset", s.static)

    add("GET", "/api/topics", s.api_topics)
    add("GET", "/api/topics/:topic", s.api_topic)
    add("GET", "/api/topics/:topic/:channel", s.api_channel)
    add("GET", "/api/nodes", s.api_nodes)
    add("GET", "/api/nodes/:node", s.api_node)
    add("POST", "/api/topics", s.api_create)
    add("POST", "/api/topics/:topic", s.api_topic_action)
    add("POST", "/api/topics/:topic/:channel", s.api_channel_action)
    add("DELETE", "/api/nodes/:node", s.api_tombstone)
    add("DELETE", "/api/topics/:topic", s.api_delete_topic)
    add("DELETE", "/api/topics/:topic/:channel", s.api_delete_channel)
    add("GET", "/api/counter", s.api_counter)
    add("GET", "/metrics", s.metrics)
    add("GET", "/config/:opt", s.config)
    add("PUT", "/config/:opt", s.config)

    r.add("GET", "/api/graphs/:kind", s.api_graph)
    r.add("GET", "/api/graphs/:kind/:topic", s.api_graph)
    r.add("GET", "/api/graphs/:kind/:topic/:channel", s.api_graph)
    r.add("GET", "/graphs/counter/:metric", _with(s.graph_svg, kind="counter"))
    r.add("GET", "/graphs/topic/:topic/:metric", _with(s.graph_svg, kind="topic"))
    r.add("GET", "/graphs/channel/:topic/:channel/:metric", _with(s.graph_svg, kind="channel"))
    return r


def _with(handler: Handler, **params: str) -> Handler:
    async def wrapped(req: Request) -> Response:
        req.params = {**req.params, **params}
        return await handler(req)
    return wrapped

