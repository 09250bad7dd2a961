"""ServiceGroup: run several services in one nursery and stop them in reverse order.

After go-zero's ``core/service.ServiceGroup``. Services start in the order they were
added. A service whose ``run()`` accepts Trio's ``task_status`` keyword (as
:meth:`~client.queue.Queue.run` does) is started with :meth:`trio.Nursery.start`, so the
next one starts only once it reported ready; any other service counts as started when its
``run()`` first yields. On :meth:`ServiceGroup.stop` the last one added is stopped first
and awaited before the one added before it is stopped, so a service may rely on those
added earlier for as long as it runs (e.g. a queue consuming into a publisher).
"""

from __future__ import annotations

import inspect
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any, Final, final

import trio

from .interfaces import Service

__all__ = ["DEFAULT_STOP_SIGNALS", "ServiceGroup", "stop_on_signals"]

logger = logging.getLogger(__name__)

DEFAULT_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


async def stop_on_signals(
    service: Service,
    signals: Iterable[int] = DEFAULT_STOP_SIGNALS,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Call ``service.stop()`` when one of ``signals`` arrives, then return.

    Use as ``await nursery.start(stop_on_signals, service)``; started once the handlers
    are installed. Must run in the main thread (a :func:`trio.open_signal_receiver` rule).
    """
    with trio.open_signal_receiver(*signals) as received:
        task_status.started()
        async for signum in received:
            logger.info("SERVICE: got signal %s, stopping", signal.Signals(signum).name)
            service.stop()
            return


@final
class ServiceGroup:
    """A service made of services: run together, stopped in reverse order.

    If a service's ``run()`` raises, the exception cancels the others and propagates out
    of :meth:`run`. A service whose ``run()`` returns on its own is just done; when all
    are done, :meth:`run` returns.
    """

    def __init__(self, services: Iterable[Service] = ()) -> None:
        self._services: list[Service] = list(services)
        self._started = False
        self._stop_requested = False
        self._wake = trio.Event()
        self._done: list[trio.Event] = []
        self._scopes: list[trio.CancelScope] = []
        self._running = 0
        self._finished = trio.Event()

    def __len__(self) -> int:
        return len(self._services)

    def add(self, service: Service) -> None:
        """Append ``service``; it will start after, and stop before, those added earlier.

        Raises:
            RuntimeError: If the group is already running.
        """
        if self._started:
            raise RuntimeError("cannot add a service to a running ServiceGroup")
        self._services.append(service)

    def stop(self) -> None:
        """Ask :meth:`run` to stop the services in reverse order; returns at once.

        Idempotent. Before :meth:`run`, makes it return without starting anything.
        """
        self._stop_requested = True
        self._wake.set()

    async def aclose(self) -> None:
        """Stop, and wait until :meth:`run` has returned (at once if it never ran)."""
        self.stop()
        if self._started:
            await self._finished.wait()
        else:
            await trio.lowlevel.checkpoint()

    async def run(
        self,
        *,
        signals: Iterable[int] = (),
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run every service until all are done or :meth:`stop` was called.

        Args:
            signals: Signal numbers that trigger :meth:`stop` (e.g.
                :data:`DEFAULT_STOP_SIGNALS`); main thread only.
            task_status: Started once every service has started (see the module doc).

        Raises:
            RuntimeError: If called more than once.
        """
        if self._started:
            raise RuntimeError("ServiceGroup.run() may only be called once")
        self._started = True
        try:
            if self._stop_requested:
                task_status.started()
                return
            async with trio.open_nursery() as nursery:
                if signals:
                    await nursery.start(stop_on_signals, self, tuple(signals))
                self._done = [trio.Event() for _ in self._services]
                self._scopes = [trio.CancelScope() for _ in self._services]
                self._running = len(self._services)
                if not self._services:
                    self._wake.set()
                for index in range(len(self._services)):
                    if self._stop_requested:
                        # Never started: count it as done so the stop loop skips it.
                        self._done[index].set()
                        self._running -= 1
                        continue
                    await nursery.start(self._run_one, index)
                task_status.started()
                await self._wake.wait()
                for index in reversed(range(len(self._services))):
                    await self._stop_one(index)
                nursery.cancel_scope.cancel()  # the signal watcher, if any
        finally:
            self._finished.set()

    async def _stop_one(self, index: int) -> None:
        service, done = self._services[index], self._done[index]
        if done.is_set():
            return
        logger.info("SERVICE: stopping %r", service)
        try:
            service.stop()
        except Exception:
            logger.exception("SERVICE: %r failed to stop; cancelling it", service)
            self._scopes[index].cancel()
        await done.wait()

    async def _run_one(self, index: int, *, task_status: trio.TaskStatus[None]) -> None:
        service = self._services[index]
        try:
            with self._scopes[index]:
                if _accepts_task_status(service.run):
                    await service.run(task_status=task_status)  # type: ignore[call-arg]
                else:
                    task_status.started()
                    await service.run()
        finally:
            self._done[index].set()
            self._running -= 1
            if self._running == 0:
                self._wake.set()


def _accepts_task_status(run: Callable[..., Any]) -> bool:
    try:
        return "task_status" in inspect.signature(run).parameters
    except (TypeError, ValueError):
        return False
