"""ServiceGroup: ordered stop, failure propagation, signals, and a Queue as a member."""

from __future__ import annotations

import os
import signal
from collections import deque

import pytest
import trio

from client.queue import (
    NOTHING,
    Nothing,
    ProduceListener,
    Queue,
    ServiceGroup,
    stop_on_signals,
)

TIMEOUT = 10_000


class FakeService:
    """Runs until stopped, then takes ``linger`` seconds to finish; logs to ``journal``."""

    def __init__(self, name: str, journal: list[str], *, linger: float = 1.0) -> None:
        self.name = name
        self.journal = journal
        self.linger = linger
        self._stop = trio.Event()

    def __repr__(self) -> str:
        return f"FakeService({self.name})"

    async def run(self) -> None:
        self.journal.append(f"run {self.name}")
        await self._stop.wait()
        await trio.sleep(self.linger)
        self.journal.append(f"exit {self.name}")

    def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        self._stop.set()


async def test_stop_stops_in_reverse_order_and_waits(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    group = ServiceGroup([FakeService("a", journal)])
    group.add(FakeService("b", journal))
    group.add(FakeService("c", journal))
    assert len(group) == 3
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            await trio.sleep(1)
            assert journal == ["run a", "run b", "run c"]
            start = trio.current_time()
            await group.aclose()
            assert trio.current_time() - start == pytest.approx(3.0)
    assert journal[3:] == ["stop c", "exit c", "stop b", "exit b", "stop a", "exit a"]
    with pytest.raises(RuntimeError):
        group.add(FakeService("late", journal))


async def test_run_returns_when_every_service_is_done(autojump_clock: trio.abc.Clock) -> None:
    finished: list[str] = []

    class OneShot:
        def __init__(self, name: str, duration: float) -> None:
            self.name, self.duration = name, duration

        async def run(self) -> None:
            await trio.sleep(self.duration)
            finished.append(self.name)

        def stop(self) -> None:
            raise AssertionError("a finished service is not stopped")

    group = ServiceGroup([OneShot("x", 1), OneShot("y", 2)])
    with trio.fail_after(TIMEOUT):
        await group.run()
    assert finished == ["x", "y"]


async def test_a_failing_service_cancels_the_others(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []

    class Crashing:
        async def run(self) -> None:
            await trio.sleep(1)
            raise OSError("disk on fire")

        def stop(self) -> None:
            pass

    group = ServiceGroup([FakeService("a", journal), Crashing()])
    with trio.fail_after(TIMEOUT), pytest.RaisesGroup(OSError, flatten_subgroups=True):
        await group.run()
    assert journal == ["run a"]


async def test_a_service_whose_stop_fails_is_cancelled(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    journal: list[str] = []

    class Stubborn(FakeService):
        def stop(self) -> None:
            raise RuntimeError("won't stop")

    group = ServiceGroup([FakeService("a", journal), Stubborn("b", journal)])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            group.stop()
    assert journal == ["run a", "run b", "stop a", "exit a"]
    assert any("failed to stop" in r.getMessage() for r in caplog.records)


async def test_stop_before_run_and_empty_group(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    group = ServiceGroup([FakeService("a", journal)])
    await group.aclose()
    with trio.fail_after(1):
        await group.run()
    assert journal == []
    with pytest.raises(RuntimeError):
        await group.run()
    with trio.fail_after(1):
        await ServiceGroup().run()


async def test_signal_stops_the_group(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    group = ServiceGroup([FakeService("a", journal, linger=0)])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: group.run(signals=[signal.SIGUSR1], task_status=task_status)
            )
            os.kill(os.getpid(), signal.SIGUSR1)
    assert journal == ["run a", "stop a", "exit a"]


async def test_stop_on_signals_helper(autojump_clock: trio.abc.Clock) -> None:
    journal: list[str] = []
    service = FakeService("s", journal, linger=0)
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(service.run)
            await nursery.start(stop_on_signals, service, [signal.SIGUSR2])
            os.kill(os.getpid(), signal.SIGUSR2)
    assert journal == ["run s", "stop s", "exit s"]


async def test_queue_in_a_group_drains_before_the_service_it_feeds(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The publisher (added first) must outlive the queue that publishes into it."""
    journal: list[str] = []
    publisher = FakeService("publisher", journal)
    published: list[int] = []
    source = deque(range(25))

    class Source:
        def add_listener(self, listener: ProduceListener) -> None:
            pass

        async def produce(self) -> int | Nothing:
            await trio.lowlevel.checkpoint()
            return source.popleft() if source else NOTHING

    class Publish:
        async def consume(self, item: int) -> None:
            await trio.sleep(0.5)
            assert "stop publisher" not in journal
            published.append(item)

        async def on_event(self, event: object) -> None:
            pass

    queue: Queue[int] = Queue(Source, Publish, consumers=2)
    group = ServiceGroup([publisher, queue])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            await trio.sleep(1)
            await group.aclose()
    assert sorted(published) == list(range(25))
    assert journal[-2:] == ["stop publisher", "exit publisher"]


async def test_services_with_task_status_start_in_order(autojump_clock: trio.abc.Clock) -> None:
    ready_at: dict[str, float] = {}
    start = trio.current_time()

    class SlowStarter:
        def __init__(self, name: str, warmup: float) -> None:
            self.name, self.warmup = name, warmup
            self._stop = trio.Event()

        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            await trio.sleep(self.warmup)
            ready_at[self.name] = trio.current_time() - start
            task_status.started()
            await self._stop.wait()

        def stop(self) -> None:
            self._stop.set()

    group = ServiceGroup([SlowStarter("db", 3), SlowStarter("api", 1)])
    with trio.fail_after(TIMEOUT):
        async with trio.open_nursery() as nursery:
            await nursery.start(group.run)
            assert trio.current_time() - start == pytest.approx(4.0)
            group.stop()
    assert ready_at == pytest.approx({"db": 3.0, "api": 4.0})
