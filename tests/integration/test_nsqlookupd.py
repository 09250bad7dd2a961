"""nsqlookupd over real sockets on 127.0.0.1 (after nsqlookupd/*_test.go)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from client.protocol import MAGIC_V1, ResponseReader, commands
from nsqlookupd import NSQLookupd, Options

HOST_ADDR = "ip.address"
TCP_PORT = 5000
HTTP_PORT = 5555
NSQD_VERSION = "fake-version"
NODE = {"tcp_port": TCP_PORT, "http_port": HTTP_PORT, "broadcast_address": HOST_ADDR,
        "hostname": HOST_ADDR, "version": NSQD_VERSION}
TIMEOUT = 10


class V1Client:
    """A bare nsqd-side V1 connection (go-nsq's Command.WriteTo + ReadResponse)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.reader = ResponseReader()
        self.pending: list[bytes] = []

    @classmethod
    async def connect(cls, lookupd: NSQLookupd, magic: bytes = MAGIC_V1) -> V1Client:
        assert lookupd.real_tcp_addr is not None
        stream = await trio.open_tcp_stream(*lookupd.real_tcp_addr)
        await stream.send_all(magic)
        return cls(stream)

    async def read(self) -> bytes | None:
        """The next response, or None at EOF."""
        with trio.fail_after(TIMEOUT):
            while not self.pending:
                data = await self.stream.receive_some(65536)
                if not data:
                    return None
                self.reader.feed(data)
                self.pending.extend(self.reader.responses())
        return self.pending.pop(0)

    async def command(self, cmd: bytes) -> bytes | None:
        await self.stream.send_all(cmd)
        return await self.read()

    async def identify(self, **fields: Any) -> dict[str, Any]:
        resp = await self.command(commands.identify({**NODE, **fields}))
        assert resp is not None
        result: dict[str, Any] = json.loads(resp)
        return result

    async def aclose(self) -> None:
        await self.stream.aclose()


def options(**kw: Any) -> Options:
    return Options(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                   broadcast_address="lookupd.test", **kw)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Real-time speed, plus ``jump()`` for timeouts measured in minutes."""
    return trio.testing.MockClock(rate=1.0)


@pytest.fixture
async def lookupd(nursery: trio.Nursery) -> NSQLookupd:
    result: NSQLookupd = await nursery.start(NSQLookupd(options()).run)
    return result


@pytest.fixture
async def http(lookupd: NSQLookupd) -> AsyncIterator[httpx.AsyncClient]:
    assert lookupd.real_http_addr is not None
    host, port = lookupd.real_http_addr
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=TIMEOUT) as client:
        yield client


async def registered(lookupd: NSQLookupd, *regs: tuple[str, str | None], **fields: Any) -> V1Client:
    """An identified connection with registrations; keep a reference to keep it open."""
    conn = await V1Client.connect(lookupd)
    await conn.identify(**fields)
    for topic, channel in regs:
        assert await conn.command(commands.register(topic, channel)) == b"OK"
    return conn


async def producers_of(http: httpx.AsyncClient, topic: str) -> list[dict[str, Any]]:
    r = await http.get("/lookup", params={"topic": topic})
    assert r.status_code == 200, r.text
    result: list[dict[str, Any]] = r.json()["producers"]
    return result


async def wait_until_closed(conn: V1Client) -> None:
    assert await conn.read() is None


# -- TCP -----------------------------------------------------------------------


async def test_basic_lookupd(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    assert lookupd.db.find_registrations("topic", "*", "*") == []
    conn = await V1Client.connect(lookupd)
    info = await conn.identify()
    assert info == {"broadcast_address": "lookupd.test", "hostname": info["hostname"],
                    "http_port": lookupd.real_http_addr[1],  # type: ignore[index]
                    "tcp_port": lookupd.real_tcp_addr[1], "version": "1.3.0"}  # type: ignore[index]
    assert await conn.command(commands.register("connectmsg", "channel1")) == b"OK"

    nodes = (await http.get("/nodes")).json()["producers"]
    assert len(nodes) == 1
    assert (await http.get("/topics")).json() == {"topics": ["connectmsg"]}

    r = await http.get("/lookup", params={"topic": "connectmsg"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert r.headers["x-nsq-content-type"] == "nsq; version=1.0"
    doc = r.json()
    assert list(doc) == ["channels", "producers"]
    assert doc["channels"] == ["channel1"]
    (producer,) = doc["producers"]
    local_host, local_port = conn.stream.socket.getsockname()[:2]
    assert producer == {"remote_address": f"{local_host}:{local_port}", "hostname": HOST_ADDR,
                        "broadcast_address": HOST_ADDR, "tcp_port": TCP_PORT,
                        "http_port": HTTP_PORT, "version": NSQD_VERSION}
    assert list(producer) == ["remote_address", "hostname", "broadcast_address",
                              "tcp_port", "http_port", "version"]

    # a dropped connection takes the producer away; topic and channel stay
    await conn.aclose()
    with trio.fail_after(TIMEOUT):
        while await producers_of(http, "connectmsg"):
            await trio.sleep(0.01)
    doc = (await http.get("/lookup", params={"topic": "connectmsg"})).json()
    assert doc == {"channels": ["channel1"], "producers": []}
    assert (await http.get("/nodes")).json() == {"producers": []}


async def test_channel_unregister(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    conn = await registered(lookupd, ("channel_unregister", "ch1"))
    assert await conn.command(commands.unregister("channel_unregister", "ch1")) == b"OK"
    assert len(lookupd.db.find_registrations("topic", "channel_unregister", "")) == 1
    # the channel is still known, just without this producer
    doc = (await http.get("/lookup", params={"topic": "channel_unregister"})).json()
    assert doc["channels"] == ["ch1"]
    assert len(doc["producers"]) == 1
    assert (await http.get("/channels", params={"topic": "channel_unregister"})).json() == {
        "channels": ["ch1"]}


async def test_bad_magic_gets_e_bad_protocol(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    conn = await V1Client.connect(lookupd, magic=b"  V2")
    assert await conn.read() == b"E_BAD_PROTOCOL"
    await wait_until_closed(conn)
    assert (await http.get("/ping")).text == "OK"


async def test_invalid_command_is_fatal(lookupd: NSQLookupd) -> None:
    conn = await V1Client.connect(lookupd)
    assert await conn.command(b"PING\n") == b"OK"
    assert await conn.command(b"INVALID_COMMAND\n") == b"E_INVALID invalid command INVALID_COMMAND"
    await wait_until_closed(conn)


async def test_register_before_identify_is_fatal(lookupd: NSQLookupd) -> None:
    conn = await V1Client.connect(lookupd)
    assert await conn.command(commands.register("t")) == b"E_INVALID client must IDENTIFY"
    await wait_until_closed(conn)
    assert lookupd.db.find_registrations("topic", "*", "") == []


async def test_failed_identify_registers_nothing(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    conn = await V1Client.connect(lookupd)
    resp = await conn.command(commands.identify({**NODE, "http_port": 0}))
    assert resp == b"E_BAD_BODY IDENTIFY missing fields"
    await wait_until_closed(conn)
    assert (await http.get("/nodes")).json() == {"producers": []}


async def test_garbage_never_takes_the_daemon_down(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    rng = random.Random(1234)
    good = await registered(lookupd, ("survivor", None))
    for i in range(30):
        stream = await trio.open_tcp_stream(*lookupd.real_tcp_addr)  # type: ignore[misc]
        prefix = MAGIC_V1 if i % 2 else b""
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 4096)))
        if i % 3 == 0:
            junk = b"IDENTIFY\n" + junk
        with contextlib.suppress(trio.BrokenResourceError):
            await stream.send_all(prefix + junk)
        await stream.aclose()
    assert await good.command(commands.ping()) == b"OK"
    assert len(await producers_of(http, "survivor")) == 1


async def test_many_nodes_and_disconnects(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    conns = [await registered(lookupd, ("shared", f"c{i}"), ("own", None),
                              broadcast_address=f"node{i}") for i in range(5)]
    assert len(await producers_of(http, "shared")) == 5
    for conn in conns[:3]:
        await conn.aclose()
    with trio.fail_after(TIMEOUT):
        while len(await producers_of(http, "shared")) != 2:
            await trio.sleep(0.01)
    nodes = (await http.get("/nodes")).json()["producers"]
    assert sorted(n["broadcast_address"] for n in nodes) == ["node3", "node4"]
    assert all(n["topics"] == ["shared", "own"] for n in nodes)


# -- timeouts and tombstones (virtual time jumps) ---------------------------------


async def test_inactive_nodes(nursery: trio.Nursery, clock: trio.testing.MockClock) -> None:
    lookupd: NSQLookupd = await nursery.start(
        NSQLookupd(options(inactive_producer_timeout=0.2)).run)
    conn = await registered(lookupd, ("inactive_nodes", "channel1"))
    host, port = lookupd.real_http_addr  # type: ignore[misc]
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=TIMEOUT) as http:
        (node,) = (await http.get("/nodes")).json()["producers"]
        assert node["topics"] == ["inactive_nodes"]
        assert node["tombstones"] == [False]
        clock.jump(0.25)
        assert (await http.get("/nodes")).json() == {"producers": []}
        assert await producers_of(http, "inactive_nodes") == []
        # a PING makes it active again
        assert await conn.command(commands.ping()) == b"OK"
        assert len(await producers_of(http, "inactive_nodes")) == 1


async def test_default_inactive_timeout_is_five_minutes(
        lookupd: NSQLookupd, http: httpx.AsyncClient, clock: trio.testing.MockClock) -> None:
    _node = await registered(lookupd, ("t", None))
    clock.jump(299)
    assert len(await producers_of(http, "t")) == 1
    clock.jump(2)
    assert await producers_of(http, "t") == []


async def test_tombstone_recover(lookupd: NSQLookupd, http: httpx.AsyncClient,
                                 clock: trio.testing.MockClock) -> None:
    _node = await registered(lookupd, ("tombstone_recover", "channel1"), ("tombstone_recover2", "channel2"))
    r = await http.post("/topic/tombstone", params={"topic": "tombstone_recover",
                                                    "node": f"{HOST_ADDR}:{HTTP_PORT}"})
    assert r.status_code == 200
    assert await producers_of(http, "tombstone_recover") == []
    assert len(await producers_of(http, "tombstone_recover2")) == 1
    (node,) = (await http.get("/nodes")).json()["producers"]
    assert dict(zip(node["topics"], node["tombstones"], strict=True)) == {
        "tombstone_recover": True, "tombstone_recover2": False}
    clock.jump(44)
    assert await producers_of(http, "tombstone_recover") == []
    clock.jump(1.5)  # default lifetime 45 s
    assert len(await producers_of(http, "tombstone_recover")) == 1
    (node,) = (await http.get("/nodes")).json()["producers"]
    assert node["tombstones"] == [False, False]


async def test_tombstone_unregister(lookupd: NSQLookupd, http: httpx.AsyncClient,
                                    clock: trio.testing.MockClock) -> None:
    conn = await registered(lookupd, ("tombstone_unregister", "channel1"))
    await http.post("/topic/tombstone", params={"topic": "tombstone_unregister",
                                                "node": f"{HOST_ADDR}:{HTTP_PORT}"})
    assert await producers_of(http, "tombstone_unregister") == []
    assert await conn.command(commands.unregister("tombstone_unregister")) == b"OK"
    clock.jump(46)
    assert await producers_of(http, "tombstone_unregister") == []


async def test_tombstone_of_other_node_changes_nothing(
        lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    _node = await registered(lookupd, ("t", None))
    await http.post("/topic/tombstone", params={"topic": "t", "node": f"{HOST_ADDR}:1"})
    assert len(await producers_of(http, "t")) == 1


# -- HTTP API ------------------------------------------------------------------


async def test_ping_and_info(http: httpx.AsyncClient) -> None:
    r = await http.get("/ping")
    assert (r.status_code, r.text) == (200, "OK")
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert "x-nsq-content-type" not in r.headers
    r = await http.get("/info")
    assert r.content == b'{"version":"1.3.0"}'
    assert r.headers["x-nsq-content-type"] == "nsq; version=1.0"


@pytest.mark.parametrize(
    ("method", "path", "params", "status", "message"),
    [
        ("GET", "/lookup", {}, 400, "MISSING_ARG_TOPIC"),
        ("GET", "/lookup", {"topic": "nope"}, 404, "TOPIC_NOT_FOUND"),
        ("GET", "/channels", {}, 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/create", {}, 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/create", {"topic": "bad$"}, 400, "INVALID_ARG_TOPIC"),
        ("POST", "/topic/create", {"topic": ""}, 400, "INVALID_ARG_TOPIC"),
        ("POST", "/topic/delete", {}, 400, "MISSING_ARG_TOPIC"),
        ("POST", "/channel/create", {}, 400, "MISSING_ARG_TOPIC"),
        ("POST", "/channel/create", {"topic": "bad$"}, 400, "INVALID_ARG_TOPIC"),
        ("POST", "/channel/create", {"topic": "t"}, 400, "MISSING_ARG_CHANNEL"),
        ("POST", "/channel/create", {"topic": "t", "channel": "bad$"}, 400, "INVALID_ARG_CHANNEL"),
        ("POST", "/channel/delete", {}, 400, "MISSING_ARG_TOPIC"),
        ("POST", "/channel/delete", {"topic": "bad$"}, 400, "INVALID_ARG_TOPIC"),
        ("POST", "/channel/delete", {"topic": "t"}, 400, "MISSING_ARG_CHANNEL"),
        ("POST", "/channel/delete", {"topic": "t", "channel": "c"}, 404, "CHANNEL_NOT_FOUND"),
        ("POST", "/topic/tombstone", {}, 400, "MISSING_ARG_TOPIC"),
        ("POST", "/topic/tombstone", {"topic": "t"}, 400, "MISSING_ARG_NODE"),
        ("GET", "/topic/create", {"topic": "t"}, 405, "METHOD_NOT_ALLOWED"),
        ("GET", "/nope", {}, 404, "NOT_FOUND"),
    ],
)
async def test_http_errors(http: httpx.AsyncClient, method: str, path: str,
                           params: dict[str, str], status: int, message: str) -> None:
    r = await http.request(method, path, params=params)
    assert r.status_code == status
    assert r.json() == {"message": message}
    assert r.headers["content-type"] == "application/json; charset=utf-8"


async def test_create_and_delete_topic(http: httpx.AsyncClient) -> None:
    r = await http.post("/topic/create", params={"topic": "sampletopicA"})
    assert (r.status_code, r.content) == (200, b"")
    assert "content-type" not in r.headers
    assert r.headers["x-nsq-content-type"] == "nsq; version=1.0"
    assert (await http.get("/topics")).json() == {"topics": ["sampletopicA"]}
    assert (await http.get("/lookup", params={"topic": "sampletopicA"})).json() == {
        "channels": [], "producers": []}
    await http.post("/channel/create", params={"topic": "sampletopicA", "channel": "c"})
    r = await http.post("/topic/delete", params={"topic": "sampletopicA"})
    assert r.status_code == 200
    assert (await http.get("/topics")).json() == {"topics": []}
    assert (await http.get("/channels", params={"topic": "sampletopicA"})).json() == {"channels": []}
    # deleting what doesn't exist is fine
    assert (await http.post("/topic/delete", params={"topic": "sampletopicA"})).status_code == 200


async def test_create_and_delete_channel(http: httpx.AsyncClient) -> None:
    for channel in ("c1", "c2"):
        r = await http.post("/channel/create", params={"topic": "sampletopicB", "channel": channel})
        assert r.status_code == 200
    assert (await http.get("/topics")).json() == {"topics": ["sampletopicB"]}
    assert (await http.get("/channels", params={"topic": "sampletopicB"})).json() == {
        "channels": ["c1", "c2"]}
    r = await http.post("/channel/delete", params={"topic": "sampletopicB", "channel": "c1"})
    assert r.status_code == 200
    assert (await http.get("/channels", params={"topic": "sampletopicB"})).json() == {
        "channels": ["c2"]}


async def test_topic_delete_drops_registrations_of_live_nodes(
        lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    conn = await registered(lookupd, ("t", "c"))
    await http.post("/topic/delete", params={"topic": "t"})
    assert (await http.get("/lookup", params={"topic": "t"})).status_code == 404
    (node,) = (await http.get("/nodes")).json()["producers"]
    assert node["topics"] == []
    # the nsqd re-registers on its next change, as with NSQ
    assert await conn.command(commands.register("t")) == b"OK"
    assert len(await producers_of(http, "t")) == 1


async def test_nodes_shape(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    conn = await registered(lookupd, ("a", "c"), ("b", None))
    r = await http.get("/nodes")
    (node,) = r.json()["producers"]
    local_host, local_port = conn.stream.socket.getsockname()[:2]
    assert node == {"remote_address": f"{local_host}:{local_port}", "hostname": HOST_ADDR,
                    "broadcast_address": HOST_ADDR, "tcp_port": TCP_PORT, "http_port": HTTP_PORT,
                    "version": NSQD_VERSION, "tombstones": [False, False], "topics": ["a", "b"]}
    assert list(node) == ["remote_address", "hostname", "broadcast_address", "tcp_port",
                          "http_port", "version", "tombstones", "topics"]


async def test_debug_shape(lookupd: NSQLookupd, http: httpx.AsyncClient) -> None:
    assert (await http.get("/debug")).json() == {}
    conn = await registered(lookupd, ("t", "c"))
    await http.post("/topic/create", params={"topic": "empty"})
    doc = (await http.get("/debug")).json()
    assert list(doc) == ["channel:t:c", "client::", "topic:t:"]
    (entry,) = doc["topic:t:"]
    local_host, local_port = conn.stream.socket.getsockname()[:2]
    assert sorted(entry) == list(entry)
    assert entry["id"] == f"{local_host}:{local_port}"
    assert entry["tombstoned"] is False
    assert entry["tombstoned_at"] == -6795364578871345152
    assert abs(entry["last_update"] - time.time_ns()) < 60 * 10**9


# -- the command line --------------------------------------------------------------


async def test_subprocess_listens_serves_and_exits_cleanly(tmp_path: Path) -> None:
    config = tmp_path / "nsqlookupd.toml"
    config.write_text('broadcast_address = "from-config"\nlog_level = "debug"\n')
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "nsqlookupd", "--tcp-address", "127.0.0.1:0",
         "--http-address", "127.0.0.1:0", "--config", str(config)],
        stderr=subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.stderr is not None
    try:
        found: dict[str, str] = {}
        buf = b""
        with trio.fail_after(30):
            while len(found) < 2:
                chunk = await proc.stderr.receive_some()
                assert chunk, f"nsqlookupd exited early: {buf.decode()}"
                buf += chunk
                for m in re.finditer(rb"(TCP|HTTP): listening on (\S+)", buf):
                    found[m.group(1).decode()] = m.group(2).decode()
        assert buf.startswith(b"[nsqlookupd] ")
        async with httpx.AsyncClient(base_url=f"http://{found['HTTP']}", timeout=TIMEOUT) as http:
            assert (await http.get("/ping")).text == "OK"
            host, port = found["TCP"].rsplit(":", 1)
            stream = await trio.open_tcp_stream(host, int(port))
            conn = V1Client(stream)
            await stream.send_all(MAGIC_V1)
            info = await conn.identify()
            assert info["broadcast_address"] == "from-config"
            assert info["tcp_port"] == int(port)
            assert await conn.command(commands.register("sub_topic")) == b"OK"
            assert len(await producers_of(http, "sub_topic")) == 1
            await conn.aclose()
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "nsqlookupd", "--version"],
                         capture_output=True, text=True, timeout=60, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert re.fullmatch(r"nsqlookupd v1\.3\.0 \(built w/python[\d.]+ trio-nsq/[\w.+-]+\)\n", out.stdout)


def test_bind_failure_exits_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "nsqlookupd", "--tcp-address", f"127.0.0.1:{port}",
             "--http-address", "127.0.0.1:0"],
            capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 1
    assert f"FATAL: listen (127.0.0.1:{port}) failed - " in out.stderr


@pytest.mark.interop
async def test_gnsq_lookupd_client(lookupd: NSQLookupd) -> None:
    gnsq = pytest.importorskip("gnsq")
    host, port = lookupd.real_http_addr  # type: ignore[misc]
    _node = await registered(lookupd, ("interop", "ch"))

    def use_client() -> dict[str, Any]:
        client = gnsq.LookupdClient(host, port)
        client.create_topic("made_by_gnsq")
        client.create_channel("made_by_gnsq", "c")
        return {"lookup": client.lookup("interop"), "topics": client.topics(),
                "channels": client.channels("made_by_gnsq"), "nodes": client.nodes(),
                "ping": client.ping(), "info": client.info()}

    got = await trio.to_thread.run_sync(use_client)
    assert got["lookup"]["channels"] == ["ch"]
    assert got["lookup"]["producers"][0]["broadcast_address"] == HOST_ADDR
    assert got["topics"] == {"topics": ["interop", "made_by_gnsq"]}
    assert got["channels"] == {"channels": ["c"]}
    assert got["nodes"]["producers"][0]["topics"] == ["interop"]
    assert got["ping"] == b"OK"
    assert got["info"] == {"version": "1.3.0"}
