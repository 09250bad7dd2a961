"""Every daemon's JSON answers are written as Go writes them (internal.gojson), seen over
real HTTP: text a client chose (an IDENTIFY user_agent or hostname) comes back with
``<``, ``>``, ``&``, U+2028 escaped, non-ASCII raw, and nothing but compact separators."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import trio
from helpers import RawConn

from client.protocol import MAGIC_V1, ResponseReader, commands
from nsqadmin import NSQAdmin
from nsqadmin import Options as AdminOptions
from nsqlookupd import NSQLookupd
from nsqlookupd import Options as LookupdOptions

TIMEOUT = 20.0
TRICKY = "a<b>&c\u2028\u00e9"
#: ``TRICKY`` as Go's json.Marshal writes it
TRICKY_GO = '"a\\u003cb\\u003e\\u0026c\\u2028\u00e9"'.encode()


def _addr(hostport: tuple[str, int] | None) -> str:
    assert hostport is not None
    return f"{hostport[0]}:{hostport[1]}"


async def test_nsqd_stats_and_errors(start_nsqd: Callable[..., Any]) -> None:
    nsqd = await start_nsqd()
    conn = await RawConn.open(nsqd.tcp_address)
    await conn.identify(user_agent=TRICKY, client_id="c&d")
    await conn.pub("t", b"m")  # a publisher is listed under "producers"
    async with httpx.AsyncClient(base_url=nsqd.http_url, timeout=TIMEOUT) as http:
        r = await http.get("/stats", params={"format": "json"})
        assert r.status_code == 200
        assert b'"user_agent":' + TRICKY_GO in r.content
        assert b'"client_id":"c\\u0026d"' in r.content
        assert b": " not in r.content and b", " not in r.content
        assert r.json()["producers"][0]["user_agent"] == TRICKY

        r = await http.post("/pub", content=b"x")
        assert (r.status_code, r.content) == (400, b'{"message":"MISSING_ARG_TOPIC"}')
    await conn.aclose()


async def _v1_register(lookupd: NSQLookupd, hostname: str, topic: str) -> trio.SocketStream:
    """A fake nsqd registering ``topic`` with lookupd under ``hostname``."""
    assert lookupd.real_tcp_addr is not None
    stream = await trio.open_tcp_stream(*lookupd.real_tcp_addr)
    reader = ResponseReader()
    await stream.send_all(MAGIC_V1)

    async def command(cmd: bytes) -> bytes:
        await stream.send_all(cmd)
        with trio.fail_after(TIMEOUT):
            while True:
                responses = reader.responses()
                if responses:
                    return responses[0]
                data = await stream.receive_some(65536)
                assert data, "lookupd closed the connection"
                reader.feed(data)

    node = {"tcp_port": 4150, "http_port": 4151, "broadcast_address": "127.0.0.1",
            "hostname": hostname, "version": "1.3.0"}
    assert json.loads(await command(commands.identify(node)))["tcp_port"]
    assert await command(commands.register(topic)) == b"OK"
    return stream


async def test_nsqlookupd_and_nsqadmin(nursery: trio.Nursery) -> None:
    lookupd: NSQLookupd = await nursery.start(NSQLookupd(LookupdOptions(
        tcp_address="127.0.0.1:0", http_address="127.0.0.1:0")).run)
    stream = await _v1_register(lookupd, TRICKY, "t")
    admin = NSQAdmin(AdminOptions(http_address="127.0.0.1:0",
                                  lookupd_http_addresses=[_addr(lookupd.real_http_addr)]))
    admin_addr = await nursery.start(admin.run)
    async with httpx.AsyncClient(timeout=TIMEOUT) as http:
        r = await http.get(f"http://{_addr(lookupd.real_http_addr)}/lookup", params={"topic": "t"})
        assert r.status_code == 200
        assert b'"hostname":' + TRICKY_GO in r.content
        assert r.json()["producers"][0]["hostname"] == TRICKY

        r = await http.get(f"http://{_addr(lookupd.real_http_addr)}/nodes")
        assert b'"hostname":' + TRICKY_GO in r.content

        r = await http.get(f"http://{_addr(lookupd.real_http_addr)}/lookup", params={"topic": "a&b"})
        assert (r.status_code, r.content) == (404, b'{"message":"TOPIC_NOT_FOUND"}')

        r = await http.get(f"http://{_addr(admin_addr)}/api/nodes")
        assert r.status_code == 200, r.text
        assert b'"hostname":' + TRICKY_GO in r.content
        assert [n["hostname"] for n in r.json()["nodes"]] == [TRICKY]
    await stream.aclose()
