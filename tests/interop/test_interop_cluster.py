"""A cluster of 2 nsqlookupd + 3 nsqd: discovery by lookupd only, for pynsq and gnsq."""

from __future__ import annotations

import httpx
import pytest
import trio
from helpers import RawConn
from test_interop_clients import run_client

from internal.netaddr import join_host_port
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

pytestmark = pytest.mark.interop

TOPIC = "cluster"


async def start_cluster(nursery, start_nsqd, tmp_path, nodes: int = 3):
    lookupds = []
    for _ in range(2):
        opts = LookupdOptions(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                              broadcast_address="127.0.0.1")
        lookupds.append(await nursery.start(NSQLookupd(opts).run))
    tcp = [join_host_port(*d.real_tcp_addr) for d in lookupds]
    http = ["http://" + join_host_port(*d.real_http_addr) for d in lookupds]
    nsqds = []
    for i in range(nodes):
        path = tmp_path / f"nsqd{i}"
        path.mkdir()
        nsqds.append(await start_nsqd(lookupd_tcp_addresses=tcp, broadcast_address="127.0.0.1",
                                      data_path=str(path)))
    return lookupds, http, nsqds


async def all_lookupds_list(client: httpx.AsyncClient, urls: list[str], ports: set[int]) -> bool:
    for url in urls:
        if await producers(client, url, TOPIC) != ports:
            return False
    return True


async def producers(client: httpx.AsyncClient, url: str, topic: str) -> set[int]:
    resp = await client.get(f"{url}/lookup", params={"topic": topic})
    if resp.status_code != 200:
        return set()
    return {p["tcp_port"] for p in resp.json()["producers"]}


async def test_lookupd_lists_every_node_and_drops_a_dead_one(nursery, start_nsqd, tmp_path):
    _, http, nsqds = await start_cluster(nursery, start_nsqd, tmp_path)
    ports = {n.tcp_address[1] for n in nsqds}
    async with httpx.AsyncClient() as client:
        for node in nsqds:
            assert (await client.post(f"{node.http_url}/topic/create?topic={TOPIC}")).status_code == 200
        with trio.fail_after(10):
            while not await all_lookupds_list(client, http, ports):
                await trio.sleep(0.02)
        nsqds[0].stop()
        with trio.fail_after(10):
            while not await all_lookupds_list(client, http, ports - {nsqds[0].tcp_address[1]}):
                await trio.sleep(0.02)


@pytest.mark.parametrize("script,channel", [("pynsq_roundtrip.py", "pynsq"),
                                            ("gnsq_roundtrip.py", "gnsq")])
async def test_third_party_reader_finds_all_nodes_through_lookupd(nursery, start_nsqd, tmp_path,
                                                                  script, channel):
    _, http, nsqds = await start_cluster(nursery, start_nsqd, tmp_path)
    ports = {n.tcp_address[1] for n in nsqds}
    async with httpx.AsyncClient() as client:
        for node in nsqds:
            await client.post(f"{node.http_url}/topic/create?topic={TOPIC}")
        with trio.fail_after(10):
            while not await all_lookupds_list(client, http, ports):
                await trio.sleep(0.02)
    result: dict = {}

    async def reader() -> None:
        args = [f"--lookupd={url}" for url in http]
        result.update(await run_client(script, "unused:0", TOPIC, "30", "--no-publish", *args))

    nursery.start_soon(reader)
    # the reader has subscribed on every node once each node has its channel
    with trio.fail_after(30):
        while not all(channel in n.nsqd.topics[TOPIC].channels
                      and n.nsqd.topics[TOPIC].channels[channel].clients for n in nsqds):
            await trio.sleep(0.05)
    for i, node in enumerate(nsqds):
        pub = await RawConn.open(node.tcp_address)
        for j in range(10):
            await pub.pub(TOPIC, f"node{i}-{j}".encode())
    with trio.fail_after(60):
        while not result:
            await trio.sleep(0.05)
    assert sorted(result["received"]) == sorted(f"node{i}-{j}" for i in range(3) for j in range(10))
