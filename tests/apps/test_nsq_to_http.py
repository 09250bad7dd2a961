"""nsq_to_http as a subprocess against a local HTTP server that fails some requests:
every message still arrives (non-2xx and timeouts are requeued), GET/POST, headers,
round robin, one-line errors."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import trio
from apps_helpers import TIMEOUT, run_tool, tcp

from client import Producer
from internal.http import Response, serve_http

FAST_RETRY = ["--consumer-opt", "default_requeue_delay,10ms", "--consumer-opt", "backoff_multiplier,5ms",
              "--consumer-opt", "max_backoff_duration,50ms"]


class Sink:
    """Records the requests it answers 200; fails every ``fail_every``-th with 500 and
    stalls every ``stall_every``-th past the client's timeout."""

    def __init__(self, fail_every: int = 0, stall_every: int = 0) -> None:
        self.fail_every = fail_every
        self.stall_every = stall_every
        self.requests = 0
        self.ok: list[Any] = []

    def __call__(self, request: Any) -> Any:
        self.requests += 1
        n = self.requests
        if self.fail_every and n % self.fail_every == 0:
            return Response(503, b"try later")
        if self.stall_every and n % self.stall_every == 0:
            return self._stall(request)
        self.ok.append(request)
        return Response(200, b"ok")

    async def _stall(self, request: Any) -> Response:
        await trio.sleep(2)
        return Response(200, b"late")  # the client gave up already: not counted


async def serve(nursery: trio.Nursery, sink: Sink) -> str:
    host, port = await nursery.start(serve_http, sink, "127.0.0.1", 0)
    return f"http://{host}:{port}"


async def test_post_with_failures_loses_nothing(nursery: trio.Nursery, start_nsqd: Callable[..., Any],
                                                tool: Any) -> None:
    server = await start_nsqd()
    sink = Sink(fail_every=4, stall_every=25)
    url = await serve(nursery, sink)
    bodies = [b"post-%04d" % i for i in range(1000)]
    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("hooks", bodies)
    running = await tool("nsq_to_http", "--topic", "hooks", "--nsqd-tcp-address", tcp(server),
                         "--post", url + "/in", "--content-type", "text/plain", "--header", "X-Token: s3cret",
                         "--http-client-request-timeout", "300ms", "-n", "20", *FAST_RETRY)
    with trio.fail_after(TIMEOUT):
        while len({r.body for r in sink.ok}) < len(bodies):
            await trio.sleep(0.05)
    channel = server.nsqd.topics["hooks"].channels["nsq_to_http"]
    with trio.fail_after(TIMEOUT):
        while channel.in_flight or channel.depth():
            await trio.sleep(0.05)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    assert {r.body for r in sink.ok} == set(bodies)
    assert channel.requeue_count + channel.timeout_count > 0
    first = sink.ok[0]
    assert first.method == "POST" and first.path == "/in"
    assert first.headers["content-type"] == "text/plain" and first.headers["x-token"] == "s3cret"
    assert first.headers["user-agent"].startswith("nsq_to_http v")


async def test_get_round_robin(nursery: trio.Nursery, start_nsqd: Callable[..., Any], tool: Any) -> None:
    server = await start_nsqd()
    sinks = [Sink(), Sink()]
    urls = [await serve(nursery, sink) for sink in sinks]
    bodies = [b"a b&c=%d/\xc3\xa9" % i for i in range(200)]
    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("gets", bodies)
    running = await tool("nsq_to_http", "--topic", "gets", "--nsqd-tcp-address", tcp(server),
                         "--get", urls[0] + "/g?data=%s", "--get", urls[1] + "/g?data=%s",
                         "--mode", "round-robin")
    with trio.fail_after(TIMEOUT):
        while sum(len(s.ok) for s in sinks) < len(bodies):
            await trio.sleep(0.05)
    running.signal(signal.SIGINT)
    assert await running.wait() == 0
    assert [len(s.ok) for s in sinks] == [100, 100]
    got = sorted(r.query["data"][0].encode() for s in sinks for r in s.ok)
    assert got == sorted(bodies)


async def test_bad_input(tool: Any) -> None:
    base = ["--topic", "t", "--nsqd-tcp-address", "127.0.0.1:1"]
    cases = [
        (base, 2, "--get or --post required"),
        (base + ["--post", "http://h/", "--get", "http://h/%s"], 2, "use --get or --post not both"),
        (base + ["--get", "http://h/"], 2, "invalid GET address - must be a printf string"),
        (base + ["--post", "ftp://h/"], 2, "invalid URL"),
        (base + ["--post", "http:///nohost"], 2, "invalid URL"),
        (base + ["--post", "http://h/", "--header", "novalue"], 2, "--header value format"),
        (base + ["--get", "http://h/%s", "--content-type", "a/b"], 2, "--content-type only used with --post"),
        (base + ["--post", "http://h/", "--sample", "2"], 2, "--sample must be between"),
        (["--nsqd-tcp-address", "127.0.0.1:1", "--post", "http://h/"], 2, "--topic and --channel are required"),
        (base + ["--post", "http://h/"], 1, "failed to connect to nsqd"),
    ]
    for args, status, text in cases:
        code, _, err = await run_tool(tool, "nsq_to_http", *args)
        assert code == status and text in err and err.count("\n") == 1, (args, code, err)


async def test_sigterm_mid_stream_loses_nothing(nursery: trio.Nursery, start_nsqd: Callable[..., Any],
                                                tool: Any) -> None:
    server = await start_nsqd()
    delivered: list[bytes] = []

    async def slow(request: Any) -> Response:
        await trio.sleep(0.05)
        delivered.append(request.body)
        return Response(200, b"ok")

    host, port = await nursery.start(serve_http, slow, "127.0.0.1", 0)
    bodies = [b"t%03d" % i for i in range(300)]
    async with Producer(tcp(server)) as producer:
        await producer.multi_publish("term", bodies)
    running = await tool("nsq_to_http", "--topic", "term", "--nsqd-tcp-address", tcp(server),
                         "--post", f"http://{host}:{port}/", "-n", "10")
    with trio.fail_after(TIMEOUT):
        while len(delivered) < 50:
            await trio.sleep(0.01)
    running.signal(signal.SIGTERM)
    assert await running.wait() == 0, running.stderr.decode()
    channel = server.nsqd.topics["term"].channels["nsq_to_http"]
    assert not channel.in_flight  # every request in progress finished and was FIN'd
    assert len(delivered) < len(bodies)
    assert len(set(delivered)) + channel.depth() == len(bodies)
