"""internal.http server over real loopback sockets."""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import trio
import trio.lowlevel
from internal_http_client import RawClient, get, serving_mode, start_server  # noqa: F401

from internal.http import HTTPError, Request, Response, Router, json_response, text


async def echo(req: Request) -> Response:
    return json_response({
        "method": req.method, "path": req.path, "query": req.query,
        "params": req.params, "body": req.body.decode(), "remote": req.remote_addr,
        "ctype": req.headers.get("content-type"), "first": req.arg("x"),
        "missing": req.arg("nope", "dflt"),
    })


def ping(req: Request) -> Response:  # a plain handler: answered inline
    return text("OK", v1=False)


def sync_echo(req: Request) -> Response:
    return text(f"sync:{req.arg('x')}")


async def boom(req: Request) -> Response:
    raise RuntimeError("handler bug")


async def teapot(req: Request) -> Response:
    raise HTTPError(400, "MISSING_ARG_TOPIC")


def make_router(base_path: str = "/") -> Router:
    router = Router(base_path=base_path)
    router.add("GET", "/ping", ping)
    router.add(("GET", "POST", "PUT"), "/echo", echo)
    router.add("GET", "/sync", sync_echo)
    router.add("GET", "/api/topics/:topic/:channel", echo)
    router.add("GET", "/static/*asset", echo)
    router.add("GET", "/boom", boom)
    router.add("POST", "/bad", teapot)
    return router


pytestmark = pytest.mark.usefixtures("serving_mode")


async def start(nursery: trio.Nursery, handler=None, **kwargs) -> tuple[str, int]:
    return await start_server(nursery, handler or make_router(), **kwargs)


async def test_started_with_bound_address_and_logs_listening(nursery, caplog):
    caplog.set_level(logging.INFO, logger="internal.http")
    host, port = await start(nursery, name="HTTP")
    assert host == "127.0.0.1" and port > 0
    assert f"HTTP: listening on 127.0.0.1:{port}" in caplog.messages


async def test_routing_params_query_and_v1_headers(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/api/topics/t1/ch%231?x=1&x=2&empty=&flag"))
    reply = await client.response()
    assert reply.status == 200
    assert reply.header("content-type") == "application/json; charset=utf-8"
    assert reply.header("x-nsq-content-type") == "nsq; version=1.0"
    data = json.loads(reply.body)
    assert data["path"] == "/api/topics/t1/ch#1"
    assert data["params"] == {"topic": "t1", "channel": "ch#1"}
    assert data["query"] == {"x": ["1", "2"], "empty": [""], "flag": [""]}
    assert data["first"] == "1" and data["missing"] == "dflt"
    assert data["remote"].startswith("127.0.0.1:")


async def test_catch_all_and_plain_text(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/static/css/app.css") + get("/ping"))
    static, pong = await client.responses(2)
    assert json.loads(static.body)["params"] == {"asset": "/css/app.css"}
    assert pong.body == b"OK" and pong.header("x-nsq-content-type") is None
    assert pong.header("content-type") == "text/plain; charset=utf-8"


async def test_not_found_and_method_not_allowed(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/nope") + get("/ping", method="DELETE") + get("/ping", method="OPTIONS"))
    missing, wrong, options = await client.responses(3)
    assert missing.status == 404 and missing.body == b'{"message":"NOT_FOUND"}'
    assert missing.header("x-nsq-content-type") == "nsq; version=1.0"
    assert wrong.status == 405 and wrong.body == b'{"message":"METHOD_NOT_ALLOWED"}'
    assert wrong.header("allow") == "GET, OPTIONS"
    assert options.status == 200 and options.header("allow") == "GET, OPTIONS"


async def test_trailing_slash_redirect_keeps_query(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/ping/?a=1") + get("/echo/", method="POST"))
    moved, temp = await client.responses(2)
    assert moved.status == 301 and moved.header("location") == "/ping?a=1"
    assert temp.status == 307 and temp.header("location") == "/echo"


async def test_base_path(nursery):
    router = make_router("/admin/")
    router.add("GET", "/", ping)
    addr = await start(nursery, router)
    client = await RawClient.connect(addr)
    await client.send(get("/admin/ping") + get("/ping") + get("/admin") + get("/admin/"))
    ok, missing, index, slash = await client.responses(4)
    assert (ok.status, missing.status, index.status) == (200, 404, 200)
    assert slash.status == 301 and slash.header("location") == "/admin"


async def test_http_error_shape(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/bad", method="POST", body=b"x"))
    reply = await client.response()
    assert reply.status == 400
    assert json.loads(reply.body) == {"message": "MISSING_ARG_TOPIC"}


async def test_keep_alive_reuses_connection_and_honours_close(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    for i in range(3):
        await client.send(get(f"/echo?x={i}"))
        assert json.loads((await client.response()).body)["first"] == str(i)
    await client.send(get("/ping", "Connection: close"))
    reply = await client.response()
    assert reply.header("connection") == "close"
    assert await client.at_eof()


async def test_http10_closes_unless_keep_alive(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(b"GET /ping HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    reply = await client.response()
    assert reply.header("connection") == "keep-alive"
    await client.send(b"GET /ping HTTP/1.0\r\n\r\n")
    assert (await client.response()).body == b"OK"
    assert await client.at_eof()


def count_server_writes(monkeypatch, port: int) -> list[bytes]:
    """Record every ``send`` made by the server's sockets (those bound to ``port``)."""
    writes: list[bytes] = []
    original = socket.socket.send

    def counting_send(self, data, *args):
        name = self.getsockname()  # trio's own wakeup socketpair is AF_UNIX
        if isinstance(name, tuple) and name[1] == port:
            writes.append(bytes(data))
        return original(self, data, *args)

    monkeypatch.setattr(socket.socket, "send", counting_send)
    return writes


@pytest.mark.parametrize("path", ["/echo", "/sync"])
async def test_pipelined_requests_answered_in_order_with_one_write(nursery, monkeypatch, path):
    addr = await start(nursery)
    writes = count_server_writes(monkeypatch, addr[1])
    client = await RawClient.connect(addr)
    await client.send(get(f"{path}?x=a") + get("/echo", body=b"second", method="POST")
                      + get(f"{path}?x=c"))
    first, second, third = await client.responses(3)
    assert b"a" in first.body and b"c" in third.body
    assert json.loads(second.body)["body"] == "second"
    assert len(writes) == 1


async def test_sync_and_async_handlers_interleave_in_order(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    for _ in range(2):  # the connection goes back to the reactor after an awaiting handler
        await client.send(get("/sync?x=1") + get("/echo?x=2") + get("/sync?x=3") + get("/ping"))
        one, two, three, four = await client.responses(4)
        assert one.body == b"sync:1" and json.loads(two.body)["first"] == "2"
        assert three.body == b"sync:3" and four.body == b"OK"


async def test_awaiting_handler_does_not_hold_up_other_connections(nursery):
    release = trio.Event()

    async def wait(req: Request) -> Response:
        await release.wait()
        return text("released")

    router = make_router()
    router.add("GET", "/wait", wait)
    addr = await start(nursery, router)
    slow, fast = await RawClient.connect(addr), await RawClient.connect(addr)
    await slow.send(get("/wait"))
    for i in range(3):
        await fast.send(get(f"/sync?x={i}"))
        assert (await fast.response()).body == f"sync:{i}".encode()
    release.set()
    assert (await slow.response()).body == b"released"
    await slow.send(get("/sync?x=again"))
    assert (await slow.response()).body == b"sync:again"


async def test_reactor_serves_plain_connections_without_a_task_each(nursery, serving_mode):  # noqa: F811
    before = set(nursery.child_tasks)
    addr = await start(nursery)
    clients = [await RawClient.connect(addr) for _ in range(5)]
    for client in clients:
        await client.send(get("/sync?x=1"))
        assert (await client.response()).status == 200
    (server_task,) = set(nursery.child_tasks) - before
    tasks = len(server_task.child_nurseries[0].child_tasks)
    # the idle reaper and the reactor — or the reaper and one task per connection
    assert tasks == (2 if serving_mode == "reactor" else 1 + len(clients))


async def test_large_response_is_written_when_the_client_reads(nursery):
    big = b"z" * (8 << 20)

    def large(req: Request) -> Response:
        return Response(200, big, "application/octet-stream")

    router = make_router()
    router.add("GET", "/large", large)
    addr = await start(nursery, router)
    client = await RawClient.connect(addr)
    await client.send(get("/large") + get("/sync?x=after"))
    await trio.sleep(0.05)  # let the server fill the socket buffers
    first, second = await client.responses(2)
    assert first.body == big and second.body == b"sync:after"


async def test_request_split_across_many_writes(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    data = get("/echo?x=slow", "Content-Type: text/x", body=b"dribble", method="PUT")
    for i in range(len(data)):
        await client.send(data[i : i + 1])
        await trio.lowlevel.checkpoint()
    body = json.loads((await client.response()).body)
    assert body["body"] == "dribble" and body["ctype"] == "text/x" and body["method"] == "PUT"


async def test_chunked_request_body(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert json.loads((await client.response()).body)["body"] == "hello world"


async def test_expect_100_continue(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
    assert await client.read_raw(25) == b"HTTP/1.1 100 Continue\r\n\r\n"
    await client.send(b"data")
    assert json.loads((await client.response()).body)["body"] == "data"


async def test_body_over_limit_gets_413_and_close(nursery):
    addr = await start(nursery, max_body_size=10)
    client = await RawClient.connect(addr)
    await client.send(get("/echo", body=b"x" * 11, method="POST"))
    reply = await client.response()
    assert reply.status == 413 and json.loads(reply.body) == {"message": "BODY_TOO_BIG"}
    assert await client.at_eof()
    # chunked bodies are counted as they arrive
    client = await RawClient.connect(addr)
    await client.send(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n")
    assert (await client.response()).status == 413
    assert await client.at_eof()
    # exactly at the limit is fine
    client = await RawClient.connect(addr)
    await client.send(get("/echo", body=b"y" * 10, method="POST"))
    assert (await client.response()).status == 200


async def test_headers_over_limit_get_431(nursery):
    addr = await start(nursery, max_header_size=2048)
    client = await RawClient.connect(addr)
    await client.send(b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 4096)
    reply = await client.response()
    assert reply.status == 431
    assert await client.at_eof()


async def test_malformed_request_gets_400_and_close(nursery):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/ping") + b"NOT HTTP AT ALL\r\n\r\n")
    ok, bad = await client.responses(2)
    assert ok.status == 200
    assert bad.status == 400 and bad.header("connection") == "close"
    assert await client.at_eof()


async def test_handler_exception_is_500_and_server_survives(nursery, caplog):
    addr = await start(nursery)
    client = await RawClient.connect(addr)
    await client.send(get("/boom"))
    reply = await client.response()
    assert reply.status == 500
    assert reply.body == b'{"message":"INTERNAL_ERROR"}'
    assert b"Traceback" not in client.raw and b"handler bug" not in client.raw
    assert any(r.exc_info and "handler bug" in str(r.exc_info[1]) for r in caplog.records)
    # same connection and a new one keep working
    await client.send(get("/ping"))
    assert (await client.response()).body == b"OK"
    other = await RawClient.connect(addr)
    await other.send(get("/ping"))
    assert (await other.response()).status == 200


async def test_handler_returning_non_response_is_500(nursery):
    async def wrong(req: Request) -> Response:
        return "oops"  # type: ignore[return-value]

    addr = await start(nursery, wrong)
    client = await RawClient.connect(addr)
    await client.send(get("/anything"))
    assert (await client.response()).status == 500


async def test_plain_handler_and_head_request(nursery):
    async def handler(req: Request) -> Response:
        return Response(201, b"created", "text/plain", [("X-Extra", req.method)])

    addr = await start(nursery, handler)
    client = await RawClient.connect(addr)
    await client.send(get("/x", method="HEAD") + get("/y"))
    with trio.fail_after(5):
        data = b""
        while data.count(b"\r\n\r\n") < 2 or not data.endswith(b"created"):
            data += await client.sock.recv(65536)
    head, get_reply = data.split(b"HTTP/1.1 ")[1:]
    assert head.startswith(b"201 Created") and b"Content-Length: 7" in head
    assert head.endswith(b"X-Extra: HEAD\r\n\r\n")
    assert get_reply.endswith(b"X-Extra: GET\r\n\r\ncreated")


async def test_idle_keep_alive_connection_is_closed(nursery):
    addr = await start(nursery, idle_timeout=0.2)
    client = await RawClient.connect(addr)
    await client.send(get("/ping"))
    assert (await client.response()).status == 200
    start_time = trio.current_time()
    assert await client.at_eof(timeout=2)
    assert 0.15 < trio.current_time() - start_time < 1.5


async def test_slow_handler_is_not_reaped_as_idle(nursery):
    async def slow(req: Request) -> Response:
        await trio.sleep(0.5)
        return text("done")

    addr = await start(nursery, slow, idle_timeout=0.1)
    client = await RawClient.connect(addr)
    await client.send(get("/slow"))
    assert (await client.response()).body == b"done"


async def test_cancelling_stops_server_and_closes_connections():
    async with trio.open_nursery() as nursery:
        addr = await start(nursery)
        client = await RawClient.connect(addr)
        await client.send(get("/ping"))
        await client.response()
        nursery.cancel_scope.cancel()
    assert await client.at_eof(timeout=2)
    with pytest.raises(OSError):
        await RawClient.connect(addr)


async def test_httpx_client_keep_alive(nursery):
    host, port = await start(nursery)
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        replies = [await client.get("/echo", params={"x": str(i)}) for i in range(5)]
        posted = await client.post("/echo", content=b"payload")
    assert [r.json()["first"] for r in replies] == ["0", "1", "2", "3", "4"]
    assert len({r.json()["remote"] for r in replies}) == 1  # one reused connection
    assert posted.json()["body"] == "payload"


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")
async def test_ipv6_bracketed_host(nursery, caplog):
    caplog.set_level(logging.INFO, logger="internal.http")
    host, port = await start(nursery, host="[::1]")
    assert host == "::1"
    assert f"HTTP: listening on [::1]:{port}" in caplog.messages
    client = await RawClient.connect((host, port))
    await client.send(get("/echo"))
    assert json.loads((await client.response()).body)["remote"].startswith("[::1]:")


async def test_all_interfaces_host(nursery):
    _host, port = await start(nursery, host="")
    client = await RawClient.connect(("127.0.0.1", port))
    await client.send(get("/ping"))
    assert (await client.response()).status == 200


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not available")
async def test_tls(nursery, tmp_path: Path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost"],
        check=True, capture_output=True)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    host, port = await start(nursery, ssl_context=server_ctx)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    client_ctx.check_hostname = False
    stream = await trio.open_ssl_over_tcp_stream(host, port, ssl_context=client_ctx)
    await stream.send_all(get("/ping") + get("/echo?x=tls"))
    data = b""
    with trio.fail_after(5):
        while b'"first":"tls"' not in data:
            data += await stream.receive_some()
    assert data.startswith(b"HTTP/1.1 200 OK") and b"\r\n\r\nOK" in data
    await stream.aclose()


async def test_reactor_serves_more_ready_connections_than_one_wakeup_takes(
        nursery, monkeypatch, serving_mode):  # noqa: F811 - the fixture imported above
    from internal import _httpreactor

    monkeypatch.setattr(_httpreactor, "MAX_EVENTS", 2)
    addr = await start(nursery)
    clients = [await RawClient.connect(addr) for _ in range(7)]
    for i, client in enumerate(clients):
        await client.send(get(f"/sync?x={i}"))
    for i, client in enumerate(clients):
        assert (await client.response()).body == f"sync:{i}".encode()


async def test_other_tasks_run_while_clients_keep_the_server_busy(nursery):
    """Requests that keep arriving (from other threads here) never starve other tasks."""
    addr = await start(nursery)
    stop = threading.Event()
    gave_up = threading.Event()  # the writers stop on their own after a while
    socks = [socket.create_connection(addr) for _ in range(4)]
    batch = get("/sync?x=1") * 64

    def write(sock: socket.socket) -> None:
        end = time.monotonic() + 10
        with contextlib.suppress(OSError):
            while not stop.is_set():
                if time.monotonic() > end:
                    gave_up.set()
                    return
                sock.sendall(batch)

    def read(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set() and sock.recv(1 << 16):
                pass

    threads = [threading.Thread(target=fn, args=(s,), daemon=True)
               for s in socks for fn in (write, read)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            await trio.sleep(0.005)
        assert not gave_up.is_set()  # these ran while the requests kept coming
    finally:
        stop.set()
        for s in socks:
            s.shutdown(socket.SHUT_RDWR)
            s.close()
        for t in threads:
            t.join(5)


async def test_answers_sent_together_reach_their_own_connections(nursery):
    """Connections served in one wakeup: each gets its own answers, closes stay closes."""
    addr = await start(nursery)
    socks = [socket.create_connection(addr) for _ in range(6)]
    requests = [get("/sync?x=0"), get("/sync?x=1") + get("/ping"), get("/sync?x=2", "Connection: close"),
                b"BOGUS\r\n\r\n", get("/echo?x=4", body=b"four", method="POST"), get("/sync?x=5")]
    for sock, request in zip(socks, requests, strict=True):
        sock.sendall(request)  # before the server runs again: ready together
    clients = [RawClient(trio.socket.from_stdlib_socket(sock)) for sock in socks]
    assert (await clients[0].response()).body == b"sync:0"
    one, ping_ = await clients[1].responses(2)
    assert one.body == b"sync:1" and ping_.body == b"OK"
    assert (await clients[2].response()).body == b"sync:2" and await clients[2].at_eof()
    assert (await clients[3].response()).status == 400 and await clients[3].at_eof()
    assert json.loads((await clients[4].response()).body)["body"] == "four"
    assert (await clients[5].response()).body == b"sync:5"
    for client in (clients[0], clients[5]):  # kept alive
        await client.send(get("/sync?x=again"))
        assert (await client.response()).body == b"sync:again"


async def test_answer_left_for_the_end_of_a_wakeup_is_finished_when_the_client_reads(
        nursery, monkeypatch, serving_mode):  # noqa: F811
    from internal import _httpreactor

    monkeypatch.setattr(_httpreactor, "DEFER_MAX", 1 << 30)  # even 8 MiB waits for the batch
    big = b"z" * (8 << 20)
    router = make_router()
    router.add("GET", "/large", lambda req: Response(200, big, "application/octet-stream"))
    addr = await start(nursery, router)
    writes = count_server_writes(monkeypatch, addr[1])
    client = await RawClient.connect(addr)
    await client.send(get("/large"))
    await trio.sleep(0.05)  # let the server fill the socket buffers
    assert (await client.response()).body == big
    assert len(writes) > 1  # the socket took it in parts
    await client.send(get("/sync?x=after"))
    assert (await client.response()).body == b"sync:after"
