"""nsqadmin against real in-process nsqd + nsqlookupd (NSQ 1.3's ``nsqadmin/http_test.go``
and more): the JSON API's shapes, admin actions and their notifications, nodes that are
down, pages, graphs, ``--base-path``, ``/config`` and the command line."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from helpers import RawConn, addr, dead_address, wait_for

from internal.http import Request, Response, serve_http, text
from internal.version import PROJECT_VERSION
from nsqadmin import NSQAdmin
from nsqadmin import Options as AdminOptions
from nsqd import NSQD
from nsqd import Options as NSQDOptions
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

TIMEOUT = 20.0

# Go's json tags, in struct order (internal/clusterinfo/types.go)
TOPIC_KEYS = ["node", "hostname", "topic_name", "depth", "memory_depth", "backend_depth",
              "message_count", "nodes", "channels", "paused", "e2e_processing_latency"]
CHANNEL_KEYS = ["node", "hostname", "topic_name", "channel_name", "depth", "memory_depth",
                "backend_depth", "in_flight_count", "deferred_count", "requeue_count",
                "timeout_count", "message_count", "client_count", "nodes", "clients", "paused",
                "e2e_processing_latency"]
CLIENT_KEYS = ["node", "remote_address", "version", "client_id", "hostname", "user_agent",
               "connect_ts", "connected", "in_flight_count", "ready_count", "finish_count",
               "requeue_count", "message_count", "sample_rate", "deflate", "snappy", "authed",
               "auth_identity", "auth_identity_url", "tls", "tls_cipher_suite", "tls_version",
               "tls_negotiated_protocol", "tls_negotiated_protocol_is_mutual"]
PRODUCER_KEYS = ["remote_addresses", "remote_address", "hostname", "broadcast_address",
                 "tcp_port", "http_port", "version", "topics", "out_of_date"]
E2E_KEYS = ["count", "percentiles", "topic", "channel", "host"]


@dataclass
class Cluster:
    nursery: trio.Nursery
    tmp: Path
    http: httpx.AsyncClient
    lookupd: NSQLookupd | None = None
    nsqds: list[NSQD] = field(default_factory=list)
    admin: NSQAdmin | None = None
    admin_url: str = ""

    @property
    def lookupd_http(self) -> str:
        assert self.lookupd is not None
        return addr(self.lookupd.real_http_addr)

    def nsqd_http(self, i: int = 0) -> str:
        bound = self.nsqds[i].bound
        assert bound is not None and bound.http_address is not None
        return addr(bound.http_address)

    async def start_lookupd(self) -> None:
        opts = LookupdOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                              broadcast_address="127.0.0.1")
        self.lookupd = await self.nursery.start(NSQLookupd(opts).run)

    async def start_nsqd(self, *, lookupd: bool = True) -> NSQD:
        i = len(self.nsqds)
        path = self.tmp / f"nsqd{i}"
        path.mkdir()
        kwargs: dict[str, Any] = {}
        if lookupd and self.lookupd is not None:
            kwargs["lookupd_tcp_addresses"] = [addr(self.lookupd.real_tcp_addr)]
        nsqd = NSQD(NSQDOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                                broadcast_address="127.0.0.1", data_path=str(path), node_id=i,
                                **kwargs))
        await self.nursery.start(nsqd.run)
        self.nsqds.append(nsqd)
        return nsqd

    async def start_admin(self, **overrides: Any) -> NSQAdmin:
        kwargs: dict[str, Any] = {"http_address": "127.0.0.1:0", "graph_sample_interval": 0.25}
        if "nsqd_http_addresses" not in overrides and self.lookupd is not None:
            kwargs["lookupd_http_addresses"] = [self.lookupd_http]
        kwargs.update(overrides)
        admin = NSQAdmin(AdminOptions(**kwargs))
        bound = await self.nursery.start(admin.run)
        self.admin = admin
        self.admin_url = f"http://{addr(bound)}"
        return admin

    async def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return await self.http.request(method, self.admin_url + path, **kw)

    async def nsqd_stats(self, i: int = 0, **params: str) -> dict[str, Any]:
        resp = await self.http.get(f"http://{self.nsqd_http(i)}/stats",
                                   params={"format": "json", **params})
        return resp.json()

    async def make_topic(self, topic: str, channel: str = "", *, nodes: tuple[int, ...] = (0,),
                         messages: int = 0) -> None:
        """Create a topic (and channel) on nodes, publish, and wait until lookupd knows."""
        for i in nodes:
            base = f"http://{self.nsqd_http(i)}"
            assert (await self.http.post(f"{base}/topic/create", params={"topic": topic})).status_code == 200
            if channel:
                r = await self.http.post(f"{base}/channel/create",
                                         params={"topic": topic, "channel": channel})
                assert r.status_code == 200
            for n in range(messages):
                await self.http.post(f"{base}/pub", params={"topic": topic}, content=b"m%d" % n)
        if self.lookupd is not None:
            async def registered() -> bool:
                r = await self.http.get(f"http://{self.lookupd_http}/lookup", params={"topic": topic})
                if r.status_code != 200:
                    return False
                doc = r.json()
                return (len(doc["producers"]) >= len(nodes)
                        and (not channel or channel in doc["channels"]))
            await wait_for(registered, f"lookupd registration of {topic}")


@pytest.fixture
async def cluster(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[Cluster]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        yield Cluster(nursery, tmp_path, http)


@pytest.fixture
async def lookupd_cluster(cluster: Cluster) -> Cluster:
    """One nsqlookupd, two nsqd registered with it, nsqadmin reading the lookupd."""
    await cluster.start_lookupd()
    await cluster.start_nsqd()
    await cluster.start_nsqd()
    await cluster.start_admin()
    return cluster


# ------------------------------------------------------------------------------ reads
async def test_ping(lookupd_cluster: Cluster) -> None:
    r = await lookupd_cluster.api("GET", "/ping")
    assert (r.status_code, r.text) == (200, "OK")


async def test_topics_get(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    r = await c.api("GET", "/api/topics")
    assert r.json() == {"topics": None, "message": ""}  # Go's nil slice
    await c.make_topic("test_topics_get")
    r = await c.api("GET", "/api/topics")
    assert r.status_code == 200
    assert r.headers["x-nsq-content-type"] == "nsq; version=1.0"
    assert r.json() == {"topics": ["test_topics_get"], "message": ""}


async def test_topic_get_aggregates_nodes(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("agg", "ch", nodes=(0, 1), messages=3)
    r = await c.api("GET", "/api/topics/agg")
    assert r.status_code == 200
    doc = r.json()
    assert list(doc) == [*TOPIC_KEYS, "message"]
    assert doc["node"] == "*" and doc["topic_name"] == "agg" and doc["message"] == ""
    assert doc["message_count"] == 6
    assert len(doc["nodes"]) == 2
    assert {n["node"] for n in doc["nodes"]} == {c.nsqd_http(0), c.nsqd_http(1)}
    for node in doc["nodes"]:
        assert list(node) == TOPIC_KEYS
        assert node["message_count"] == 3 and node["nodes"] is None
        assert node["memory_depth"] == node["depth"] - node["backend_depth"]
        [ch] = node["channels"]
        assert list(ch) == CHANNEL_KEYS
        assert ch["node"] == node["node"] and ch["depth"] == 3  # per-node rows untouched
        assert list(node["e2e_processing_latency"]) == E2E_KEYS
    [total] = doc["channels"]
    assert total["node"] == "*" and total["channel_name"] == "ch"
    assert total["depth"] == 6 and total["message_count"] == 6
    assert len(total["nodes"]) == 2
    assert doc["e2e_processing_latency"] == {"count": 0, "percentiles": None, "topic": "agg",
                                             "channel": "", "host": "*"}


async def test_topic_without_producers(lookupd_cluster: Cluster) -> None:
    r = await lookupd_cluster.api("GET", "/api/topics/nothing_here")
    assert r.status_code == 200
    doc = r.json()
    assert doc["nodes"] is None and doc["channels"] is None and doc["depth"] == 0


async def test_channel_get_with_client(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("chan_get", "ch", nodes=(0, 1), messages=2)
    nsqd = c.nsqds[0]
    assert nsqd.bound is not None
    conn = await RawConn.open(nsqd.bound.tcp_address)
    try:
        await conn.identify(client_id="worker-1", hostname="worker.example", user_agent="test/1.0")
        await conn.sub("chan_get", "ch", rdy=1)
        await conn.message()  # one in flight
        r = await c.api("GET", "/api/topics/chan_get/ch")
        doc = r.json()
        assert list(doc) == [*CHANNEL_KEYS, "message"]
        assert doc["node"] == "*" and doc["depth"] == 3 and doc["in_flight_count"] == 1
        assert doc["client_count"] == 1 and len(doc["nodes"]) == 2
        [client] = doc["clients"]
        assert list(client) == CLIENT_KEYS
        assert client["node"] == c.nsqd_http(0)
        assert client["client_id"] == "worker-1" and client["hostname"] == "worker.example"
        assert client["user_agent"] == "test/1.0"
        assert client["ready_count"] == 1 and client["in_flight_count"] == 1
        assert client["version"] == "V2"
        page = (await c.api("GET", "/topics/chan_get/ch")).text
        assert "worker.example:" in page and "(worker-1)" in page and "test/1.0" in page
        assert client["connected"] >= 0 and client["connected"] % 1_000_000_000 == 0
    finally:
        await conn.aclose()
    r = await c.api("GET", "/api/topics/chan_get/missing")
    assert r.json() == {"message": ""}  # Go's nil embedded struct


async def test_nodes_and_node(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("nodes_t", "ch", nodes=(0,), messages=4)
    doc = (await c.api("GET", "/api/nodes")).json()
    assert doc["message"] == ""
    assert len(doc["nodes"]) == 2
    for p in doc["nodes"]:
        assert list(p) == PRODUCER_KEYS
        assert p["broadcast_address"] == "127.0.0.1" and p["version"] == "1.3.0"
        assert p["remote_addresses"] == [f"{c.lookupd_http}/{p['remote_address']}"]
        assert p["out_of_date"] is False
    with_topic = [p for p in doc["nodes"] if p["topics"]]
    assert with_topic[0]["topics"] == [{"topic": "nodes_t", "tombstoned": False}]

    node = c.nsqd_http(0)
    doc = (await c.api("GET", f"/api/nodes/{node}")).json()
    assert list(doc) == ["node", "topics", "total_messages", "total_clients", "message"]
    assert doc["node"] == node and doc["total_messages"] == 4 and doc["total_clients"] == 0
    assert [t["topic_name"] for t in doc["topics"]] == ["nodes_t"]

    r = await c.api("GET", "/api/nodes/127.0.0.1:1")
    assert (r.status_code, r.json()) == (404, {"message": "NODE_NOT_FOUND"})


async def test_counter(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("count_t", "ch", nodes=(0, 1), messages=5)
    doc = (await c.api("GET", "/api/counter")).json()
    assert doc["message"] == ""
    assert doc["stats"] == {
        f"count_t:ch:{c.nsqd_http(i)}": {"node": c.nsqd_http(i), "topic_name": "count_t",
                                         "channel_name": "ch", "message_count": 5}
        for i in (0, 1)}


async def test_inactive_topics(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("active")
    r = await c.http.post(f"http://{c.lookupd_http}/topic/create", params={"topic": "ghost"})
    assert r.status_code == 200
    await c.http.post(f"http://{c.lookupd_http}/channel/create",
                      params={"topic": "ghost", "channel": "gc"})
    doc = (await c.api("GET", "/api/topics", params={"inactive": "true"})).json()
    assert doc == {"topics": {"ghost": ["gc"]}, "message": ""}


# ------------------------------------------------------------------------------ actions
@dataclass
class Receiver:
    """An HTTP endpoint collecting notification POSTs."""

    url: str
    events: trio.MemoryReceiveChannel[dict[str, Any]]

    async def next(self) -> dict[str, Any]:
        with trio.fail_after(TIMEOUT):
            return await self.events.receive()


@pytest.fixture
async def receiver(nursery: trio.Nursery) -> Receiver:
    send, recv = trio.open_memory_channel[dict[str, Any]](100)

    async def handler(req: Request) -> Response:
        send.send_nowait(json.loads(req.body))
        return text("OK")

    host, port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
    return Receiver(f"http://{host}:{port}/notify", recv)


async def test_topic_actions_and_notifications(cluster: Cluster, receiver: Receiver) -> None:
    c = cluster
    await c.start_lookupd()
    await c.start_nsqd()
    await c.start_nsqd()
    await c.start_admin(notification_http_endpoint=receiver.url)
    await c.make_topic("acts", "ch", nodes=(0, 1), messages=2)

    r = await c.api("POST", "/api/topics/acts", json={"action": "pause"},
                    headers={"User-Agent": "ua/1", "Authorization": "Basic bWF0dDpwYXNz"})
    assert (r.status_code, r.json()) == (200, {"message": ""})
    for i in (0, 1):
        assert (await c.nsqd_stats(i, topic="acts"))["topics"][0]["paused"] is True
    event = await receiver.next()
    assert list(event) == ["action", "topic", "timestamp", "user", "remote_ip", "user_agent",
                           "url", "via"]
    assert event["action"] == "pause_topic" and event["topic"] == "acts"
    assert event["user"] == "matt" and event["user_agent"] == "ua/1"
    assert event["url"] == f"{c.admin_url}/api/topics/acts"
    assert (await c.api("GET", "/api/topics/acts")).json()["paused"] is True

    await c.api("POST", "/api/topics/acts", json={"action": "unpause"})
    assert (await receiver.next())["action"] == "unpause_topic"
    assert (await c.nsqd_stats(0, topic="acts"))["topics"][0]["paused"] is False

    await c.api("POST", "/api/topics/acts/ch", json={"action": "pause"})
    event = await receiver.next()
    assert (event["action"], event["channel"]) == ("pause_channel", "ch")
    doc = (await c.api("GET", "/api/topics/acts/ch")).json()
    assert doc["paused"] is True and all(n["paused"] for n in doc["nodes"])

    await c.api("POST", "/api/topics/acts/ch", json={"action": "empty"})
    assert (await receiver.next())["action"] == "empty_channel"
    assert (await c.api("GET", "/api/topics/acts/ch")).json()["depth"] == 0

    r = await c.api("POST", "/api/topics/acts", json={"action": "explode"})
    assert (r.status_code, r.json()) == (400, {"message": "INVALID_ACTION"})
    r = await c.api("POST", "/api/topics/acts", content=b"{nope")
    assert r.status_code == 400

    r = await c.api("DELETE", "/api/topics/acts/ch")
    assert r.status_code == 200
    assert (await receiver.next())["action"] == "delete_channel"
    topics = (await c.nsqd_stats(1, topic="acts"))["topics"]
    assert topics[0]["channels"] == []

    r = await c.api("DELETE", "/api/topics/acts")
    assert r.status_code == 200
    assert (await receiver.next())["action"] == "delete_topic"
    for i in (0, 1):
        assert (await c.nsqd_stats(i))["topics"] == []


async def test_create_topic_channel(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("made", nodes=(0,))
    r = await c.api("POST", "/api/topics", json={"topic": "made", "channel": "fresh"})
    assert (r.status_code, r.json()) == (200, {"message": ""})
    chans = (await c.http.get(f"http://{c.lookupd_http}/channels", params={"topic": "made"})).json()
    assert "fresh" in chans["channels"]
    [topic] = (await c.nsqd_stats(0, topic="made"))["topics"]
    assert [ch["channel_name"] for ch in topic["channels"]] == ["fresh"]

    r = await c.api("POST", "/api/topics", json={"topic": "bad topic!"})
    assert (r.status_code, r.json()) == (400, {"message": "INVALID_TOPIC"})
    r = await c.api("POST", "/api/topics", json={"topic": "ok", "channel": "bad channel"})
    assert (r.status_code, r.json()) == (400, {"message": "INVALID_CHANNEL"})


async def test_tombstone_topic_on_node(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("tomb", nodes=(0, 1))
    node = c.nsqd_http(0)
    r = await c.api("DELETE", f"/api/nodes/{node}", json={"topic": "tomb"})
    assert (r.status_code, r.json()) == (200, {"message": ""})
    assert [t["topic_name"] for t in (await c.nsqd_stats(0))["topics"]] == []
    assert [t["topic_name"] for t in (await c.nsqd_stats(1))["topics"]] == ["tomb"]
    doc = (await c.api("GET", "/api/nodes")).json()
    tombstoned = {p["http_port"]: p["topics"] for p in doc["nodes"]}
    assert tombstoned[int(node.rsplit(":", 1)[1])] in (None, [{"topic": "tomb", "tombstoned": True}])

    r = await c.api("DELETE", f"/api/nodes/{node}", content=b"garbage")
    assert (r.status_code, r.json()) == (400, {"message": "INVALID_BODY"})
    r = await c.api("DELETE", f"/api/nodes/{node}", json={"topic": "no good"})
    assert (r.status_code, r.json()) == (400, {"message": "INVALID_TOPIC"})


async def test_admin_users_only(cluster: Cluster) -> None:
    c = cluster
    await c.start_lookupd()
    await c.start_nsqd()
    await c.start_admin(admin_users=["matt"])
    await c.make_topic("guarded")
    r = await c.api("POST", "/api/topics/guarded", json={"action": "pause"})
    assert (r.status_code, r.json()) == (403, {"message": "FORBIDDEN"})
    r = await c.api("DELETE", "/api/topics/guarded")
    assert r.status_code == 403
    page = await c.api("GET", "/topics/guarded")
    assert "Pause Topic" not in page.text
    r = await c.api("POST", "/api/topics/guarded", json={"action": "pause"},
                    headers={"X-Forwarded-User": "matt"})
    assert r.status_code == 200
    page = await c.api("GET", "/topics/guarded", headers={"X-Forwarded-User": "matt"})
    assert "UnPause Topic" in page.text


# ------------------------------------------------------------------------------ nodes down
async def test_nsqd_mode_with_one_node_down(cluster: Cluster) -> None:
    c = cluster
    await c.start_nsqd(lookupd=False)
    dead = dead_address()
    await c.start_admin(nsqd_http_addresses=[c.nsqd_http(0), dead])
    await c.make_topic("half", "ch", messages=1)

    doc = (await c.api("GET", "/api/topics")).json()
    assert doc["topics"] == ["half"]
    assert doc["message"].startswith("WARNING: ")
    assert f'Get "http://{dead}/stats?format=json&include_clients=false": dial tcp {dead}: ' \
           "connect: connection refused" in doc["message"]
    for path in ("/api/topics/half", "/api/topics/half/ch", "/api/nodes", "/api/counter"):
        r = await c.api("GET", path)
        assert r.status_code == 200, path
        assert dead in r.json()["message"], path
    assert (await c.api("GET", "/api/topics/half")).json()["message_count"] == 1

    for path in ("/", "/topics/half", "/topics/half/ch", "/nodes"):
        r = await c.api("GET", path)
        assert r.status_code == 200, path
        assert 'id="warning" class="alert alert-warning">WARNING: ' in r.text, path
        assert "connection refused" in r.text, path
    # pausing still works on the live node, and reports the dead one
    r = await c.api("POST", "/api/topics/half", json={"action": "pause"})
    assert r.status_code == 200 and dead in r.json()["message"]
    assert (await c.nsqd_stats(0, topic="half"))["topics"][0]["paused"] is True


async def test_nsqd_answering_garbage_is_a_warning(cluster: Cluster) -> None:
    c = cluster
    await c.start_nsqd(lookupd=False)

    async def handler(req: Request) -> Response:
        return text('["not", "stats"]')

    host, port = await c.nursery.start(serve_http, handler, "127.0.0.1", 0)
    bad = f"{host}:{port}"
    await c.start_admin(nsqd_http_addresses=[c.nsqd_http(0), bad])
    await c.make_topic("gb", "ch")
    doc = (await c.api("GET", "/api/topics")).json()
    assert doc["topics"] == ["gb"]
    assert doc["message"].startswith(f"WARNING: unexpected answer from http://{bad}/stats?format=json")
    for path in ("/api/topics/gb", "/api/nodes", "/api/counter"):
        r = await c.api("GET", path)
        assert r.status_code == 200 and bad in r.json()["message"], path


async def test_every_node_down_is_502_never_500(cluster: Cluster) -> None:
    c = cluster
    dead = dead_address()
    await c.start_admin(nsqd_http_addresses=[dead], http_client_connect_timeout=2.0)
    r = await c.api("GET", "/api/topics")
    assert r.status_code == 502
    assert r.json()["message"].startswith("UPSTREAM_ERROR: failed to query any nsqd: Get ")
    for path in ("/api/topics/x", "/api/topics/x/y", "/api/nodes", "/api/counter"):
        assert (await c.api("GET", path)).status_code == 502, path
    for path in ("/", "/topics/x", "/topics/x/y", "/nodes", "/lookup", "/counter"):
        r = await c.api("GET", path)
        assert r.status_code in (200, 502), path
        assert "text/html" in r.headers["content-type"]
        if r.status_code == 502:
            assert 'class="alert alert-danger">UPSTREAM_ERROR: failed to query any nsqd' in r.text


async def test_hanging_node_times_out_into_a_warning(cluster: Cluster) -> None:
    """A node that accepts but never answers costs one request timeout, not the page."""
    c = cluster
    await c.start_nsqd(lookupd=False)

    async def hang(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    [listener] = await c.nursery.start(functools.partial(trio.serve_tcp, hang, 0, host="127.0.0.1"))
    stuck = addr(listener.socket.getsockname())
    await c.start_admin(nsqd_http_addresses=[c.nsqd_http(0), stuck],
                        http_client_request_timeout=0.5)
    await c.make_topic("slow")
    with trio.fail_after(TIMEOUT):
        doc = (await c.api("GET", "/api/topics")).json()
    assert doc["topics"] == ["slow"]
    assert f'Get "http://{stuck}/stats?format=json&include_clients=false": context deadline ' \
           "exceeded" in doc["message"]
    page = await c.api("GET", "/topics/slow")
    assert page.status_code == 200 and "context deadline exceeded" in page.text


async def test_lookupd_down(cluster: Cluster) -> None:
    c = cluster
    await c.start_lookupd()
    await c.start_nsqd()
    dead = dead_address()
    await c.start_admin(lookupd_http_addresses=[c.lookupd_http, dead])
    await c.make_topic("lk", "ch")
    doc = (await c.api("GET", "/api/topics")).json()
    assert doc["topics"] == ["lk"]
    assert doc["message"] == f'WARNING: Get "http://{dead}/topics": dial tcp {dead}: connect: connection refused'
    nodes = (await c.api("GET", "/api/nodes")).json()
    assert len(nodes["nodes"]) == 1 and dead in nodes["message"]


async def test_lookupd_answering_garbage(cluster: Cluster) -> None:
    """A lookupd that answers 200 with a bad body is a failed lookupd (a warning, or 502
    when it is the only one), never a 500."""
    c = cluster
    await c.start_lookupd()
    await c.start_nsqd()

    async def handler(req: Request) -> Response:
        return text('["not", "an", "object"]' if req.path == "/nodes" else "<html>oops</html>")

    host, port = await c.nursery.start(serve_http, handler, "127.0.0.1", 0)
    bad = f"{host}:{port}"
    await c.start_admin(lookupd_http_addresses=[c.lookupd_http, bad])
    await c.make_topic("lg", "ch")
    doc = (await c.api("GET", "/api/topics")).json()
    assert doc["topics"] == ["lg"]
    assert doc["message"].startswith(f"WARNING: invalid JSON from http://{bad}/topics - ")
    nodes = (await c.api("GET", "/api/nodes")).json()
    assert len(nodes["nodes"]) == 1
    assert nodes["message"].startswith(f"WARNING: unexpected answer from http://{bad}/nodes - ")
    r = await c.api("GET", "/api/topics/lg")
    assert r.status_code == 200 and f"http://{bad}/lookup?topic=lg" in r.json()["message"]

    await c.start_admin(lookupd_http_addresses=[bad])
    r = await c.api("GET", "/api/topics")
    assert r.status_code == 502
    assert r.json()["message"].startswith(
        f"UPSTREAM_ERROR: failed to query any nsqlookupd: invalid JSON from http://{bad}/topics - ")
    assert (await c.api("GET", "/api/nodes")).status_code == 502


# ------------------------------------------------------------------------------ pages
async def test_pages_render(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    await c.make_topic("paged", "workers", nodes=(0, 1), messages=3)
    node = c.nsqd_http(0)
    expect = {
        "/": ['<a href="/topics/paged">paged</a>', "<h2>Topics</h2>"],
        "/topics": ['data-topic="paged"'],
        "/topics/paged": ["Topic Message Queue", "Channel Message Queues", "Pause Topic",
                          'href="/topics/paged/workers"', 'class="chart chart-depth"',
                          f'href="/nodes/{node}"', "Total:"],
        "/topics/paged/workers": ["Client Connections", "Pause Channel",
                                  "No clients connected to this channel"],
        "/nodes": ["NSQd Nodes (2)", "Lookupd Conns."],
        f"/nodes/{node}": ["<strong>1</strong> Topics", "workers"],
        "/lookup": ["nsqlookupd Host", c.lookupd_http, "Create Topic/Channel"],
        "/counter": ["Messages Processed", 'data-url="/api/counter"'],
    }
    for path, needles in expect.items():
        r = await c.api("GET", path)
        assert r.status_code == 200, path
        assert r.headers["content-type"] == "text/html; charset=utf-8"
        for needle in needles:
            assert needle in r.text, (path, needle)
    for asset, ctype in (("nsqadmin.css", "text/css"), ("nsqadmin.js", "javascript"),
                         ("favicon.svg", "image/svg+xml")):
        r = await c.api("GET", f"/static/{asset}")
        assert r.status_code == 200 and ctype in r.headers["content-type"]
    assert (await c.api("GET", "/static/nope.js")).status_code == 404
    assert (await c.api("GET", "/static/..%2Fhttp.py")).status_code == 404


async def test_page_escapes_names(cluster: Cluster) -> None:
    c = cluster
    await c.start_nsqd(lookupd=False)
    await c.start_admin(nsqd_http_addresses=[c.nsqd_http(0)])
    r = await c.api("GET", "/topics/<script>x")
    assert r.status_code == 200
    assert "<script>x" not in r.text and "&lt;script&gt;x" in r.text


async def test_base_path(cluster: Cluster) -> None:
    c = cluster
    await c.start_nsqd(lookupd=False)
    await c.start_admin(nsqd_http_addresses=[c.nsqd_http(0)], base_path="admin/")
    await c.make_topic("based")
    r = await c.api("GET", "/admin")
    assert r.status_code == 200
    assert 'href="/admin/topics/based"' in r.text and 'src="/admin/static/nsqadmin.js"' in r.text
    assert (await c.api("GET", "/admin/api/topics")).json()["topics"] == ["based"]
    assert (await c.api("GET", "/admin/static/nsqadmin.css")).status_code == 200
    assert (await c.api("GET", "/admin/ping")).text == "OK"
    assert (await c.api("GET", "/api/topics")).status_code == 404


async def test_nsqd_mode_create_topic(cluster: Cluster) -> None:
    c = cluster
    await c.start_nsqd(lookupd=False)
    await c.start_admin(nsqd_http_addresses=[c.nsqd_http(0)])
    r = await c.api("POST", "/api/topics", json={"topic": "direct", "channel": "c"})
    assert r.status_code == 200
    [topic] = (await c.nsqd_stats(0))["topics"]
    assert topic["topic_name"] == "direct" and topic["channels"][0]["channel_name"] == "c"
    assert "nsqadmin is not configured with nsqlookupd hosts" in (await c.api("GET", "/lookup")).text


# ------------------------------------------------------------------------------ graphs
async def test_graphs_sample_depth_and_rate(lookupd_cluster: Cluster) -> None:
    c = lookupd_cluster
    admin = c.admin
    assert admin is not None and admin.sampler is not None
    await c.make_topic("graphed", "ch", nodes=(0, 1), messages=5)
    await admin.sampler.wait_sampled()
    base = f"http://{c.nsqd_http(0)}"
    await c.http.post(f"{base}/mpub", params={"topic": "graphed"}, content=b"a\nb\nc\nd")
    await admin.sampler.wait_sampled()
    await admin.sampler.wait_sampled()

    doc = (await c.api("GET", "/api/graphs/channel/graphed/ch")).json()
    assert doc["series"] == ["channel", "graphed", "ch"]
    assert doc["points"][-1]["depth"] == 14
    assert any((p["rate"] or 0) > 0 for p in doc["points"])
    topic = (await c.api("GET", "/api/graphs/topic/graphed")).json()
    assert topic["points"] and topic["points"][-1]["depth"] == 0
    node = (await c.api("GET", "/api/graphs/topic/graphed", params={"node": c.nsqd_http(0)})).json()
    assert node["series"] == ["topic", "graphed", c.nsqd_http(0)]

    r = await c.api("GET", "/graphs/channel/graphed/ch/depth")
    assert r.headers["content-type"].startswith("image/svg+xml")
    assert r.text.startswith('<svg class="chart chart-depth"') and 'class="line"' in r.text
    assert (await c.api("GET", "/graphs/topic/graphed/rate")).status_code == 200
    assert (await c.api("GET", "/graphs/counter/rate")).status_code == 200
    assert (await c.api("GET", "/graphs/topic/graphed/bogus")).status_code == 404

    page = (await c.api("GET", "/topics/graphed/ch")).text
    assert 'data-series="depth"' in page and 'data-series="rate"' in page
    stats = admin.store.statistics()
    assert stats.series >= 4 and stats.samples_taken >= 3


# ------------------------------------------------------------------------------ config / CLI
async def test_config_endpoint(cluster: Cluster) -> None:
    c = cluster
    await c.start_lookupd()
    await c.start_admin()
    r = await c.api("GET", "/config/nsqlookupd_http_addresses")
    assert r.json() == [c.lookupd_http]
    r = await c.api("PUT", "/config/nsqlookupd_http_addresses",
                    content=json.dumps([c.lookupd_http, "127.0.0.1:1"]))
    assert r.json() == [c.lookupd_http, "127.0.0.1:1"]
    r = await c.api("PUT", "/config/nsqlookupd_http_addresses", content=b"[]")
    assert (r.status_code, r.json()) == (400, {"message": "INVALID_VALUE"})
    assert (await c.api("GET", "/config/log_level")).json() == 2
    assert (await c.api("PUT", "/config/log_level", content=b"warn")).json() == 3
    assert (await c.api("PUT", "/config/log_level", content=b"loud")).status_code == 400
    assert (await c.api("PUT", "/config/base_path", content=b"/x")).status_code == 400
    assert (await c.api("GET", "/config/nope")).status_code == 400
    assert (await c.api("GET", "/config/http_client_connect_timeout")).json() == 2_000_000_000
    await c.api("PUT", "/config/log_level", content=b"info")


async def test_config_cidr(cluster: Cluster) -> None:
    c = cluster
    await c.start_lookupd()
    await c.start_admin(allow_config_from_cidr="10.0.0.0/8")
    r = await c.api("GET", "/config/log_level")
    assert (r.status_code, r.json()) == (403, {"message": "FORBIDDEN"})


def test_options_validation() -> None:
    with pytest.raises(ValueError, match="--nsqd-http-address or --lookupd-http-address required"):
        AdminOptions()
    with pytest.raises(ValueError, match="not both"):
        AdminOptions(nsqd_http_addresses=["a:1"], lookupd_http_addresses=["b:2"])
    assert AdminOptions(nsqd_http_addresses=["a:1"], base_path="x//y/").base_path == "/x/y"
    assert AdminOptions(nsqd_http_addresses=["a:1"], base_path="").base_path == "/"


def _run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nsqadmin", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=Path(__file__).parents[2],
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})


def test_cli_version_and_errors() -> None:
    r = _run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("nsqadmin v1.3.0 (built w/python")
    assert f"trio-nsq/{PROJECT_VERSION})" in r.stdout
    r = _run_cli()
    assert r.returncode == 1
    assert "failed to instantiate nsqadmin - --nsqd-http-address or --lookupd-http-address required" in r.stderr
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = addr(taken.getsockname())
        r = _run_cli(f"--http-address={busy}", "--nsqd-http-address=127.0.0.1:9")
    assert r.returncode == 1
    assert f"FATAL: listen ({busy}) failed - " in r.stderr


async def test_cli_serves(tmp_path: Path) -> None:
    """``nsqadmin`` as a process with a TOML config: NSQ's listening log line, then the API
    answers."""
    config = tmp_path / "nsqadmin.cfg"
    config.write_text(f'nsqd_http_addresses = ["{dead_address()}"]\nlog_level = "info"\n'
                      'http_client_connect_timeout = "1s"\n')
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "nsqadmin", "--http-address=127.0.0.1:0", f"--config={config}"],
        stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])
    try:
        assert proc.stderr is not None
        buf = b""
        with trio.fail_after(TIMEOUT):
            while b"HTTP: listening on " not in buf or not buf.endswith(b"\n"):
                chunk = await proc.stderr.receive_some(4096)
                assert chunk, buf
                buf += chunk
        line = next(ln for ln in buf.decode().splitlines() if "HTTP: listening on " in ln)
        assert line.startswith("[nsqadmin] ") and " INFO: HTTP: listening on 127.0.0.1:" in line
        assert "INFO: nsqadmin v1.3.0" in buf.decode()
        where = line.rsplit(" ", 1)[1]
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            r = await http.get(f"http://{where}/ping")
            assert r.text == "OK"
            r = await http.get(f"http://{where}/api/topics")
            assert r.status_code == 502
    finally:
        proc.terminate()
        with trio.fail_after(TIMEOUT):
            await proc.wait()
