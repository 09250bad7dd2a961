"""FlowControl alone: RDY shares, truncation and retry, redistribution, backoff (MockClock)."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from client.config import ClientConfig
from client.flow import RDY_RETRY_DELAY, FlowControl, RdyConn


class Recorder(RdyConn):
    def __init__(self, address: str, max_rdy: int = 2500) -> None:
        super().__init__(address, max_rdy)
        self.sent: list[int] = []
        self.is_closing = False

    @property
    def closing(self) -> bool:
        return self.is_closing

    def write_rdy(self, count: int) -> None:
        self.sent.append(count)


def rdys(conns: list[Recorder]) -> list[int]:
    return [c.rdy for c in conns]


def make(max_in_flight: int, **config: object) -> FlowControl:
    return FlowControl(ClientConfig(**config), max_in_flight, random.Random(7))  # type: ignore[arg-type]


async def test_even_share() -> None:
    flow = make(10)
    conns = [Recorder(f"n{i}") for i in range(3)]
    for c in conns:
        flow.add(c)
    assert rdys(conns) == [3, 3, 3]
    assert flow.total_rdy == 9
    assert conns[0].sent == [10, 5, 3]  # lowered as others arrived, never over the limit


async def test_share_is_capped_by_nsqd_max_rdy() -> None:
    flow = make(1000)
    conn = Recorder("n", max_rdy=50)
    flow.add(conn)
    assert conn.rdy == 50


async def test_total_never_exceeds_max_in_flight() -> None:
    flow = make(3)
    conns = [Recorder(f"n{i}") for i in range(5)]
    for c in conns:
        flow.add(c)
    assert sum(rdys(conns)) == 3
    assert sorted(rdys(conns)) == [0, 0, 1, 1, 1]


async def test_remove_hands_rdy_to_survivors() -> None:
    flow = make(100)
    a, b = Recorder("a"), Recorder("b")
    flow.add(a)
    flow.add(b)
    assert rdys([a, b]) == [50, 50]
    flow.remove(b)
    assert a.rdy == 100 and flow.total_rdy == 100


async def test_set_max_in_flight_zero_pauses_and_resumes() -> None:
    flow = make(10)
    a, b = Recorder("a"), Recorder("b")
    flow.add(a)
    flow.add(b)
    flow.set_max_in_flight(0)
    assert rdys([a, b]) == [0, 0]
    flow.set_max_in_flight(20)
    assert rdys([a, b]) == [10, 10]
    with pytest.raises(ValueError):
        flow.set_max_in_flight(-1)


async def test_truncated_connection_retries(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(2)
    async with trio.open_nursery() as nursery:
        await nursery.start(flow.start)
        a, b, c = Recorder("a"), Recorder("b"), Recorder("c")
        for conn in (a, b, c):
            flow.add(conn)
        assert rdys([a, b, c]) == [1, 1, 0]
        assert c.rdy_retry is not None
        flow.remove(a)  # frees one; survivors are re-evaluated at once
        assert c.rdy == 1 and c.rdy_retry is None
        await trio.sleep(RDY_RETRY_DELAY * 2)
        assert flow.total_rdy == 2
        nursery.cancel_scope.cancel()


async def test_redistribution_rotates_rdy(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(3, rdy_redistribute_interval=1.0, low_rdy_idle_timeout=2.0, low_rdy_timeout=4.0)
    conns = [Recorder(f"n{i}") for i in range(5)]
    ever: set[str] = set()
    async with trio.open_nursery() as nursery:
        await nursery.start(flow.start)
        for c in conns:
            flow.add(c)
        for _ in range(60):
            for c in conns:
                if c.rdy:
                    c.last_msg_time = trio.current_time()  # busy connections keep receiving
                    ever.add(c.address)
            assert flow.total_rdy == sum(rdys(conns)) <= 3
            await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    assert ever == {c.address for c in conns}  # everyone got a turn (low_rdy_timeout)


async def test_idle_connections_give_rdy_back(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(1, rdy_redistribute_interval=1.0, low_rdy_idle_timeout=2.0)
    a, b = Recorder("a"), Recorder("b")
    async with trio.open_nursery() as nursery:
        await nursery.start(flow.start)
        flow.add(a)
        flow.add(b)
        assert rdys([a, b]) == [1, 0]
        a.last_msg_time = trio.current_time()
        await trio.sleep(1.5)
        assert rdys([a, b]) == [1, 0]  # not idle yet
        await trio.sleep(2.0)
        assert 0 in a.sent and flow.total_rdy == 1
        nursery.cancel_scope.cancel()


async def test_backoff_cycle(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(10, backoff_multiplier=1.0, max_backoff_duration=120.0)
    a, b = Recorder("a"), Recorder("b")
    async with trio.open_nursery() as nursery:
        await nursery.start(flow.start)
        flow.add(a)
        flow.add(b)
        start = trio.current_time()
        flow.on_failure()
        assert flow.backoff_level == 1 and flow.in_backoff_timeout
        assert rdys([a, b]) == [0, 0]
        flow.on_failure()  # ignored during the timer
        assert flow.backoff_level == 1
        while flow.in_backoff_timeout:
            await trio.sleep(0.1)
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.11)  # 1s * 2**1
        assert sorted(rdys([a, b])) == [0, 1]  # one probe
        flow.on_success()
        assert flow.backoff_level == 0
        assert rdys([a, b]) == [5, 5]
        nursery.cancel_scope.cancel()


async def test_backoff_levels_grow_and_cap(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(4, backoff_multiplier=1.0, max_backoff_duration=10.0)
    a = Recorder("a")
    durations: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(flow.start)
        flow.add(a)
        for _ in range(5):
            start = trio.current_time()
            flow.on_failure()
            while flow.in_backoff_timeout:
                await trio.sleep(0.05)
            durations.append(round(trio.current_time() - start))
        assert flow.backoff_level == 3  # 2**4 = 16 > 10: the level stops growing
        assert durations == [2, 4, 8, 8, 8]
        for level in (2, 1):
            flow.on_success()
            assert flow.backoff_level == level
            assert a.rdy == 0  # still backing off, at a shorter duration
            while flow.in_backoff_timeout:
                await trio.sleep(0.05)
        flow.on_success()
        assert flow.backoff_level == 0 and a.rdy == 4
        nursery.cancel_scope.cancel()


async def test_zero_max_backoff_disables_backoff(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(4, max_backoff_duration=0.0)
    a = Recorder("a")
    flow.add(a)
    flow.on_failure()
    assert flow.backoff_level == 0 and a.rdy == 4


async def test_continue_keeps_level(autojump_clock: trio.testing.MockClock) -> None:
    flow = make(4)
    a = Recorder("a")
    async with trio.open_nursery() as nursery:
        await nursery.start(flow.start)
        flow.add(a)
        flow.on_failure()
        while flow.in_backoff_timeout:
            await trio.sleep(0.1)
        flow.on_continue()
        assert flow.backoff_level == 1 and flow.in_backoff_timeout and a.rdy == 0
        nursery.cancel_scope.cancel()


def test_full_jitter_strategy_stays_within_bounds() -> None:
    config = ClientConfig(backoff_strategy="full_jitter", backoff_multiplier=1.0)
    rng = random.Random(1)
    values = [config.backoff_duration(3, rng) for _ in range(200)]
    assert all(0 <= v <= 8 for v in values) and len(set(values)) > 100
