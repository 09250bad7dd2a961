"""nsqd's ``/stats`` against NSQ 1.3 (``nsqd/stats.go``, ``stats_test.go``, the stats tests
of ``http_test.go``): JSON keys, order and types of Go's structs, filters, the text
format, and that the numbers follow the live objects."""

from __future__ import annotations

import gc
import json
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from client.protocol import MAGIC_V2, FrameReader, FrameType, commands, decode_message
from nsqd import NSQD, Options
from nsqd import stats as nsqd_stats
from nsqd.statistics import (
    NO_LATENCY,
    ChannelStatistics,
    ClientStatistics,
    LatencyStatistics,
    TopicStatistics,
)

# Go's json tags, in struct order
TOP_KEYS = ["version", "health", "start_time", "topics", "memory", "producers"]
TOPIC_KEYS = ["topic_name", "channels", "depth", "backend_depth", "message_count",
              "message_bytes", "paused", "e2e_processing_latency"]
CHANNEL_KEYS = ["channel_name", "depth", "backend_depth", "in_flight_count", "deferred_count",
                "message_count", "requeue_count", "timeout_count", "client_count", "clients",
                "paused", "e2e_processing_latency"]
CLIENT_KEYS = ["client_id", "hostname", "version", "remote_address", "state", "ready_count",
               "in_flight_count", "message_count", "finish_count", "requeue_count",
               "connect_ts", "sample_rate", "deflate", "snappy", "user_agent",
               "tls", "tls_cipher_suite", "tls_version", "tls_negotiated_protocol",
               "tls_negotiated_protocol_is_mutual"]
MEMORY_KEYS = ["heap_objects", "heap_idle_bytes", "heap_in_use_bytes", "heap_released_bytes",
               "gc_pause_usec_100", "gc_pause_usec_99", "gc_pause_usec_95", "next_gc_bytes",
               "gc_total_runs"]

TOPIC_TYPES = {"topic_name": str, "channels": list, "depth": int, "backend_depth": int,
               "message_count": int, "message_bytes": int, "paused": bool,
               "e2e_processing_latency": dict}
CHANNEL_TYPES = {"channel_name": str, "depth": int, "backend_depth": int,
                 "in_flight_count": int, "deferred_count": int, "message_count": int,
                 "requeue_count": int, "timeout_count": int, "client_count": int,
                 "clients": list, "paused": bool, "e2e_processing_latency": dict}
CLIENT_TYPES = {"client_id": str, "hostname": str, "version": str, "remote_address": str,
                "state": int, "ready_count": int, "in_flight_count": int,
                "message_count": int, "finish_count": int, "requeue_count": int,
                "connect_ts": int, "sample_rate": int, "deflate": bool, "snappy": bool,
                "user_agent": str, "pub_counts": list, "tls": bool, "tls_cipher_suite": str,
                "tls_version": str, "tls_negotiated_protocol": str,
                "tls_negotiated_protocol_is_mutual": bool}
EMPTY_E2E = {"count": 0, "percentiles": None}


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture
async def nsqd(nursery: trio.Nursery, tmp_path: Path) -> NSQD:
    opts = Options(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                   data_path=str(tmp_path))
    daemon = NSQD(opts)
    await nursery.start(daemon.run)
    return daemon


@pytest.fixture
async def http(nsqd: NSQD) -> AsyncIterator[httpx.AsyncClient]:
    assert nsqd.bound is not None and nsqd.bound.http_address is not None
    host, port = nsqd.bound.http_address
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=10) as client:
        yield client


class TCPClient:
    """A bare V2 client built on the sans-I/O codec."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self.pending: list[Any] = []

    @classmethod
    async def connect(cls, daemon: NSQD, *, send_identify: bool = True,
                      **identify: Any) -> TCPClient:
        assert daemon.bound is not None
        stream = await trio.open_tcp_stream(*daemon.bound.tcp_address)
        await stream.send_all(MAGIC_V2)
        client = cls(stream)
        if send_identify:
            assert await client.command(commands.identify(identify)) == b"OK"
        return client

    async def frame(self) -> Any:
        with trio.fail_after(10):
            while True:
                while self.pending:
                    frame = self.pending.pop(0)
                    if frame.type == FrameType.RESPONSE and frame.data == b"_heartbeat_":
                        continue
                    return frame
                data = await self.stream.receive_some(65536)
                assert data, "connection closed"
                self.reader.feed(data)
                self.pending.extend(self.reader.frames())

    async def command(self, data: bytes) -> bytes:
        await self.stream.send_all(data)
        frame = await self.frame()
        assert frame.type == FrameType.RESPONSE, frame
        response: bytes = frame.data
        return response

    async def message(self) -> Any:
        frame = await self.frame()
        assert frame.type == FrameType.MESSAGE, frame
        return decode_message(frame.data)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def get_json(http: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    resp = await http.get("/stats", params={"format": "json", **params})
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json; charset=utf-8"
    assert resp.headers["x-nsq-content-type"] == "nsq; version=1.0"
    doc: dict[str, Any] = resp.json()
    return doc


async def get_text(http: httpx.AsyncClient, **params: str) -> str:
    resp = await http.get("/stats", params=params)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/plain; charset=utf-8"
    assert resp.headers["x-nsq-content-type"] == "nsq; version=1.0"
    return resp.text


def check_types(doc: dict[str, Any], types: dict[str, type]) -> None:
    for key, value in doc.items():
        expected = types[key]
        assert isinstance(value, expected), (key, value)
        if expected is int:
            assert not isinstance(value, bool), key


async def wait_for(predicate: Any) -> None:
    """Wait for the daemon to act on what a socket sent (no fixed sleeps)."""
    with trio.fail_after(10):
        while not predicate():
            await trio.sleep(0.005)


# ---------------------------------------------------------------------------- JSON shape
async def test_http_get_status_json(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestHTTPgetStatusJSON: the exact prefix of an idle daemon's document."""
    nsqd.start_time = 1_700_000_000.75
    resp = await http.get("/stats?format=json")
    assert resp.status_code == 200
    assert resp.text.startswith(
        '{"version":"1.3.0","health":"OK","start_time":1700000000,"topics":[],"memory":{')
    assert resp.text.endswith(',"producers":null}')


async def test_stats_shape(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd, client_id="cid", hostname="host.example",
                                       user_agent="test/1.0")
    producer = await TCPClient.connect(nsqd, send_identify=False)
    try:
        assert await consumer.command(commands.sub("shape", "ch")) == b"OK"
        assert await producer.command(commands.pub("shape", b"hello")) == b"OK"
        assert await producer.command(commands.mpub("other", [b"a", b"b"])) == b"OK"
        doc = await get_json(http)
    finally:
        await consumer.aclose()
        await producer.aclose()

    assert list(doc) == TOP_KEYS
    assert doc["version"] == "1.3.0"
    assert doc["health"] == "OK"
    assert doc["start_time"] == int(nsqd.start_time)
    assert list(doc["memory"]) == MEMORY_KEYS
    assert all(type(v) is int for v in doc["memory"].values())

    assert [t["topic_name"] for t in doc["topics"]] == ["other", "shape"]
    for topic in doc["topics"]:
        assert list(topic) == TOPIC_KEYS
        check_types(topic, TOPIC_TYPES)
        assert topic["e2e_processing_latency"] == EMPTY_E2E
    shape = doc["topics"][1]
    assert shape["message_count"] == 1
    assert shape["message_bytes"] == 5
    assert shape["depth"] == 0 and shape["backend_depth"] == 0
    assert shape["paused"] is False

    (channel,) = shape["channels"]
    assert list(channel) == CHANNEL_KEYS
    check_types(channel, CHANNEL_TYPES)
    assert channel["channel_name"] == "ch"
    assert channel["depth"] == 1  # RDY 0: waiting
    assert channel["message_count"] == 1
    assert channel["client_count"] == 1
    assert channel["e2e_processing_latency"] == EMPTY_E2E

    (client,) = channel["clients"]
    assert list(client) == CLIENT_KEYS
    check_types(client, CLIENT_TYPES)
    assert client["client_id"] == "cid"
    assert client["hostname"] == "host.example"
    assert client["user_agent"] == "test/1.0"
    assert client["version"] == "V2"
    assert client["state"] == 3  # stateSubscribed
    assert re.fullmatch(r"127\.0\.0\.1:\d+", client["remote_address"])
    assert abs(client["connect_ts"] - time.time()) < 60
    assert client["tls"] is False and client["tls_cipher_suite"] == ""

    (prod,) = doc["producers"]
    assert list(prod) == CLIENT_KEYS[:15] + ["pub_counts"] + CLIENT_KEYS[15:]
    check_types(prod, CLIENT_TYPES)
    assert prod["pub_counts"] == [{"topic": "other", "count": 2}, {"topic": "shape", "count": 1}]
    assert prod["client_id"] == prod["hostname"] == "127.0.0.1"  # no IDENTIFY: the peer host
    assert prod["state"] == 0  # stateInit


async def test_http_client_stats(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestHTTPClientStats: include_clients and include_mem."""
    consumer = await TCPClient.connect(nsqd)
    try:
        assert await consumer.command(commands.sub("test_http_client_stats", "ch")) == b"OK"
        for params in ({}, {"include_clients": "true"}, {"include_clients": "1"},
                       {"include_clients": "bogus"}):
            doc = await get_json(http, **params)
            channel = doc["topics"][0]["channels"][0]
            assert len(channel["clients"]) == 1
            assert channel["client_count"] == 1
            assert "memory" in doc

        for value in ("false", "0"):
            doc = await get_json(http, include_clients=value)
            channel = doc["topics"][0]["channels"][0]
            assert channel["clients"] is None  # Go's nil slice
            assert channel["client_count"] == 1
            assert doc["producers"] is None

        assert "memory" in await get_json(http, include_mem="true")
        for value in ("false", "0"):
            doc = await get_json(http, include_mem=value)
            assert "memory" not in doc
            assert list(doc) == ["version", "health", "start_time", "topics", "producers"]
    finally:
        await consumer.aclose()


async def test_stats_filters(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestStats: topic and channel filters."""
    consumer = await TCPClient.connect(nsqd)
    try:
        assert await consumer.command(commands.sub("test_stats", "ch")) == b"OK"
        nsqd.get_topic("accompany_test_stats").get_channel("ch")
        nsqd.get_topic("accompany_test_stats").get_channel("other")
        nsqd.get_topic("test_stats").get_channel("zzz")
        await http.post("/pub?topic=test_stats", content=b"test body")
        await http.post("/pub?topic=accompany_test_stats", content=b"accompany test body")

        doc = await get_json(http, topic="test_stats", channel="ch")
        assert [t["topic_name"] for t in doc["topics"]] == ["test_stats"]
        (channel,) = doc["topics"][0]["channels"]
        assert channel["channel_name"] == "ch"
        assert len(channel["clients"]) == 1 and channel["client_count"] == 1

        doc = await get_json(http, topic="test_stats", channel="ch", include_clients="false")
        assert doc["topics"][0]["channels"][0]["clients"] is None
        assert doc["topics"][0]["channels"][0]["client_count"] == 1

        doc = await get_json(http, topic="test_stats")
        assert [c["channel_name"] for c in doc["topics"][0]["channels"]] == ["ch", "zzz"]

        doc = await get_json(http, channel="ch")  # every topic having that channel
        assert [t["topic_name"] for t in doc["topics"]] == ["accompany_test_stats", "test_stats"]
        assert all(len(t["channels"]) == 1 for t in doc["topics"])

        doc = await get_json(http, channel="other")
        assert [t["topic_name"] for t in doc["topics"]] == ["accompany_test_stats"]

        assert (await get_json(http, topic="test_stats", channel="none_exist_channel"))["topics"] == []
        assert (await get_json(http, topic="none_exist_topic"))["topics"] == []
        assert (await get_json(http, topic="none_exist_topic", channel="ch"))["topics"] == []

        # the same through the pure function
        stats = nsqd_stats.get_stats(nsqd, "test_stats", "ch", True)
        assert len(stats.topics) == 1
        clients = stats.topics[0].channels[0].clients
        assert clients is not None and len(clients) == 1
        assert nsqd_stats.get_stats(nsqd, "test_stats", "none_exist_channel", False).topics == ()
    finally:
        await consumer.aclose()


async def test_client_attributes(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestClientAttributes (without snappy): IDENTIFY's values show in /stats."""
    consumer = await TCPClient.connect(nsqd, user_agent="Test User Agent", sample_rate=42,
                                       client_id="c1", hostname="h1")
    try:
        assert await consumer.command(commands.sub("test_client_attributes", "ch")) == b"OK"
        doc = await get_json(http)
        client = doc["topics"][0]["channels"][0]["clients"][0]
        assert client["user_agent"] == "Test User Agent"
        assert client["sample_rate"] == 42
        assert client["snappy"] is False and client["deflate"] is False
        assert (client["client_id"], client["hostname"]) == ("c1", "h1")
    finally:
        await consumer.aclose()


async def test_counts_follow_the_channel(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        assert await consumer.command(commands.sub("counts", "ch")) == b"OK"
        channel = nsqd.topics["counts"].channels["ch"]
        await http.post("/mpub?topic=counts", content=b"1\n2\n3\n4\n5")
        await http.post("/pub?topic=counts&defer=60000", content=b"later")
        await consumer.stream.send_all(commands.rdy(3))
        msgs = [await consumer.message() for _ in range(3)]
        await consumer.stream.send_all(commands.fin(msgs[0].id) + commands.req(msgs[1].id, 0))
        await wait_for(lambda: channel.requeue_count == 1)

        doc = await get_json(http, topic="counts")
        ch = doc["topics"][0]["channels"][0]
        client = ch["clients"][0]
        # 1 FIN'd and 1 REQ'd free two slots: the requeued one and #4 go out (RDY 3)
        assert ch["in_flight_count"] == len(channel.in_flight) == 3
        assert ch["deferred_count"] == 1
        assert ch["requeue_count"] == 1
        assert ch["message_count"] == 6
        assert ch["depth"] == 1
        assert client["ready_count"] == 3
        assert client["in_flight_count"] == 3
        assert client["finish_count"] == 1
        assert client["requeue_count"] == 1
        assert client["message_count"] == 5

        channel.process_in_flight(trio.current_time() + 3600)  # every in-flight times out
        ch = (await get_json(http, topic="counts"))["topics"][0]["channels"][0]
        assert ch["timeout_count"] == 3
    finally:
        await consumer.aclose()


async def test_topic_depth_without_channels(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    await http.post("/mpub?topic=lonely", content=b"a\nbb\nccc")
    (topic,) = (await get_json(http))["topics"]
    assert topic["depth"] == 3
    assert topic["message_count"] == 3
    assert topic["message_bytes"] == 6
    assert topic["channels"] == []


async def test_pause_reflected_in_stats(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    nsqd.get_topic("paused_topic").get_channel("paused_channel")
    await http.post("/topic/pause?topic=paused_topic")
    await http.post("/channel/pause?topic=paused_topic&channel=paused_channel")
    topic = (await get_json(http))["topics"][0]
    assert topic["paused"] is True
    assert topic["channels"][0]["paused"] is True
    text = await get_text(http)
    assert "\n*P [paused_topic   ] depth: 0" in text
    assert "\n   *P [paused_channel           ] depth: 0" in text

    await http.post("/topic/unpause?topic=paused_topic")
    await http.post("/channel/unpause?topic=paused_topic&channel=paused_channel")
    topic = (await get_json(http))["topics"][0]
    assert topic["paused"] is False
    assert topic["channels"][0]["paused"] is False
    assert "*P" not in await get_text(http)


async def test_health_in_stats(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    nsqd.health = "NOK - disk full"
    assert (await get_json(http))["health"] == "NOK - disk full"
    assert "\nHealth: NOK - disk full\n" in await get_text(http)


# ---------------------------------------------------------------------------- producers
async def test_producers(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    producer = await TCPClient.connect(nsqd, user_agent="pub/1")
    idle = await TCPClient.connect(nsqd)  # connected, never published: not a producer
    try:
        assert await producer.command(commands.pub("b_topic", b"x")) == b"OK"
        assert await producer.command(commands.dpub("a_topic", 1000, b"y")) == b"OK"
        assert await producer.command(commands.mpub("b_topic", [b"1", b"2"])) == b"OK"
        doc = await get_json(http)
        (prod,) = doc["producers"]
        assert prod["user_agent"] == "pub/1"
        assert prod["pub_counts"] == [{"topic": "a_topic", "count": 1},
                                      {"topic": "b_topic", "count": 3}]

        doc = await get_json(http, topic="b_topic")
        assert doc["producers"][0]["pub_counts"] == [{"topic": "b_topic", "count": 3}]
        nsqd.get_topic("c_topic")
        doc = await get_json(http, topic="c_topic")
        # NSQ still lists the producer; its pub_counts (omitempty) is then left out
        assert "pub_counts" not in doc["producers"][0]

        text = await get_text(http)
        assert "\nProducers:\n   [V2 :" in text  # IDENTIFY without a hostname
        assert re.search(r"\] msgs: 4        topics: a_topic=1,b_topic=3 connected: \d+s\n", text)
    finally:
        await producer.aclose()
        await idle.aclose()
    await wait_for(lambda: not nsqd.clients)
    assert (await get_json(http))["producers"] is None


# ---------------------------------------------------------------------------- text format
async def test_http_get_status_text(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestHTTPgetStatusText, with the lines of an idle daemon checked."""
    text = await get_text(http)
    lines = text.split("\n")
    assert re.fullmatch(r"nsqd v1\.3\.0 \(built w/python[\d.]+ trio-nsq/[\w.+-]+\)", lines[0])
    assert re.fullmatch(r"start_time \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)", lines[1])
    assert re.fullmatch(r"uptime [\d.]+(ns|µs|ms|s)|uptime \d+m[\d.]+s", lines[2])
    assert lines[3:6] == ["", "Health: OK", ""]
    assert lines[6] == "Memory:"
    assert [line.split("\t")[0].strip() for line in lines[7:16]] == MEMORY_KEYS
    assert text.endswith("\nTopics: None\n\nProducers: None\n")

    text = await get_text(http, include_mem="false", format="text")
    assert "Memory:" not in text
    assert "\n\nHealth: OK\n\nTopics: None\n\nProducers: None\n" in text


async def test_stats_text_topics(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd, hostname="worker", user_agent="ua")
    try:
        assert await consumer.command(commands.sub("text_topic", "ch")) == b"OK"
        await http.post("/mpub?topic=text_topic", content=b"a\nb")
        await consumer.stream.send_all(commands.rdy(1))
        await consumer.message()
        port = consumer.stream.socket.getsockname()[1]
        text = await get_text(http, include_mem="false")
    finally:
        await consumer.aclose()
    expected_topic = ("\nTopics:\n   [text_topic     ] depth: 0     be-depth: 0     "
                      "msgs: 2        e2e%: \n")
    expected_channel = ("      [ch                       ] depth: 1     be-depth: 0     "
                        "inflt: 1    def: 0    re-q: 0     timeout: 0     msgs: 2        e2e%: \n")
    assert expected_topic + expected_channel in text
    client_line = re.escape(f"        [V2 worker:{port} ua") + r" +\] state: 3 inflt: 1    " \
        r"rdy: 1    fin: 0        re-q: 0        msgs: 1        connected: \d+s\n"
    assert re.search(client_line, text), text

    text = await get_text(http, include_clients="false")
    assert "[V2 " not in text


def _client(**fields: Any) -> ClientStatistics:
    base: dict[str, Any] = {
        "id": 1, "client_id": "c", "hostname": "h", "remote_address": "[::1]:5000",
        "user_agent": "go-nsq/1.1.0", "state": 3, "ready_count": 10, "in_flight_count": 2,
        "message_count": 7, "finish_count": 5, "requeue_count": 1, "connect_ts": 1000,
        "sample_rate": 0, "deflate": False, "snappy": False, "authed": False,
        "auth_identity": "", "auth_identity_url": "", "pub_counts": (), "tls": False,
        "tls_version": "", "tls_cipher_suite": "", "tls_negotiated_protocol": ""}
    return ClientStatistics(**{**base, **fields})


def test_format_client_lines() -> None:
    base = _client()
    assert nsqd_stats.format_client(base, now=1065.9) == (
        "[V2 h:5000 go-nsq/1.1.0  ] state: 3 inflt: 2    rdy: 10   fin: 5        "
        "re-q: 1        msgs: 7        connected: 1m5s")
    producer = _client(pub_counts=(("a", 3), ("b", 4)))
    assert nsqd_stats.format_client(producer, now=1000) == (
        "[V2 h:5000 go-nsq/1.1.0  ] msgs: 7        topics: a=3,b=4 connected: 0s")
    # a topic filter shows that topic's count only; none left: the consumer line
    assert nsqd_stats.format_client(producer, now=1000, topic_filter="b") == (
        "[V2 h:5000 go-nsq/1.1.0  ] msgs: 4        topics: b=4 connected: 0s")
    assert "state: 3" in nsqd_stats.format_client(producer, now=1000, topic_filter="z")


def test_render_text_exact() -> None:
    client = _client(hostname="host", remote_address="10.0.0.1:4242", user_agent="",
                     ready_count=1, in_flight_count=0, message_count=0, finish_count=0,
                     requeue_count=0, connect_ts=100)
    channel = ChannelStatistics(
        name="c", depth=1, backend_depth=0, in_flight_count=2, deferred_count=3,
        message_count=6, requeue_count=4, timeout_count=5, client_count=1, paused=False,
        e2e_processing_latency=LatencyStatistics(
            9, ((0.99, 1_500_000.0), (0.5, 2_000_000_000.0)), 9, 0, 1),
        clients=(client,))
    topic = TopicStatistics(name="t", depth=12, backend_depth=2, message_count=123456,
                            message_bytes=0, paused=True, e2e_processing_latency=NO_LATENCY,
                            channels=(channel,))
    stats = nsqd_stats.NSQDStatistics((topic,), None)
    memory = dict.fromkeys(MEMORY_KEYS, 7)
    text = nsqd_stats.render_text(stats, memory, "OK", 0.0, now=3723.5)
    lines = text.split("\n")
    assert lines[2] == "uptime 1h2m3.5s"
    assert lines[7] == "   heap_objects             \t7"
    assert text.endswith(
        "\nTopics:"
        "\n*P [t              ] depth: 12    be-depth: 2     msgs: 123456   e2e%: \n"
        "      [c                        ] depth: 1     be-depth: 0     inflt: 2    def: 3    "
        "re-q: 4     timeout: 5     msgs: 6        e2e%: 1.5ms, 2.0s\n"
        "        [V2 host:4242            ] state: 3 inflt: 0    rdy: 1    fin: 0        "
        "re-q: 0        msgs: 0        connected: 1h0m23s\n"
        "\nProducers: None\n")
    assert nsqd_stats.stats_json(stats)["topics"][0]["channels"][0][
        "e2e_processing_latency"] == {"count": 9, "percentiles": [
            {"quantile": 0.99, "value": 1_500_000.0}, {"quantile": 0.5, "value": 2_000_000_000.0}]}


# ---------------------------------------------------------------------------- memory
def test_memory_stats() -> None:
    nsqd_stats.install_gc_monitor()
    nsqd_stats.install_gc_monitor()  # idempotent
    assert gc.callbacks.count(nsqd_stats._gc_callback) == 1
    before = nsqd_stats.memory_stats()["gc_total_runs"]
    gc.collect()
    mem = nsqd_stats.memory_stats()
    assert list(mem) == MEMORY_KEYS
    assert mem["gc_total_runs"] > before
    assert mem["heap_objects"] > 0
    assert mem["heap_in_use_bytes"] > 1 << 20
    assert mem["gc_pause_usec_100"] >= mem["gc_pause_usec_99"] >= mem["gc_pause_usec_95"] >= 0
    json.dumps(mem)


def test_percentile_like_go() -> None:
    values = list(range(1, 11))
    assert nsqd_stats._percentile(100.0, values) == 10
    assert nsqd_stats._percentile(99.0, values) == 10
    assert nsqd_stats._percentile(95.0, values) == 10   # index floor(9.5 + 0.5) = 10 → clamped
    assert nsqd_stats._percentile(50.0, values) == 6
    assert nsqd_stats._percentile(95.0, []) == 0
