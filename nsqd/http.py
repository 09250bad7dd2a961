"""nsqd's HTTP API, as NSQ 1.3's ``nsqd/http.go``: same paths, methods, status codes,
error texts, V1 headers and bodies.

Publishing (``/pub``, ``/mpub``) is the hot path: no per-request logging (NSQ does not
decorate them with its logger either) and a shared ``OK`` response. Every other endpoint
logs ``<status> <method> <uri> (<remote>) <elapsed>`` at INFO, as NSQ's ``http_api.Log``.

Deviations from NSQ 1.3 (all deliberate):

* a request body over its limit (``/pub``: ``--max-msg-size``, 413 ``MSG_TOO_BIG``;
  other paths: ``--max-body-size``, 413 ``BODY_TOO_BIG``) is refused by the server as
  soon as the headers (or a chunked body) show it, before any handler runs, and the
  connection is closed; NSQ reads up to the limit first;
* ``/mpub?binary=true`` with bytes after the last message is refused with 413
  ``BAD_BODY``, as the TCP ``MPUB`` refuses it (NSQ ignores them over HTTP);
* ``--max-connections`` (beyond NSQ) caps each listener's open connections, and slow
  or idle HTTP connections are closed (see ``internal.http.serve_http``);
* ``PUT /config/nsqlookupd_tcp_addresses`` with ``null`` stores ``[]`` (Go stores a nil
  slice and answers ``null``);
* no ``/debug/pprof`` endpoints (Go runtime specific);
* ``GET /metrics`` serves Prometheus' text format (``docs/metrics.md``);
* with ``--auth-http-address``, ``/pub`` and ``/mpub`` need the AUTH secret as
  ``Authorization: Bearer <secret>`` and a ``publish`` grant for the topic (NSQ leaves
  HTTP unchecked): 401 ``AUTH_REQUIRED`` without it, 401 ``AUTH_FAILED`` when the auth
  server refuses or cannot be asked, 403 ``UNAUTHORIZED`` without the grant. Replies
  are cached for their ttl per (secret, remote IP, HTTPS). ``common_name`` is sent
  empty over HTTPS.

A disk failure while publishing (disk full, I/O error, or the fsync of durable mode
failed) answers 500 ``PUB_FAILED`` and nothing was acknowledged (Go answers 503
``EXITING`` for every ``PutMessage`` error); the cause is logged. A topic being deleted
or a daemon exiting still answers 503 ``EXITING``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING

import trio

from client.protocol import (
    MPUBError,
    is_valid_channel_name,
    is_valid_topic_name,
    parse_mpub_body,
)
from internal.gojson import loads
from internal.http import (
    V1_HEADER,
    Handler,
    HTTPError,
    Later,
    Request,
    Response,
    Router,
    error_response,
    json_response,
    serve_http,
    text,
)
from internal.logs import parse_level, set_level
from internal.metrics import metrics_response
from internal.netaddr import split_host_port
from internal.options import OptionSpec, format_duration, option_specs
from internal.version import NSQ_VERSION

from .auth import AuthCache, AuthError, query_any_authd
from .backend import BackendError
from .errors import TopicError
from .metrics import nsqd_metrics
from .options import Options
from .stats import (
    get_stats,
    install_gc_monitor,
    memory_stats,
    render_text,
    stats_document,
)
from .tls import TLS_REQUIRED

if TYPE_CHECKING:
    from .channel import Channel
    from .nsqd import NSQD
    from .topic import Topic

__all__ = ["make_router", "serve_nsqd_http"]

logger = logging.getLogger(__name__)

#: NSQ's ``boolParams``
_BOOL_PARAMS = {"true": True, "1": True, "false": False, "0": False}
#: NSQ's numeric log levels (``lg.LogLevel``), which ``GET /config/log_level`` returns
_NSQ_LOG_LEVELS = {"debug": 1, "info": 2, "warn": 3, "error": 4, "fatal": 5}
#: what Go's ``strconv.ParseInt(s, 10, 64)`` accepts
_INT_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = (1 << 63) - 1

# shared by every request: rendered once per Date and Connection value
_OK = dataclasses.replace(text("OK"), rendered={})
_PUB_FAILED = error_response(500, "PUB_FAILED")
_EMPTY = Response(200, b"", "", [V1_HEADER], rendered={})


def _exiting() -> HTTPError:
    return HTTPError(503, "EXITING")


class _API:
    """The handlers, bound to one daemon."""

    def __init__(self, nsqd: NSQD, *, https: bool = False) -> None:
        self.nsqd = nsqd
        self.https = https
        self._specs: dict[str, OptionSpec] = {s.cfg: s for s in option_specs(Options)}
        self._auth_cache = AuthCache()

    async def _authorize_publish(self, req: Request) -> None:
        """With auth enabled: the request's secret must grant ``publish`` on the topic."""
        topic = req.arg("topic")
        if topic is None or not is_valid_topic_name(topic):
            return  # answered by the usual argument checks, nothing is published
        header = req.headers.get("authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise HTTPError(401, "AUTH_REQUIRED")
        secret = secret.strip()
        opts = self.nsqd.options
        remote_ip = req.remote_addr.rsplit(":", 1)[0].strip("[]")
        key = (secret, remote_ip, self.https)
        state = self._auth_cache.get(key)
        if state is None:
            try:
                state = await query_any_authd(
                    opts.auth_http_addresses, remote_ip=remote_ip, tls=self.https,
                    common_name="", secret=secret, ssl_context=self.nsqd.client_tls_context,
                    connect_timeout=opts.http_client_connect_timeout,
                    request_timeout=opts.http_client_request_timeout,
                    method=opts.auth_http_request_method)
            except AuthError as exc:
                logger.warning("HTTP: [%s] AUTH failed %s", req.remote_addr, exc)
                raise HTTPError(401, "AUTH_FAILED") from None
            self._auth_cache.put(key, state)
        if not state.is_allowed(topic, ""):
            raise HTTPError(403, "UNAUTHORIZED")

    # ------------------------------------------------------------------ helpers
    def _topic_from_query(self, req: Request) -> Topic:
        """NSQ's ``getTopicFromQuery``: validate ``topic`` and get (create) the topic."""
        name = req.arg("topic")
        if name is None:
            raise HTTPError(400, "MISSING_ARG_TOPIC")
        topic = self.nsqd.topics.get(name)
        if topic is not None:
            return topic
        if not is_valid_topic_name(name):
            raise HTTPError(400, "INVALID_TOPIC")
        try:
            return self.nsqd.get_topic(name)
        except TopicError:
            raise _exiting() from None

    def _existing_topic_and_channel_name(self, req: Request) -> tuple[Topic, str]:
        """NSQ's ``getExistingTopicFromQuery`` (``GetTopicChannelArgs`` texts)."""
        topic_name = req.arg("topic")
        if topic_name is None:
            raise HTTPError(400, "MISSING_ARG_TOPIC")
        if not is_valid_topic_name(topic_name):
            raise HTTPError(400, "INVALID_ARG_TOPIC")
        channel_name = req.arg("channel")
        if channel_name is None:
            raise HTTPError(400, "MISSING_ARG_CHANNEL")
        if not is_valid_channel_name(channel_name):
            raise HTTPError(400, "INVALID_ARG_CHANNEL")
        try:
            topic = self.nsqd.get_existing_topic(topic_name)
        except TopicError:
            raise HTTPError(404, "TOPIC_NOT_FOUND") from None
        return topic, channel_name

    def _existing_channel(self, req: Request) -> Channel:
        topic, name = self._existing_topic_and_channel_name(req)
        channel = topic.channels.get(name)
        if channel is None:
            raise HTTPError(404, "CHANNEL_NOT_FOUND")
        return channel

    def _publish(self, topic: Topic, bodies: list[bytes]) -> Response | Later[Response]:
        """Publish; answered as :meth:`_ok_when_durable`."""
        nsqd = self.nsqd
        syncer = nsqd.syncer
        token = syncer.write_gen  # as durable_token(), without two calls per /pub
        try:
            if len(bodies) == 1:
                nsqd.publish_to(topic, bodies[0])
            else:
                nsqd.publish(topic.name, bodies)
        except TopicError:
            raise _exiting() from None
        except BackendError as exc:
            logger.error("TOPIC(%s): failed to put messages - %s", topic.name, exc)
            raise HTTPError(500, "PUB_FAILED") from None
        if syncer.write_gen == token:
            return _OK  # nothing written that an fsync must cover
        return self._ok_when_durable(topic, token)

    def _ok_when_durable(self, topic: Topic, token: int) -> Response | Later[Response]:
        """OK now, or — durable mode, messages written — once they are fsync'ed (group
        commit: the cycle's end answers, no task waits per request)."""
        cycle = self.nsqd.syncer.covering_cycle(token)  # now, before any other task runs
        if cycle is None:
            return _OK
        later: Later[Response] = Later()

        def synced(error: BaseException | None) -> None:
            if error is None:
                later.resolve(_OK)
            else:
                logger.error("TOPIC(%s): failed to store messages - sync failed - %s",
                             topic.name, error)
                later.resolve(_PUB_FAILED)

        cycle.call_when_done(synced)
        return later

    def _when_saved(self, mark: int, result: Response | Awaitable[Response]
                    ) -> Response | Awaitable[Response]:
        """``result``, once the metadata is written if this request created a topic or
        channel: one the next start would not know is a 500, not a 200."""
        if not self.nsqd.meta.changed_since(mark):
            return result
        return self._saved(result)

    async def _saved(self, result: Response | Awaitable[Response]) -> Response:
        response = result if isinstance(result, Response) else await result
        try:
            await self.nsqd.meta.saved()
        except BackendError as exc:
            logger.error("HTTP: topic or channel not persisted - %s", exc)
            raise HTTPError(500, "PERSIST_METADATA_FAILED") from None
        return response

    async def _authorized(self, req: Request,
                          publish: Callable[[Request], Response | Awaitable[Response]],
                          ) -> Response:
        await self._authorize_publish(req)
        result = publish(req)
        return result if isinstance(result, Response) else await result

    # ------------------------------------------------------------------ basics
    def ping(self, req: Request) -> Response:
        health = self.nsqd.health
        if health != "OK":
            return text(health, 500, v1=False)
        return text(health, v1=False)

    def info(self, req: Request) -> Response:
        nsqd = self.nsqd
        opts = nsqd.options
        bound = nsqd.bound
        tcp_port = bound.tcp_address[1] if bound is not None else -1
        http_port = bound.http_address[1] if bound is not None and bound.http_address else -1
        return json_response({
            "version": NSQ_VERSION,
            "broadcast_address": opts.broadcast_address,
            "hostname": socket.gethostname(),
            "http_port": http_port,
            "tcp_port": tcp_port,
            "start_time": int(nsqd.start_time),
            "max_heartbeat_interval": _ns(opts.max_heartbeat_interval),
            "max_output_buffer_size": opts.max_output_buffer_size,
            "max_output_buffer_timeout": _ns(opts.max_output_buffer_timeout),
            "max_deflate_level": opts.max_deflate_level,
        })

    # ------------------------------------------------------------------ publishing
    # Plain functions: answered inline by the HTTP reactor unless they return an
    # awaitable (auth lookup, durable mode's fsync wait).
    def pub(self, req: Request) -> Response | Awaitable[Response]:
        opts = self.nsqd.options
        body = req.body
        if len(body) > opts.max_msg_size:
            raise HTTPError(413, "MSG_TOO_BIG")
        if not body:
            raise HTTPError(400, "MSG_EMPTY")
        if opts.auth_http_addresses:
            return self._authorized(req, self._pub)
        query = req.query
        if len(query) == 1:
            # ?topic=<existing topic>, the usual /pub: no metadata change to wait for
            names = query.get("topic")
            topic = self.nsqd.topics.get(names[0]) if names is not None else None
            if topic is not None:
                return self._publish(topic, [body])
        return self._pub(req)

    def _pub(self, req: Request) -> Response | Awaitable[Response]:
        mark = self.nsqd.meta.mark()
        return self._when_saved(mark, self._pub_to(req))

    def _pub_to(self, req: Request) -> Response | Awaitable[Response]:
        opts = self.nsqd.options
        topic = self._topic_from_query(req)
        deferred = req.query.get("defer")
        if deferred is not None:
            ms = deferred[0]
            if not _INT_RE.fullmatch(ms):
                raise HTTPError(400, "INVALID_DEFER")
            delay_ms = int(ms)
            if not 0 <= delay_ms <= min(_INT64_MAX, opts.max_req_timeout * 1000):
                raise HTTPError(400, "INVALID_DEFER")
            if delay_ms > 0:
                token = self.nsqd.durable_token()
                try:
                    self.nsqd.publish_deferred(topic.name, req.body, delay_ms / 1000)
                except TopicError:
                    raise _exiting() from None
                except BackendError as exc:
                    logger.error("TOPIC(%s): failed to put message - %s", topic.name, exc)
                    raise HTTPError(500, "PUB_FAILED") from None
                return self._ok_when_durable(topic, token)
        return self._publish(topic, [req.body])

    def mpub(self, req: Request) -> Response | Awaitable[Response]:
        if self.nsqd.options.auth_http_addresses:
            return self._authorized(req, self._mpub)
        return self._mpub(req)

    def _mpub(self, req: Request) -> Response | Awaitable[Response]:
        mark = self.nsqd.meta.mark()
        return self._when_saved(mark, self._mpub_to(req))

    def _mpub_to(self, req: Request) -> Response | Awaitable[Response]:
        opts = self.nsqd.options
        topic = self._topic_from_query(req)
        binary = False
        flag = req.arg("binary")
        if flag is not None:
            binary = _BOOL_PARAMS.get(flag, True)
            if flag not in _BOOL_PARAMS:
                logger.warning("deprecated value '%s' used for /mpub binary param", flag)
        body = req.body
        if binary:
            bodies = _parse_binary_mpub(body, opts.max_msg_size, opts.max_body_size)
        else:
            # newline separated; a trailing newline and empty lines are dropped
            bodies = [b for b in body.split(b"\n") if b]
            max_size = opts.max_msg_size
            if any(len(b) > max_size for b in bodies):
                raise HTTPError(413, "MSG_TOO_BIG")
        if not bodies:
            return _OK
        return self._publish(topic, bodies)

    # ------------------------------------------------------------------ stats
    def stats(self, req: Request) -> Response:
        nsqd = self.nsqd
        topic = req.arg("topic", "") or ""
        channel = req.arg("channel", "") or ""
        include_clients = _BOOL_PARAMS.get(req.arg("include_clients", "") or "", True)
        include_mem = _BOOL_PARAMS.get(req.arg("include_mem", "") or "", True)
        if req.arg("format") == "json":
            return json_response(stats_document(
                nsqd, version=NSQ_VERSION, topic=topic, channel=channel,
                include_clients=include_clients, include_mem=include_mem))
        stats = get_stats(nsqd, topic, channel, include_clients)
        memory = memory_stats() if include_mem else None
        return text(render_text(stats, memory, nsqd.health, nsqd.start_time))

    def metrics(self, req: Request) -> Response:
        """Prometheus' ``GET /metrics`` (not in NSQ)."""
        nsqd = self.nsqd
        return metrics_response(nsqd_metrics(nsqd, per_client=nsqd.options.metrics_per_client))

    # ------------------------------------------------------------------ topics
    def topic_create(self, req: Request) -> Response | Awaitable[Response]:
        mark = self.nsqd.meta.mark()
        self._topic_from_query(req)
        return self._when_saved(mark, _EMPTY)

    def topic_delete(self, req: Request) -> Response:
        name = req.arg("topic")
        if name is None:
            raise HTTPError(400, "MISSING_ARG_TOPIC")
        try:
            self.nsqd.delete_topic(name)
        except TopicError:
            raise HTTPError(404, "TOPIC_NOT_FOUND") from None
        return _EMPTY

    def topic_empty(self, req: Request) -> Response:
        name = req.arg("topic")
        if name is None:
            raise HTTPError(400, "MISSING_ARG_TOPIC")
        if not is_valid_topic_name(name):
            raise HTTPError(400, "INVALID_TOPIC")
        try:
            topic = self.nsqd.get_existing_topic(name)
        except TopicError:
            raise HTTPError(404, "TOPIC_NOT_FOUND") from None
        topic.empty()
        return _EMPTY

    def topic_pause(self, req: Request) -> Response:
        name = req.arg("topic")
        if name is None:
            raise HTTPError(400, "MISSING_ARG_TOPIC")
        try:
            topic = self.nsqd.get_existing_topic(name)
        except TopicError:
            raise HTTPError(404, "TOPIC_NOT_FOUND") from None
        if "unpause" in req.path:
            topic.unpause()
        else:
            topic.pause()
        # persist now so a crash cannot (un)pause the topic behind the operator's back
        self.nsqd.persist_metadata_soon()
        return _EMPTY

    # ------------------------------------------------------------------ channels
    def channel_create(self, req: Request) -> Response | Awaitable[Response]:
        topic, name = self._existing_topic_and_channel_name(req)
        mark = self.nsqd.meta.mark()
        try:
            topic.get_channel(name)
        except TopicError:
            raise _exiting() from None
        return self._when_saved(mark, _EMPTY)

    def channel_delete(self, req: Request) -> Response:
        topic, name = self._existing_topic_and_channel_name(req)
        try:
            topic.delete_channel(name)
        except TopicError:
            raise HTTPError(404, "CHANNEL_NOT_FOUND") from None
        return _EMPTY

    def channel_empty(self, req: Request) -> Response:
        self._existing_channel(req).empty()
        return _EMPTY

    def channel_pause(self, req: Request) -> Response:
        channel = self._existing_channel(req)
        if "unpause" in req.path:
            channel.unpause(trio.current_time())
        else:
            channel.pause()
        self.nsqd.persist_metadata_soon()
        return _EMPTY

    # ------------------------------------------------------------------ config
    def config(self, req: Request) -> Response:
        opt = req.params.get("opt", "")
        nsqd = self.nsqd
        if req.method == "PUT":
            body = req.body
            if not body or len(body) > nsqd.options.max_msg_size:
                raise HTTPError(413, "INVALID_VALUE")
            if opt == "nsqlookupd_tcp_addresses":
                addresses = _parse_address_list(body)
                nsqd.swap_options(dataclasses.replace(nsqd.options, lookupd_tcp_addresses=addresses))
                if nsqd.lookup is not None:
                    nsqd.lookup.set_addresses(addresses)
            elif opt == "log_level":
                try:
                    name = body.decode()
                    parse_level(name)
                except (UnicodeDecodeError, ValueError):
                    raise HTTPError(400, "INVALID_VALUE") from None
                set_level(name)
                nsqd.swap_options(dataclasses.replace(nsqd.options, log_level=name.lower()))
            else:
                raise HTTPError(400, "INVALID_OPTION")
        spec = self._specs.get(opt)
        if spec is None:
            raise HTTPError(400, "INVALID_OPTION")
        return json_response(_config_value(spec, getattr(nsqd.options, spec.name)))


# ---------------------------------------------------------------------------- helpers
def _ns(seconds: float) -> int:
    """A duration as Go's ``time.Duration`` marshals it: integer nanoseconds."""
    return round(seconds * 1e9)


#: an option's value (see internal.options for the supported types)
_OptionValue = bool | int | float | str | list[str] | list[int] | list[float]


def _config_value(spec: OptionSpec, value: _OptionValue) -> _OptionValue:
    """An option as NSQ's ``GET /config/<opt>`` shows it."""
    if spec.kind == "duration" and isinstance(value, float | int):
        return _ns(value)
    if spec.name == "log_level":
        return _NSQ_LOG_LEVELS.get(str(value).lower(), value)
    return value


def _parse_address_list(body: bytes) -> list[str]:
    try:
        value = loads(body)
    except ValueError:
        raise HTTPError(400, "INVALID_VALUE") from None
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
        raise HTTPError(400, "INVALID_VALUE")
    return value


def _parse_binary_mpub(body: bytes, max_msg_size: int, max_body_size: int) -> list[bytes]:
    """``[count][size][body]...``; errors are 413 with the code minus ``E_``, as NSQ."""
    try:
        return parse_mpub_body(body, max_msg_size, max_body_size)
    except MPUBError as exc:
        raise HTTPError(413, exc.code[2:]) from None


class _RequestLog:
    """Logs a request's status and duration when its ``with`` block ends (0: not yet)."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.start = time.perf_counter()
        self.status = 500

    def __enter__(self) -> _RequestLog:
        return self

    def __exit__(self, typ: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if isinstance(exc, HTTPError):
            self.status = exc.status
        if self.status and logger.isEnabledFor(logging.INFO):
            req = self.req
            uri = f"{req.path}?{req.query_string}" if req.query_string else req.path
            logger.info("%d %s %s (%s) %s", self.status, req.method, uri, req.remote_addr,
                        format_duration(time.perf_counter() - self.start))


def _logged(handler: Callable[[Request], Response | Awaitable[Response]]) -> Handler:
    """NSQ's ``http_api.Log``: one INFO line per request (handlers that answer inline,
    or now and then after an await: a create waiting for the metadata write)."""

    async def finish(entry: _RequestLog, pending: Awaitable[Response]) -> Response:
        entry.status = 500
        with entry:
            response = await pending
            entry.status = response.status
            return response

    def logged(req: Request) -> Response | Awaitable[Response]:
        with _RequestLog(req) as entry:
            response = handler(req)
            if not isinstance(response, Response):
                entry.status = 0  # logged once answered
                return finish(entry, response)
            entry.status = response.status
            return response

    return logged


def make_router(nsqd: NSQD, *, https: bool = False) -> Router:
    """The nsqd routes (NSQ's ``newHTTPServer``)."""
    api = _API(nsqd, https=https)
    router = Router()
    router.add("GET", "/ping", _logged(api.ping))
    router.add("GET", "/info", _logged(api.info))
    router.add("POST", "/pub", api.pub)
    router.add("POST", "/mpub", api.mpub)
    router.add("GET", "/stats", _logged(api.stats))
    router.add("GET", "/metrics", _logged(api.metrics))
    router.add("POST", "/topic/create", _logged(api.topic_create))
    router.add("POST", "/topic/delete", _logged(api.topic_delete))
    router.add("POST", "/topic/empty", _logged(api.topic_empty))
    router.add("POST", "/topic/pause", _logged(api.topic_pause))
    router.add("POST", "/topic/unpause", _logged(api.topic_pause))
    router.add("POST", "/channel/create", _logged(api.channel_create))
    router.add("POST", "/channel/delete", _logged(api.channel_delete))
    router.add("POST", "/channel/empty", _logged(api.channel_empty))
    router.add("POST", "/channel/pause", _logged(api.channel_pause))
    router.add("POST", "/channel/unpause", _logged(api.channel_pause))
    router.add(("GET", "PUT"), "/config/:opt", _logged(api.config))
    return router


def _tls_required_handler(nsqd: NSQD) -> Handler:
    """Plain HTTP under ``--tls-required=true``: every request is sent to HTTPS."""

    def tls_required(req: Request) -> Response:
        bound = nsqd.bound
        port = bound.https_address[1] if bound is not None and bound.https_address else 0
        body = f'{{"message": "TLS_REQUIRED", "https_port": {port}}}'.encode()
        return Response(403, body, "application/json; charset=utf-8", [V1_HEADER])

    return tls_required


async def serve_nsqd_http(nsqd: NSQD, *, https: bool = False,
                          task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
                          ) -> None:
    """Serve nsqd's HTTP API on ``--http-address`` (or HTTPS on ``--https-address``).

    ``task_status.started`` gets the bound ``(host, port)``. With ``--tls-required=true``
    the plain HTTP listener answers every request with 403 ``TLS_REQUIRED``, as NSQ.

    Raises:
        OSError: the address cannot be bound (raised from ``nursery.start``).
    """
    opts = nsqd.options
    host, port = split_host_port(opts.https_address if https else opts.http_address)
    install_gc_monitor()
    handler: Handler | Router = make_router(nsqd, https=https)
    if not https and opts.tls_required == TLS_REQUIRED:
        handler = _tls_required_handler(nsqd)
    # as NSQ: /pub bodies are limited by --max-msg-size, /mpub by --max-body-size
    body_limits = {"/pub": (opts.max_msg_size, "MSG_TOO_BIG"),
                   "/mpub": (opts.max_body_size, "BODY_TOO_BIG")}
    await serve_http(handler, host, port, name="HTTPS" if https else "HTTP",
                     max_body_size=max(opts.max_body_size, opts.max_msg_size),
                     body_limits=body_limits, max_connections=opts.max_connections,
                     ssl_context=nsqd.tls_context if https else None, task_status=task_status)

