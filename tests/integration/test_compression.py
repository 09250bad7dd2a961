"""Snappy and deflate: the shared codecs (sans-I/O) and the negotiated nsqd upgrades."""

from __future__ import annotations

import json
import os
import zlib

import httpx
import pytest
import trio
from helpers import RawConn
from transport_helpers import make_tls_files, open_upgrading

from client.compression import (
    CompressedStream,
    CompressionError,
    DeflateCodec,
    SnappyCodec,
    make_codec,
)
from client.protocol import commands

snappy = pytest.importorskip("snappy")  # python-snappy: the framing pynsq/gnsq speak

HEADER = b"\xff\x06\x00\x00sNaPpY"


def _feed_bytewise(codec, data: bytes) -> bytes:
    return b"".join(codec.decompress(data[i : i + 1]) for i in range(len(data)))


# ------------------------------------------------------------------ snappy codec
@pytest.mark.parametrize("payload", [b"x", b"hello " * 1000, os.urandom(200_000),
                                     b"\x00" * 300_000])
def test_snappy_round_trip_whole_and_bytewise(payload):
    a = SnappyCodec()
    wire = a.compress(payload)
    assert wire.startswith(HEADER)
    assert SnappyCodec().decompress(wire) == payload
    assert _feed_bytewise(SnappyCodec(), wire) == payload


def test_snappy_header_only_once_and_stream_continues():
    a, b = SnappyCodec(), SnappyCodec()
    first, second = a.compress(b"one"), a.compress(b"two")
    assert first.startswith(HEADER) and not second.startswith(HEADER)
    assert b.decompress(first) + b.decompress(second) == b"onetwo"
    assert a.compress(b"") == b""


def test_snappy_interoperates_with_python_snappy():
    ours = SnappyCodec()
    theirs = snappy.StreamDecompressor()
    assert theirs.decompress(ours.compress(b"to pynsq")) == b"to pynsq"
    # pynsq starts a new snappy stream (with its identifier) for every write
    wire = snappy.StreamCompressor().compress(b"first") + snappy.StreamCompressor().compress(b"second")
    assert SnappyCodec().decompress(wire) == b"firstsecond"


def test_snappy_max_length_keeps_the_rest_pending():
    a, b = SnappyCodec(), SnappyCodec()
    wire = b"".join(a.compress(bytes([i]) * 65536) for i in range(4))
    out = b.decompress(wire, max_length=65536)
    assert len(out) <= 2 * 65536 and b.pending
    while b.pending:
        out += b.decompress(b"", max_length=65536)
    assert out == b"".join(bytes([i]) * 65536 for i in range(4))


@pytest.mark.parametrize("wire,error", [
    (b"\x00\x05\x00\x00abcde", "stream identifier"),  # no identifier first
    (HEADER + b"\x02\x01\x00\x00x", "unsupported chunk type"),
    (HEADER + b"\x00\xff\xff\xff", "too long"),
])
def test_snappy_bad_input(wire, error):
    with pytest.raises(CompressionError, match=error):
        SnappyCodec().decompress(wire)


def test_snappy_bad_checksum():
    wire = bytearray(SnappyCodec().compress(b"checksummed data"))
    wire[len(HEADER) + 4] ^= 0xFF  # first byte of the masked CRC
    with pytest.raises(CompressionError, match="checksum"):
        SnappyCodec().decompress(bytes(wire))


def test_snappy_skippable_chunks_ignored():
    a = SnappyCodec()
    wire = a.compress(b"a") + b"\xfe\x02\x00\x00\x00\x00" + b"\x80\x01\x00\x00z" + a.compress(b"b")
    assert SnappyCodec().decompress(wire) == b"ab"


# ------------------------------------------------------------------ deflate codec
@pytest.mark.parametrize("level", [1, 6, 9])
def test_deflate_round_trip_and_raw_format(level):
    a = DeflateCodec(level)
    payload = b"deflate me " * 500
    wire = a.compress(payload)
    assert wire.endswith(b"\x00\x00\xff\xff")  # sync flush
    assert zlib.decompressobj(-15).decompress(wire) == payload
    assert _feed_bytewise(DeflateCodec(), wire) == payload


def test_deflate_bomb_is_bounded():
    wire = DeflateCodec(9).compress(b"\x00" * 5_000_000)
    b = DeflateCodec()
    out = b.decompress(wire, max_length=65536)
    assert len(out) == 65536 and b.pending
    total = len(out)
    while b.pending:
        total += len(b.decompress(b"", max_length=65536))
    assert total == 5_000_000


def test_deflate_bad_input():
    with pytest.raises(CompressionError):
        DeflateCodec().decompress(b"\xff\xff\xff\xff garbage")


def test_make_codec():
    assert make_codec() is None
    assert isinstance(make_codec(snappy=True), SnappyCodec)
    assert make_codec(deflate=True, deflate_level=3).level == 3
    with pytest.raises(ValueError, match="both"):
        make_codec(snappy=True, deflate=True)


async def test_compressed_stream_pair():
    left, right = trio.testing.memory_stream_pair()
    a = CompressedStream(left, SnappyCodec())
    b = CompressedStream(right, SnappyCodec())
    await a.send_all(b"ping")
    assert await b.receive_some() == b"ping"
    await b.send_all(b"pong")
    assert await a.receive_some() == b"pong"
    await a.aclose()
    assert await b.receive_some() == b""


async def test_compressed_stream_bad_data_is_broken():
    left, right = trio.testing.memory_stream_pair()
    b = CompressedStream(right, DeflateCodec())
    await left.send_all(b"\xff\xff\xff\xff not deflate")
    with pytest.raises(trio.BrokenResourceError):
        await b.receive_some()


# ------------------------------------------------------------------ nsqd upgrades
@pytest.mark.parametrize("feature", ["snappy", "deflate"])
async def test_compressed_publish_and_consume(start_nsqd, feature):
    nsqd_server = await start_nsqd()
    conn = await open_upgrading(nsqd_server.tcp_address)
    resp = await conn.negotiate(**{feature: True})
    assert resp[feature] is True
    assert isinstance(conn.stream, CompressedStream)
    bodies = [os.urandom(50) + b"y" * 5000 for _ in range(30)]
    await conn.send(commands.mpub("ztopic", bodies))
    assert await conn.response() == b"OK"
    await conn.sub("ztopic", "ch", rdy=100)
    got = [await conn.message() for _ in bodies]
    assert [m.body for m in got] == bodies
    await conn.send(b"".join(commands.fin(m.id) for m in got))
    client = next(iter(nsqd_server.nsqd.clients.values()))
    assert getattr(client, feature) is True
    async with httpx.AsyncClient() as http:
        stats = (await http.get(nsqd_server.http_url + "/stats?format=json&topic=ztopic")).json()
    (entry,) = stats["topics"][0]["channels"][0]["clients"]
    assert entry[feature] is True


async def test_large_mpub_over_snappy_spans_many_chunks(nsqd_server):
    conn = await open_upgrading(nsqd_server.tcp_address)
    await conn.negotiate(snappy=True)
    bodies = [os.urandom(1000) for _ in range(1000)]  # ~1 MB, incompressible
    await conn.send(commands.mpub("big", bodies))
    assert await conn.response() == b"OK"
    assert nsqd_server.nsqd.topics["big"].depth() == 1000


@pytest.mark.parametrize("extra", [{"deflate_level": 3}, {}])
async def test_deflate_level_negotiated(start_nsqd, extra):
    server = await start_nsqd(max_deflate_level=4)
    conn = await open_upgrading(server.tcp_address)
    resp = await conn.negotiate(deflate=True, **extra)
    assert resp["deflate_level"] == extra.get("deflate_level", 4)  # default 6 clamped to 4
    assert resp["max_deflate_level"] == 4
    client = next(iter(server.nsqd.clients.values()))
    await conn.pub("levels", b"x")
    assert client.deflate


async def test_snappy_and_deflate_together_refused(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    await conn.send(commands.identify({"feature_negotiation": True, "snappy": True, "deflate": True}))
    assert await conn.error() == b"E_IDENTIFY_FAILED cannot enable both deflate and snappy compression"
    assert await conn.closed()


@pytest.mark.parametrize("feature", ["snappy", "deflate"])
async def test_compression_disabled_by_option(start_nsqd, feature):
    server = await start_nsqd(**{feature: False})
    conn = await RawConn.open(server.tcp_address)
    resp = await conn.identify(**{feature: True})
    assert resp[feature] is False
    await conn.pub("plain", b"x")  # no upgrade happened


@pytest.mark.parametrize("feature", ["snappy", "deflate"])
async def test_tls_then_compression(start_nsqd, tmp_path, feature):
    tls = make_tls_files(tmp_path)
    server = await start_nsqd(**tls.nsqd_options())
    conn = await open_upgrading(server.tcp_address)
    resp = await conn.negotiate(tls.client_context(), tls_v1=True, **{feature: True})
    assert resp["tls_v1"] and resp[feature]
    assert isinstance(conn.stream, CompressedStream)
    assert isinstance(conn.stream.transport_stream, trio.SSLStream)
    await conn.pub("tls_z", b"both layers")
    await conn.sub("tls_z", "c", rdy=1)
    assert (await conn.message()).body == b"both layers"
    client = next(iter(server.nsqd.clients.values()))
    assert client.tls and getattr(client, feature)


async def test_heartbeats_flow_compressed(nsqd_server):
    conn = await open_upgrading(nsqd_server.tcp_address)
    await conn.negotiate(snappy=True, heartbeat_interval=1000)
    await conn.sub("hb", "c")
    # the heartbeat arrives through the codec; answering NOP keeps us connected
    _ftype, data = await conn.frame(timeout=5, skip_heartbeats=False)
    assert data == b"_heartbeat_"


async def test_garbage_after_snappy_upgrade_closes(nsqd_server):
    conn = await open_upgrading(nsqd_server.tcp_address)
    await conn.negotiate(snappy=True)
    await conn.stream.transport_stream.send_all(b"\x00\x09\x00\x00not-snappy")
    assert await conn.closed()
    with trio.fail_after(10):
        while nsqd_server.nsqd.clients:
            await trio.sleep(0.01)


async def test_identify_response_json_unchanged_without_upgrade(nsqd_server):
    conn = await RawConn.open(nsqd_server.tcp_address)
    resp = await conn.identify()
    assert (resp["tls_v1"], resp["snappy"], resp["deflate"], resp["auth_required"]) == \
        (False, False, False, False)
    assert json.dumps(resp)  # plain JSON, nothing else followed
