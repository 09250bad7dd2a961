"""NSQ's queueScanLoop: every ``--queue-scan-interval``, time out expired in-flight messages.

In-flight timeouts are requeued by :meth:`~nsqd.channel.Channel.process_in_flight`;
deferred messages have their own loop (:mod:`nsqd.deferred_loop`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from typing import Protocol

import trio

__all__ = ["ScannedChannel", "queue_scan_loop"]


class ScannedChannel(Protocol):
    """What the scan asks of a channel (:class:`~nsqd.channel.Channel`)."""

    @property
    def in_flight(self) -> Sized: ...

    def process_in_flight(self, now: float) -> int:
        """Requeue the in-flight messages whose timeout passed at ``now``; return how many."""


async def queue_scan_loop(channels: Callable[[], Iterable[ScannedChannel]],
                          interval: Callable[[], float]) -> None:
    """Scan ``channels()`` every ``interval()`` seconds (both read anew each time: the
    channels come and go, the interval changes with the options), until cancelled."""
    while True:
        await trio.sleep(interval())
        now = trio.current_time()
        for channel in list(channels()):
            if channel.in_flight:
                channel.process_in_flight(now)
