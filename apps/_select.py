"""Choosing a destination (``--mode``) and timing the requests (``--status-every``),
for nsq_to_http and nsq_to_nsq."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from ._cli import UsageError

__all__ = ["MODES", "HostPool", "RoundRobin", "Selector", "TimerMetrics", "selector"]

logger = logging.getLogger("apps")

#: --mode values; epsilon-greedy is served by the plain host pool
MODES = ("round-robin", "hostpool", "epsilon-greedy")


class Selector(Protocol):
    def get(self) -> str:
        """The destination for the next message."""
        ...

    def mark(self, host: str, ok: bool) -> None:
        """Report how the request to ``host`` went."""
        ...


class RoundRobin:
    """Each destination in turn."""

    def __init__(self, hosts: Sequence[str]) -> None:
        self.hosts = list(hosts)
        self._counter = 0

    def get(self) -> str:
        self._counter += 1
        return self.hosts[self._counter % len(self.hosts)]

    def mark(self, host: str, ok: bool) -> None:
        pass


class HostPool:
    """go-hostpool's standard pool: healthy hosts in turn; a failed host is skipped
    until its retry delay (30 s, doubling up to 15 min) has passed; when every host
    is down, all are tried again.
    """

    def __init__(self, hosts: Sequence[str], initial_delay: float = 30.0, max_delay: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.hosts = list(hosts)
        self.initial_delay = initial_delay
        self.max_delay = max_delay
        self.clock = clock
        self._next = 0
        self._dead: dict[str, tuple[float, float]] = {}  # host → (retry at, current delay)

    def get(self) -> str:
        hosts = self.hosts
        if not self._dead:
            host = hosts[self._next % len(hosts)]
            self._next += 1
            return host
        now = self.clock()
        for step in range(len(hosts)):
            host = hosts[(self._next + step) % len(hosts)]
            dead = self._dead.get(host)
            if dead is None or dead[0] <= now:
                self._next += step + 1
                return host
        self._dead.clear()  # every host is down: try them all again
        return self.get()

    def mark(self, host: str, ok: bool) -> None:
        if ok:
            self._dead.pop(host, None)
            return
        previous = self._dead.get(host)
        delay = self.initial_delay if previous is None else min(previous[1] * 2, self.max_delay)
        self._dead[host] = (self.clock() + delay, delay)


def selector(mode: str, hosts: Sequence[str]) -> Selector:
    """The selector for ``--mode``.

    Raises:
        UsageError: an unknown mode.
    """
    if mode == "round-robin":
        return RoundRobin(hosts)
    if mode in ("hostpool", "epsilon-greedy"):
        return HostPool(hosts)
    raise UsageError(f"--mode {mode!r} is invalid (round-robin, hostpool, epsilon-greedy)")


class TimerMetrics:
    """Logs ``<prefix> finished N - 99th: ..ms - 95th: ..ms - avg: ..ms`` every N requests
    (bitly/timer_metrics); ``every`` 0 disables it."""

    def __init__(self, every: int, prefix: str) -> None:
        self.every = every
        self.prefix = prefix
        self._samples: list[float] = []

    def status(self, start: float, now: float | None = None) -> None:
        """Record one request that began at ``start`` (``time.monotonic()``)."""
        if not self.every:
            return
        samples = self._samples
        samples.append((time.monotonic() if now is None else now) - start)
        if len(samples) >= self.every:
            samples.sort()
            n = len(samples)
            p99 = samples[min(n - 1, int(n * 0.99))] * 1000
            p95 = samples[min(n - 1, int(n * 0.95))] * 1000
            avg = sum(samples) / n * 1000
            logger.info("%s finished %d - 99th: %.02fms - 95th: %.02fms - avg: %.02fms",
                        self.prefix, n, p99, p95, avg)
            samples.clear()
