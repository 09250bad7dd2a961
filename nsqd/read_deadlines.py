"""Read timeouts of nsqd's TCP connections, kept by one task instead of a cancel scope
per read.

A connection that waits for its client's next bytes must give up after a deadline (two
heartbeats, or ``--client-timeout`` for a command that trickles in). A
``trio.move_on_at`` around each wait costs a cancel scope and a deadline in Trio's heap
per read; a publisher that waits for each ``OK`` makes one wait per message, and the
scopes measured about a third of nsqd's CPU per ``PUB`` (16-18k vs 25k PUB/s with 10
such publishers). Here a connection notes its deadline and its (connection-long) cancel
scope while it waits, and :meth:`ReadDeadlines.run` sleeps until the earliest deadline
noted, cancelling the scope of each connection still waiting past its deadline.
"""

from __future__ import annotations

import math

import trio

__all__ = ["ReadDeadlines"]


class ReadDeadlines:
    """The deadlines of the reads under way; :meth:`run` enforces them (started in the
    daemon's nursery). Until it runs, :attr:`running` is False and connections keep a
    cancel scope per read themselves."""

    def __init__(self) -> None:
        #: connection (any hashable key) -> (deadline, its read scope)
        self._waiting: dict[object, tuple[float, trio.CancelScope]] = {}
        self._sleep: trio.CancelScope | None = None
        self.running = False

    def waiting(self, key: object, deadline: float, scope: trio.CancelScope) -> None:
        """``key`` waits for input until ``deadline``; past it, ``scope`` is cancelled."""
        self._waiting[key] = (deadline, scope)
        sleep = self._sleep
        if sleep is not None and deadline < sleep.deadline:
            sleep.deadline = deadline

    def done(self, key: object) -> None:
        """``key`` no longer waits (input came, or it left)."""
        self._waiting.pop(key, None)

    def __len__(self) -> int:
        return len(self._waiting)

    async def run(self) -> None:
        """Cancel the reads past their deadlines, sleeping until the earliest one."""
        self.running = True
        try:
            while True:
                now = trio.current_time()
                earliest = math.inf
                expired = []
                for key, (deadline, scope) in self._waiting.items():
                    if deadline <= now:
                        expired.append(key)
                        scope.cancel()
                    elif deadline < earliest:
                        earliest = deadline
                for key in expired:
                    del self._waiting[key]
                with trio.CancelScope(deadline=earliest) as self._sleep:
                    await trio.sleep_forever()
                self._sleep = None
        finally:
            self.running = False
            self._sleep = None
