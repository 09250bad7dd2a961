"""Connection handshake against a scripted peer: upgrades, leftovers, AUTH answers."""

from __future__ import annotations

import json

import pytest
import trio
import trio.testing

from client.compression import CompressedStream, SnappyCodec
from client.config import ClientConfig
from client.connection import Connection, OpenStream
from client.errors import IdentifyError
from client.handshake import AuthResponse, IdentifyResponse
from client.protocol import MAGIC_V2, CommandReader, encode_error, encode_response

ADDR = "127.0.0.1:4150"


class Peer:
    """The server end of a memory stream pair, read command by command."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = CommandReader()
        self.commands: list = []
        self.magic = b""

    async def command(self):  # type: ignore[no-untyped-def]
        while not self.commands:
            data = await self.stream.receive_some(65536)
            assert data, "client closed"
            if len(self.magic) < 4:
                take = 4 - len(self.magic)
                self.magic += data[:take]
                data = data[take:]
            self.reader.feed(data)
            self.commands.extend(self.reader.commands())
        return self.commands.pop(0)


def pair() -> tuple[OpenStream, Peer]:
    client_end, server_end = trio.testing.memory_stream_pair()
    peer = Peer(server_end)

    async def open_stream(host: str, port: int) -> trio.abc.Stream:
        return client_end

    return open_stream, peer


def test_identify_and_auth_response_parsing() -> None:
    resp = IdentifyResponse.from_json(b'{"deflate": true, "deflate_level": 3, "snappy": false}')
    assert resp.deflate and resp.deflate_level == 3
    auth = AuthResponse.from_json(b'{"identity":"a","identity_url":"u","permission_count":2}')
    assert auth == AuthResponse("a", "u", 2)
    with pytest.raises(IdentifyError):
        AuthResponse.from_json(b"OK")


async def test_frames_after_identify_answer_are_not_lost(nursery: trio.Nursery) -> None:
    open_stream, peer = pair()
    responses: list[bytes] = []
    conn = Connection(ADDR, open_stream=open_stream,
                      on_message=lambda c, data: responses.append(data))

    async def serve() -> None:
        cmd = await peer.command()
        assert peer.magic == MAGIC_V2 and cmd.name == b"IDENTIFY"
        sent = json.loads(cmd.body)
        assert (sent["tls_v1"], sent["snappy"], sent["deflate"]) == (False, False, False)
        # the answer and a heartbeat in one write: the heartbeat must be answered
        await peer.stream.send_all(encode_response(b'{"max_rdy_count": 7}') + encode_response(b"_heartbeat_"))
        assert (await peer.command()).name == b"NOP"

    async with trio.open_nursery() as inner:
        inner.start_soon(serve)
        await nursery.start(conn.run)
    assert conn.identify is not None and conn.identify.max_rdy_count == 7
    conn.abort()


async def test_snappy_upgrade_reads_compressed_ok_sent_with_the_answer(nursery: trio.Nursery) -> None:
    open_stream, peer = pair()
    conn = Connection(ADDR, ClientConfig(snappy=True), open_stream=open_stream)
    codec = SnappyCodec()

    async def serve() -> None:
        cmd = await peer.command()
        assert json.loads(cmd.body)["snappy"] is True
        # plain answer, compressed OK and a compressed heartbeat in one write
        await peer.stream.send_all(encode_response(b'{"snappy": true}')
                                   + codec.compress(encode_response(b"OK") + encode_response(b"_heartbeat_")))
        data = await peer.stream.receive_some(65536)
        server_side = SnappyCodec()
        assert server_side.decompress(data) == b"NOP\n"

    async with trio.open_nursery() as inner:
        inner.start_soon(serve)
        await nursery.start(conn.run)
    assert isinstance(conn._stream, CompressedStream)
    conn.abort()


async def test_upgrade_not_asked_for_is_refused(nursery: trio.Nursery) -> None:
    open_stream, peer = pair()
    conn = Connection(ADDR, open_stream=open_stream)

    async def serve() -> None:
        await peer.command()
        await peer.stream.send_all(encode_response(b'{"deflate": true}'))

    nursery.start_soon(serve)
    with pytest.raises(IdentifyError, match="did not ask for"):
        await nursery.start(conn.run)


async def test_upgrade_ok_must_be_ok(nursery: trio.Nursery) -> None:
    open_stream, peer = pair()
    conn = Connection(ADDR, ClientConfig(snappy=True), open_stream=open_stream)

    async def serve() -> None:
        await peer.command()
        await peer.stream.send_all(encode_response(b'{"snappy": true}')
                                   + SnappyCodec().compress(encode_response(b"NO")))

    nursery.start_soon(serve)
    with pytest.raises(IdentifyError, match="unexpected answer to compression upgrade"):
        await nursery.start(conn.run)


async def test_auth_refused_and_accepted(nursery: trio.Nursery) -> None:
    for answer, ok in ((encode_error(b"E_AUTH_FAILED AUTH failed"), False),
                       (encode_response(b'{"identity":"bob","identity_url":"","permission_count":1}'), True)):
        open_stream, peer = pair()
        conn = Connection(ADDR, ClientConfig(auth_secret="pw"), open_stream=open_stream)

        async def serve() -> None:  # awaited within this iteration
            await peer.command()  # noqa: B023
            await peer.stream.send_all(encode_response(b'{"auth_required": true}'))  # noqa: B023
            cmd = await peer.command()  # noqa: B023
            assert (cmd.name, cmd.body) == (b"AUTH", b"pw")
            await peer.stream.send_all(answer)  # noqa: B023

        nursery.start_soon(serve)
        if ok:
            await nursery.start(conn.run)
            assert conn.auth == AuthResponse("bob", "", 1)
            conn.abort()
        else:
            with pytest.raises(IdentifyError, match="E_AUTH_FAILED"):
                await nursery.start(conn.run)


async def test_abort_during_handshake(nursery: trio.Nursery) -> None:
    open_stream, peer = pair()
    conn = Connection(ADDR, open_stream=open_stream)

    async def serve() -> None:
        await peer.command()
        conn.abort()  # no answer ever comes

    nursery.start_soon(serve)
    with pytest.raises(Exception) as info:
        await nursery.start(conn.run)
    assert "handshake" in str(info.value)
    assert conn.closed
