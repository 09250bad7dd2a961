"""nsq_to_nsq as a subprocess between in-process nsqd: every message arrives once,
FIN only after the destination acknowledged, JSON filters as NSQ's, one-line errors."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from apps_helpers import TIMEOUT, consume, run_tool, tcp

from client import Producer


async def two(start_nsqd: Callable[..., Any], tmp_path: Path, *names: str) -> list[Any]:
    servers = []
    for name in names:
        (tmp_path / name).mkdir()
        servers.append(await start_nsqd(data_path=str(tmp_path / name)))
    return servers


async def drained(server: Any, topic: str, channel: str, count: int) -> None:
    with trio.fail_after(TIMEOUT):
        while True:
            c = server.nsqd.topics[topic].channels.get(channel)
            if c is not None and c.message_count >= count and c.depth() == 0 and not c.in_flight:
                return
            await trio.sleep(0.05)


async def test_forwards_everything_round_robin(start_nsqd: Callable[..., Any], tool: Any,
                                               tmp_path: Path) -> None:
    source, dest1, dest2 = await two(start_nsqd, tmp_path, "src", "d1", "d2")
    bodies = [b"fwd%05d" % i for i in range(6000)]
    async with Producer(tcp(source)) as producer:
        for i in range(0, len(bodies), 1000):
            await producer.multi_publish("events", bodies[i:i + 1000])
    running = await tool("nsq_to_nsq", "--topic", "events", "--nsqd-tcp-address", tcp(source),
                         "--destination-nsqd-tcp-address", tcp(dest1), "--destination-nsqd-tcp-address",
                         tcp(dest2), "--destination-topic", "copied", "--mode", "round-robin",
                         "--max-in-flight", "500", "--status-every", "1000")
    await drained(source, "events", "nsq_to_nsq", 6000)
    counts = [d.nsqd.topics["copied"].message_count for d in (dest1, dest2)]
    assert sum(counts) == 6000 and counts == [3000, 3000]
    got = await consume(dest1, "copied", 3000) + await consume(dest2, "copied", 3000)
    assert sorted(got) == bodies
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0
    assert "[aggregate]: finished 1000" in running.stderr.decode()


async def test_json_filters(start_nsqd: Callable[..., Any], tool: Any, tmp_path: Path) -> None:
    source, dest = await two(start_nsqd, tmp_path, "src", "dst")
    docs = [
        b'{"kind": "a", "n": 1.0, "x": "<b>", "drop": true}',  # passes: whitelisted, Go's encoding
        b'{"kind": "b", "n": 2}',  # wrong value: dropped (FIN)
        b'not json',  # dropped (FIN)
        b'{"kind": 5, "n": 3}',  # not a string, value not a number: dropped
        b'{"kind": "a", "n": 4, "nested": {"f": 2.5}}',
    ]
    async with Producer(tcp(source)) as producer:
        await producer.multi_publish("docs", docs)
    running = await tool("nsq_to_nsq", "--topic", "docs", "--nsqd-tcp-address", tcp(source),
                         "--destination-nsqd-tcp-address", tcp(dest), "--require-json-field", "kind",
                         "--require-json-value", "a", "--whitelist-json-field", "n",
                         "--whitelist-json-field", "x", "--whitelist-json-field", "nested")
    await drained(source, "docs", "nsq_to_nsq", len(docs))
    got = await consume(dest, "docs", 2)
    assert got == [b'{"n":1,"x":"\\u003cb\\u003e"}', b'{"n":4,"nested":{"f":2.5}}']
    assert dest.nsqd.topics["docs"].message_count == 2
    # a document without the required field is requeued with backoff, as NSQ does
    async with Producer(tcp(source)) as producer:
        await producer.publish("docs", json.dumps({"other": 1}).encode())
    with trio.fail_after(TIMEOUT):
        while source.nsqd.topics["docs"].channels["nsq_to_nsq"].requeue_count == 0:
            await trio.sleep(0.05)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0
    assert dest.nsqd.topics["docs"].message_count == 2


async def test_sigterm_mid_stream_loses_nothing(start_nsqd: Callable[..., Any], tool: Any,
                                                tmp_path: Path) -> None:
    source, dest = await two(start_nsqd, tmp_path, "src", "dst")
    total = 40000
    async with Producer(tcp(source)) as producer:
        for i in range(0, total, 1000):
            await producer.multi_publish("stream", [b"s%06d" % j for j in range(i, i + 1000)])
    args = ["--topic", "stream", "--nsqd-tcp-address", tcp(source), "--destination-nsqd-tcp-address",
            tcp(dest), "--max-in-flight", "100"]
    running = await tool("nsq_to_nsq", *args)
    with trio.fail_after(TIMEOUT):
        while "stream" not in dest.nsqd.topics or dest.nsqd.topics["stream"].message_count < 1000:
            await trio.sleep(0.01)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    channel = source.nsqd.topics["stream"].channels["nsq_to_nsq"]
    assert not channel.in_flight
    forwarded = dest.nsqd.topics["stream"].message_count
    # every message is either at the destination or still waiting at the source
    assert forwarded + channel.depth() >= total and forwarded < total
    second = await tool("nsq_to_nsq", *args)
    await drained(source, "stream", "nsq_to_nsq", total)
    second.signal(signal.SIGTERM)
    assert await second.wait() == 0
    got = await consume(dest, "stream", dest.nsqd.topics["stream"].message_count)
    assert set(got) == {b"s%06d" % i for i in range(total)}


async def test_bad_input(tool: Any) -> None:
    base = ["--nsqd-tcp-address", "127.0.0.1:1"]
    cases = [
        (base + ["--destination-nsqd-tcp-address", "127.0.0.1:2"], 2, "--topic and --channel are required"),
        (base + ["--topic", "t"], 2, "--destination-nsqd-tcp-address required"),
        (base + ["--topic", "t", "--destination-topic", "b@d", "--destination-nsqd-tcp-address", "h:1"], 2,
         "--destination-topic 'b@d' is invalid"),
        (base + ["--topic", "t", "--destination-nsqd-tcp-address", "h:1", "--mode", "random"], 2, "--mode"),
        (base + ["--topic", "t", "--destination-nsqd-tcp-address", "127.0.0.1:2"], 1, "failed to connect"),
    ]
    for args, status, text in cases:
        code, _, err = await run_tool(tool, "nsq_to_nsq", *args)
        assert code == status and text in err and err.count("\n") == 1, (args, code, err)
