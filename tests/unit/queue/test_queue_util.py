"""The queue's private helpers: Backoff, LatencyWindow, Gate and Mailbox."""

from __future__ import annotations

import pytest
import trio

from client.queue import Backoff
from client.queue._sync import Gate, Mailbox
from client.queue._util import LatencyWindow


def test_backoff_grows_and_is_capped() -> None:
    backoff = Backoff(initial=0.5, maximum=4.0)
    assert [backoff.delay(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert backoff.delay(10_000) == 4.0  # no OverflowError
    assert Backoff(initial=1.0, maximum=1.0, factor=1.0).delay(50) == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"initial": -1.0}, {"initial": 2.0, "maximum": 1.0}, {"factor": 0.5}],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)


def test_latency_window_percentiles_and_overwrite() -> None:
    window = LatencyWindow(100)
    assert window.percentiles(50) == (0.0,)
    for value in range(1, 101):
        window.add(float(value))
    assert window.percentiles(0, 50, 90, 99, 100) == (1.0, 50.0, 90.0, 99.0, 100.0)
    for _ in range(100):
        window.add(1000.0)  # older samples fall out of the window
    assert len(window) == 100
    assert window.percentiles(1) == (1000.0,)
    with pytest.raises(ValueError):
        window.percentiles(101)
    with pytest.raises(ValueError):
        LatencyWindow(0)


async def test_mailbox_blocks_when_full_and_close_releases_writers(
    autojump_clock: trio.abc.Clock,
) -> None:
    mailbox: Mailbox[int] = Mailbox(2)
    assert await mailbox.put(1) and await mailbox.put(2)
    results: list[bool] = []

    async def writer(value: int) -> None:
        results.append(await mailbox.put(value))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, 3)
        await trio.sleep(1)
        nursery.start_soon(writer, 4)  # parks after writer 3: woken in FIFO order
        await trio.sleep(1)
        assert results == [] and len(mailbox) == 2
        assert mailbox.pop_nowait() == 1
        await trio.sleep(1)
        assert results == [True]
        mailbox.close()
    assert sorted(results) == [False, True]
    assert mailbox.closed
    assert [mailbox.pop_nowait(), mailbox.pop_nowait()] == [2, 3]
    with pytest.raises(trio.WouldBlock):
        mailbox.pop_nowait()
    assert not await mailbox.put(5)
    with trio.fail_after(1):
        await mailbox.wait_nonempty()  # closed: returns although empty


async def test_mailbox_close_wakes_waiting_reader(autojump_clock: trio.abc.Clock) -> None:
    mailbox: Mailbox[int] = Mailbox(1)
    woke_at: list[float] = []

    async def reader() -> None:
        await mailbox.wait_nonempty()
        woke_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.sleep(5)
        assert woke_at == []
        mailbox.close()
    assert woke_at == [pytest.approx(trio.current_time())]


async def test_gate_gives_priority_waiters_the_next_turn(autojump_clock: trio.abc.Clock) -> None:
    gate = Gate()
    order: list[str] = []
    assert gate.try_acquire()

    async def contender(name: str, priority: bool) -> None:
        await gate.acquire(priority=priority)
        order.append(name)
        await trio.sleep(1)
        gate.release()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(contender, "ordinary", False)
        await trio.sleep(1)
        nursery.start_soon(contender, "priority", True)
        await trio.sleep(1)
        assert not gate.try_acquire()  # a priority waiter blocks the fast path
        gate.release()
    assert order == ["priority", "ordinary"]


async def test_cancelled_priority_waiter_does_not_strand_others(
    autojump_clock: trio.abc.Clock,
) -> None:
    gate = Gate()
    assert gate.try_acquire()
    got: list[str] = []

    async def ordinary() -> None:
        await gate.acquire(priority=False)
        got.append("ordinary")

    async with trio.open_nursery() as nursery:
        with trio.move_on_after(1):
            nursery.start_soon(ordinary)
            await gate.acquire(priority=True)
        assert gate.priority_waiting == 0
        gate.release()
    assert got == ["ordinary"]
