"""--e2e-processing-latency-percentile: publish→FIN quantiles per channel and topic in
``/stats`` (JSON and text), in NSQ's ``quantile.Result`` shape."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
from helpers import RawConn

from client.protocol import commands

DELAY = 0.2


async def _stats(url: str, **params: str) -> Any:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(f"{url}/stats", params=params)
        resp.raise_for_status()
        return resp.json() if params.get("format") == "json" else resp.text


_published_at: dict[bytes, float] = {}


async def test_percentiles_after_known_delay(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(e2e_processing_latency_percentiles=[0.5, 0.99])
    sub = await RawConn.open(server.tcp_address)
    await sub.sub("lat", "ch", rdy=100)
    other = await RawConn.open(server.tcp_address)
    await other.sub("lat", "idle")  # a channel that FINs nothing
    pub = await RawConn.open(server.tcp_address)
    n = 20
    got = 0
    for i in range(n):
        await pub.pub("lat", b"m%d" % i)
        msg = await sub.message()
        _published_at[msg.id] = trio.current_time()
    # FIN them all DELAY after their publish (give or take the loop above)
    while got < n:
        ids = list(_published_at)
        for msg_id in ids:
            await trio.sleep_until(_published_at.pop(msg_id) + DELAY)
            await sub.send(commands.fin(msg_id))
            got += 1
    await sub.send(commands.nop())
    # the FINs are handled once the NOP's effect is visible: wait for in-flight to drain
    with trio.fail_after(10):
        while True:
            doc = await _stats(server.http_url, format="json")
            chans = {c["channel_name"]: c for c in doc["topics"][0]["channels"]}
            if chans["ch"]["in_flight_count"] == 0:
                break
            await trio.sleep(0.02)

    topic = doc["topics"][0]
    ch = chans["ch"]["e2e_processing_latency"]
    assert ch["count"] == n
    assert [p["quantile"] for p in ch["percentiles"]] == [0.99, 0.5]  # NSQ sorts them
    for p in ch["percentiles"]:
        assert isinstance(p["value"], int)
        assert DELAY * 1e9 <= p["value"] < (DELAY + 2.0) * 1e9
    # no FIN yet: NSQ's empty stream
    assert chans["idle"]["e2e_processing_latency"] == {
        "count": 0, "percentiles": [{"quantile": 0.99, "value": 0}, {"quantile": 0.5, "value": 0}]}
    # the topic merges its channels' windows
    assert topic["e2e_processing_latency"]["count"] == n
    assert topic["e2e_processing_latency"]["percentiles"][0]["value"] >= DELAY * 1e9

    text = await _stats(server.http_url)
    line = next(ln for ln in text.splitlines() if "[ch " in ln)
    assert re.search(r"e2e%: \d+\.\dms, \d+\.\dms$", line), line
    for conn in (sub, other, pub):
        await conn.aclose()


async def test_disabled_is_empty(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    sub = await RawConn.open(server.tcp_address)
    await sub.sub("t", "c", rdy=1)
    pub = await RawConn.open(server.tcp_address)
    await pub.pub("t", b"x")
    await pub.aclose()
    msg = await sub.message()
    await sub.send(commands.fin(msg.id))
    await sub.send(commands.nop())
    doc = await _stats(server.http_url, format="json")
    topic = doc["topics"][0]
    assert topic["e2e_processing_latency"] == {"count": 0, "percentiles": None}
    assert topic["channels"][0]["e2e_processing_latency"] == {"count": 0, "percentiles": None}
    assert server.nsqd.topics["t"].channels["c"].e2e is None
    await sub.aclose()


@pytest.mark.parametrize("bad", [[0.0], [1.5], [-0.1]])
def test_invalid_percentile_refused(bad: list[float], nsqd_options: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="invalid E2E processing latency percentile"):
        nsqd_options(e2e_processing_latency_percentiles=bad)
