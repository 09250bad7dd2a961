"""The client library's TLS, snappy/deflate and AUTH against our nsqd (in-process,
127.0.0.1 port 0, certificates made by trustme)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest
import trio
from transport_helpers import TLSFiles, grant, make_tls_files, start_auth_server

from client import ClientConfig, Consumer, Message, Producer
from client.compression import CompressedStream, DeflateCodec, SnappyCodec
from client.connection import Connection
from client.errors import IdentifyError, InvalidError, PublishTimeoutError
from nsqd.tls import TLS_REQUIRED

TIMEOUT = 30
SECRET = "s3cret"


def tcp(server: Any) -> str:
    return "%s:%d" % server.tcp_address


@pytest.fixture
def tls_files(tmp_path: Any) -> TLSFiles:
    return make_tls_files(tmp_path)


async def round_trip(server: Any, config: ClientConfig, topic: str, count: int = 300) -> list[Message]:
    """Publish singly, batched and by MPUB, then consume all of it, over ``config``."""
    bodies = [b"%s-%04d-" % (topic.encode(), i) + b"x" * (i % 97) for i in range(count)]
    third = count // 3
    with trio.fail_after(TIMEOUT):
        async with Producer(tcp(server), config=config) as producer:
            for body in bodies[:third]:
                await producer.publish(topic, body)
            await producer.multi_publish(topic, bodies[third : 2 * third])
        async with Producer(tcp(server), config=config, batch=True) as producer, trio.open_nursery() as nursery:
            for body in bodies[2 * third :]:
                nursery.start_soon(producer.publish, topic, body)
        got: list[Message] = []
        async with Consumer(topic, "c", nsqd_tcp_addresses=[tcp(server)], config=config,
                            max_in_flight=100) as consumer:
            async for message in consumer:
                got.append(message)
                await message.finish()
                if len(got) == count:
                    break
    assert sorted(m.body for m in got) == sorted(bodies)
    return got


def client_of(server: Any) -> Any:
    return next(iter(server.nsqd.clients.values()))


async def test_plain_identify_asks_for_nothing(start_nsqd: Callable[..., Any], nursery: trio.Nursery) -> None:
    server = await start_nsqd()
    conn = Connection(tcp(server))
    await nursery.start(conn.run)
    assert conn.identify is not None and not (conn.identify.tls_v1 or conn.identify.snappy)
    assert isinstance(conn._stream, trio.SocketStream)
    await conn.aclose()


@pytest.mark.parametrize("feature", ["snappy", "deflate"])
async def test_compressed_round_trip(start_nsqd: Callable[..., Any], nursery: trio.Nursery,
                                     feature: str) -> None:
    server = await start_nsqd()
    config = ClientConfig(**{feature: True})
    conn = Connection(tcp(server), config)
    await nursery.start(conn.run)
    assert isinstance(conn._stream, CompressedStream)
    assert isinstance(conn._stream.codec, SnappyCodec if feature == "snappy" else DeflateCodec)
    assert getattr(client_of(server), feature) is True
    await conn.aclose()
    await round_trip(server, config, feature)


async def test_deflate_level_is_negotiated(start_nsqd: Callable[..., Any], nursery: trio.Nursery) -> None:
    server = await start_nsqd(max_deflate_level=3)
    conn = Connection(tcp(server), ClientConfig(deflate=True, deflate_level=9))
    await nursery.start(conn.run)
    assert conn.identify is not None and conn.identify.deflate_level == 3
    assert isinstance(conn._stream, CompressedStream)
    assert conn._stream.codec.level == 3  # type: ignore[attr-defined]
    await conn.aclose()


async def test_tls_round_trip(start_nsqd: Callable[..., Any], nursery: trio.Nursery,
                              tls_files: TLSFiles) -> None:
    server = await start_nsqd(**tls_files.nsqd_options())
    config = ClientConfig(tls_v1=True, tls_config=tls_files.client_context())
    conn = Connection(tcp(server), config)
    await nursery.start(conn.run)
    assert isinstance(conn._stream, trio.SSLStream)
    assert client_of(server).tls is True
    await conn.aclose()
    await round_trip(server, config, "tls")


@pytest.mark.parametrize("feature", ["snappy", "deflate"])
async def test_tls_then_compression_round_trip(start_nsqd: Callable[..., Any], nursery: trio.Nursery,
                                               tls_files: TLSFiles, feature: str) -> None:
    server = await start_nsqd(**tls_files.nsqd_options())
    config = ClientConfig(tls_v1=True, tls_config=tls_files.client_context(), **{feature: True})
    conn = Connection(tcp(server), config)
    await nursery.start(conn.run)
    assert isinstance(conn._stream, CompressedStream)
    assert isinstance(conn._stream.transport_stream, trio.SSLStream)
    await conn.aclose()
    await round_trip(server, config, "tls_" + feature)


async def test_tls_not_offered_stays_plain(start_nsqd: Callable[..., Any], nursery: trio.Nursery) -> None:
    server = await start_nsqd()  # no certificate: nsqd answers tls_v1 false
    config = ClientConfig(tls_v1=True)
    conn = Connection(tcp(server), config)
    await nursery.start(conn.run)
    assert conn.identify is not None and conn.identify.tls_v1 is False
    assert isinstance(conn._stream, trio.SocketStream)
    await conn.aclose()
    await round_trip(server, config, "no_tls", count=30)


async def test_tls_required_nsqd(start_nsqd: Callable[..., Any], tls_files: TLSFiles) -> None:
    server = await start_nsqd(**tls_files.nsqd_options(tls_required=TLS_REQUIRED))
    await round_trip(server, ClientConfig(tls_v1=True, tls_config=tls_files.client_context()),
                     "required", count=30)
    # without TLS nsqd refuses the first command, and retrying does not help
    async with Producer(tcp(server), timeout=2.0) as producer:
        with pytest.raises((InvalidError, PublishTimeoutError)) as info:
            await producer.publish("required", b"plain")
    err = info.value if isinstance(info.value, InvalidError) else info.value.__cause__
    assert isinstance(err, InvalidError) and "TLS required" in str(err)


async def test_tls_wrong_ca_is_a_clear_error(start_nsqd: Callable[..., Any], nursery: trio.Nursery,
                                             tls_files: TLSFiles) -> None:
    server = await start_nsqd(**tls_files.nsqd_options())
    config = ClientConfig(tls_v1=True, tls_config=tls_files.client_context(trusted=False))
    conn = Connection(tcp(server), config)
    with pytest.raises(IdentifyError, match=r"TLS handshake .* failed: .*CERTIFICATE_VERIFY_FAILED"):
        await nursery.start(conn.run)
    assert conn.closed
    with trio.fail_after(TIMEOUT):
        async with Producer([tcp(server), tcp(server)], config=config) as producer:
            with pytest.raises(IdentifyError, match="certificate verify failed"):
                await producer.publish("t", b"never")  # at once, not after `timeout`
            with pytest.raises(IdentifyError, match="certificate verify failed"):
                await (await producer.send("t", b"never"))


async def test_auth_ok(start_nsqd: Callable[..., Any], nursery: trio.Nursery, tls_files: TLSFiles) -> None:
    authd = await start_auth_server(nursery, replies={SECRET: {
        "ttl": 3600, "identity": "alice", "identity_url": "https://id.example/alice",
        "authorizations": [grant()]}})
    server = await start_nsqd(auth_http_addresses=[authd.host_port], **tls_files.nsqd_options())
    config = ClientConfig(auth_secret=SECRET)
    conn = Connection(tcp(server), config)
    await nursery.start(conn.run)
    assert conn.identify is not None and conn.identify.auth_required
    assert conn.auth is not None
    assert (conn.auth.identity, conn.auth.identity_url, conn.auth.permission_count) == (
        "alice", "https://id.example/alice", 1)
    await conn.aclose()
    await round_trip(server, config, "authed", count=30)
    # AUTH after TLS and snappy: the secret goes through both layers
    await round_trip(server, config.replace(tls_v1=True, tls_config=tls_files.client_context(),
                                            snappy=True), "authed_tls", count=30)
    assert authd.queries[-1]["tls"] == "true" and authd.queries[-1]["secret"] == SECRET
    assert SECRET not in repr(config)


async def test_auth_denied(start_nsqd: Callable[..., Any], nursery: trio.Nursery) -> None:
    authd = await start_auth_server(nursery, replies={SECRET: {"ttl": 60, "authorizations": [grant()]}})
    server = await start_nsqd(auth_http_addresses=[authd.host_port])
    conn = Connection(tcp(server), ClientConfig(auth_secret="wrong"))
    with pytest.raises(IdentifyError, match="E_AUTH_FAILED"):
        await nursery.start(conn.run)
    with trio.fail_after(TIMEOUT):
        async with Producer(tcp(server), config=ClientConfig(auth_secret="wrong")) as producer:
            with pytest.raises(IdentifyError, match="E_AUTH_FAILED"):
                await producer.publish("t", b"never")
    conn = Connection(tcp(server))  # no secret at all
    with pytest.raises(IdentifyError, match="requires AUTH"):
        await nursery.start(conn.run)


async def test_consumer_logs_tls_failure(start_nsqd: Callable[..., Any], tls_files: TLSFiles,
                                         caplog: pytest.LogCaptureFixture) -> None:
    server = await start_nsqd(**tls_files.nsqd_options())
    config = ClientConfig(tls_v1=True, tls_config=tls_files.client_context(trusted=False))
    with trio.fail_after(TIMEOUT):
        async with Consumer("t", "c", nsqd_tcp_addresses=[tcp(server)], config=config):
            while "certificate verify failed" not in caplog.text:
                await trio.sleep(0.01)
    assert any(r.levelno == logging.WARNING and "TLS handshake" in r.getMessage() for r in caplog.records)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="snappy and deflate"):
        ClientConfig(snappy=True, deflate=True)
    with pytest.raises(ValueError, match="deflate_level"):
        ClientConfig(deflate=True, deflate_level=10)
