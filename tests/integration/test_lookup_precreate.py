"""nsqd asks nsqlookupd for a new topic's channels before messages flow (NSQ's GetTopic)."""

from __future__ import annotations

import httpx
import trio
from helpers import RawConn

from client.protocol import commands
from internal.netaddr import join_host_port
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions


async def _lookupd(nursery: trio.Nursery) -> NSQLookupd:
    opts = LookupdOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                          broadcast_address="127.0.0.1")
    return await nursery.start(NSQLookupd(opts).run)


async def _channels(http_url: str, topic: str) -> list[str]:
    async with httpx.AsyncClient() as http:
        resp = await http.get(f"{http_url}/channels", params={"topic": topic})
        return resp.json().get("channels") or []


async def test_new_topic_gets_every_cluster_channel_before_messages_flow(nursery, start_nsqd, tmp_path):
    lookupd = await _lookupd(nursery)
    lookup_tcp = join_host_port(*lookupd.real_tcp_addr)
    lookup_http = "http://" + join_host_port(*lookupd.real_http_addr)
    node_a = await start_nsqd(lookupd_tcp_addresses=[lookup_tcp], broadcast_address="127.0.0.1")
    (tmp_path / "b").mkdir()
    node_b = await start_nsqd(lookupd_tcp_addresses=[lookup_tcp], broadcast_address="127.0.0.1",
                              data_path=str(tmp_path / "b"))
    # two consumer groups exist in the cluster (on node A), plus an ephemeral one
    subs = []
    for channel in ("billing", "audit", "tail#ephemeral"):
        conn = await RawConn.open(node_a.tcp_address)
        await conn.sub("orders", channel, 0)
        subs.append(conn)
    with trio.fail_after(10):
        while sorted(await _channels(lookup_http, "orders")) != ["audit", "billing", "tail#ephemeral"]:
            await trio.sleep(0.02)
    # node B has never seen the topic, and B's lookup peer must have identified
    with trio.fail_after(10):
        while not node_b.nsqd.lookup.lookupd_http_addresses():
            await trio.sleep(0.02)
    pub = await RawConn.open(node_b.tcp_address)
    await pub.pub("orders", b"first")
    topic = node_b.nsqd.topics["orders"]
    with trio.fail_after(10):
        while topic.starting:
            await trio.sleep(0.02)
    assert sorted(topic.channels) == ["audit", "billing"]
    # a consumer of each group on node B gets the message published before it subscribed
    for channel in ("billing", "audit"):
        conn = await RawConn.open(node_b.tcp_address)
        await conn.sub("orders", channel, 1)
        assert (await conn.message()).body == b"first"
        await conn.send(commands.cls())


async def test_without_lookupd_topic_starts_at_once(start_nsqd):
    node = await start_nsqd()
    conn = await RawConn.open(node.tcp_address)
    await conn.sub("plain", "ch", 1)
    assert node.nsqd.topics["plain"].starting is False
    pub = await RawConn.open(node.tcp_address)
    await pub.pub("plain", b"x")
    assert (await conn.message()).body == b"x"
