"""to_nsq as a subprocess against in-process nsqd: every record reaches every nsqd, bad
input exits 2 or 1 with one line on stderr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio
from apps_helpers import consume, run_tool, tcp


async def test_every_line_reaches_every_nsqd(start_nsqd: Callable[..., Any], tool: Any, tmp_path: Any) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = await start_nsqd(data_path=str(tmp_path / "a"))
    second = await start_nsqd(data_path=str(tmp_path / "b"))
    lines = [b"line-%05d %s" % (i, b"x" * (i % 50)) for i in range(5000)]
    data = b"\n".join(lines[:2000]) + b"\n\n" + b"\n".join(lines[2000:])  # an empty line, no final \n
    code, _, err = await run_tool(tool, "to_nsq", "--topic", "lines", "--nsqd-tcp-address", tcp(first),
                                  "-nsqd-tcp-address=" + tcp(second), stdin=data)
    assert code == 0, err
    for server in (first, second):
        assert server.nsqd.topics["lines"].message_count == 5000
        assert sorted(await consume(server, "lines", 5000)) == sorted(lines)


async def test_delimiter_and_rate(start_nsqd: Callable[..., Any], tool: Any) -> None:
    server = await start_nsqd()
    start = trio.current_time()
    code, _, err = await run_tool(tool, "to_nsq", "-topic", "recs", "-nsqd-tcp-address", tcp(server),
                                  "--delimiter=,", "--rate", "20", stdin=b"a,b\nc,d,e,f,g,h,i,j,k,l,")
    assert code == 0, err
    # 11 records at 20/s with a bucket starting at 1: at least 10 intervals of 50 ms
    assert trio.current_time() - start >= 0.45
    assert await consume(server, "recs", 11) == [b"a", b"b\nc", b"d", b"e", b"f", b"g", b"h", b"i",
                                                 b"j", b"k", b"l"]


async def test_bad_usage_exits_2_with_one_line(tool: Any) -> None:
    cases = [
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:4150", "--bogus"], "unrecognized arguments"),
        (["--nsqd-tcp-address", "127.0.0.1:4150"], "--topic required"),
        (["--topic", "bad topic", "--nsqd-tcp-address", "127.0.0.1:4150"], "is invalid"),
        (["--topic", "t"], "--nsqd-tcp-address required"),
        (["--topic", "t", "--nsqd-tcp-address", "localhost"], "missing port"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1", "--delimiter", "ab"], "single byte"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1", "--rate", "x"], "invalid"),
        (["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1", "--producer-opt", "nope,1"],
         "invalid option"),
    ]
    for args, text in cases:
        code, _out, err = await run_tool(tool, "to_nsq", *args)
        assert code == 2, (args, err)
        assert err.count("\n") == 1 and text in err and "Traceback" not in err, (args, err)


async def test_unreachable_and_refused_exit_1(start_nsqd: Callable[..., Any], tool: Any) -> None:
    code, _, err = await run_tool(tool, "to_nsq", "--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1",
                                  stdin=b"x\n")
    assert code == 1 and err.startswith("to_nsq: error: failed to connect to nsqd 127.0.0.1:1")
    assert err.count("\n") == 1
    server = await start_nsqd(max_msg_size=100)
    code, _, err = await run_tool(tool, "to_nsq", "--topic", "big", "--nsqd-tcp-address", tcp(server),
                                  stdin=b"ok\n" + b"y" * 200 + b"\n")
    assert code == 1 and "failed to publish" in err and "E_BAD_MESSAGE" in err, err
    assert "Traceback" not in err and err.count("\n") == 1


async def test_progress_on_request(start_nsqd: Callable[..., Any], tool: Any) -> None:
    server = await start_nsqd()
    code, _, err = await run_tool(tool, "to_nsq", "--topic", "prog", "--nsqd-tcp-address", tcp(server),
                                  "--progress", stdin=b"a\nb\nc\n")
    assert code == 0 and "to_nsq: 3 messages" in err and "(average)" in err, err
