"""A log line for refused connections that cannot flood the log: one per interval."""

from __future__ import annotations

import logging
import time

__all__ = ["RefusalLog"]

logger = logging.getLogger(__name__)


class RefusalLog:
    """Counts refusals; logs the first at once, then at most one summary per interval.

    Args:
        listener: what refused, e.g. ``"TCP"``.
        limit: the option that set the limit, e.g. ``"--max-connections"``.
        interval: seconds between two log lines.
    """

    def __init__(self, listener: str, limit: str, interval: float = 10.0) -> None:
        self.listener = listener
        self.limit = limit
        self.interval = interval
        self.total = 0
        self._unlogged = 0
        self._next_log = 0.0

    def refused(self, limit: int) -> None:
        """Count one connection refused because ``limit`` connections are open."""
        self.total += 1
        self._unlogged += 1
        now = time.monotonic()
        if now >= self._next_log:
            logger.warning("%s: %s %d reached, refused %d new connection(s) "
                           "(reported at most every %gs)",
                           self.listener, self.limit, limit, self._unlogged, self.interval)
            self._unlogged = 0
            self._next_log = now + self.interval
