"""Connection: handshake, pipelined requests, heartbeats, deadlines, batching, closing."""

from __future__ import annotations

import json

import pytest
import trio
import trio.lowlevel
import trio.testing
from client_fakes import FakeNetwork

from client.config import ClientConfig
from client.connection import Connection, ConnectionState, parse_address
from client.errors import (
    BadTopicError,
    ConnectionClosedError,
    FinishFailedError,
    IdentifyError,
    NotConnectedError,
    ServerError,
)
from client.handshake import IdentifyResponse
from client.protocol import commands

ADDR = "127.0.0.1:4150"


def test_parse_address() -> None:
    assert parse_address("127.0.0.1:4150") == ("127.0.0.1", 4150)
    assert parse_address("[::1]:4150") == ("::1", 4150)
    assert parse_address("nsqd.local:1") == ("nsqd.local", 1)
    for bad in ("nsqd", ":4150", "host:", "host:port"):
        with pytest.raises(ValueError):
            parse_address(bad)


def test_identify_response_parsing() -> None:
    assert IdentifyResponse.from_json(b"OK") == IdentifyResponse()
    resp = IdentifyResponse.from_json(b'{"max_rdy_count": 10, "msg_timeout": 5000, "auth_required": true}')
    assert resp.max_rdy_count == 10
    assert resp.msg_timeout == 5.0
    assert resp.auth_required
    with pytest.raises(IdentifyError):
        IdentifyResponse.from_json(b"{not json")


async def test_handshake_sends_identify_and_parses_answer(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    config = ClientConfig(client_id="cid", hostname="host.example", heartbeat_interval=5.0, msg_timeout=12.5)
    conn = Connection(ADDR, config, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        assert await nursery.start(conn.run) is conn
        assert conn.is_connected and conn.state is ConnectionState.CONNECTED
        assert conn.identify is not None and conn.identify.max_rdy_count == 2500
        sent = fake.clients[0].identify
        assert sent["client_id"] == "cid"
        assert sent["hostname"] == "host.example"
        assert sent["feature_negotiation"] is True
        assert sent["heartbeat_interval"] == 5000
        assert sent["msg_timeout"] == 12500
        assert str(sent["user_agent"]).startswith("trio-nsq/")
        await conn.aclose()
    assert conn.closed and conn.error is None


async def test_dial_refused_raises_not_connected(network: FakeNetwork) -> None:
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        with pytest.raises(NotConnectedError):
            await nursery.start(conn.run)
    assert conn.closed


async def test_dial_timeout(autojump_clock: trio.testing.MockClock) -> None:
    async def never(host: str, port: int) -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError

    conn = Connection(ADDR, ClientConfig(dial_timeout=3.0), open_stream=never)
    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        with pytest.raises(NotConnectedError):
            await nursery.start(conn.run)
    assert trio.current_time() - start == pytest.approx(3.0)


async def test_identify_error_frame_raises_identify_error(network: FakeNetwork) -> None:
    network.add(ADDR).identify_error = b"E_BAD_BODY IDENTIFY heartbeat interval (999999999) is invalid"
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        with pytest.raises(IdentifyError, match="E_BAD_BODY"):
            await nursery.start(conn.run)


async def test_pipelined_requests_share_one_connection(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    fake.hold = trio.Event()
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        results: list[bytes] = []

        async def pub(i: int) -> None:
            results.append(await conn.request(commands.pub("t", b"%d" % i)))

        async with trio.open_nursery() as pubs:
            for i in range(100):
                pubs.start_soon(pub, i)
            # all 100 are written and awaiting answers while nsqd holds the first one
            while not (conn.pending_requests == 100 and conn.buffered_bytes == 0 and fake.commands[-1][1] == b"PUB"):
                await trio.sleep(0.01)
            assert results == []
            fake.hold.set()
        assert results == [b"OK"] * 100
        assert sorted(fake.published["t"]) == sorted(b"%d" % i for i in range(100))
        await conn.aclose()


async def test_fatal_error_maps_to_class_and_fails_the_rest(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    fake.error_hook = lambda c, name, params, body: (
        b"E_BAD_TOPIC PUB topic name 'x' is not valid" if name == b"PUB" and body == b"bad" else None
    )
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        outcomes: dict[bytes, BaseException | bytes] = {}

        async def pub(body: bytes) -> None:
            try:
                outcomes[body] = await conn.request(commands.pub("t", body))
            except (ServerError, ConnectionClosedError) as exc:
                outcomes[body] = exc

        async with trio.open_nursery() as pubs:
            for body in (b"a", b"bad", b"c"):
                pubs.start_soon(pub, body)
                await trio.lowlevel.checkpoint()
    assert outcomes[b"a"] == b"OK"
    bad = outcomes[b"bad"]
    assert isinstance(bad, BadTopicError) and bad.code == "E_BAD_TOPIC"
    assert "not valid" in bad.desc
    after = outcomes[b"c"]
    assert isinstance(after, ConnectionClosedError)
    assert after.__cause__ is bad  # nsqd closed the connection because of that error
    assert conn.error is bad


async def test_non_fatal_errors_go_to_callback(network: FakeNetwork) -> None:
    network.add(ADDR)
    errors: list[ServerError] = []
    conn = Connection(ADDR, open_stream=network.open_stream, on_error=lambda c, e: errors.append(e))
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        conn.write(commands.fin(b"0" * 16))
        assert await conn.request(commands.pub("t", b"x")) == b"OK"
        assert len(errors) == 1 and isinstance(errors[0], FinishFailedError)
        assert conn.is_connected
        await conn.aclose()


async def test_heartbeats_are_answered_with_nop(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    fake = network.add(ADDR)
    conn = Connection(ADDR, ClientConfig(heartbeat_interval=1.0), open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        await trio.sleep(10.5)
        assert conn.is_connected
        assert fake.clients[0].nops == 10
        await conn.aclose()


async def test_read_deadline_is_twice_the_heartbeat(
        network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    network.add(ADDR).heartbeats = False
    conn = Connection(ADDR, ClientConfig(heartbeat_interval=1.5), open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        start = trio.current_time()
        await conn.wait_closed()
        assert trio.current_time() - start == pytest.approx(3.0)
    assert isinstance(conn.error, ConnectionClosedError)
    assert "in time" in str(conn.error)


class CountingStream(trio.abc.HalfCloseableStream):
    """Wraps a stream, counting ``send_all`` calls; can stall sends."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.sends: list[bytes] = []
        self.stall: trio.Event | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.stall is not None:
            await self.stall.wait()
        self.sends.append(bytes(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.aclose()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_concurrent_writes_are_batched_into_few_sends(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    wrapped: list[CountingStream] = []

    async def open_stream(host: str, port: int) -> trio.abc.Stream:
        stream = CountingStream(await network.open_stream(host, port))
        wrapped.append(stream)
        return stream

    conn = Connection(ADDR, open_stream=open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        before = len(wrapped[0].sends)
        for i in range(500):
            conn.write(commands.touch(b"%016d" % i))
        assert await conn.request(commands.pub("t", b"x")) == b"OK"
        assert len(wrapped[0].sends) - before == 1  # 500 TOUCH + PUB in one send_all
        assert len(fake.touched) == 500
        await conn.aclose()


async def test_cancel_during_send_never_cuts_a_frame(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    wrapped: list[CountingStream] = []

    async def open_stream(host: str, port: int) -> trio.abc.Stream:
        stream = CountingStream(await network.open_stream(host, port))
        wrapped.append(stream)
        return stream

    conn = Connection(ADDR, ClientConfig(write_timeout=30.0), open_stream=open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        wrapped[0].stall = trio.Event()
        with trio.move_on_after(0.05):
            await conn.request(commands.pub("t", b"x" * 100_000))
        nursery.start_soon(conn.aclose)  # cancels nothing mid-write: the frame completes
        await trio.sleep(0.05)
        wrapped[0].stall.set()
    assert fake.published["t"] == [b"x" * 100_000]


async def test_write_timeout_kills_connection(network: FakeNetwork, autojump_clock: trio.testing.MockClock) -> None:
    network.add(ADDR)
    wrapped: list[CountingStream] = []

    async def open_stream(host: str, port: int) -> trio.abc.Stream:
        stream = CountingStream(await network.open_stream(host, port))
        wrapped.append(stream)
        return stream

    conn = Connection(ADDR, ClientConfig(write_timeout=2.0), open_stream=open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        wrapped[0].stall = trio.Event()
        with pytest.raises(ConnectionClosedError):
            await conn.request(commands.pub("t", b"x"))
    assert "timed out" in str(conn.error)


async def test_close_flushes_queued_commands_and_fails_new_ones(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        conn.write(commands.touch(b"a" * 16))
        conn.close()
        with pytest.raises(ConnectionClosedError):
            conn.write(commands.nop())
        with pytest.raises(ConnectionClosedError):
            await conn.request(commands.pub("t", b"x"))
        await conn.wait_closed()
    assert fake.touched == [b"a" * 16]
    assert conn.error is None


async def test_peer_close_is_reported(network: FakeNetwork) -> None:
    fake = network.add(ADDR)
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        await fake.kill()
        await conn.wait_closed()
    assert isinstance(conn.error, ConnectionClosedError)


async def test_run_twice_is_refused(network: FakeNetwork) -> None:
    network.add(ADDR)
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)
        with pytest.raises(RuntimeError):
            await conn.run()
        await conn.aclose()


async def test_auth_required_without_secret_fails(network: FakeNetwork) -> None:
    fake = network.add(ADDR)

    def hook(client: object, name: bytes, params: list[bytes], body: bytes | None) -> bytes | None:
        return None

    fake.error_hook = hook
    original = fake._handle

    async def handle(client, nursery, name, params, body):  # type: ignore[no-untyped-def]
        if name == b"IDENTIFY":
            client.identify = json.loads(body)
            from client.protocol import encode_response

            await client.stream.send_all(encode_response(b'{"auth_required": true, "max_rdy_count": 5}'))
            return True
        return await original(client, nursery, name, params, body)

    fake._handle = handle  # type: ignore[method-assign]
    conn = Connection(ADDR, open_stream=network.open_stream)
    async with trio.open_nursery() as nursery:
        with pytest.raises(IdentifyError, match="AUTH"):
            await nursery.start(conn.run)
