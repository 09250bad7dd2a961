"""nsqd's HTTP API against NSQ 1.3's ``nsqd/http_test.go``: a real daemon on port 0,
real sockets, httpx as the client. Test names follow the Go tests where one exists."""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from client.protocol import MAGIC_V2, FrameReader, FrameType, commands, decode_message
from nsqd import NSQD, Options
from nsqd.backend import BackendError
from nsqd.errors import TopicError

V1 = "nsq; version=1.0"
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"


# ---------------------------------------------------------------------------- fixtures
async def start_nsqd(nursery: trio.Nursery, tmp_path: Path, **overrides: Any) -> NSQD:
    opts = Options(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                   data_path=str(tmp_path), **overrides)
    daemon = NSQD(opts)
    await nursery.start(daemon.run)
    return daemon


def base_url(daemon: NSQD) -> str:
    assert daemon.bound is not None and daemon.bound.http_address is not None
    host, port = daemon.bound.http_address
    return f"http://{host}:{port}"


@pytest.fixture
async def nsqd(nursery: trio.Nursery, tmp_path: Path) -> NSQD:
    return await start_nsqd(nursery, tmp_path)


@pytest.fixture
async def http(nsqd: NSQD) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url(nsqd), timeout=10) as client:
        yield client


@pytest.fixture
def restore_log_level() -> Any:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    for name in ("httpx", "httpcore", "hpack"):
        logging.getLogger(name).setLevel(logging.NOTSET)


class TCPClient:
    """A bare V2 consumer built on the sans-I/O codec."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self.pending: list[Any] = []

    @classmethod
    async def connect(cls, daemon: NSQD) -> TCPClient:
        assert daemon.bound is not None
        host, port = daemon.bound.tcp_address
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(MAGIC_V2)
        return cls(stream)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def frame(self) -> Any:
        """The next non-heartbeat frame."""
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
        await self.send(data)
        frame = await self.frame()
        assert frame.type == FrameType.RESPONSE, frame
        response: bytes = frame.data
        return response

    async def subscribe(self, topic: str, channel: str, rdy: int = 0, **identify: Any) -> None:
        assert await self.command(commands.identify(identify)) == b"OK"
        assert await self.command(commands.sub(topic, channel)) == b"OK"
        if rdy:
            await self.send(commands.rdy(rdy))

    async def message(self) -> Any:
        frame = await self.frame()
        assert frame.type == FrameType.MESSAGE, frame
        return decode_message(frame.data)

    async def aclose(self) -> None:
        await self.stream.aclose()


def assert_error(resp: httpx.Response, status: int, message: str) -> None:
    assert resp.status_code == status, resp.text
    assert resp.text == json.dumps({"message": message}, separators=(",", ":"))
    assert resp.headers["content-type"] == JSON_TYPE
    assert resp.headers["x-nsq-content-type"] == V1


def assert_empty_ok(resp: httpx.Response) -> None:
    assert resp.status_code == 200, resp.text
    assert resp.content == b""
    assert resp.headers["x-nsq-content-type"] == V1


def mpub_body(bodies: list[bytes]) -> bytes:
    parts = [struct.pack(">l", len(bodies))]
    for body in bodies:
        parts.append(struct.pack(">l", len(body)))
        parts.append(body)
    return b"".join(parts)


# ---------------------------------------------------------------------------- /ping /info
async def test_ping(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    resp = await http.get("/ping")
    assert resp.status_code == 200
    assert resp.text == "OK"
    assert "x-nsq-content-type" not in resp.headers  # PlainText, not V1

    nsqd.health = "NOK - disk full"
    resp = await http.get("/ping")
    assert resp.status_code == 500
    assert resp.text == "NOK - disk full"
    assert resp.headers["content-type"] == TEXT_TYPE


async def test_info(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    resp = await http.get("/info")
    assert resp.status_code == 200
    assert resp.headers["x-nsq-content-type"] == V1
    assert resp.headers["content-type"] == JSON_TYPE
    info = resp.json()
    assert list(info) == ["version", "broadcast_address", "hostname", "http_port", "tcp_port",
                          "start_time", "max_heartbeat_interval", "max_output_buffer_size",
                          "max_output_buffer_timeout", "max_deflate_level"]
    assert info["version"] == "1.3.0"
    assert nsqd.bound is not None and nsqd.bound.http_address is not None
    assert info["tcp_port"] == nsqd.bound.tcp_address[1]
    assert info["http_port"] == nsqd.bound.http_address[1]
    assert info["start_time"] == int(nsqd.start_time)
    assert info["broadcast_address"] == nsqd.options.broadcast_address
    assert info["max_heartbeat_interval"] == 60_000_000_000
    assert info["max_output_buffer_size"] == 64 * 1024
    assert info["max_output_buffer_timeout"] == 30_000_000_000
    assert info["max_deflate_level"] == 6


# ---------------------------------------------------------------------------- /pub
async def test_http_pub(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    topic = nsqd.get_topic("test_http_pub")
    resp = await http.post("/pub", params={"topic": "test_http_pub"}, content=b"test message")
    assert resp.status_code == 200
    assert resp.text == "OK"
    assert resp.headers["x-nsq-content-type"] == V1
    assert resp.headers["content-type"] == TEXT_TYPE
    assert topic.depth() == 1
    assert topic.message_count == 1
    assert topic.message_bytes == len(b"test message")


async def test_http_pub_creates_topic(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    resp = await http.post("/pub?topic=fresh", content=b"x")
    assert resp.text == "OK"
    assert "fresh" in nsqd.topics
    assert nsqd.topics["fresh"].depth() == 1


async def test_http_pub_then_consume_over_tcp(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        await consumer.subscribe("test_http_consume", "ch", rdy=10)
        for body in (b"first", b"second"):
            resp = await http.post("/pub?topic=test_http_consume", content=body)
            assert resp.text == "OK"
        got = [await consumer.message(), await consumer.message()]
        assert [m.body for m in got] == [b"first", b"second"]
        assert all(m.attempts == 1 for m in got)
        assert got[0].id != got[1].id
        for m in got:
            await consumer.send(commands.fin(m.id))
    finally:
        await consumer.aclose()


async def test_http_pub_empty(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    topic = nsqd.get_topic("test_http_pub_empty")
    resp = await http.post("/pub?topic=test_http_pub_empty", content=b"")
    assert_error(resp, 400, "MSG_EMPTY")
    assert topic.depth() == 0


async def test_http_pub_too_big(nursery: trio.Nursery, tmp_path: Path) -> None:
    daemon = await start_nsqd(nursery, tmp_path, max_msg_size=100)
    async with httpx.AsyncClient(base_url=base_url(daemon)) as http:
        resp = await http.post("/pub?topic=big", content=b"x" * 101)
        assert_error(resp, 413, "MSG_TOO_BIG")
        resp = await http.post("/pub?topic=big", content=b"x" * 100)
        assert resp.text == "OK"
        # checked before the topic argument, as NSQ does
        resp = await http.post("/pub", content=b"x" * 101)
        assert_error(resp, 413, "MSG_TOO_BIG")


async def test_http_pub_topic_args(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/pub", content=b"m"), 400, "MISSING_ARG_TOPIC")
    assert_error(await http.post("/pub?topic=bad$name", content=b"m"), 400, "INVALID_TOPIC")
    assert_error(await http.post("/pub?topic=", content=b"m"), 400, "INVALID_TOPIC")
    assert_error(await http.post("/pub?topic=" + "x" * 65, content=b"m"), 400, "INVALID_TOPIC")
    # the body is checked before the topic
    assert_error(await http.post("/pub", content=b""), 400, "MSG_EMPTY")
    assert not nsqd.topics


async def test_http_pub_defer(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    topic = nsqd.get_topic("test_http_pub_defer")
    channel = topic.get_channel("ch")
    resp = await http.post("/pub?topic=test_http_pub_defer&defer=1000", content=b"later")
    assert resp.text == "OK"
    assert len(channel.deferred) == 1
    assert channel.depth() == 0


async def test_http_pub_defer_zero_is_immediate(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    channel = nsqd.get_topic("t0").get_channel("ch")
    resp = await http.post("/pub?topic=t0&defer=0", content=b"now")
    assert resp.text == "OK"
    assert channel.depth() == 1
    assert not channel.deferred


async def test_http_pub_defer_delivered(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        await consumer.subscribe("test_defer_delivery", "ch", rdy=1)
        start = trio.current_time()
        resp = await http.post("/pub?topic=test_defer_delivery&defer=150", content=b"deferred")
        assert resp.text == "OK"
        msg = await consumer.message()
        assert msg.body == b"deferred"
        assert trio.current_time() - start >= 0.15
    finally:
        await consumer.aclose()


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "", " 5", "5ms", "3600001",
                                   "99999999999999999999"])
async def test_http_pub_invalid_defer(nsqd: NSQD, http: httpx.AsyncClient, value: str) -> None:
    resp = await http.post("/pub", params={"topic": "t", "defer": value}, content=b"m")
    assert_error(resp, 400, "INVALID_DEFER")
    # NSQ has already got (created) the topic by then
    assert nsqd.topics["t"].depth() == 0


async def test_http_pub_defer_max(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    channel = nsqd.get_topic("t").get_channel("c")
    resp = await http.post("/pub?topic=t&defer=%2B3600000", content=b"m")  # "+3600000"
    assert resp.text == "OK"
    assert len(channel.deferred) == 1


async def test_http_pub_exiting(nsqd: NSQD, http: httpx.AsyncClient,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    nsqd.get_topic("t")

    def refuse(*args: Any) -> None:
        raise TopicError("exiting")

    def broken(*args: Any) -> None:
        raise BackendError("disk full")

    monkeypatch.setattr(nsqd, "publish", refuse)
    monkeypatch.setattr(nsqd, "publish_to", refuse)
    assert_error(await http.post("/pub?topic=t", content=b"m"), 503, "EXITING")
    assert_error(await http.post("/mpub?topic=t", content=b"a\nb"), 503, "EXITING")
    monkeypatch.setattr(nsqd, "publish", broken)
    monkeypatch.setattr(nsqd, "publish_to", broken)
    # a disk failure is not "exiting": 500 (issue 4; NSQ says 503 EXITING)
    assert_error(await http.post("/pub?topic=t", content=b"m"), 500, "PUB_FAILED")
    monkeypatch.setattr(nsqd, "publish_deferred", refuse)
    assert_error(await http.post("/pub?topic=t&defer=10", content=b"m"), 503, "EXITING")


# ---------------------------------------------------------------------------- /mpub
async def test_http_mpub(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    topic = nsqd.get_topic("test_http_mpub")
    resp = await http.post("/mpub?topic=test_http_mpub", content=b"\n".join([b"test message"] * 4))
    assert resp.status_code == 200
    assert resp.text == "OK"
    assert resp.headers["x-nsq-content-type"] == V1
    assert topic.depth() == 4


async def test_http_mpub_empty(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """A trailing newline does not make an empty message (TestHTTPmpubEmpty)."""
    topic = nsqd.get_topic("test_http_mpub_empty")
    body = b"\n".join([b"test message"] * 4) + b"\n"
    resp = await http.post("/mpub?topic=test_http_mpub_empty", content=body)
    assert resp.text == "OK"
    assert topic.depth() == 4


async def test_http_mpub_skips_empty_lines(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        await consumer.subscribe("lines", "ch", rdy=10)
        resp = await http.post("/mpub?topic=lines", content=b"\n\na\n\nb\r\n\n")
        assert resp.text == "OK"
        bodies = [(await consumer.message()).body for _ in range(2)]
        assert bodies == [b"a", b"b\r"]  # only "\n" separates, as in NSQ
    finally:
        await consumer.aclose()


async def test_http_mpub_no_messages(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    for body in (b"", b"\n\n"):
        resp = await http.post("/mpub?topic=nothing", content=body)
        assert resp.text == "OK"
    assert nsqd.topics["nothing"].message_count == 0


async def test_http_mpub_msg_too_big(nursery: trio.Nursery, tmp_path: Path) -> None:
    daemon = await start_nsqd(nursery, tmp_path, max_msg_size=10)
    async with httpx.AsyncClient(base_url=base_url(daemon)) as http:
        resp = await http.post("/mpub?topic=t", content=b"short\n" + b"x" * 11 + b"\nshort")
        assert_error(resp, 413, "MSG_TOO_BIG")
        assert daemon.topics["t"].message_count == 0  # all or nothing


async def test_http_mpub_body_too_big(nursery: trio.Nursery, tmp_path: Path) -> None:
    daemon = await start_nsqd(nursery, tmp_path, max_body_size=100)
    async with httpx.AsyncClient(base_url=base_url(daemon)) as http:
        resp = await http.post("/mpub?topic=t", content=b"a\n" * 51)
        assert_error(resp, 413, "BODY_TOO_BIG")
    async with httpx.AsyncClient(base_url=base_url(daemon)) as http:
        resp = await http.post("/mpub?topic=t", content=b"a\n" * 50)
        assert resp.text == "OK"
        assert daemon.topics["t"].depth() == 50


async def test_http_mpub_topic_args(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/mpub", content=b"a"), 400, "MISSING_ARG_TOPIC")
    assert_error(await http.post("/mpub?topic=a/b", content=b"a"), 400, "INVALID_TOPIC")


async def test_http_mpub_binary(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    topic = nsqd.get_topic("test_http_mpub_bin")
    body = mpub_body([bytes(100)] * 5)
    resp = await http.post("/mpub?topic=test_http_mpub_bin&binary=true", content=body)
    assert resp.text == "OK"
    assert topic.depth() == 5


@pytest.mark.parametrize("flag", ["1", "non_normalized_binary_param", "yes"])
async def test_http_mpub_for_non_normalized_binary_param(nsqd: NSQD, http: httpx.AsyncClient,
                                                         flag: str) -> None:
    topic = nsqd.get_topic("t")
    resp = await http.post("/mpub", params={"topic": "t", "binary": flag},
                           content=mpub_body([b"a" * 10] * 5))
    assert resp.text == "OK"
    assert topic.depth() == 5


@pytest.mark.parametrize("flag", ["false", "0"])
async def test_http_mpub_binary_false_is_text(nsqd: NSQD, http: httpx.AsyncClient,
                                              flag: str) -> None:
    topic = nsqd.get_topic("t")
    resp = await http.post("/mpub", params={"topic": "t", "binary": flag}, content=b"a\nb\nc")
    assert resp.text == "OK"
    assert topic.depth() == 3


async def test_http_mpub_binary_content(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        await consumer.subscribe("bin", "ch", rdy=10)
        bodies = [b"one", b"two\nlines", bytes(range(256))]
        resp = await http.post("/mpub?topic=bin&binary=true", content=mpub_body(bodies))
        assert resp.text == "OK"
        assert [(await consumer.message()).body for _ in bodies] == bodies
    finally:
        await consumer.aclose()


@pytest.mark.parametrize(("body", "message"), [
    (b"", "BAD_BODY"),                                         # no count
    (struct.pack(">l", 0), "BAD_BODY"),                        # count 0
    (struct.pack(">l", -1), "BAD_BODY"),
    (struct.pack(">l", 2) + struct.pack(">l", 1) + b"a", "BAD_MESSAGE"),   # 2nd size missing
    (struct.pack(">l", 1) + struct.pack(">l", 0), "BAD_MESSAGE"),          # empty message
    (struct.pack(">l", 1) + struct.pack(">l", 5) + b"abc", "BAD_MESSAGE"),  # short body
])
async def test_http_mpub_binary_errors(nsqd: NSQD, http: httpx.AsyncClient, body: bytes,
                                       message: str) -> None:
    resp = await http.post("/mpub?topic=t&binary=true", content=body)
    assert_error(resp, 413, message)
    assert nsqd.topics["t"].message_count == 0


async def test_http_mpub_binary_msg_too_big(nursery: trio.Nursery, tmp_path: Path) -> None:
    daemon = await start_nsqd(nursery, tmp_path, max_msg_size=10)
    async with httpx.AsyncClient(base_url=base_url(daemon)) as http:
        resp = await http.post("/mpub?topic=t&binary=1", content=mpub_body([b"x" * 11]))
        assert_error(resp, 413, "BAD_MESSAGE")


async def test_http_mpub_binary_refuses_trailing_bytes(nsqd: NSQD,
                                                       http: httpx.AsyncClient) -> None:
    """Bytes after the last message: 413 BAD_BODY, nothing published (as TCP MPUB's E_BAD_BODY)."""
    topic = nsqd.get_topic("t")
    resp = await http.post("/mpub?topic=t&binary=true",
                           content=mpub_body([b"a", b"bb"]) + b"trailing junk")
    assert_error(resp, 413, "BAD_BODY")
    assert topic.message_count == 0 and topic.depth() == 0
    # the same body without the junk is fine
    resp = await http.post("/mpub?topic=t&binary=true", content=mpub_body([b"a", b"bb"]))
    assert resp.text == "OK"
    assert topic.depth() == 2


# ---------------------------------------------------------------------------- topics & channels
async def test_http_v1_topic_channel(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestHTTPV1TopicChannel."""
    topic_name, channel_name = "test_http_topic_channel2", "ch2"

    assert_empty_ok(await http.post(f"/topic/create?topic={topic_name}"))
    assert_empty_ok(await http.post(f"/channel/create?topic={topic_name}&channel={channel_name}"))
    topic = nsqd.get_existing_topic(topic_name)
    channel = topic.channels[channel_name]

    assert_error(await http.post("/topic/pause"), 400, "MISSING_ARG_TOPIC")
    assert_error(await http.post(f"/topic/pause?topic={topic_name}abc"), 404, "TOPIC_NOT_FOUND")

    assert_empty_ok(await http.post(f"/topic/pause?topic={topic_name}"))
    assert topic.paused
    assert_empty_ok(await http.post(f"/topic/unpause?topic={topic_name}"))
    assert not topic.paused

    assert_empty_ok(await http.post(f"/channel/pause?topic={topic_name}&channel={channel_name}"))
    assert channel.paused
    assert_empty_ok(await http.post(f"/channel/unpause?topic={topic_name}&channel={channel_name}"))
    assert not channel.paused

    assert_empty_ok(await http.post(f"/channel/delete?topic={topic_name}&channel={channel_name}"))
    assert channel_name not in topic.channels

    assert_empty_ok(await http.post(f"/topic/delete?topic={topic_name}"))
    with pytest.raises(TopicError):
        nsqd.get_existing_topic(topic_name)


async def test_topic_create_errors(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/topic/create"), 400, "MISSING_ARG_TOPIC")
    assert_error(await http.post("/topic/create?topic=a$b"), 400, "INVALID_TOPIC")
    assert_empty_ok(await http.post("/topic/create?topic=eph%23ephemeral"))
    assert nsqd.topics["eph#ephemeral"].ephemeral


async def test_delete_topic(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestDeleteTopic."""
    assert_error(await http.post("/topic/delete"), 400, "MISSING_ARG_TOPIC")
    url = "/topic/delete?topic=test_http_delete_topic"
    assert_error(await http.post(url), 404, "TOPIC_NOT_FOUND")
    nsqd.get_topic("test_http_delete_topic")
    assert_empty_ok(await http.post(url))
    assert "test_http_delete_topic" not in nsqd.topics


async def test_empty_topic(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestEmptyTopic, plus: the messages really go."""
    assert_error(await http.post("/topic/empty"), 400, "MISSING_ARG_TOPIC")
    assert_error(await http.post("/topic/empty?topic=test_http_empty_topic$"), 400, "INVALID_TOPIC")
    url = "/topic/empty?topic=test_http_empty_topic"
    assert_error(await http.post(url), 404, "TOPIC_NOT_FOUND")
    topic = nsqd.get_topic("test_http_empty_topic")
    assert_empty_ok(await http.post(url))

    await http.post("/mpub?topic=test_http_empty_topic", content=b"a\nb\nc")
    assert topic.depth() == 3
    assert_empty_ok(await http.post(url))
    assert topic.depth() == 0


async def test_empty_channel(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    """TestEmptyChannel, plus: the messages really go."""
    assert_error(await http.post("/channel/empty"), 400, "MISSING_ARG_TOPIC")
    topic_name = "test_http_empty_channel"
    assert_error(await http.post(f"/channel/empty?topic={topic_name}"), 400, "MISSING_ARG_CHANNEL")
    url = f"/channel/empty?topic={topic_name}&channel=ch"
    assert_error(await http.post(url), 404, "TOPIC_NOT_FOUND")
    topic = nsqd.get_topic(topic_name)
    assert_error(await http.post(url), 404, "CHANNEL_NOT_FOUND")
    channel = topic.get_channel("ch")
    assert_empty_ok(await http.post(url))

    await http.post(f"/mpub?topic={topic_name}", content=b"a\nb")
    await http.post(f"/pub?topic={topic_name}&defer=60000", content=b"later")
    assert channel.depth() == 2
    assert len(channel.deferred) == 1
    assert_empty_ok(await http.post(url))
    assert channel.depth() == 0
    assert not channel.deferred


@pytest.mark.parametrize("action", ["create", "delete", "empty", "pause", "unpause"])
async def test_channel_arg_errors(nsqd: NSQD, http: httpx.AsyncClient, action: str) -> None:
    path = f"/channel/{action}"
    assert_error(await http.post(path), 400, "MISSING_ARG_TOPIC")
    assert_error(await http.post(f"{path}?topic=a*b&channel=c"), 400, "INVALID_ARG_TOPIC")
    assert_error(await http.post(f"{path}?topic=t"), 400, "MISSING_ARG_CHANNEL")
    assert_error(await http.post(f"{path}?topic=t&channel=c!"), 400, "INVALID_ARG_CHANNEL")
    assert_error(await http.post(f"{path}?topic=t&channel=c"), 404, "TOPIC_NOT_FOUND")
    nsqd.get_topic("t")
    if action == "create":
        assert_empty_ok(await http.post(f"{path}?topic=t&channel=c"))
        assert "c" in nsqd.topics["t"].channels
    else:
        assert_error(await http.post(f"{path}?topic=t&channel=c"), 404, "CHANNEL_NOT_FOUND")


@pytest.mark.parametrize("action", ["delete", "empty", "pause", "unpause"])
async def test_topic_not_found(nsqd: NSQD, http: httpx.AsyncClient, action: str) -> None:
    assert_error(await http.post(f"/topic/{action}?topic=nope"), 404, "TOPIC_NOT_FOUND")
    assert_error(await http.post(f"/topic/{action}"), 400, "MISSING_ARG_TOPIC")


async def test_channel_create_does_not_create_topic(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    assert_error(await http.post("/channel/create?topic=t&channel=c"), 404, "TOPIC_NOT_FOUND")
    assert "t" not in nsqd.topics


async def test_pause_persists_metadata(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    nsqd.get_topic("t").get_channel("c")
    calls = []
    original = nsqd.persist_metadata_soon

    def spy() -> None:
        calls.append(1)
        original()

    nsqd.persist_metadata_soon = spy  # type: ignore[method-assign]
    for url in ("/topic/pause?topic=t", "/topic/unpause?topic=t",
                "/channel/pause?topic=t&channel=c", "/channel/unpause?topic=t&channel=c"):
        assert_empty_ok(await http.post(url))
    assert len(calls) == 4


async def test_paused_channel_holds_then_delivers(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        await consumer.subscribe("p", "ch", rdy=5)
        channel = nsqd.topics["p"].channels["ch"]
        assert_empty_ok(await http.post("/channel/pause?topic=p&channel=ch"))
        await http.post("/pub?topic=p", content=b"held")
        assert channel.depth() == 1
        assert_empty_ok(await http.post("/channel/unpause?topic=p&channel=ch"))
        assert (await consumer.message()).body == b"held"
    finally:
        await consumer.aclose()


async def test_delete_channel_disconnects_consumer(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    consumer = await TCPClient.connect(nsqd)
    try:
        await consumer.subscribe("d", "ch", rdy=1)
        assert_empty_ok(await http.post("/channel/delete?topic=d&channel=ch"))
        with trio.fail_after(10):
            while await consumer.stream.receive_some(65536):
                pass
    finally:
        await consumer.aclose()


# ---------------------------------------------------------------------------- /config
class FakeLookup:
    def __init__(self) -> None:
        self.addresses: list[list[str]] = []

    def set_addresses(self, addresses: list[str]) -> None:
        self.addresses.append(list(addresses))

    def notify(self, *args: Any) -> None:
        pass


async def test_http_config(nsqd: NSQD, http: httpx.AsyncClient,
                           restore_log_level: None) -> None:
    """TestHTTPconfig."""
    fake = FakeLookup()
    nsqd.lookup = fake
    url = "/config/nsqlookupd_tcp_addresses"
    resp = await http.get(url)
    assert resp.status_code == 200
    assert resp.text == "[]"
    assert resp.headers["x-nsq-content-type"] == V1

    addrs = '["127.0.0.1:4160","127.0.0.1:4162"]'
    resp = await http.put(url, content=addrs)
    assert resp.status_code == 200
    assert resp.text == addrs
    assert nsqd.options.lookupd_tcp_addresses == ["127.0.0.1:4160", "127.0.0.1:4162"]
    assert fake.addresses == [["127.0.0.1:4160", "127.0.0.1:4162"]]
    assert (await http.get(url)).text == addrs

    resp = await http.put("/config/log_level", content=b"fatal")
    assert resp.status_code == 200
    assert resp.text == "5"  # NSQ's lg.FATAL
    assert nsqd.options.log_level == "fatal"
    assert logging.getLogger().level == logging.CRITICAL
    assert (await http.get("/config/log_level")).text == "5"

    resp = await http.put("/config/log_level", content=b"bad")
    assert_error(resp, 400, "INVALID_VALUE")
    assert nsqd.options.log_level == "fatal"

    resp = await http.put("/config/log_level", content=b"DEBUG")
    assert resp.text == "1"
    assert nsqd.options.log_level == "debug"


async def test_http_config_put_lookupd_without_lookup(nsqd: NSQD,
                                                      http: httpx.AsyncClient) -> None:
    nsqd.lookup = None
    resp = await http.put("/config/nsqlookupd_tcp_addresses", content=b'["h:1"]')
    assert resp.text == '["h:1"]'
    resp = await http.put("/config/nsqlookupd_tcp_addresses", content=b"null")
    assert resp.text == "[]"
    assert nsqd.options.lookupd_tcp_addresses == []


@pytest.mark.parametrize("body", [b"not json", b'"h:1"', b"[1]", b'{"a":1}', b'["a",null]',
                                  b"[" * 100_000])
async def test_http_config_invalid_addresses(nsqd: NSQD, http: httpx.AsyncClient,
                                             body: bytes) -> None:
    nsqd.lookup = FakeLookup()
    resp = await http.put("/config/nsqlookupd_tcp_addresses", content=body)
    assert_error(resp, 400, "INVALID_VALUE")
    assert nsqd.options.lookupd_tcp_addresses == []


async def test_http_config_errors(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    assert_error(await http.put("/config/log_level", content=b""), 413, "INVALID_VALUE")
    # the body is checked before the option name, as NSQ does
    assert_error(await http.put("/config/no_such_opt", content=b""), 413, "INVALID_VALUE")
    assert_error(await http.put("/config/no_such_opt", content=b"1"), 400, "INVALID_OPTION")
    assert_error(await http.put("/config/mem_queue_size", content=b"1"), 400, "INVALID_OPTION")
    assert_error(await http.get("/config/no_such_opt"), 400, "INVALID_OPTION")
    resp = await http.post("/config/log_level")
    assert_error(resp, 405, "METHOD_NOT_ALLOWED")


async def test_http_config_put_too_big(nursery: trio.Nursery, tmp_path: Path) -> None:
    daemon = await start_nsqd(nursery, tmp_path, max_msg_size=10)
    async with httpx.AsyncClient(base_url=base_url(daemon)) as http:
        resp = await http.put("/config/nsqlookupd_tcp_addresses", content=b'["abcdefghij"]')
        assert_error(resp, 413, "INVALID_VALUE")


@pytest.mark.parametrize(("opt", "expected"), [
    ("mem_queue_size", 10000),
    ("msg_timeout", 60_000_000_000),        # durations as Go's nanoseconds
    ("max_req_timeout", 3_600_000_000_000),
    ("max_msg_size", 1024 * 1024),
    ("tcp_address", "127.0.0.1:0"),
    ("snappy", True),
    ("log_level", 2),                        # lg.INFO
])
async def test_http_config_get(http: httpx.AsyncClient, opt: str, expected: Any) -> None:
    resp = await http.get(f"/config/{opt}")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == JSON_TYPE
    assert resp.json() == expected


async def test_http_config_get_node_id(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    resp = await http.get("/config/id")  # NSQ's cfg name for --node-id
    assert resp.json() == nsqd.options.node_id


# ---------------------------------------------------------------------------- routing, connections
async def test_http_errors(http: httpx.AsyncClient) -> None:
    """TestHTTPerrors."""
    resp = await http.post("/stats")
    assert resp.status_code == 405
    assert resp.text == '{"message":"METHOD_NOT_ALLOWED"}'
    assert resp.headers["allow"] == "GET, OPTIONS"

    resp = await http.get("/not_found")
    assert resp.status_code == 404
    assert resp.text == '{"message":"NOT_FOUND"}'


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/pub"), ("GET", "/mpub"), ("PUT", "/pub"), ("POST", "/ping"), ("POST", "/info"),
    ("GET", "/topic/create"), ("GET", "/channel/delete"), ("DELETE", "/config/log_level"),
])
async def test_method_not_allowed(http: httpx.AsyncClient, method: str, path: str) -> None:
    assert_error(await http.request(method, path), 405, "METHOD_NOT_ALLOWED")


async def test_keep_alive_and_pipelining(nsqd: NSQD) -> None:
    """Several requests on one connection, some pipelined in one write."""
    assert nsqd.bound is not None and nsqd.bound.http_address is not None
    stream = await trio.open_tcp_stream(*nsqd.bound.http_address)
    request = (b"POST /pub?topic=ka HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nmsg")
    received = b""

    async def read_responses(n: int) -> None:
        nonlocal received
        with trio.fail_after(10):
            while received.count(b"HTTP/1.1 200 OK") < n or not received.endswith(b"OK"):
                data = await stream.receive_some(65536)
                assert data
                received += data

    async with stream:
        await stream.send_all(request)
        await read_responses(1)
        await stream.send_all(request * 3)
        await read_responses(4)
        await stream.send_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        await read_responses(5)
    assert b"Connection: close" not in received
    assert nsqd.topics["ka"].depth() == 4


async def test_httpx_reuses_connection(nsqd: NSQD) -> None:
    connections = set()

    async def record(response: httpx.Response) -> None:
        stream = response.extensions.get("network_stream")
        if stream is not None:
            connections.add(id(stream))

    async with httpx.AsyncClient(base_url=base_url(nsqd),
                                 event_hooks={"response": [record]}) as http:
        for i in range(20):
            resp = await http.post("/pub?topic=reuse", content=b"%d" % i)
            assert resp.text == "OK"
    assert len(connections) == 1
    assert nsqd.topics["reuse"].depth() == 20


async def test_chunked_pub(nsqd: NSQD, http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"hello "
        yield b"world"

    resp = await http.post("/pub?topic=chunked", content=chunks())
    assert resp.text == "OK"
    assert nsqd.topics["chunked"].message_bytes == len(b"hello world")


async def test_admin_requests_logged(nsqd: NSQD, http: httpx.AsyncClient,
                                     caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="nsqd.http"):
        await http.post("/topic/create?topic=logged")
        await http.post("/topic/delete?topic=nope")
        await http.post("/pub?topic=logged", content=b"m")
    lines = [r.getMessage() for r in caplog.records if r.name == "nsqd.http"]
    assert any(line.startswith("200 POST /topic/create?topic=logged (127.0.0.1:")
               for line in lines), lines
    assert any(line.startswith("404 POST /topic/delete?topic=nope (") for line in lines), lines
    assert not any("/pub" in line for line in lines)  # NSQ does not log publishes
