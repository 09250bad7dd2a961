"""queue_scan_loop: in-flight timeouts every --queue-scan-interval (mock clock)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from nsqd.queue_scan import queue_scan_loop


class FakeChannel:
    def __init__(self, in_flight: int) -> None:
        self.in_flight = {b"%016d" % i: object() for i in range(in_flight)}
        self.scans: list[float] = []

    def process_in_flight(self, now: float) -> int:
        self.scans.append(now)
        return 0


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_scans_channels_with_in_flight_messages_each_interval(
        autojump_clock: trio.testing.MockClock) -> None:
    busy, idle = FakeChannel(2), FakeChannel(0)
    channels = [busy, idle]
    interval = [0.1]
    t0 = trio.current_time()
    with trio.move_on_after(1.05):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(queue_scan_loop, lambda: channels, lambda: interval[0])
            await trio.sleep(0.55)
            interval[0] = 0.2  # options swapped at runtime
            late = FakeChannel(1)
            channels.append(late)  # a channel created meanwhile
    assert idle.scans == []
    assert [round(t - t0, 6) for t in busy.scans] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0]
    assert [round(t - t0, 6) for t in late.scans] == [0.6, 0.8, 1.0]
