"""Resource limits: each enforced with NSQ's error, tried just inside and just outside."""

from __future__ import annotations

import pytest
from helpers import RawConn

from client.protocol import commands
from nsqd import Options


async def _conn(server, **identify):
    conn = await RawConn.open(server.tcp_address)
    await conn.identify(**identify)
    return conn


# ------------------------------------------------------------------ message and body sizes
async def test_max_msg_size_pub(start_nsqd):
    server = await start_nsqd(max_msg_size=100, http_address="")
    conn = await _conn(server)
    await conn.pub("sizes", b"x" * 100)
    await conn.send(commands.pub("sizes", b"x" * 101))
    assert await conn.error() == b"E_BAD_MESSAGE PUB message too big 101 > 100"
    assert await conn.closed()


async def test_max_msg_size_dpub(start_nsqd):
    server = await start_nsqd(max_msg_size=100, http_address="")
    conn = await _conn(server)
    await conn.send(commands.dpub("sizes", 10, b"x" * 100))
    assert await conn.response() == b"OK"
    await conn.send(commands.dpub("sizes", 10, b"x" * 101))
    assert await conn.error() == b"E_BAD_MESSAGE DPUB message too big 101 > 100"


async def test_max_msg_size_mpub(start_nsqd):
    server = await start_nsqd(max_msg_size=100, http_address="")
    conn = await _conn(server)
    await conn.send(commands.mpub("sizes", [b"a" * 100, b"b"]))
    assert await conn.response() == b"OK"
    await conn.send(commands.mpub("sizes", [b"a", b"b" * 101]))
    assert await conn.error() == b"E_BAD_MESSAGE MPUB message too big 101 > 100"


async def test_max_body_size_mpub(start_nsqd):
    # MPUB body: 4-byte count + per message 4-byte size + data
    server = await start_nsqd(max_body_size=4 + 2 * (4 + 50), http_address="")
    conn = await _conn(server)
    await conn.send(commands.mpub("bodies", [b"a" * 50, b"b" * 50]))
    assert await conn.response() == b"OK"
    await conn.send(commands.mpub("bodies", [b"a" * 50, b"b" * 51]))
    assert await conn.error() == b"E_BAD_BODY MPUB body too big 113 > 112"
    assert await conn.closed()


async def test_max_body_size_identify(start_nsqd):
    server = await start_nsqd(max_body_size=200, http_address="")
    conn = await RawConn.open(server.tcp_address)
    body = b'{"client_id":"' + b"c" * (200 - 16) + b'"}'
    assert len(body) == 200
    await conn.send(b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body)
    assert await conn.response() == b"OK"
    conn = await RawConn.open(server.tcp_address)
    body = b'{"client_id":"' + b"c" * (201 - 16) + b'"}'
    await conn.send(b"IDENTIFY\n" + len(body).to_bytes(4, "big") + body)
    assert await conn.error() == b"E_BAD_BODY IDENTIFY body too big 201 > 200"


async def test_http_pub_max_msg_size(start_nsqd):
    import httpx

    server = await start_nsqd(max_msg_size=100)
    async with httpx.AsyncClient() as http:
        ok = await http.post(server.http_url + "/pub?topic=h", content=b"x" * 100)
        big = await http.post(server.http_url + "/pub?topic=h", content=b"x" * 101)
    assert ok.status_code == 200
    assert (big.status_code, big.json()) == (413, {"message": "MSG_TOO_BIG"})


# ------------------------------------------------------------------ RDY
async def test_max_rdy_count(start_nsqd):
    server = await start_nsqd(max_rdy_count=50, http_address="")
    conn = await _conn(server)
    await conn.sub("rdy", "c", rdy=50)
    publisher = await _conn(server)
    await publisher.send(commands.mpub("rdy", [b"m%d" % i for i in range(60)]))
    assert await publisher.response() == b"OK"
    got = [await conn.message() for _ in range(50)]  # RDY 50 accepted: 50 in flight
    assert len({m.id for m in got}) == 50
    await conn.send(commands.rdy(51))
    assert await conn.error() == b"E_INVALID RDY count 51 out of range 0-50"
    assert await conn.closed()


# ------------------------------------------------------------------ IDENTIFY-negotiated limits
@pytest.mark.parametrize("field,option,max_value,scale,text", [
    ("heartbeat_interval", "max_heartbeat_interval", 5.0, 1000, "heartbeat interval"),
    ("output_buffer_size", "max_output_buffer_size", 4096, 1, "output buffer size"),
    ("output_buffer_timeout", "max_output_buffer_timeout", 2.0, 1000, "output buffer timeout"),
])
async def test_identify_limits(start_nsqd, field, option, max_value, scale, text):
    server = await start_nsqd(**{option: max_value}, http_address="")
    inside = int(max_value * scale)
    resp = await (await RawConn.open(server.tcp_address)).identify(**{field: inside})
    if field != "heartbeat_interval":
        assert resp[field] == inside
    conn = await RawConn.open(server.tcp_address)
    await conn.send(commands.identify({field: inside + 1, "feature_negotiation": True}))
    assert await conn.error() == f"E_BAD_BODY IDENTIFY {text} ({inside + 1}) is invalid".encode()
    assert await conn.closed()


async def test_max_channel_consumers(start_nsqd):
    server = await start_nsqd(max_channel_consumers=2, http_address="")
    consumers = [await _conn(server) for _ in range(2)]  # kept open
    for consumer in consumers:
        await consumer.sub("crowded", "c")
    conn = await _conn(server)
    await conn.send(commands.sub("crowded", "c"))
    assert await conn.error() == b"E_SUB_FAILED SUB failed consumers for crowded:c exceeds limit of 2"
    assert await conn.closed()
    other = await _conn(server)
    await other.sub("crowded", "other_channel")  # the limit is per channel


@pytest.mark.parametrize("asked,negotiated", [(4, 4), (5, 4), (1, 1)])
async def test_max_deflate_level(start_nsqd, asked, negotiated):
    from transport_helpers import open_upgrading

    server = await start_nsqd(max_deflate_level=4, http_address="")
    conn = await open_upgrading(server.tcp_address)
    resp = await conn.negotiate(deflate=True, deflate_level=asked)
    assert (resp["deflate_level"], resp["max_deflate_level"]) == (negotiated, 4)
    (client,) = server.nsqd.clients.values()
    assert conn.stream.codec.level == negotiated
    await conn.pub("deflated", b"x")
    assert client.deflate


@pytest.mark.parametrize("level,ok", [(1, True), (9, True), (0, False), (10, False)])
def test_max_deflate_level_option_range(level, ok):
    if ok:
        assert Options(max_deflate_level=level).max_deflate_level == level
    else:
        with pytest.raises(ValueError, match=r"--max-deflate-level must be \[1,9\]"):
            Options(max_deflate_level=level)
