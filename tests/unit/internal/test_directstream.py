"""internal.directstream.DirectSocketStream over a real socket pair."""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

from internal.directstream import DirectSocketStream


def pair() -> tuple[DirectSocketStream, socket.socket]:
    a, b = socket.socketpair()
    stream = DirectSocketStream(trio.SocketStream(trio.socket.from_stdlib_socket(a)))
    b.setblocking(False)
    return stream, b


async def read_all(peer: socket.socket, size: int) -> bytes:
    got = b""
    while len(got) < size:
        await trio.lowlevel.wait_readable(peer)
        got += peer.recv(1 << 20)
    return got


async def _receive_waits(stream: DirectSocketStream, peer: socket.socket) -> None:
    """receive_some waits until data comes, then returns it."""
    async with trio.open_nursery() as nursery:
        got: list[bytes] = []

        async def reader() -> None:
            got.append(await stream.receive_some(100))

        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        peer.send(b"hello")
    assert got == [b"hello"]


async def test_receive_waits_for_data_and_returns_what_came() -> None:
    stream, peer = pair()
    await _receive_waits(stream, peer)
    assert await _receive_after(peer, stream, b"x" * 10, 4) == b"xxxx"  # at most max_bytes
    peer.close()
    assert await stream.receive_some(100) == b"xxxxxx"
    assert await stream.receive_some(100) == b""  # EOF
    await stream.aclose()


async def _receive_after(peer: socket.socket, stream: DirectSocketStream, data: bytes,
                         size: int) -> bytes:
    peer.send(data)
    return await stream.receive_some(size)


async def test_large_reads_follow_a_full_read() -> None:
    stream, peer = pair()
    data = bytes(range(256)) * 4096  # 1 MiB
    received = b""
    async with trio.open_nursery() as nursery:

        async def writer() -> None:
            view = memoryview(data)
            while view:
                await trio.lowlevel.wait_writable(peer)
                try:
                    view = view[peer.send(view):]
                except BlockingIOError:
                    pass

        nursery.start_soon(writer)
        while len(received) < len(data):
            chunk = await stream.receive_some(1 << 20)
            assert chunk
            received += chunk
    assert received == data
    await stream.aclose()


async def test_send_all_waits_while_the_peer_does_not_read() -> None:
    stream, peer = pair()
    data = b"z" * (4 << 20)  # far over the socket buffers
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stream.send_all, data)
        await trio.testing.wait_all_tasks_blocked()
        assert await read_all(peer, len(data)) == data
    await stream.aclose()


async def test_repeated_sends_let_other_tasks_run() -> None:
    stream, peer = pair()
    ran = 0

    async def other() -> None:
        nonlocal ran
        while True:
            ran += 1
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(other)
        await trio.lowlevel.checkpoint()
        before = ran
        for _ in range(64):
            await stream.send_all(b"x")
        assert ran > before
        nursery.cancel_scope.cancel()
    assert await read_all(peer, 64) == b"x" * 64
    await stream.aclose()


async def test_closed_stream_raises_closed_and_wakes_a_waiting_reader() -> None:
    stream, peer = pair()
    raised: list[BaseException] = []

    async def reader() -> None:
        try:
            await stream.receive_some(10)
        except trio.ClosedResourceError as exc:
            raised.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        await stream.aclose()
    assert len(raised) == 1
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_some(10)
    with pytest.raises(trio.ClosedResourceError):
        await stream.send_all(b"x")
    peer.close()


async def test_peer_reset_is_a_broken_resource() -> None:
    stream, peer = pair()
    peer.close()
    with pytest.raises(trio.BrokenResourceError):
        for _ in range(100):  # the first write may still be accepted
            await stream.send_all(b"x" * 65536)
    await stream.aclose()


async def test_max_bytes_must_be_positive() -> None:
    stream, peer = pair()
    with pytest.raises(ValueError):
        await stream.receive_some(0)
    await stream.aclose()
    peer.close()


async def test_send_nowait_writes_what_the_socket_takes() -> None:
    stream, peer = pair()
    assert stream.send_nowait(b"abc") == 3
    big = b"y" * (8 << 20)
    taken = stream.send_nowait(big)
    assert 0 < taken < len(big)  # the socket buffers filled up
    assert stream.send_nowait(b"more") == 0  # full: nothing, no waiting
    expected = b"abc" + big[:taken]
    assert await read_all(peer, len(expected)) == expected
    await stream.aclose()
    assert stream.send_nowait(b"x") == 0  # closed
    peer.close()


async def test_receive_ready_reads_what_is_there_and_never_waits() -> None:
    stream, peer = pair()
    assert await stream.receive_ready(100) is None  # nothing yet: no waiting
    await _receive_waits(stream, peer)  # then receive_some waits for the data
    peer.send(b"x" * 10)
    await trio.lowlevel.wait_readable(stream.stream.socket)
    assert await stream.receive_ready(4) == b"xxxx"  # at most max_bytes
    assert await stream.receive_ready(100) == b"xxxxxx"
    assert await stream.receive_ready(100) is None
    peer.close()
    await trio.lowlevel.wait_readable(stream.stream.socket)
    assert await stream.receive_ready(100) == b""  # EOF
    await stream.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await stream.receive_ready(100)
