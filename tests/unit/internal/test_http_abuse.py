"""internal.http under hostile clients, over real loopback sockets (reactor and task paths):
resets at every stage, slow clients, connection limits. The server must answer the next
client every time; an error escaping a connection would fail the test's nursery."""

from __future__ import annotations

import logging
import socket
import ssl
import struct

import pytest
import trio
import trustme
from helpers import tls_client_hello
from internal_http_client import RawClient, get, serving_mode, start_server  # noqa: F401

from internal.http import Request, Response, Router, text

pytestmark = pytest.mark.usefixtures("serving_mode")

BIG = 16 << 20


def ping(req: Request) -> Response:
    return text("OK", v1=False)


def big(req: Request) -> Response:
    return Response(200, b"x" * BIG)


async def big_async(req: Request) -> Response:  # answered by a detached task on the reactor
    await trio.lowlevel.checkpoint()
    return Response(200, b"y" * BIG)


def router() -> Router:
    r = Router()
    r.add("GET", "/ping", ping)
    r.add(("GET", "POST"), "/big", big)
    r.add("GET", "/big-async", big_async)
    return r


def reset(client: RawClient) -> None:
    """Close with SO_LINGER 0: the peer gets a RST instead of a FIN."""
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.sock.close()


async def read_head(client: RawClient) -> bytes:
    """Read until a response's header block has arrived."""
    data = b""
    with trio.fail_after(5):
        while b"\r\n\r\n" not in data:
            chunk = await client.sock.recv(65536)
            assert chunk, data
            data += chunk
    return data


async def assert_serving(addr: tuple[str, int]) -> None:
    client = await RawClient.connect(addr)
    await client.send(get("/ping"))
    assert (await client.response()).body == b"OK"
    client.close()


ERROR_REQUESTS = {
    "malformed": (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
    "long-header": (b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 8192, b"431"),
    "tls-hello": (tls_client_hello(), b"400"),
    "too-big": (b"POST /big HTTP/1.1\r\nContent-Length: 100000000\r\n\r\n" + b"z" * 65536,
                b"413"),
}


@pytest.mark.parametrize("case", list(ERROR_REQUESTS))
async def test_reset_after_error_response_while_draining(nursery, case):
    payload, status = ERROR_REQUESTS[case]
    addr = await start_server(nursery, router(), max_header_size=4096)
    for _ in range(3):
        client = await RawClient.connect(addr)
        await client.send(payload)
        head = await read_head(client)
        assert head.startswith(b"HTTP/1.1 " + status)
        reset(client)  # the server is draining (lingering) this connection now
        await assert_serving(addr)


async def test_reset_mid_request(nursery):
    addr = await start_server(nursery, router())
    for partial in (b"GET /pi", b"GET /ping HTTP/1.1\r\nHost: x",
                    b"POST /big HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc",
                    b"POST /big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"):
        client = await RawClient.connect(addr)
        await client.send(partial)
        reset(client)
        await assert_serving(addr)


@pytest.mark.parametrize("path", ["/big", "/big-async"])
async def test_reset_mid_response(nursery, path):
    addr = await start_server(nursery, router())
    for pipelined in (1, 3):
        client = await RawClient.connect(addr, rcvbuf=4096)
        await client.send(get(path) * pipelined)
        assert (await client.read_raw(1)) == b"H"  # the server is sending megabytes now
        reset(client)
        await assert_serving(addr)


async def test_tls_listener_survives_resets(nursery):
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_ctx)
    addr = await start_server(nursery, router(), ssl_context=server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def ping_tls() -> None:
        stream = await trio.open_ssl_over_tcp_stream(*addr, ssl_context=client_ctx)
        await stream.send_all(get("/ping"))
        with trio.fail_after(5):
            assert (await stream.receive_some()).startswith(b"HTTP/1.1 200")
        await stream.aclose()

    for payload in (b"GET /ping HTTP/1.1\r\n\r\n", tls_client_hello(), b"\x16\x03\x01\xff\xff"):
        client = await RawClient.connect(addr)
        await client.send(payload)
        reset(client)
        await ping_tls()
    # mid-response, after a complete handshake
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(addr)
    stream = trio.SSLStream(trio.SocketStream(trio.socket.from_stdlib_socket(sock)), client_ctx,
                            server_hostname="localhost")
    await stream.send_all(get("/big"))
    with trio.fail_after(5):
        assert await stream.receive_some(1) == b"H"
    stream.transport_stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                              struct.pack("ii", 1, 0))
    await trio.aclose_forcefully(stream)
    await ping_tls()


# ---------------------------------------------------------------------------- slow clients
async def closed_after(client: RawClient, limit: float = 10.0) -> float:
    """Seconds until the server closes ``client`` (EOF or reset)."""
    began = trio.current_time()
    assert await client.at_eof(timeout=limit)
    return trio.current_time() - began


async def test_trickled_head_is_cut_off_by_the_header_timeout(nursery):
    addr = await start_server(nursery, router(), header_timeout=1.0)
    client = await RawClient.connect(addr)
    began = trio.current_time()
    closed = False
    with trio.fail_after(10):
        for byte in b"GET /ping HTTP/1.1\r\nX-Slow: " + b"s" * 100:
            try:
                await client.send(bytes([byte]))
            except OSError:
                closed = True
                break
            await trio.sleep(0.2)
            if trio.current_time() - began > 1.6:
                await assert_serving(addr)  # others are served meanwhile
                break
    if not closed:
        assert await client.at_eof(timeout=5)
    assert 0.9 < trio.current_time() - began < 5


async def test_silent_new_connection_is_closed_by_the_header_timeout(nursery):
    addr = await start_server(nursery, router(), header_timeout=0.5)
    client = await RawClient.connect(addr)
    assert 0.4 < await closed_after(client) < 4


async def test_slow_body_is_cut_off_by_the_body_timeout(nursery):
    addr = await start_server(nursery, router(), body_timeout=1.0)
    client = await RawClient.connect(addr)
    await client.send(b"POST /big HTTP/1.1\r\nContent-Length: 1000\r\n\r\n")
    began = trio.current_time()
    with trio.fail_after(10):
        try:
            while trio.current_time() - began < 3:
                await client.send(b"b")
                await trio.sleep(0.2)
        except OSError:
            pass
    assert await client.at_eof()
    assert trio.current_time() - began < 5
    await assert_serving(addr)


@pytest.mark.parametrize("path", ["/big", "/big-async"])
async def test_client_that_does_not_read_is_cut_off(nursery, path):
    addr = await start_server(nursery, router(), body_timeout=0.5)
    client = await RawClient.connect(addr, rcvbuf=4096)
    await client.send(get(path))
    assert (await client.read_raw(1)) == b"H"
    await trio.sleep(1.5)  # the client reads nothing for longer than the send timeout
    received = 0
    with trio.fail_after(10):
        while True:
            try:
                data = await client.sock.recv(1 << 20)
            except ConnectionResetError:
                break
            if not data:
                break
            received += len(data)
    assert received < BIG  # closed before all of it was sent
    await assert_serving(addr)


async def test_idle_timeout_and_header_timeout_are_separate(nursery):
    addr = await start_server(nursery, router(), header_timeout=0.3, idle_timeout=1.5)
    client = await RawClient.connect(addr)
    await client.send(get("/ping"))
    assert (await client.response()).status == 200
    assert 1.2 < await closed_after(client) < 5


# ---------------------------------------------------------------------------- connection limit
async def test_connections_over_the_limit_are_refused_and_logged_once(nursery, caplog):
    caplog.set_level(logging.WARNING, logger="internal.http")
    addr = await start_server(nursery, router(), max_connections=3)
    kept = []
    for _ in range(3):
        client = await RawClient.connect(addr)
        await client.send(get("/ping"))
        assert (await client.response()).status == 200
        kept.append(client)
    for _ in range(5):
        extra = await RawClient.connect(addr)  # the kernel accepts; the server closes it
        assert await extra.at_eof()
    refused = [m for m in caplog.messages if "max-connections (3) reached" in m]
    assert refused == ["HTTP: 1 connection(s) refused: max-connections (3) reached"]
    for client in kept:  # the open ones keep working
        await client.send(get("/ping"))
        assert (await client.response()).status == 200
    kept.pop().close()
    with trio.fail_after(10):  # once one is gone, a new one gets in
        while True:
            client = await RawClient.connect(addr)
            await client.send(get("/ping"))
            try:
                assert (await client.response()).status == 200
                break
            except (EOFError, ConnectionResetError):
                await trio.sleep(0.05)


# ---------------------------------------------------------------------------- server errors
async def test_500s_carry_no_traceback_and_are_logged(nursery, caplog):
    def sync_bug(req: Request) -> Response:
        raise KeyError("secret detail")

    def bad_header(req: Request) -> Response:
        return Response(200, b"", headers=[("X-Bad", "line\r\nbreak")])

    r = router()
    r.add("GET", "/sync-bug", sync_bug)
    r.add("GET", "/bad-header", bad_header)
    addr = await start_server(nursery, r)
    client = await RawClient.connect(addr)
    await client.send(get("/sync-bug") + get("/bad-header") + get("/ping"))
    bug, bad, ok = await client.responses(3)
    for reply in (bug, bad):
        assert reply.status == 500 and reply.body == b'{"message":"INTERNAL_ERROR"}'
    assert ok.body == b"OK"
    assert b"Traceback" not in client.raw and b"secret detail" not in client.raw
    logged = [r for r in caplog.records if r.exc_info]
    assert any("secret detail" in str(r.exc_info[1]) for r in logged)
    assert any(isinstance(r.exc_info[1], ValueError) for r in logged)


# ---------------------------------------------------------------------------- pipelining
async def test_pipelined_answers_are_sent_in_bounded_batches(nursery, monkeypatch):
    from internal import http as ihttp

    monkeypatch.setattr(ihttp, "BATCH_BYTES", 300_000)
    batches: list[int] = []
    finish = ihttp._Server.finish

    def spy(self, conn, out):  # called once per batch, with the batch's answers
        finish(self, conn, out)
        batches.append(sum(map(len, out)))

    monkeypatch.setattr(ihttp._Server, "finish", spy)

    def hundred_k(req: Request) -> Response:
        return Response(200, req.path.encode() * (100_000 // len(req.path)))

    async def hundred_k_async(req: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return hundred_k(req)

    r = router()
    r.add("GET", "/s/:n", hundred_k)
    r.add("GET", "/a/:n", hundred_k_async)
    addr = await start_server(nursery, r)
    client = await RawClient.connect(addr, rcvbuf=4096)
    paths = [f"/{'sa'[i % 3 == 0]}/{i:03d}" for i in range(60)]
    # 60 answers of 100 kB, then a malformed request: answered in order, then 400
    await client.send(b"".join(get(path) for path in paths) + b"BAD REQUEST\r\n\r\n")
    replies = await client.responses(61, timeout=30)
    assert [reply.body[:6] for reply in replies[:60]] == [p.encode() for p in paths]
    assert replies[60].status == 400
    assert await client.at_eof()
    assert len(batches) >= 20 and max(batches) < 300_000 + 2 * 100_000
