"""Progress and rate on stderr, for a person watching a long transfer."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TextIO

import trio

__all__ = ["Progress"]


class Progress:
    """Prints ``<prog>: <count> <unit>, <rate>/s`` on stderr every ``interval``.

    On a terminal the line is rewritten in place; elsewhere one line per report.

    Args:
        prog: tool name at the start of the line.
        count: returns the running total.
        unit: what is counted (``messages``).
    """

    def __init__(self, prog: str, count: Callable[[], int], unit: str = "messages",
                 interval: float = 1.0, stream: TextIO | None = None) -> None:
        self.prog = prog
        self.count = count
        self.unit = unit
        self.interval = interval
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._start = 0.0

    def _line(self, total: int, rate: float) -> str:
        return f"{self.prog}: {total} {self.unit}, {rate:,.0f}/s"

    async def run(self) -> None:
        """Report until cancelled."""
        self._start = last_time = trio.current_time()
        last = self.count()
        while True:
            await trio.sleep(self.interval)
            now, total = trio.current_time(), self.count()
            rate = (total - last) / max(now - last_time, 1e-9)
            last, last_time = total, now
            self._write(self._line(total, rate))

    def _write(self, line: str) -> None:
        if self.tty:
            self.stream.write(f"\r\x1b[K{line}")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def done(self) -> None:
        """Print the final total and the average rate."""
        elapsed = trio.current_time() - self._start
        total = self.count()
        line = self._line(total, total / elapsed if elapsed > 0 else 0.0) + " (average)"
        self._write(line)
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
