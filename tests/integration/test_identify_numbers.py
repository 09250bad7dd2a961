"""IDENTIFY numbers Go's JSON has no int for (Infinity, NaN, 1e400, beyond int64): E_BAD_BODY
and a close, as any other mistyped field; the daemon and its other clients carry on."""

from __future__ import annotations

import struct

import pytest
from helpers import RawConn

from client.protocol import commands


@pytest.mark.parametrize("literal", [b"Infinity", b"-Infinity", b"NaN", b"1e400", b"9223372036854775808"])
async def test_identify_non_int64_number_is_bad_body(nsqd_server, literal: bytes) -> None:
    conn = await RawConn.open(nsqd_server.tcp_address)
    body = b'{"heartbeat_interval": %s}' % literal
    await conn.send(b"IDENTIFY\n" + struct.pack(">l", len(body)) + body)
    assert await conn.error() == b"E_BAD_BODY IDENTIFY failed to decode JSON body"
    assert await conn.closed()
    other = await RawConn.open(nsqd_server.tcp_address)
    await other.send(commands.pub("after", b"x"))
    assert await other.response() == b"OK"
