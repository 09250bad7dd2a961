"""ProtocolV2 without sockets: the command table's pure checks, and the read loop over
trio memory streams (the clock explicit where timing matters)."""

from __future__ import annotations

import dataclasses
import json
import struct
import time
from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from client.protocol import HEARTBEAT, Command, FrameReader, FrameType, commands
from nsqd import protocol_session
from nsqd.auth import AuthState, parse_auth_response
from nsqd.client_v2 import OUTPUT_LIMIT_FACTOR, ClientV2, State
from nsqd.errors import ClientError
from nsqd.nsqd import NSQD
from nsqd.options import Options
from nsqd.protocol_util import CommandSpec, Outcome
from nsqd.protocol_v2 import COMMANDS


@pytest.fixture
async def nsqd(tmp_path, nursery: trio.Nursery) -> AsyncIterator[NSQD]:
    node = NSQD(Options(data_path=str(tmp_path)))
    node._nursery = nursery  # what run() gives it: topics' tasks start here
    nursery.start_soon(node.meta.run)
    yield node
    node._nursery = None


def new_client(node: NSQD, client_id: int = 1) -> ClientV2:
    opts = node.options
    client = ClientV2(client_id, "memory:1", msg_timeout=opts.msg_timeout,
                      heartbeat_interval=opts.client_timeout / 2,
                      output_buffer_timeout=opts.output_buffer_timeout,
                      output_limit=OUTPUT_LIMIT_FACTOR * opts.max_output_buffer_size)
    node.clients[client.id] = client
    return client


class Peer:
    """The client end of a memory stream served by ``ProtocolV2.serve``."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.reader = FrameReader()
        self.frames: list[tuple[int, bytes]] = []

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def frame(self) -> tuple[int, bytes] | None:
        """The next frame, or None once the server closed the stream."""
        while not self.frames:
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.reader.feed(data)
            self.frames.extend((f.type, f.data) for f in self.reader.frames())
        return self.frames.pop(0)

    async def response(self) -> bytes:
        frame = await self.frame()
        assert frame is not None and frame[0] == FrameType.RESPONSE, frame
        return frame[1]

    async def error(self) -> bytes:
        frame = await self.frame()
        assert frame is not None and frame[0] == FrameType.ERROR, frame
        return frame[1]

    async def closed(self) -> bool:
        return await self.frame() is None


async def connect(node: NSQD, nursery: trio.Nursery, client_id: int = 1) -> tuple[Peer, ClientV2]:
    client_end, server_end = trio.testing.memory_stream_pair()
    client = new_client(node, client_id)

    async def serve() -> None:
        try:
            await node.protocol.serve(server_end, client, b"")
        finally:
            await trio.aclose_forcefully(server_end)

    nursery.start_soon(serve)
    return Peer(client_end), client


# --------------------------------------------------------------------------- check
def test_table_covers_every_command_with_a_body_limit_for_body_commands() -> None:
    assert set(COMMANDS) == {b"IDENTIFY", b"AUTH", b"SUB", b"RDY", b"FIN", b"REQ", b"TOUCH",
                             b"CLS", b"NOP", b"PUB", b"MPUB", b"DPUB"}
    assert {n for n, spec in COMMANDS.items() if spec.body_limit} == {
        b"IDENTIFY", b"AUTH", b"PUB", b"MPUB", b"DPUB"}


@pytest.mark.parametrize("state,cmd,error", [
    (State.INIT, Command(b"FIN", [b"0" * 16]), b"E_INVALID cannot FIN in current state"),
    (State.INIT, Command(b"RDY", [b"1"]), b"E_INVALID cannot RDY in current state"),
    (State.INIT, Command(b"CLS", []), b"E_INVALID cannot CLS in current state"),
    (State.SUBSCRIBED, Command(b"SUB", [b"t", b"c"]), b"E_INVALID cannot SUB in current state"),
    (State.SUBSCRIBED, Command(b"IDENTIFY", [], b"{}"),
     b"E_INVALID cannot IDENTIFY in current state"),
    (State.INIT, Command(b"WHAT", []), b"E_INVALID invalid command WHAT"),
    (State.INIT, Command(b"PUB", []), b"E_INVALID PUB insufficient number of parameters"),
    (State.INIT, Command(b"PUB", [b"bad!"]), b'E_BAD_TOPIC PUB topic name "bad!" is not valid'),
    (State.INIT, Command(b"PUB", [b"t"], None, 0), b"E_BAD_MESSAGE PUB invalid message body size 0"),
    (State.INIT, Command(b"DPUB", [b"t", b"x"]), b"E_INVALID DPUB could not parse timeout x"),
    (State.INIT, Command(b"SUB", [b"t", b"c!"]), b'E_BAD_CHANNEL SUB channel name "c!" is not valid'),
    (State.SUBSCRIBED, Command(b"RDY", [b"2501"]), b"E_INVALID RDY count 2501 out of range 0-2500"),
    (State.SUBSCRIBED, Command(b"FIN", []), b"E_INVALID FIN insufficient number of params"),
    (State.SUBSCRIBED, Command(b"TOUCH", [b"short"]), b"E_INVALID invalid message ID"),
    (State.CLOSING, Command(b"REQ", [b"0" * 16, b"-1"]), b"E_INVALID REQ could not parse timeout -1"),
    (State.INIT, Command(b"AUTH", [b"x"]), b"E_INVALID AUTH invalid number of parameters"),
    (State.INIT, Command(b"AUTH", [], b"secret"), b"E_AUTH_DISABLED AUTH disabled"),
    (State.INIT, Command(b"MPUB", [b"t"], None, 6 * 1024 * 1024),
     b"E_BAD_BODY MPUB body too big 6291456 > 5242880"),
])
async def test_check_refuses_with_nsq_texts(nsqd: NSQD, state: State, cmd: Command,
                                            error: bytes) -> None:
    client = new_client(nsqd)
    client.state = state
    before = dict(vars(client))
    first = nsqd.protocol.check(client, cmd)
    assert first is not None and first.wire() == error
    # pure: asked again, the same answer, and nothing changed
    second = nsqd.protocol.check(client, cmd)
    assert second is not None and second.wire() == error
    assert vars(client) == before and not nsqd.topics


@pytest.mark.parametrize("state,cmd", [
    (State.INIT, Command(b"PUB", [b"t"])),  # body not here yet: the line is fine
    (State.INIT, Command(b"PUB", [b"t"], b"x")),
    (State.INIT, Command(b"NOP", [])),
    (State.INIT, Command(b"IDENTIFY", [])),
    (State.CLOSING, Command(b"RDY", [b"nonsense"])),  # ignored after CLS, as NSQ
    (State.SUBSCRIBED, Command(b"RDY", [])),
])
async def test_check_allows(nsqd: NSQD, state: State, cmd: Command) -> None:
    client = new_client(nsqd)
    client.state = state
    assert nsqd.protocol.check(client, cmd) is None
    assert not nsqd.topics


async def test_tls_required_allows_only_identify(tmp_path) -> None:
    node = NSQD(Options(data_path=str(tmp_path)))
    node.options.tls_required = "true"  # the check reads the option, not the context
    client = new_client(node)
    err = node.protocol.check(client, Command(b"PUB", [b"t"], b"x"))
    assert err is not None and err.wire() == b"E_INVALID cannot PUB in current state (TLS required)"
    assert node.protocol.check(client, Command(b"IDENTIFY", [], b"{}")) is None


# --------------------------------------------------------------------------- loop
async def test_publish_and_consume_over_memory_streams(nsqd: NSQD, nursery: trio.Nursery) -> None:
    pub, _ = await connect(nsqd, nursery, 1)
    await pub.send(commands.pub("t", b"one") + commands.mpub("t", [b"two", b"three"])
                   + commands.pub("t", b"four") + commands.nop())
    assert [await pub.response() for _ in range(3)] == [b"OK"] * 3
    sub, client = await connect(nsqd, nursery, 2)
    await sub.send(commands.sub("t", "c") + commands.rdy(10))
    assert await sub.response() == b"OK"
    bodies = []
    ids = []
    while len(bodies) < 4:
        with trio.fail_after(10):
            frame = await sub.frame()
        assert frame is not None
        if frame[0] == FrameType.MESSAGE:
            bodies.append(frame[1][26:])
            ids.append(frame[1][10:26])
    assert sorted(bodies) == [b"four", b"one", b"three", b"two"]
    await sub.send(b"".join(commands.fin(i) for i in ids) + commands.cls())
    assert await sub.response() == b"CLOSE_WAIT"
    assert client.state == State.CLOSING
    assert client.finish_count == 4
    assert not nsqd.topics["t"].channels["c"].in_flight


async def test_pipelined_pubs_stop_at_the_first_bad_one(nsqd: NSQD, nursery: trio.Nursery) -> None:
    pub, _ = await connect(nsqd, nursery)
    good = b"".join(commands.pub("t", b"m%d" % i) for i in range(5))
    await pub.send(good + b"PUB t\n" + struct.pack(">l", 0) + commands.pub("t", b"never"))
    assert [await pub.response() for _ in range(5)] == [b"OK"] * 5
    assert await pub.error() == b"E_BAD_MESSAGE PUB invalid message body size 0"
    assert await pub.closed()
    assert nsqd.topics["t"].message_count == 5


async def test_a_body_command_runs_once_however_its_body_arrives(
        nsqd: NSQD, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    table = nsqd.protocol.commands
    spec = table[b"PUB"]
    calls = {"check": 0, "run": 0}

    def check(node: NSQD, client: ClientV2, cmd: Command) -> ClientError | None:
        calls["check"] += 1
        return spec.check(node, client, cmd)

    def run(node: NSQD, client: ClientV2, cmd: Command) -> Outcome:
        calls["run"] += 1
        return spec.run(node, client, cmd)

    monkeypatch.setitem(table, b"PUB", CommandSpec(spec.states, check, run, spec.body_limit))
    pub, _ = await connect(nsqd, nursery)
    data = commands.pub("t", b"x" * 1000)
    for i in range(0, len(data), 300):  # line, then the body in pieces
        await pub.send(data[i : i + 300])
        await trio.testing.wait_all_tasks_blocked()
    assert await pub.response() == b"OK"
    assert calls["run"] == 1 and calls["check"] >= 2
    assert nsqd.topics["t"].message_count == 1


async def test_bad_line_refused_before_its_body(nsqd: NSQD, nursery: trio.Nursery) -> None:
    pub, _ = await connect(nsqd, nursery)
    await pub.send(b"PUB bad!\n" + struct.pack(">l", 1000) + b"only a part")
    assert await pub.error() == b'E_BAD_TOPIC PUB topic name "bad!" is not valid'
    assert await pub.closed()
    assert not nsqd.topics


async def test_a_handler_bug_is_an_error_frame(nsqd: NSQD, nursery: trio.Nursery,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(node: NSQD, client: ClientV2, cmd: Command) -> Outcome:
        raise RuntimeError("a bug")

    table = nsqd.protocol.commands
    monkeypatch.setitem(table, b"NOP", dataclasses.replace(table[b"NOP"], run=broken))
    peer, _ = await connect(nsqd, nursery)
    await peer.send(commands.nop())
    assert await peer.error() == b"E_INVALID NOP failed"
    assert await peer.closed()


async def test_heartbeats_then_timeout_on_the_clock(
        tmp_path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    node = NSQD(Options(data_path=str(tmp_path)))
    peer, _ = await connect(node, nursery)
    await peer.send(commands.identify({"heartbeat_interval": 1000}))
    assert await peer.response() == b"OK"
    start = trio.current_time()
    assert await peer.response() == HEARTBEAT
    assert trio.current_time() - start == pytest.approx(1.0, abs=0.01)
    await peer.send(commands.nop())  # read deadline: two heartbeats after this
    nop_at = trio.current_time()
    frames = []
    while (frame := await peer.frame()) is not None:
        frames.append(frame)
    assert frames and set(frames) == {(FrameType.RESPONSE, HEARTBEAT)}
    assert trio.current_time() - nop_at == pytest.approx(2.0, abs=0.01)


async def test_identify_feature_negotiation_answers_json(nsqd: NSQD, nursery: trio.Nursery) -> None:
    peer, client = await connect(nsqd, nursery)
    await peer.send(commands.identify({"feature_negotiation": True, "client_id": "unit",
                                       "msg_timeout": 5000}))
    answer = json.loads(await peer.response())
    assert answer["msg_timeout"] == 5000 and answer["max_rdy_count"] == 2500
    assert not answer["tls_v1"] and not answer["snappy"] and not answer["deflate"]
    assert client.client_id == "unit"
    await peer.send(commands.sub("t", "c") + commands.identify({}))
    assert await peer.response() == b"OK"
    assert await peer.error() == b"E_INVALID cannot IDENTIFY in current state"
    assert await peer.closed()


async def test_expired_authorizations_are_refreshed_before_the_command_runs(
        tmp_path, nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch) -> None:
    grant = {"ttl": 60, "identity": "me", "authorizations": [
        {"topic": "^t$", "channels": [".*"], "permissions": ["publish"]}]}
    replies = [parse_auth_response(json.dumps(grant).encode(), now=time.time() - 120),  # expired
               parse_auth_response(json.dumps(grant).encode())]
    asked: list[bytes] = []

    async def fake_authd(addresses: list[str], **kwargs: object) -> AuthState:
        asked.append(str(kwargs["secret"]).encode())
        return replies.pop(0)

    monkeypatch.setattr(protocol_session, "query_any_authd", fake_authd)
    node = NSQD(Options(data_path=str(tmp_path), auth_http_addresses=["authd.invalid:1"]))
    node._nursery = nursery
    nursery.start_soon(node.meta.run)
    peer, client = await connect(node, nursery)
    await peer.send(commands.pub("t", b"early"))
    assert await peer.error() == b"E_AUTH_FIRST AUTH required before PUB"
    assert await peer.closed()

    peer, client = await connect(node, nursery, 2)
    await peer.send(commands.auth(b"s3cret"))
    assert json.loads(await peer.response())["identity"] == "me"
    assert client.auth_state is not None and client.auth_state.is_expired()
    await peer.send(commands.pub("t", b"x") + commands.pub("other", b"y"))
    assert await peer.response() == b"OK"  # after asking again, in order
    assert asked == [b"s3cret", b"s3cret"] and not replies
    assert await peer.error() == b'E_UNAUTHORIZED AUTH failed for PUB on "other" ""'
    assert await peer.closed()
    assert node.topics["t"].message_count == 1 and "other" not in node.topics
    node._nursery = None


@pytest.mark.parametrize("fields,answer", [
    ({"heartbeat_interval": 5}, b"E_BAD_BODY IDENTIFY heartbeat interval (5) is invalid"),
    ({"heartbeat_interval": -1, "output_buffer_size": -1, "output_buffer_timeout": -1}, b"OK"),
    ({"output_buffer_size": 63}, b"E_BAD_BODY IDENTIFY output buffer size (63) is invalid"),
    ({"sample_rate": -1}, b"E_BAD_BODY IDENTIFY sample rate (-1) is invalid"),
    ({"sample_rate": 99, "msg_timeout": 1000}, b"OK"),
    ({"msg_timeout": -1}, b"E_BAD_BODY IDENTIFY msg timeout (-1) is invalid"),
    ({"heartbeat_interval": 1.5}, b"E_BAD_BODY IDENTIFY failed to decode JSON body"),
])
async def test_identify_ranges(nsqd: NSQD, nursery: trio.Nursery, fields: dict[str, object],
                               answer: bytes) -> None:
    peer, client = await connect(nsqd, nursery)
    await peer.send(commands.identify(fields))
    frame = await peer.frame()
    assert frame is not None and frame[1] == answer
    if answer == b"OK":
        assert client.sample_rate == fields.get("sample_rate", 0)
        if fields.get("heartbeat_interval") == -1:
            assert client.heartbeat_interval == 0 and client.output_buffer_size == 1
    else:
        assert frame[0] == FrameType.ERROR and await peer.closed()
