"""Batching executors on Trio's virtual clock: size, count and time triggers, bounds, exit."""

from __future__ import annotations

import pytest
import trio
import trio.lowlevel

from client.queue import BulkExecutor, ChunkExecutor, PeriodicalExecutor

TIMEOUT = 10_000


class Recorder:
    """An execute callback recording (virtual time, batch); optionally gated or failing."""

    def __init__(self) -> None:
        self.batches: list[tuple[float, list[int]]] = []
        self.gate: trio.Event | None = None
        self.fail_on: set[int] = set()
        self.running = 0
        self.overlaps = 0

    async def __call__(self, items: list[int]) -> None:
        self.running += 1
        if self.running > 1:
            self.overlaps += 1
        try:
            if self.gate is not None:
                await self.gate.wait()
            await trio.lowlevel.checkpoint()
            self.batches.append((trio.current_time(), list(items)))
            if self.fail_on & set(items):
                raise RuntimeError(f"cannot execute {items}")
        finally:
            self.running -= 1

    @property
    def items(self) -> list[list[int]]:
        return [batch for _, batch in self.batches]


async def test_bulk_flushes_by_count_then_by_interval(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    start = trio.current_time()
    with trio.fail_after(TIMEOUT):
        async with BulkExecutor(execute, bulk_size=3, flush_interval=10.0) as executor:
            for item in range(7):
                await executor.add(item)
            await trio.sleep(30)
            assert executor.statistics().buffered == 0
    assert execute.items == [[0, 1, 2], [3, 4, 5], [6]]
    times = [t - start for t, _ in execute.batches]
    assert times[0] == times[1] == 0
    assert times[2] == pytest.approx(10.0)
    stats = executor.statistics()
    assert (stats.added, stats.executed, stats.batches, stats.failures) == (7, 7, 3, 0)


async def test_chunk_flushes_when_bytes_reach_chunk_size(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    start = trio.current_time()
    with trio.fail_after(TIMEOUT):
        async with ChunkExecutor(execute, chunk_size_bytes=10, flush_interval=5.0) as executor:
            await executor.add(1, 4)
            await executor.add(2, 4)
            await trio.sleep(1)
            assert execute.items == []
            assert executor.statistics().buffered_bytes == 8
            await executor.add(3, 4)  # 12 bytes >= 10
            await trio.lowlevel.checkpoint()
            await executor.add(4, 25)  # one oversized item is a chunk of its own
            await executor.add(5, 1)
            await trio.sleep(10)
    assert execute.items == [[1, 2, 3], [4], [5]]
    times = [t - start for t, _ in execute.batches]
    assert times[0] == pytest.approx(1.0)
    assert times[1] == pytest.approx(1.0)
    assert times[2] == pytest.approx(6.0)


async def test_chunk_flushes_at_max_items(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    with trio.fail_after(TIMEOUT):
        async with ChunkExecutor(
            execute, chunk_size_bytes=1_000_000, flush_interval=60.0, max_items=2
        ) as executor:
            for item in range(5):
                await executor.add(item, 1)
            await trio.sleep(1)
            assert execute.items == [[0, 1], [2, 3]]
    assert execute.items == [[0, 1], [2, 3], [4]]


async def test_periodical_flushes_by_interval_only(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    start = trio.current_time()
    with trio.fail_after(TIMEOUT):
        async with PeriodicalExecutor(execute, interval=5.0, max_items=100) as executor:
            for item in range(50):
                await executor.add(item)
            await trio.sleep(4)
            assert execute.items == []
            await trio.sleep(2)
            assert execute.items == [list(range(50))]
            await trio.sleep(1)
            await executor.add(99)
            await trio.sleep(60)
    assert execute.items == [list(range(50)), [99]]
    times = [t - start for t, _ in execute.batches]
    assert times == pytest.approx([5.0, 12.0])


async def test_periodical_add_waits_for_the_tick_when_full(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    start = trio.current_time()
    with trio.fail_after(TIMEOUT):
        async with PeriodicalExecutor(execute, interval=5.0, max_items=2) as executor:
            await executor.add(0)
            await executor.add(1)
            await executor.add(2)  # waits for the flush at t=5
            assert trio.current_time() - start == pytest.approx(5.0)
            assert executor.statistics().buffered == 1  # [0, 1] was taken to execute
    assert execute.items == [[0, 1], [2]]
    assert [t - start for t, _ in execute.batches] == pytest.approx([5.0, 5.0])


async def test_exit_flushes_the_rest(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    start = trio.current_time()
    async with BulkExecutor(execute, bulk_size=100, flush_interval=3600.0) as executor:
        for item in range(5):
            await executor.add(item)
    assert execute.items == [[0, 1, 2, 3, 4]]
    assert trio.current_time() == start
    with pytest.raises(trio.ClosedResourceError):
        await executor.add(5)


async def test_exit_on_error_still_flushes(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    with pytest.raises(KeyError):
        async with BulkExecutor(execute, bulk_size=100) as executor:
            await executor.add(1)
            raise KeyError("boom")
    assert execute.items == [[1]]


async def test_explicit_flush_waits_for_execution(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    async with BulkExecutor(execute, bulk_size=100, flush_interval=3600.0) as executor:
        await executor.add(1)
        await executor.add(2)
        await executor.flush()
        assert execute.items == [[1, 2]]
        await executor.flush()  # nothing buffered: no empty batch
        assert executor.statistics().batches == 1


async def test_add_blocks_while_executing_and_buffer_full(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    execute.gate = trio.Event()
    with trio.fail_after(TIMEOUT):
        async with BulkExecutor(execute, bulk_size=2, flush_interval=1.0) as executor:
            await executor.add(0)
            await executor.add(1)  # batch [0, 1] starts executing and blocks on the gate
            await executor.add(2)
            await executor.add(3)  # the next buffer is full now
            with trio.move_on_after(30) as blocked:
                await executor.add(4)
            assert blocked.cancelled_caught
            stats = executor.statistics()
            assert (stats.buffered, stats.added, stats.batches) == (2, 4, 0)
            execute.gate.set()
            await executor.add(4)
            await executor.add(5)
    assert execute.items == [[0, 1], [2, 3], [4, 5]]
    assert execute.overlaps == 0


async def test_executions_never_overlap_with_concurrent_flushes(
    autojump_clock: trio.abc.Clock,
) -> None:
    execute = Recorder()

    async def slow(items: list[int]) -> None:
        await trio.sleep(1)
        await execute(items)

    async with BulkExecutor(slow, bulk_size=3, flush_interval=0.5) as executor, trio.open_nursery() as nursery:
        for n in range(4):
            nursery.start_soon(executor.flush)
            for item in range(n * 10, n * 10 + 5):
                await executor.add(item)
    assert execute.overlaps == 0
    flat = [item for batch in execute.items for item in batch]
    assert flat == sorted(flat)
    assert len(flat) == 20


async def test_execute_exceptions_are_counted_not_raised(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    execute = Recorder()
    execute.fail_on = {0}
    async with BulkExecutor(execute, bulk_size=2) as executor:
        for item in range(6):
            await executor.add(item)
    assert execute.items == [[0, 1], [2, 3], [4, 5]]
    stats = executor.statistics()
    assert (stats.failures, stats.batches, stats.executed) == (1, 3, 6)
    assert any("execute failed" in record.getMessage() for record in caplog.records)


async def test_lifecycle_errors(autojump_clock: trio.abc.Clock) -> None:
    executor = BulkExecutor(Recorder())
    with pytest.raises(RuntimeError):
        await executor.add(1)
    async with executor:
        pass
    with pytest.raises(RuntimeError):
        async with executor:
            pass


async def test_blocked_add_fails_when_executor_closes(autojump_clock: trio.abc.Clock) -> None:
    execute = Recorder()
    outcome: list[str] = []

    async def late_add(executor: PeriodicalExecutor[int]) -> None:
        try:
            await executor.add(1)
        except trio.ClosedResourceError:
            outcome.append("closed")

    async with trio.open_nursery() as nursery, PeriodicalExecutor(execute, interval=10.0, max_items=1) as executor:
        await executor.add(0)
        nursery.start_soon(late_add, executor)
        await trio.sleep(1)
        assert outcome == []
        # Leaving the executor while late_add waits for room wakes it with an error.
    assert outcome == ["closed"]
    assert execute.items == [[0]]


@pytest.mark.parametrize(
    "factory",
    [
        lambda: BulkExecutor(Recorder(), bulk_size=0),
        lambda: BulkExecutor(Recorder(), flush_interval=0),
        lambda: ChunkExecutor(Recorder(), chunk_size_bytes=0),
        lambda: ChunkExecutor(Recorder(), max_items=0),
        lambda: PeriodicalExecutor(Recorder(), max_items=0),
        lambda: PeriodicalExecutor(Recorder(), interval=-1),
    ],
)
def test_invalid_settings_are_rejected(factory: object) -> None:
    with pytest.raises(ValueError):
        factory()  # type: ignore[operator]


async def test_negative_chunk_size_is_rejected(autojump_clock: trio.abc.Clock) -> None:
    async with ChunkExecutor(Recorder()) as executor:
        with pytest.raises(ValueError):
            await executor.add(1, -1)
