"""nsqd's statsd push (NSQ 1.3's ``nsqd/statsd.go``): a real UDP socket receives the
datagrams; names, types and values follow a known publish/consume sequence; datagrams
respect ``--statsd-udp-packet-size``; a bad address is logged once and harms nothing."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio
from helpers import RawConn

from client.protocol import commands
from nsqd.statistics import NO_LATENCY, ChannelStatistics, LatencyStatistics, TopicStatistics
from nsqd.statsd import pack_datagrams, statsd_lines, statsd_prefix

LINE = re.compile(r"^([^:]+):(-?\d+)\|(c|g)$")


class Push:
    """One push's lines: gauges by name, counters by name."""

    def __init__(self) -> None:
        self.gauges: dict[str, int] = {}
        self.counters: dict[str, int] = {}


async def _pushes(sock: trio.socket.SocketType, sizes: list[int]):  # type: ignore[no-untyped-def]
    """Yield each complete push (it ends with ``mem.gc_runs``)."""
    push = Push()
    while True:
        data = await sock.recv(65536)
        sizes.append(len(data))
        text = data.decode()
        assert text.endswith("\n"), text  # whole lines only
        for line in text.splitlines():
            m = LINE.match(line)
            assert m, line
            name, value, kind = m.group(1), int(m.group(2)), m.group(3)
            (push.counters if kind == "c" else push.gauges)[name] = value
            if name.endswith("mem.gc_runs"):
                yield push
                push = Push()


@pytest.fixture
async def udp() -> Any:
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    with sock:
        yield sock


async def test_statsd_names_and_values(start_nsqd: Callable[..., Any], udp: Any) -> None:
    port = udp.getsockname()[1]
    server = await start_nsqd(statsd_address=f"127.0.0.1:{port}", statsd_interval=0.2,
                              statsd_udp_packet_size=200, broadcast_address="host.example",
                              e2e_processing_latency_percentiles=[0.99, 0.95])
    http_port = server.http_address[1]
    prefix = f"nsq.host_example_{http_port}."
    sub = await RawConn.open(server.tcp_address)
    await sub.sub("st", "ch", rdy=10)
    pub = await RawConn.open(server.tcp_address)
    for i in range(5):
        await pub.pub("st", b"body%d" % i)  # 5 bytes each
    ids = [(await sub.message()).id for _ in range(5)]
    for msg_id in ids[:3]:
        await sub.send(commands.fin(msg_id))
    await sub.send(commands.req(ids[3], 0))  # requeued, delivered again
    await sub.message()

    totals: dict[str, int] = {}
    sizes: list[int] = []
    t = f"{prefix}topic.st"
    c = f"{t}.channel.ch"
    with trio.fail_after(20):
        async for push in _pushes(udp, sizes):
            for name, value in push.counters.items():
                totals[name] = totals.get(name, 0) + value
            g = push.gauges
            if totals.get(f"{c}.requeue_count") == 1 and g.get(f"{c}.in_flight_count") == 2 \
                    and f"{c}.e2e_processing_latency_99" in g:
                break
    # counters are increases per push: they add up to the totals
    assert totals[f"{t}.message_count"] == 5
    assert totals[f"{t}.message_bytes"] == 25
    assert totals[f"{c}.message_count"] == 5
    assert totals[f"{c}.requeue_count"] == 1
    assert totals[f"{c}.timeout_count"] == 0
    assert g[f"{t}.depth"] == 0 and g[f"{t}.backend_depth"] == 0
    assert g[f"{c}.depth"] == 0 and g[f"{c}.backend_depth"] == 0
    assert g[f"{c}.deferred_count"] == 0
    assert g[f"{c}.clients"] == 1
    assert g[f"{c}.e2e_processing_latency_99"] > 0
    assert g[f"{c}.e2e_processing_latency_95"] > 0
    assert g[f"{t}.e2e_processing_latency_99"] >= g[f"{c}.e2e_processing_latency_95"]
    for key in ("heap_objects", "heap_in_use_bytes", "gc_pause_usec_99", "next_gc_bytes"):
        assert f"{prefix}mem.{key}" in g
    assert max(sizes) <= 200
    for conn in (sub, pub):
        await conn.aclose()


def _topic(message_count: int, message_bytes: int, channels: tuple[ChannelStatistics, ...],
           e2e: LatencyStatistics = NO_LATENCY, depth: int = 0,
           backend_depth: int = 0) -> TopicStatistics:
    return TopicStatistics("t", depth, backend_depth, message_count, message_bytes, False, e2e,
                           channels)


def _channel(depth: int, in_flight: int, deferred: int, messages: int, requeued: int,
             timed_out: int, clients: int) -> ChannelStatistics:
    return ChannelStatistics("c#ephemeral", depth, 0, in_flight, deferred, messages, requeued,
                             timed_out, clients, False, NO_LATENCY, None)


def test_lines_match_go() -> None:
    e2e = LatencyStatistics(2, ((0.99, 1500), (0.995, 1600)), 2, 3100, 1)
    stats = [_topic(10, 100, (_channel(2, 4, 5, 10, 6, 7, 8),), e2e, depth=3, backend_depth=1)]
    last = [_topic(4, 40, (_channel(0, 0, 0, 1, 6, 2, 0),))]
    mem = dict.fromkeys(("heap_objects", "heap_idle_bytes", "heap_in_use_bytes",
                         "heap_released_bytes", "gc_pause_usec_100", "gc_pause_usec_99",
                         "gc_pause_usec_95", "next_gc_bytes"), 1)
    mem["gc_total_runs"] = 9
    lines = statsd_lines(stats, last, "p.", mem=mem, last_mem={**mem, "gc_total_runs": 7})
    assert lines[:6] == ["p.topic.t.message_count:6|c\n", "p.topic.t.message_bytes:60|c\n",
                         "p.topic.t.depth:3|g\n", "p.topic.t.backend_depth:1|g\n",
                         "p.topic.t.e2e_processing_latency_99:1500|g\n",
                         # Go's %.0f of 99.5: round half to even
                         "p.topic.t.e2e_processing_latency_100:1600|g\n"]
    assert lines[6:14] == [
        "p.topic.t.channel.c#ephemeral.message_count:9|c\n",
        "p.topic.t.channel.c#ephemeral.depth:2|g\n",
        "p.topic.t.channel.c#ephemeral.backend_depth:0|g\n",
        "p.topic.t.channel.c#ephemeral.in_flight_count:4|g\n",
        "p.topic.t.channel.c#ephemeral.deferred_count:5|g\n",
        "p.topic.t.channel.c#ephemeral.requeue_count:0|c\n",
        "p.topic.t.channel.c#ephemeral.timeout_count:5|c\n",
        "p.topic.t.channel.c#ephemeral.clients:8|g\n"]
    assert lines[-1] == "p.mem.gc_runs:2|c\n" and len(lines) == 14 + 9
    assert not any("channel" in ln for ln in statsd_lines(stats, None, "", exclude_ephemeral=True))


def test_prefix_and_packing() -> None:
    assert statsd_prefix("nsq.%s", "10.0.0.1", 4151) == "nsq.10_0_0_1_4151."
    assert statsd_prefix("nsq.%s.", "h", 1) == "nsq.h_1."
    assert statsd_prefix("", "h", 1) == ""
    lines = [f"name{i}:{i}|c\n" for i in range(100)] + ["x" * 50 + ":1|g\n"]
    grams = pack_datagrams(lines, 40)
    assert b"".join(grams) == "".join(lines).encode()
    assert all(len(g) <= 40 for g in grams[:-1])
    assert grams[-1] == ("x" * 50 + ":1|g\n").encode()  # longer than a packet: alone
    assert all(g.endswith(b"\n") for g in grams)


@pytest.mark.parametrize("address", ["127.0.0.1:1", "not-a-host-port", "no.such.host.invalid:8125"])
async def test_bad_address_logged_once(start_nsqd: Callable[..., Any], address: str,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="nsqd.statsd")
    server = await start_nsqd(statsd_address=address, statsd_interval=0.05)
    sub = await RawConn.open(server.tcp_address)
    await sub.sub("t", "c", rdy=1)  # a topic, so pushes have lines to send
    with trio.fail_after(20):
        while not caplog.records:
            await trio.sleep(0.05)
        await trio.sleep(0.5)  # several more intervals fail silently
    assert len(caplog.records) == 1, [r.getMessage() for r in caplog.records]
    assert address in caplog.records[0].getMessage()
    # the broker is unharmed
    pub = await RawConn.open(server.tcp_address)
    await pub.pub("t", b"still fine")
    assert (await sub.message()).body == b"still fine"
    for conn in (sub, pub):
        await conn.aclose()


def test_flags_and_config_file(tmp_path: Any) -> None:
    from internal.options import resolve
    from nsqd.options import Options

    cfg = tmp_path / "nsqd.toml"
    cfg.write_text('statsd_address = "127.0.0.1:8125"\nstatsd_prefix = "x.%s"\n'
                   'statsd_interval = "30s"\nstatsd_mem_stats = false\n'
                   'statsd_udp_packet_size = 1400\n'
                   'e2e_processing_latency_percentiles = [0.5, 0.99]\n'
                   'e2e_processing_latency_window_time = "1m"\n')
    opts, _ = resolve(Options, ["--config", str(cfg), "--data-path", str(tmp_path)], prog="nsqd")
    assert (opts.statsd_address, opts.statsd_prefix, opts.statsd_interval) == (
        "127.0.0.1:8125", "x.%s", 30.0)
    assert not opts.statsd_mem_stats and opts.statsd_udp_packet_size == 1400
    assert opts.e2e_processing_latency_percentiles == [0.99, 0.5]
    assert opts.e2e_processing_latency_window_time == 60.0
    opts, _ = resolve(Options, ["--e2e-processing-latency-percentile", "0.95,0.99",
                                "--e2e-processing-latency-percentile", "1.0",
                                "--statsd-address", "h:1", "--data-path", str(tmp_path)],
                      prog="nsqd")
    assert opts.e2e_processing_latency_percentiles == [1.0, 0.99, 0.95]
    assert opts.statsd_address == "h:1"
