"""A cap on a listener's open connections, with a refusal log that cannot flood."""

from __future__ import annotations

import logging

import trio

__all__ = ["ConnectionLimit"]

#: at most one "connections refused" line per this many seconds
LOG_INTERVAL = 10.0


class ConnectionLimit:
    """Counts a listener's connections against ``maximum`` (0: no limit).

    Beyond the limit a new connection is to be closed at once; :meth:`admit` says so
    and logs ``<name>: N connection(s) refused: max-connections (M) reached`` at most
    once per :data:`LOG_INTERVAL` (N counts the refusals since the previous line).
    """

    def __init__(self, name: str, maximum: int, logger: logging.Logger) -> None:
        self.name = name
        self.maximum = maximum
        self.logger = logger
        self.open = 0
        self._refused = 0
        self._logged_at = -LOG_INTERVAL

    def admit(self, open_now: int | None = None) -> bool:
        """True if one more connection fits (then counted open), else log the refusal.

        ``open_now`` is the caller's own count of open connections, if it keeps one
        (then :attr:`open` and :meth:`release` are not used).
        """
        count = self.open if open_now is None else open_now
        if self.maximum <= 0 or count < self.maximum:
            if open_now is None:
                self.open += 1
            return True
        self._refused += 1
        now = trio.current_time()
        if now - self._logged_at >= LOG_INTERVAL:
            self.logger.warning("%s: %d connection(s) refused: max-connections (%d) reached",
                                self.name, self._refused, self.maximum)
            self._refused = 0
            self._logged_at = now
        return False

    def release(self) -> None:
        """One connection counted by :meth:`admit` has closed."""
        self.open -= 1
