"""client.lookup against a real in-process nsqlookupd (and nsqd registered with it), one
that is down, and ones that answer garbage: every read and write, and Go's error texts."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio
from helpers import addr, dead_address, wait_for

from client import lookup
from client.errors import HTTPAPIError, LookupdError
from internal.http import Request, Response, serve_http, text
from nsqd import NSQD
from nsqd import Options as NSQDOptions
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

TIMEOUT = 20.0


@dataclass
class Lookupd:
    http: httpx.AsyncClient
    address: str
    tcp_address: str


@pytest.fixture
async def lookupd(nursery: trio.Nursery) -> AsyncIterator[Lookupd]:
    opts = LookupdOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                          broadcast_address="127.0.0.1")
    daemon = await nursery.start(NSQLookupd(opts).run)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        yield Lookupd(http, addr(daemon.real_http_addr), addr(daemon.real_tcp_addr))


async def start_nsqd(nursery: trio.Nursery, tmp_path: Path, lk: Lookupd) -> str:
    """An nsqd registered with ``lk``; returns its HTTP address."""
    nsqd = NSQD(NSQDOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                            broadcast_address="127.0.0.1", data_path=str(tmp_path),
                            lookupd_tcp_addresses=[lk.tcp_address]))
    await nursery.start(nsqd.run)
    assert nsqd.bound is not None and nsqd.bound.http_address is not None
    return addr(nsqd.bound.http_address)


async def test_reads_and_writes(lookupd: Lookupd) -> None:
    http, a = lookupd.http, lookupd.address
    assert await lookup.topics(http, a) == ()
    assert await lookup.lookup(http, a, "absent") == lookup.LookupResult()  # 404: no producers

    await lookup.create_topic(http, a, "t1")
    await lookup.create_channel(http, a, "t1", "c1")
    await lookup.create_channel(http, a, "t2", "c2#ephemeral")  # creates the topic too
    assert sorted(await lookup.topics(http, a)) == ["t1", "t2"]
    assert await lookup.channels(http, a, "t1") == ("c1",)
    assert await lookup.channels(http, a, "t2") == ("c2#ephemeral",)
    result = await lookup.lookup(http, f"http://{a}/", "t1")
    assert result == lookup.LookupResult(producers=(), channels=("c1",))

    await lookup.delete_channel(http, a, "t1", "c1")
    assert await lookup.channels(http, a, "t1") == ()
    await lookup.delete_topic(http, a, "t2")
    assert await lookup.topics(http, a) == ("t1",)
    assert await lookup.channels(http, a, "t2") == ()


async def test_nodes_and_tombstone(nursery: trio.Nursery, tmp_path: Path, lookupd: Lookupd) -> None:
    http, a = lookupd.http, lookupd.address
    node = await start_nsqd(nursery, tmp_path, lookupd)
    await http.post(f"http://{node}/topic/create", params={"topic": "kept"})
    await http.post(f"http://{node}/topic/create", params={"topic": "gone"})

    async def both_registered() -> bool:
        peers = await lookup.nodes(http, a)
        return len(peers) == 1 and set(peers[0].topics) == {"kept", "gone"}

    await wait_for(both_registered, "both topics registered")
    [peer] = (await lookup.lookup(http, a, "gone")).producers
    assert f"{peer.broadcast_address}:{peer.http_port}" == node
    assert peer.tcp_address.startswith("127.0.0.1:") and peer.version and peer.hostname

    await lookup.tombstone_topic_producer(http, a, "gone", node)
    [peer] = await lookup.nodes(http, a)
    tombstoned = dict(zip(peer.topics, peer.tombstones, strict=True))
    assert tombstoned == {"kept": False, "gone": True}
    assert (await lookup.lookup(http, a, "gone")).producers == ()  # tombstoned producers are left out
    assert len((await lookup.lookup(http, a, "kept")).producers) == 1


async def test_refused_requests(lookupd: Lookupd) -> None:
    http, a = lookupd.http, lookupd.address
    with pytest.raises(LookupdError) as info:
        await lookup.create_topic(http, a, "no good")
    assert info.value.status == 400
    assert str(info.value) == 'got response 400 Bad Request "{\\"message\\":\\"INVALID_ARG_TOPIC\\"}"'
    with pytest.raises(LookupdError) as info:
        await lookup.create_channel(http, a, "t", "bad/name")
    assert info.value.status == 400 and isinstance(info.value, HTTPAPIError)
    assert "INVALID_ARG_CHANNEL" in str(info.value)
    await lookup.tombstone_topic_producer(http, a, "t", "nowhere:1")  # as Go: nothing to do is fine


async def test_down_lookupd() -> None:
    dead = dead_address()
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        with pytest.raises(LookupdError) as info:
            await lookup.topics(http, dead)
        assert info.value.status == 0
        assert str(info.value) == f'Get "http://{dead}/topics": dial tcp {dead}: connect: connection refused'
        with pytest.raises(LookupdError) as info:
            await lookup.delete_channel(http, dead, "t", "c#ephemeral")
        assert str(info.value) == (f'Post "http://{dead}/channel/delete?topic=t&channel=c%23ephemeral": '
                                   f"dial tcp {dead}: connect: connection refused")


async def test_hanging_lookupd_times_out(nursery: trio.Nursery) -> None:
    async def hang(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()

    [listener] = await nursery.start(functools.partial(trio.serve_tcp, hang, 0, host="127.0.0.1"))
    stuck = addr(listener.socket.getsockname())
    async with httpx.AsyncClient() as http:
        with trio.fail_after(TIMEOUT), pytest.raises(LookupdError) as info:
            await lookup.nodes(http, stuck, timeout=0.3)
    assert str(info.value) == f'Get "http://{stuck}/nodes": context deadline exceeded (Client.Timeout exceeded)'


GARBAGE: dict[str, bytes] = {
    "/topics": b"not json at all",
    "/channels": b'["a", "list"]',
    "/nodes": b'{"producers": [{"hostname": "no ports"}]}',
    "/lookup": b'{"channels": [1, 2], "producers": []}',
}


@pytest.fixture
async def garbage(nursery: trio.Nursery) -> str:
    """An HTTP server answering 200 with a bad body on nsqlookupd's read endpoints."""
    async def handler(req: Request) -> Response:
        return text(GARBAGE[req.path].decode())

    host, port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
    return f"{host}:{port}"


async def test_garbage_answers(garbage: str) -> None:
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        with pytest.raises(LookupdError, match=rf"^invalid JSON from http://{garbage}/topics - ") as info:
            await lookup.topics(http, garbage)
        assert info.value.status == 200
        with pytest.raises(LookupdError, match=rf"^unexpected answer from http://{garbage}/channels\?topic=t"):
            await lookup.channels(http, garbage, "t")
        with pytest.raises(LookupdError, match="broadcast_address"):
            await lookup.nodes(http, garbage)
        with pytest.raises(LookupdError, match="'channels' is not a list of str"):
            await lookup.lookup(http, garbage, "t")
