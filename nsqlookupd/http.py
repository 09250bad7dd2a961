"""nsqlookupd's HTTP API (NSQ 1.3 ``nsqlookupd/http.go``): same paths, JSON and errors.

Producers that have not pinged within ``--inactive-producer-timeout`` and tombstoned
producers are left out of ``/lookup``; ``/nodes`` leaves out only inactive ones and
reports each topic's tombstone. Errors are ``{"message": "..."}`` with NSQ's texts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from client.protocol import is_valid_channel_name, is_valid_topic_name
from internal.gojson import go_json
from internal.http import JSON_CONTENT_TYPE, V1_HEADER, HTTPError, Request, Response, Router, json_response, text
from internal.metrics import metrics_response
from internal.version import NSQ_VERSION

from .metrics import lookupd_metrics
from .options import Options
from .registration_db import Producer, Registration, RegistrationDB, filter_by_active

__all__ = ["LookupdHTTP"]

logger = logging.getLogger(__name__)

#: what Go prints for the UnixNano of a zero time.Time (a never-tombstoned producer)
_GO_ZERO_TIME_UNIX_NANO = -6795364578871345152


def _empty() -> Response:
    """NSQ's V1 answer to a successful POST: 200, no body, no Content-Type."""
    return Response(200, b"", "", [V1_HEADER])


def _require(req: Request, name: str) -> str:
    value = req.arg(name)
    if value is None:
        raise HTTPError(400, f"MISSING_ARG_{name.upper()}")
    return value


def _topic_channel_args(req: Request) -> tuple[str, str]:
    """NSQ's ``http_api.GetTopicChannelArgs``."""
    topic = _require(req, "topic")
    if not is_valid_topic_name(topic):
        raise HTTPError(400, "INVALID_ARG_TOPIC")
    channel = _require(req, "channel")
    if not is_valid_channel_name(channel):
        raise HTTPError(400, "INVALID_ARG_CHANNEL")
    return topic, channel


class LookupdHTTP:
    """The HTTP handlers, bound to a registration database and options.

    Args:
        db: the shared registration database.
        options: for the inactive timeout and tombstone lifetime.
        clock: the clock the TCP side stamps pings with.
    """

    def __init__(self, db: RegistrationDB, options: Options, clock: Callable[[], float]) -> None:
        self.db = db
        self.options = options
        self.clock = clock

    def router(self) -> Router:
        """A router with every nsqlookupd endpoint."""
        r = Router()
        r.add("GET", "/ping", self.ping)
        r.add("GET", "/info", self.info)
        r.add("GET", "/debug", self.debug)
        r.add("GET", "/lookup", self.lookup)
        r.add("GET", "/topics", self.topics)
        r.add("GET", "/channels", self.channels)
        r.add("GET", "/nodes", self.nodes)
        r.add("POST", "/topic/create", self.create_topic)
        r.add("POST", "/topic/delete", self.delete_topic)
        r.add("POST", "/channel/create", self.create_channel)
        r.add("POST", "/channel/delete", self.delete_channel)
        r.add("POST", "/topic/tombstone", self.tombstone_topic_producer)
        r.add("GET", "/metrics", self.metrics)
        return r

    def metrics(self, req: Request) -> Response:
        """Prometheus' ``GET /metrics`` (not in NSQ)."""
        return metrics_response(lookupd_metrics(self.db, self.options, self.clock()))

    def ping(self, req: Request) -> Response:
        return text("OK", v1=False)

    def info(self, req: Request) -> Response:
        return json_response({"version": NSQ_VERSION})

    def topics(self, req: Request) -> Response:
        return json_response({"topics": [r.key for r in self.db.find_registrations("topic", "*", "")]})

    def channels(self, req: Request) -> Response:
        topic = _require(req, "topic")
        regs = self.db.find_registrations("channel", topic, "*")
        return json_response({"channels": [r.subkey for r in regs]})

    def lookup(self, req: Request) -> Response:
        topic = _require(req, "topic")
        db = self.db
        if not db.find_registrations("topic", topic, ""):
            raise HTTPError(404, "TOPIC_NOT_FOUND")
        channels = [r.subkey for r in db.find_registrations("channel", topic, "*")]
        opts = self.options
        producers = filter_by_active(db.find_producers("topic", topic, ""), self.clock(),
                                     opts.inactive_producer_timeout, opts.tombstone_lifetime)
        # the hot path: producer objects are serialised once per nsqd and spliced in
        body = b"".join((b'{"channels":', go_json(channels), b',"producers":[',
                         b",".join([p.peer_info.json_bytes() for p in producers]), b"]}"))
        return Response(200, body, JSON_CONTENT_TYPE, [V1_HEADER])

    def create_topic(self, req: Request) -> Response:
        topic = _require(req, "topic")
        if not is_valid_topic_name(topic):
            raise HTTPError(400, "INVALID_ARG_TOPIC")
        logger.info("DB: adding topic(%s)", topic)
        self.db.add_registration(Registration("topic", topic, ""))
        return _empty()

    def delete_topic(self, req: Request) -> Response:
        topic = _require(req, "topic")
        db = self.db
        for r in db.find_registrations("channel", topic, "*"):
            logger.info("DB: removing channel(%s) from topic(%s)", r.subkey, topic)
            db.remove_registration(r)
        for r in db.find_registrations("topic", topic, ""):
            logger.info("DB: removing topic(%s)", topic)
            db.remove_registration(r)
        return _empty()

    def tombstone_topic_producer(self, req: Request) -> Response:
        topic = _require(req, "topic")
        node = _require(req, "node")
        logger.info("DB: setting tombstone for producer@%s of topic(%s)", node, topic)
        now = self.clock()
        for p in self.db.find_producers("topic", topic, ""):
            if f"{p.peer_info.broadcast_address}:{p.peer_info.http_port}" == node:
                p.tombstone(now)
        return _empty()

    def create_channel(self, req: Request) -> Response:
        topic, channel = _topic_channel_args(req)
        logger.info("DB: adding channel(%s) in topic(%s)", channel, topic)
        self.db.add_registration(Registration("channel", topic, channel))
        logger.info("DB: adding topic(%s)", topic)
        self.db.add_registration(Registration("topic", topic, ""))
        return _empty()

    def delete_channel(self, req: Request) -> Response:
        topic, channel = _topic_channel_args(req)
        regs = self.db.find_registrations("channel", topic, channel)
        if not regs:
            raise HTTPError(404, "CHANNEL_NOT_FOUND")
        logger.info("DB: removing channel(%s) from topic(%s)", channel, topic)
        for r in regs:
            self.db.remove_registration(r)
        return _empty()

    def nodes(self, req: Request) -> Response:
        db = self.db
        opts = self.options
        now = self.clock()
        # tombstoned nodes are listed (lifetime 0), with a flag per topic
        clients = filter_by_active(db.find_producers("client", "", ""), now,
                                   opts.inactive_producer_timeout, 0)
        nodes = []
        for client in clients:
            pi = client.peer_info
            topics = [r.key for r in db.lookup_registrations(pi.id)
                      if r.category == "topic" and r.subkey == ""]
            tombstones = []
            for topic in topics:
                p = db.find_producer(Registration("topic", topic, ""), pi.id)
                tombstones.append(p is not None and p.is_tombstoned(opts.tombstone_lifetime, now))
            nodes.append({**pi.to_json(), "tombstones": tombstones, "topics": topics})
        return json_response({"producers": nodes})

    def debug(self, req: Request) -> Response:
        now = self.clock()
        wall_ns = time.time_ns()

        def unix_nano(t: float) -> int:
            return wall_ns - round((now - t) * 1e9)

        def entry(p: Producer) -> dict[str, object]:
            pi = p.peer_info
            return {  # a Go map: keys sorted
                "broadcast_address": pi.broadcast_address,
                "hostname": pi.hostname,
                "http_port": pi.http_port,
                "id": pi.id,
                "last_update": unix_nano(pi.last_update),
                "tcp_port": pi.tcp_port,
                "tombstoned": p.tombstoned,
                "tombstoned_at": unix_nano(p.tombstoned_at) if p.tombstoned
                else _GO_ZERO_TIME_UNIX_NANO,
                "version": pi.version,
            }

        data: dict[str, list[dict[str, object]]] = {}
        for r, producers in self.db.items():
            if producers:  # Go only creates a key when appending a producer
                data[f"{r.category}:{r.key}:{r.subkey}"] = [entry(p) for p in producers]
        return json_response(dict(sorted(data.items())))
