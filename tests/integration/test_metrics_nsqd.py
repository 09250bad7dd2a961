"""nsqd's ``GET /metrics``: parsed by prometheus_client's parser, values following a
known publish/consume sequence, checked by ``promtool check metrics`` where installed."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import trio
from helpers import RawConn
from prometheus_client.parser import text_string_to_metric_families

from client.protocol import commands


async def scrape(url: str) -> tuple[str, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=10) as http:
        resp = await http.get(f"{url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(resp.text)}
    return resp.text, families


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    """The sample ``sample`` (default: the family name, or ``name_total`` for counters)."""
    fam = families[name]
    want = sample or (name + "_total" if fam.type == "counter" else name)
    hits = [s.value for s in fam.samples if s.name == want and all(
        s.labels.get(k) == v for k, v in labels.items())]
    assert len(hits) == 1, (want, labels, fam.samples)
    return hits[0]


def promtool_check(text: str) -> None:
    """``promtool check metrics`` on the body; skipped with the reason where it is missing."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus'; scripts/test "
                    "installs it where apt-get is available)")
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


async def test_metrics_follow_the_daemon(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(e2e_processing_latency_percentiles=[0.99, 0.5])
    sub = await RawConn.open(server.tcp_address)
    await sub.sub("mt", "ch", rdy=10)
    pub = await RawConn.open(server.tcp_address)
    for _i in range(6):
        await pub.pub("mt", b"abcd")
    ids = [(await sub.message()).id for _ in range(6)]
    for msg_id in ids[:4]:
        await sub.send(commands.fin(msg_id))
    await sub.send(commands.req(ids[4], 0))
    await sub.message()
    await pub.send(commands.pub("other", b"x"))  # a topic without channels
    await pub.response()

    with trio.fail_after(10):
        while True:  # the FINs above are processed asynchronously
            text, fams = await scrape(server.http_url)
            if value(fams, "nsq_channel_in_flight", topic="mt", channel="ch") == 2:
                break
            await trio.sleep(0.02)
    assert value(fams, "nsq_topic_messages", topic="mt") == 6
    assert value(fams, "nsq_topic_message_bytes", topic="mt") == 24
    assert value(fams, "nsq_topic_depth", topic="other") == 1
    assert value(fams, "nsq_topic_depth", topic="mt") == 0
    assert value(fams, "nsq_channel_messages", topic="mt", channel="ch") == 6
    assert value(fams, "nsq_channel_requeued", topic="mt", channel="ch") == 1
    assert value(fams, "nsq_channel_timed_out", topic="mt", channel="ch") == 0
    assert value(fams, "nsq_channel_clients", topic="mt", channel="ch") == 1
    assert value(fams, "nsq_channel_paused", topic="mt", channel="ch") == 0
    assert value(fams, "nsqd_clients") == 2
    assert value(fams, "nsqd_topics") == 2
    assert value(fams, "nsqd_healthy") == 1
    lat = fams["nsq_channel_e2e_processing_latency_seconds"]
    assert lat.type == "summary"
    assert value(fams, lat.name, lat.name + "_count", topic="mt", channel="ch") == 4
    p99 = value(fams, lat.name, topic="mt", channel="ch", quantile="0.99")
    assert 0 < p99 < 10
    assert value(fams, lat.name, lat.name + "_sum", topic="mt", channel="ch") >= p99
    assert value(fams, "nsq_topic_e2e_processing_latency_seconds",
                 "nsq_topic_e2e_processing_latency_seconds_count", topic="mt") == 4
    # process series from prometheus_client
    assert value(fams, "process_resident_memory_bytes") > 0
    assert value(fams, "process_open_fds") > 0
    assert "python_gc_collections" in fams
    # bounded cardinality: nothing per connection without the flag
    assert not any(name.startswith("nsq_client_") for name in fams)
    promtool_check(text)
    for conn in (sub, pub):
        await conn.aclose()


async def test_per_client_series_with_flag(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd(metrics_per_client=True)
    sub = await RawConn.open(server.tcp_address)
    await sub.identify(client_id="worker-1")
    await sub.sub("pc", "ch", rdy=7)
    pub = await RawConn.open(server.tcp_address)
    await pub.pub("pc", b"x")
    await sub.message()
    text, fams = await scrape(server.http_url)
    assert value(fams, "nsq_client_ready", topic="pc", channel="ch", client_id="worker-1") == 7
    assert value(fams, "nsq_client_in_flight", topic="pc", channel="ch",
                 client_id="worker-1") == 1
    assert value(fams, "nsq_client_published", topic="pc") == 1
    promtool_check(text)
    for conn in (sub, pub):
        await conn.aclose()


async def test_no_e2e_series_when_disabled(start_nsqd: Callable[..., Any]) -> None:
    server = await start_nsqd()
    sub = await RawConn.open(server.tcp_address)
    await sub.sub("d", "ch")
    text, fams = await scrape(server.http_url)
    assert value(fams, "nsq_channel_depth", topic="d", channel="ch") == 0
    assert not fams["nsq_channel_e2e_processing_latency_seconds"].samples
    promtool_check(text)
    await sub.aclose()
