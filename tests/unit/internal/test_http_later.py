"""Later: a result promised without a task (durable /pub's wait for its fsync)."""

from __future__ import annotations

import socket

import trio

from internal.http import Later, Request, Response, serve_http, text


async def test_later_callbacks_and_await() -> None:
    later: Later[int] = Later()
    seen: list[int] = []
    later.then(seen.append)
    assert seen == []
    later.resolve(7)
    assert seen == [7]
    later.then(seen.append)  # resolved already: at once
    assert seen == [7, 7]
    assert await later == 7


async def test_later_responses_keep_pipelined_order(nursery: trio.Nursery) -> None:
    """Requests pipelined behind a pending Later are answered after it, in order."""
    pending: list[Later[Response]] = []

    def handler(req: Request) -> Response | Later[Response]:
        if req.path == "/later":
            later: Later[Response] = Later()
            pending.append(later)
            return later
        return text(req.path)

    host, port = await nursery.start(serve_http, handler, "127.0.0.1", 0)
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.connect((host, port))
    req = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
    await sock.send(req % b"/a" + req % b"/later")
    with trio.fail_after(10):
        while not pending:
            await trio.sleep(0.01)
        await sock.send(req % b"/b")  # arrives while the Later is pending
        await trio.sleep(0.1)
        pending[0].resolve(text("late"))
        got = b""
        while got.count(b"HTTP/1.1 200") < 3:
            data = await sock.recv(65536)
            assert data
            got += data
    bodies = [part.rsplit(b"\r\n\r\n", 1)[-1] for part in got.split(b"HTTP/1.1 ")[1:]]
    assert bodies == [b"/a", b"late", b"/b"]
    sock.close()
