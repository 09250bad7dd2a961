"""nsq_tail as a subprocess: bodies of one or several topics on stdout, -n, lookupd
discovery, a clean exit on SIGINT, one-line errors."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

from apps_helpers import run_tool, tcp

from client import Producer


async def test_two_topics_print_topic_and_n(start_nsqd: Callable[..., Any], tool: Any) -> None:
    server = await start_nsqd()
    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("ta", [b"a%d" % i for i in range(100)])
        await producer.multi_publish("tb", [b"b%d" % i for i in range(50)])
    code, out, err = await run_tool(tool, "nsq_tail", "--topic", "ta", "-topic=tb", "--nsqd-tcp-address",
                                    tcp(server), "-n", "150", "--print-topic", stdin=None)
    assert code == 0, err
    expected = [b"ta | a%d" % i for i in range(100)] + [b"tb | b%d" % i for i in range(50)]
    assert sorted(out.splitlines()) == sorted(expected)
    # an ephemeral channel per run, every shown message finished
    channels = server.nsqd.topics["ta"].channels
    assert all(name.startswith("tail") and name.endswith("#ephemeral") for name in channels)


async def test_lookupd_discovery_and_sigint(start_nsqd: Callable[..., Any], lookupd: Any, tool: Any) -> None:
    server = await start_nsqd(lookupd_tcp_addresses=[lookupd.tcp], broadcast_address="127.0.0.1")
    async with Producer(tcp(server)) as producer:
        await producer.publish("disc", b"first")
        running = await tool("nsq_tail", "--topic", "disc", "--channel", "tailer",
                             "--lookupd-http-address", f"http://{lookupd.http}")
        await running.wait_output(lambda: b"first\n" in running.stdout)
        for i in range(20):
            await producer.publish("disc", b"more%d" % i)
        await running.wait_output(lambda: len(running.lines()) == 21)
    running.signal(signal.SIGINT)
    assert await running.wait() == 0, running.stderr.decode()
    assert "Traceback" not in running.stderr.decode()
    channel = server.nsqd.topics["disc"].channels["tailer"]
    assert channel.depth() == 0 and not channel.in_flight


async def test_bad_input(tool: Any) -> None:
    cases = [
        (["--topic", "t"], 2, "--nsqd-tcp-address or --lookupd-http-address required"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1", "--lookupd-http-address", "127.0.0.1:2"],
         2, "not both"),
        (["--nsqd-tcp-address", "127.0.0.1:1"], 2, "--topic required"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1", "--channel", "bad/chan"], 2, "is invalid"),
        (["--topic", "t", "--lookupd-http-address", "ftp://x:1"], 2, "scheme"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1", "-x"], 2, "unrecognized"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1"], 1, "failed to connect to nsqd 127.0.0.1:1"),
        (["--topic", "t", "--lookupd-http-address", "127.0.0.1:1"], 1, "failed to reach nsqlookupd"),
    ]
    for args, status, text in cases:
        code, _, err = await run_tool(tool, "nsq_tail", *args)
        assert code == status and text in err and err.count("\n") == 1, (args, code, err)
