"""Shared fixtures: in-process daemons on 127.0.0.1 port 0 with a temp data path."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio

from nsqd import NSQD, Options


class RunningNSQD:
    """An nsqd started in the test's nursery, with its bound addresses."""

    def __init__(self, nsqd: NSQD, scope: trio.CancelScope) -> None:
        self.nsqd = nsqd
        self.scope = scope
        assert nsqd.bound is not None
        self.tcp_address = nsqd.bound.tcp_address
        self.http_address = nsqd.bound.http_address

    @property
    def http_url(self) -> str:
        assert self.http_address is not None
        return f"http://{self.http_address[0]}:{self.http_address[1]}"

    def stop(self) -> None:
        self.scope.cancel()


@pytest.fixture
def nsqd_options(tmp_path: Any) -> Callable[..., Options]:
    def make(**overrides: Any) -> Options:
        kwargs: dict[str, Any] = dict(tcp_address="127.0.0.1:0", http_address="127.0.0.1:0",
                                      data_path=str(tmp_path), node_id=1)
        kwargs.update(overrides)
        return Options(**kwargs)
    return make


@pytest.fixture
async def start_nsqd(nursery: trio.Nursery, nsqd_options: Callable[..., Options]
                     ) -> AsyncIterator[Callable[..., Any]]:
    """``await start_nsqd(**option_overrides)`` → RunningNSQD (stopped at test end)."""
    started: list[RunningNSQD] = []

    async def start(**overrides: Any) -> RunningNSQD:
        nsqd = NSQD(nsqd_options(**overrides))
        scope = trio.CancelScope()

        async def runner(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
            with scope:
                await nsqd.run(task_status=task_status)

        await nursery.start(runner)
        running = RunningNSQD(nsqd, scope)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
async def nsqd_server(start_nsqd: Callable[..., Any]) -> RunningNSQD:
    """A default nsqd (HTTP disabled until needed is not assumed: both listen)."""
    return await start_nsqd(http_address="")
