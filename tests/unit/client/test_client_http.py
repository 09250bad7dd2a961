"""HTTPProducer and the nsqlookupd client against httpx.MockTransport."""

from __future__ import annotations

import json
import struct

import httpx
import pytest

from client import (
    BadBodyError,
    BadMessageError,
    BadTopicError,
    HTTPProducer,
    InvalidError,
    LookupdError,
    NotConnectedError,
    PublishError,
    PublishFailedError,
    PublishTimeoutError,
    ServerError,
)
from client.lookup import channels, lookup, lookup_url, nodes


class NSQDHTTP:
    """Records requests; answers like nsqd (200 "OK" or {"message": ...})."""

    def __init__(self, answer: tuple[int, str] | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answer is not None:
            status, message = self.answer
            return httpx.Response(status, json={"message": message})
        return httpx.Response(200, text="OK")


def client_for(handler: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


async def test_requests_match_nsqd_http_api() -> None:
    server = NSQDHTTP()
    async with client_for(server) as http, HTTPProducer("127.0.0.1:4151", client=http) as producer:
        await producer.publish("t", b"one")
        await producer.multi_publish("t", [b"a", b"bc"])
        await producer.deferred_publish("t", b"later", delay=1.5)
    pub, mpub, dpub = server.requests
    assert (pub.method, pub.url.path, dict(pub.url.params), pub.content) == ("POST", "/pub", {"topic": "t"}, b"one")
    assert mpub.url.path == "/mpub" and dict(mpub.url.params) == {"topic": "t", "binary": "true"}
    assert mpub.content == struct.pack(">l", 2) + struct.pack(">l", 1) + b"a" + struct.pack(">l", 2) + b"bc"
    assert dict(dpub.url.params) == {"topic": "t", "defer": "1500"} and dpub.content == b"later"
    assert str(pub.url).startswith("http://127.0.0.1:4151/")


@pytest.mark.parametrize(
    "status,message,cls,code",
    [
        (400, "INVALID_TOPIC", BadTopicError, "E_BAD_TOPIC"),
        (413, "MSG_TOO_BIG", BadMessageError, "E_BAD_MESSAGE"),
        (400, "MSG_EMPTY", BadMessageError, "E_BAD_MESSAGE"),
        (413, "BODY_TOO_BIG", BadBodyError, "E_BAD_BODY"),
        (400, "INVALID_DEFER", InvalidError, "E_INVALID"),
        (503, "EXITING", PublishFailedError, "E_PUB_FAILED"),
        (500, "SOMETHING_NEW", ServerError, "E_HTTP_500"),
    ],
)
async def test_errors_keep_nsqd_message(status: int, message: str, cls: type[ServerError], code: str) -> None:
    async with client_for(NSQDHTTP((status, message))) as http, HTTPProducer("h:1", client=http) as producer:
        with pytest.raises(cls) as info:
            await producer.publish("t", b"x")
    assert type(info.value) is cls
    assert (info.value.code, info.value.desc, info.value.status_code) == (code, message, status)


async def test_fails_over_on_connect_errors() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.host)
        if request.url.host == "down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, text="OK")

    async with client_for(handler) as http, HTTPProducer(["http://down:1", "http://up:1"], client=http) as producer:
        await producer.publish("t", b"x")
        await producer.publish("t", b"y")
    assert seen == ["down", "up", "up"]  # sticks to the one that works


async def test_all_down_and_timeouts() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    async with client_for(refuse) as http, HTTPProducer(["a:1", "b:1"], client=http) as producer:
        with pytest.raises(NotConnectedError):
            await producer.publish("t", b"x")
    async with client_for(slow) as http, HTTPProducer("a:1", client=http) as producer:
        with pytest.raises(PublishTimeoutError):
            await producer.publish("t", b"x")


async def test_lifecycle_and_validation() -> None:
    producer = HTTPProducer("a:1")
    with pytest.raises(PublishError):
        await producer.publish("t", b"x")
    async with client_for(NSQDHTTP()) as http:
        async with HTTPProducer("a:1", client=http) as producer:
            with pytest.raises(ValueError):
                await producer.multi_publish("t", [])
            with pytest.raises(BadTopicError):
                await producer.multi_publish("bad topic", [b"x"])
            with pytest.raises(ValueError):
                await producer.deferred_publish("t", b"x", delay=-1)
        assert not http.is_closed  # a client passed in is left open
    with pytest.raises(ValueError):
        HTTPProducer([])


# ---------------------------------------------------------------------- lookup


def lookupd(status: int, payload: object) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["accept"] == "application/vnd.nsq; version=1.0"
        return httpx.Response(status, content=json.dumps(payload).encode())

    return client_for(handler)


PRODUCER = {"remote_address": "10.0.0.1:55", "hostname": "h", "broadcast_address": "nsqd-1",
            "tcp_port": 4150, "http_port": 4151, "version": "1.3.0"}


async def test_lookup_v1_body() -> None:
    async with lookupd(200, {"channels": ["c"], "producers": [PRODUCER]}) as http:
        result = await lookup(http, "127.0.0.1:4161", "t")
    assert [p.tcp_address for p in result.producers] == ["nsqd-1:4150"]
    assert result.channels == ("c",) and result.producers[0].version == "1.3.0"


async def test_lookup_legacy_envelope_and_ipv6() -> None:
    v6 = dict(PRODUCER, broadcast_address="::1")
    async with lookupd(200, {"status_code": 200, "data": {"channels": [], "producers": [v6]}}) as http:
        result = await lookup(http, "http://lookupd:4161/", "t")
    assert result.producers[0].tcp_address == "[::1]:4150"


async def test_lookup_unknown_topic_is_empty() -> None:
    async with lookupd(404, {"message": "TOPIC_NOT_FOUND"}) as http:
        result = await lookup(http, "lookupd:4161", "t")
    assert result.producers == () and result.channels == ()


@pytest.mark.parametrize("status,payload", [(500, {"message": "INTERNAL"}), (200, ["not", "an", "object"]),
                                            (200, {"producers": [{"tcp_port": 1}]})])
async def test_lookup_failures(status: int, payload: object) -> None:
    async with lookupd(status, payload) as http:
        with pytest.raises(LookupdError):
            await lookup(http, "lookupd:4161", "t")


async def test_lookup_transport_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with client_for(handler) as http:
        with pytest.raises(LookupdError):
            await lookup(http, "lookupd:4161", "t")


async def test_nodes() -> None:
    async with lookupd(200, {"producers": [PRODUCER]}) as http:
        peers = await nodes(http, "lookupd:4161")
    assert peers[0].hostname == "h"


async def test_channels() -> None:
    seen: list[httpx.URL] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, content=b'{"channels": ["a", "b#ephemeral"]}')

    async with client_for(handler) as http:
        assert await channels(http, "lookupd:4161", "t&x") == ("a", "b#ephemeral")
    assert seen[0].path == "/channels" and seen[0].params["topic"] == "t&x"
    async with lookupd(200, {"status_code": 200, "data": {"channels": None}}) as http:
        assert await channels(http, "lookupd:4161", "t") == ()


@pytest.mark.parametrize("status,payload", [(500, {"message": "INTERNAL"}), (200, ["x"]),
                                            (200, {"channels": 5})])
async def test_channels_failures(status: int, payload: object) -> None:
    async with lookupd(status, payload) as http:
        with pytest.raises(LookupdError):
            await channels(http, "lookupd:4161", "t")


def test_lookup_url() -> None:
    assert lookup_url("127.0.0.1:4161") == "http://127.0.0.1:4161"
    assert lookup_url("https://lookupd:4161/") == "https://lookupd:4161"
