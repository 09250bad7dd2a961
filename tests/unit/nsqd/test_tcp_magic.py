"""nsqd.tcp without sockets: the protocol magic, over trio memory streams."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from client.protocol import FrameReader, FrameType, commands
from nsqd.nsqd import NSQD
from nsqd.options import Options


async def _frames_until_closed(stream: trio.abc.Stream) -> list[tuple[int, bytes]]:
    reader = FrameReader()
    while data := await stream.receive_some(65536):
        reader.feed(data)
    return [(f.type, f.data) for f in reader.frames()]


@pytest.mark.parametrize("first", [b"  V1", b"GET / HTTP/1.1\r\n"])
async def test_bad_magic_is_refused(tmp_path, nursery: trio.Nursery, first: bytes) -> None:
    node = NSQD(Options(data_path=str(tmp_path)))
    client_end, server_end = trio.testing.memory_stream_pair()
    nursery.start_soon(node.tcp.serve, server_end, "memory:1")
    await client_end.send_all(first)
    assert await _frames_until_closed(client_end) == [(FrameType.ERROR, b"E_BAD_PROTOCOL")]
    assert not node.clients


async def test_magic_in_pieces_then_v2(tmp_path, nursery: trio.Nursery) -> None:
    node = NSQD(Options(data_path=str(tmp_path)))
    client_end, server_end = trio.testing.memory_stream_pair()
    nursery.start_soon(node.tcp.serve, server_end, "memory:1")
    await client_end.send_all(b"  ")
    await trio.testing.wait_all_tasks_blocked()
    await client_end.send_all(b"V2" + commands.nop() + b"BOGUS\n")
    frames = await _frames_until_closed(client_end)
    assert frames == [(FrameType.ERROR, b"E_INVALID invalid command BOGUS")]
    assert not node.clients  # removed when its connection ended


async def test_silent_connection_closed_after_client_timeout(
        tmp_path, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    node = NSQD(Options(data_path=str(tmp_path)))
    client_end, server_end = trio.testing.memory_stream_pair()
    start = trio.current_time()
    nursery.start_soon(node.tcp.serve, server_end, "memory:1")
    await client_end.send_all(b" ")
    assert await _frames_until_closed(client_end) == []
    assert trio.current_time() - start == pytest.approx(node.options.client_timeout)
