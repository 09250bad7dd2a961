"""nsqd's LookupPeers against real in-process nsqlookupds over 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import trio

from internal.netaddr import join_host_port
from nsqd.lookup import LookupPeers
from nsqlookupd import NSQLookupd, Options

IDENTITY = {"broadcast_address": "nsqd.test", "hostname": "nsqd-host", "tcp_port": 4150,
            "http_port": 4151, "version": "1.3.0"}
TIMEOUT = 10


class Topics:
    """Stand-in for nsqd's topic map."""

    def __init__(self, *items: tuple[str, str | None]) -> None:
        self.items = list(items)

    def __call__(self) -> list[tuple[str, str | None]]:
        return list(self.items)


async def start_lookupd(nursery: trio.Nursery, tcp_port: int = 0) -> NSQLookupd:
    opts = Options(tcp_address=f"127.0.0.1:{tcp_port}", http_address="127.0.0.1:0",
                   broadcast_address="lookupd.test")
    lookupd: NSQLookupd = await nursery.start(NSQLookupd(opts).run)
    return lookupd


def tcp(lookupd: NSQLookupd) -> str:
    assert lookupd.real_tcp_addr is not None
    return join_host_port(*lookupd.real_tcp_addr)


async def lookup(lookupd: NSQLookupd, topic: str) -> dict[str, Any] | None:
    assert lookupd.real_http_addr is not None
    host, port = lookupd.real_http_addr
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        r = await client.get(f"http://{host}:{port}/lookup", params={"topic": topic})
    if r.status_code == 404:
        return None
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


async def wait_for(check: Callable[[], Any]) -> None:
    """Poll an async condition owned by another component until it holds."""
    with trio.fail_after(TIMEOUT):
        while not await check():
            await trio.sleep(0.01)


def producers(lookupd: NSQLookupd, topic: str) -> int:
    return len(lookupd.db.find_producers("topic", topic, ""))


async def start_peers(nursery: trio.Nursery, addresses: list[str], topics: Topics) -> LookupPeers:
    peers = LookupPeers(addresses, identity=lambda: IDENTITY, registrations=topics,
                        backoff_initial=0.05, backoff_max=0.5)
    await nursery.start(peers.run)
    return peers


async def connected(peers: LookupPeers, n: int) -> bool:
    return sum(s.connected for s in peers.statistics()) == n


async def test_registers_with_a_real_lookupd(nursery: trio.Nursery) -> None:
    lookupd = await start_lookupd(nursery)
    topics = Topics(("t", None), ("u", "c"), ("u", "e#ephemeral"))
    peers = await start_peers(nursery, [tcp(lookupd)], topics)
    await wait_for(lambda: connected(peers, 1))
    doc = await lookup(lookupd, "u")
    assert doc is not None
    assert doc["channels"] == ["c", "e#ephemeral"]
    (producer,) = doc["producers"]
    assert {k: producer[k] for k in IDENTITY} == IDENTITY
    assert (await lookup(lookupd, "t"))["producers"][0]["tcp_port"] == 4150  # type: ignore[index]
    assert peers.lookupd_http_addresses() == [f"lookupd.test:{lookupd.real_http_addr[1]}"]  # type: ignore[index]

    peers.notify("register", "v", "c2")
    await wait_for(lambda: _has_channel(lookupd, "v", "c2"))
    peers.notify("unregister", "u", "e#ephemeral")
    await wait_for(lambda: _no_registration(lookupd, "u", "e#ephemeral"))
    peers.notify("unregister", "t")

    async def t_gone() -> bool:
        return producers(lookupd, "t") == 0

    await wait_for(t_gone)
    assert producers(lookupd, "u") == 1


async def _has_channel(lookupd: NSQLookupd, topic: str, channel: str) -> bool:
    return bool(lookupd.db.find_producers("channel", topic, channel))


async def _no_registration(lookupd: NSQLookupd, topic: str, channel: str) -> bool:
    return not lookupd.db.find_registrations("channel", topic, channel)


async def test_reregisters_after_lookupd_restart_on_same_port(nursery: trio.Nursery) -> None:
    first = await start_lookupd(nursery)
    port = first.real_tcp_addr[1]  # type: ignore[index]
    topics = Topics(("t", "c"))
    peers = await start_peers(nursery, [tcp(first)], topics)
    await wait_for(lambda: connected(peers, 1))
    assert producers(first, "t") == 1

    first.exit()
    await wait_for(lambda: connected(peers, 0))
    topics.items.append(("while_down", None))
    second = await start_lookupd(nursery, port)

    async def restored() -> bool:
        doc = await lookup(second, "while_down")
        return doc is not None and len(doc["producers"]) == 1

    await wait_for(restored)
    doc = await lookup(second, "t")
    assert doc is not None and doc["channels"] == ["c"] and len(doc["producers"]) == 1
    assert peers.statistics()[0].connects == 2


async def test_set_addresses_at_runtime(nursery: trio.Nursery) -> None:
    a = await start_lookupd(nursery)
    b = await start_lookupd(nursery)
    peers = await start_peers(nursery, [tcp(a)], Topics(("t", None)))
    await wait_for(lambda: connected(peers, 1))

    peers.set_addresses([tcp(a), tcp(b)])
    assert peers.addresses == [tcp(a), tcp(b)]
    await wait_for(lambda: connected(peers, 2))
    assert producers(a, "t") == producers(b, "t") == 1

    peers.set_addresses([tcp(b)])

    async def a_dropped() -> bool:
        return not a.db.find_producers("client", "", "")

    await wait_for(a_dropped)
    assert producers(a, "t") == 0
    assert producers(b, "t") == 1
    assert [s.address for s in peers.statistics()] == [tcp(b)]


async def test_nsqd_registers_its_topics_end_to_end(
        nursery: trio.Nursery, start_nsqd: Callable[..., Any]) -> None:
    lookupd = await start_lookupd(nursery)
    node = await start_nsqd(lookupd_tcp_addresses=[tcp(lookupd)], broadcast_address="nsqd.e2e")
    async with httpx.AsyncClient(base_url=node.http_url, timeout=TIMEOUT) as nsqd_http:
        for path, params in (("/topic/create", {"topic": "e2e"}),
                             ("/channel/create", {"topic": "e2e", "channel": "c"}),
                             ("/channel/create", {"topic": "e2e", "channel": "tmp#ephemeral"})):
            r = await nsqd_http.post(path, params=params)
            assert r.status_code == 200, r.text

        async def registered() -> bool:
            doc = await lookup(lookupd, "e2e")
            return doc is not None and sorted(doc["channels"]) == ["c", "tmp#ephemeral"] \
                and len(doc["producers"]) == 1

        await wait_for(registered)
        (producer,) = (await lookup(lookupd, "e2e"))["producers"]  # type: ignore[index]
        assert producer["broadcast_address"] == "nsqd.e2e"
        assert producer["tcp_port"] == node.tcp_address[1]
        assert producer["http_port"] == node.http_address[1]
        assert producer["version"] == "1.3.0"

        r = await nsqd_http.post("/channel/delete", params={"topic": "e2e", "channel": "c"})
        assert r.status_code == 200, r.text

        async def channel_gone() -> bool:
            return not lookupd.db.find_producers("channel", "e2e", "c")

        await wait_for(channel_gone)

    node.stop()

    async def node_gone() -> bool:
        return not lookupd.db.find_producers("client", "", "")

    await wait_for(node_gone)
    assert producers(lookupd, "e2e") == 0
