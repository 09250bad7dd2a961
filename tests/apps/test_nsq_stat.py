"""nsq_stat as a subprocess: NSQ's table and --json over nsqd found via nsqlookupd (summed
over nodes) or given directly; --count reports; one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio
from apps_helpers import TIMEOUT, http, run_tool, tcp

from client import Producer


async def test_table_over_two_nsqd_via_lookupd(start_nsqd: Callable[..., Any], lookupd: Any, tool: Any,
                                               tmp_path: Path) -> None:
    servers = []
    for name, count in (("a", 30), ("b", 12)):
        (tmp_path / name).mkdir()
        server = await start_nsqd(data_path=str(tmp_path / name), lookupd_tcp_addresses=[lookupd.tcp],
                                  broadcast_address="127.0.0.1")
        server.nsqd.get_topic("st").get_channel("ch")
        async with Producer(tcp(server)) as producer:
            await producer.multi_publish("st", [b"x"] * count)
        servers.append(server)
    # both nsqd registered the topic with nsqlookupd
    with trio.fail_after(TIMEOUT):
        while True:
            code, out, err = await run_tool(tool, "nsq_stat", "--topic", "st", "--channel", "ch",
                                            "--lookupd-http-address", lookupd.http, "--count", "1",
                                            "--interval", "50ms", "--json")
            if code == 0 and json.loads(out)["nsqd"] and len(json.loads(out)["nsqd"]) == 2:
                break
            await trio.sleep(0.1)
    code, out, err = await run_tool(tool, "nsq_stat", "--topic", "st", "--channel", "ch",
                                    "--lookupd-http-address", lookupd.http, "--count", "2",
                                    "--interval", "100ms")
    assert code == 0, err
    lines = out.decode().splitlines()
    assert lines[0] == ("------rate------+----------------depth----------------+"
                        "--------------metadata---------------")
    assert lines[1].split() == ["ingress", "egress", "|", "total", "mem", "disk", "inflt", "def", "|",
                                "req", "t-o", "msgs", "clients"]
    assert len(lines) == 4  # --count 2: two reports after the baseline poll
    assert lines[2].split() == ["0", "0", "|", "42", "42", "0", "0", "0", "|", "0", "0", "42", "0"]


async def test_json_rates_direct_nsqd(start_nsqd: Callable[..., Any], tool: Any) -> None:
    server = await start_nsqd()
    server.nsqd.get_topic("rt").get_channel("c")
    running = await tool("nsq_stat", "--topic", "rt", "--channel", "c", "--nsqd-http-address", http(server),
                         "--interval", "300ms", "--count", "3", "--json")
    async with Producer(tcp(server)) as producer:
        with trio.fail_after(TIMEOUT):
            while running.process.returncode is None:
                await producer.multi_publish("rt", [b"y"] * 30)
                await trio.sleep(0.1)
    assert await running.wait() == 0, running.stderr.decode()
    rows = [json.loads(line) for line in running.lines()]
    assert len(rows) == 3
    assert all(r["topic"] == "rt" and r["channel"] == "c" and r["nsqd"] == [http(server)] for r in rows)
    assert rows[-1]["messages"] == rows[-1]["depth"] > 0
    assert any(r["ingress"] > 0 and r["egress"] == 0 for r in rows)


async def test_bad_input(tool: Any) -> None:
    base = ["--topic", "t", "--channel", "c"]
    cases = [
        (["--topic", "t", "--nsqd-http-address", "h:1"], 2, "--topic and --channel are required"),
        (base, 2, "--nsqd-http-address or --lookupd-http-address required"),
        (base + ["--nsqd-http-address", "http://h:1"], 2, "address should not contain scheme"),
        (base + ["--nsqd-http-address", "h:1", "--count", "0"], 2, "--count should be positive"),
        (base + ["--nsqd-http-address", "h:1", "--interval", "1"], 2, "missing unit"),
        (base + ["--nsqd-http-address", "127.0.0.1:1"], 1, "failed to get nsqd stats"),
        (base + ["--lookupd-http-address", "127.0.0.1:1"], 1, "failed to get topic producers"),
    ]
    for args, status, text in cases:
        code, _, err = await run_tool(tool, "nsq_stat", *args)
        assert code == status and text in err and err.count("\n") == 1, (args, code, err)
