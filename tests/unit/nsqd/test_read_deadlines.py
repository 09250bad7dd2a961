"""Read timeouts kept by ReadDeadlines' task (no cancel scope per read), on the clock."""

from __future__ import annotations

import struct

import pytest
import trio
import trio.testing
from test_protocol_v2_core import connect

from client.protocol import HEARTBEAT, FrameType, commands
from nsqd.nsqd import NSQD
from nsqd.options import Options
from nsqd.read_deadlines import ReadDeadlines


async def test_scopes_are_cancelled_at_their_deadlines(
        nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):  # virtual seconds: a broken sweeper fails, not hangs
        deadlines = ReadDeadlines()
        nursery.start_soon(deadlines.run)
        await trio.testing.wait_all_tasks_blocked()
        assert deadlines.running
        t0 = trio.current_time()
        fired: dict[str, float] = {}

        async def wait(key: str, after: float, leave_at: float | None = None) -> None:
            with trio.CancelScope() as scope:
                deadlines.waiting(key, t0 + after, scope)
                try:
                    if leave_at is None:
                        await trio.sleep_forever()
                    await trio.sleep_until(t0 + leave_at)
                finally:
                    deadlines.done(key)
            if scope.cancelled_caught:
                fired[key] = trio.current_time() - t0

        async with trio.open_nursery() as inner:
            inner.start_soon(wait, "late", 5.0)
            await trio.testing.wait_all_tasks_blocked()
            inner.start_soon(wait, "early", 2.0)  # earlier than the sleep under way
            inner.start_soon(wait, "leaves", 3.0, 1.0)  # input came before its deadline
        assert fired == {"early": pytest.approx(2.0), "late": pytest.approx(5.0)}
        assert len(deadlines) == 0


@pytest.fixture
async def node(tmp_path, nursery: trio.Nursery) -> NSQD:
    node = NSQD(Options(data_path=str(tmp_path), client_timeout=10.0))
    node._nursery = nursery
    nursery.start_soon(node.meta.run)
    nursery.start_soon(node.protocol.read_deadlines.run)
    await trio.testing.wait_all_tasks_blocked()
    assert node.protocol.read_deadlines.running
    return node


async def test_idle_client_closed_two_heartbeats_after_its_last_bytes(
        node: NSQD, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):  # virtual seconds: a broken sweeper fails, not hangs
        peer, _ = await connect(node, nursery)
        await peer.send(commands.identify({"heartbeat_interval": 1000}))
        assert await peer.response() == b"OK"
        for _ in range(5):  # talking keeps it open well past two heartbeats
            await trio.sleep(1.5)
            await peer.send(commands.nop())
        nop_at = trio.current_time()
        frames = []
        while (frame := await peer.frame()) is not None:
            frames.append(frame)
        assert set(frames) == {(FrameType.RESPONSE, HEARTBEAT)}
        assert trio.current_time() - nop_at == pytest.approx(2.0, abs=0.01)
        assert len(node.protocol.read_deadlines) == 0


async def test_incomplete_command_closed_client_timeout_after_its_first_byte(
        node: NSQD, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):  # virtual seconds: a broken sweeper fails, not hangs
        peer, _ = await connect(node, nursery)
        await peer.send(commands.identify({"heartbeat_interval": -1}))
        assert await peer.response() == b"OK"
        await trio.sleep(30)  # no heartbeats: idle for longer than --client-timeout is fine
        first = trio.current_time()
        await peer.send(b"PUB t\n" + struct.pack(">l", 100) + b"x" * 10)
        for _ in range(4):  # trickling, within the timeout each time
            await trio.sleep(2)
            await peer.send(b"x" * 10)
        assert await peer.closed()
        assert trio.current_time() - first == pytest.approx(10.0, abs=0.01)
        assert "t" not in node.topics
        assert len(node.protocol.read_deadlines) == 0


async def test_a_closed_connection_leaves_no_deadline(
        node: NSQD, nursery: trio.Nursery, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(120):  # virtual seconds: a broken sweeper fails, not hangs
        peers = [(await connect(node, nursery, i))[0] for i in range(1, 4)]
        await trio.testing.wait_all_tasks_blocked()
        assert len(node.protocol.read_deadlines) == 3
        for peer in peers:
            await peer.stream.aclose()
        await trio.testing.wait_all_tasks_blocked()
        assert len(node.protocol.read_deadlines) == 0
