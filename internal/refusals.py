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

    def refused(self, current: int) -> None:
        """Count one refused connection (``current``: how many are open)."""
        self.total += 1
        self._unlogged += 1
        now = time.monotonic()
        if now >= self._next_log:
            logger.warning("%s: refused %d connection(s): %d open reach %s (next report in %gs)",
                           self.listener, self._unlogged, current, self.limit, self.interval)
            self._unlogged = 0
            self._next_log = now + self.interval
