"""Streaming quantiles in bounded memory over a sliding time window.

:class:`Sketch` is a KLL-style stack of compactors: level ``h`` holds values that each
stand for ``2**h`` observations; an over-full level is sorted and every other value
(random offset) moves up a level. Memory stays around ``3 * k`` values whatever the
count, the count stays exact, and a quantile's rank is off by about ``1.5 / k`` of the
count (the ``k=256`` default: well under NSQ's 1 %). Adding a batch is a few C-level
sorts and slices, so callers buffer values in a plain list and fold them in batches.

:class:`WindowedQuantile` is NSQ's ``internal/quantile.Quantile``: two sketches, each
covering half the window; the older is dropped as the window moves.
"""

from __future__ import annotations

import math
import random
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import Any

__all__ = ["FOLD_BATCH", "Sketch", "WindowedQuantile", "e2e_result", "query"]

_coin = random.Random().getrandbits
#: smallest capacity of a level
_MIN_CAP = 8
#: pending values that make :meth:`WindowedQuantile.add` fold them into the sketch
FOLD_BATCH = 512


class Sketch:
    """A mergeable rank summary of numbers (KLL compactors)."""

    __slots__ = ("count", "k", "levels")

    def __init__(self, k: int = 256) -> None:
        self.k = k
        self.count = 0
        #: level h: values weighing 2**h each (level 0 unsorted)
        self.levels: list[list[Any]] = [[]]

    def __len__(self) -> int:
        """How many values are held (bounded), not how many were added."""
        return sum(len(level) for level in self.levels)

    def extend(self, values: Sequence[Any]) -> None:
        """Add a batch of observations."""
        if not values:
            return
        self.levels[0].extend(values)
        self.count += len(values)
        self._compact()

    def clear(self) -> None:
        self.levels = [[]]
        self.count = 0

    def _compact(self) -> None:
        levels = self.levels
        h = 0
        while h < len(levels):
            buf = levels[h]
            top = len(levels) - 1
            cap = max(_MIN_CAP, int(self.k * (2 / 3) ** (top - h)))
            if len(buf) > cap:
                if h == top:
                    levels.append([])
                buf.sort()
                odd = len(buf) & 1  # an odd one out stays, so weights add up exactly
                levels[h + 1].extend(buf[odd + _coin(1)::2])
                levels[h] = buf[:odd]
            h += 1


def query(sketches: Iterable[Sketch], quantiles: Sequence[float]) -> tuple[int, list[Any]]:
    """``(count, values)``: for each quantile q, the smallest value whose rank reaches
    ``ceil(q * count)`` over all ``sketches`` together (0 when they are empty)."""
    weighted = []
    count = 0
    for sketch in sketches:
        count += sketch.count
        for h, level in enumerate(sketch.levels):
            if level:
                level.sort()
                weighted.append((level, 1 << h))
    if not count:
        return 0, [0] * len(quantiles)
    candidates = sorted(chain.from_iterable(level for level, _ in weighted))
    out = []
    for q in quantiles:
        target = min(count, max(1, math.ceil(q * count)))
        lo, hi = 0, len(candidates) - 1
        while lo < hi:  # the first candidate whose rank reaches the target
            mid = (lo + hi) // 2
            value = candidates[mid]
            rank = 0
            for level, weight in weighted:
                rank += weight * bisect_right(level, value)
            if rank >= target:
                hi = mid
            else:
                lo = mid + 1
        out.append(candidates[lo])
    return count, out


class WindowedQuantile:
    """Quantiles of the values of the last ``window`` seconds (NSQ's ``quantile.Quantile``).

    Producers append to :attr:`pending` (a plain list, so the hot path costs one
    ``append``); :meth:`fold` moves them into the sketches, at the latest when queried.
    ``total_count`` / ``total_sum`` count every value ever folded (for Prometheus).
    """

    __slots__ = ("_clock", "_current", "_last_move", "_move", "_streams", "pending",
                 "percentiles", "total_count", "total_sum")

    def __init__(self, window: float, percentiles: Sequence[float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.percentiles = list(percentiles)
        self.pending: list[int] = []
        self.total_count = 0
        self.total_sum = 0
        self._clock = clock
        self._streams = (Sketch(), Sketch())
        self._current = 0
        self._move = window / 2
        self._last_move = clock()

    def add(self, values: Sequence[int]) -> None:
        """Queue values; they are folded in once :data:`FOLD_BATCH` wait."""
        pending = self.pending
        pending.extend(values)
        if len(pending) >= FOLD_BATCH:
            self.fold()

    def fold(self) -> None:
        """Age the window, then move the pending values into its current half (so a
        value is kept at least a half window, never dropped early)."""
        self._advance(self._clock())
        pending = self.pending
        if pending:
            self._streams[self._current].extend(pending)
            self.total_count += len(pending)
            self.total_sum += sum(pending)
            pending.clear()

    def _advance(self, now: float) -> None:
        move = self._move
        behind = now - self._last_move
        if behind <= move:
            return
        if behind > 2 * move:  # both halves are stale: skip the idle time at once
            for stream in self._streams:
                stream.clear()
            self._last_move = now - behind % move if move > 0 else now
            return
        self._current ^= 1
        self._last_move += move
        self._streams[self._current].clear()

    def sketches(self) -> tuple[Sketch, Sketch]:
        """The two halves, folded and aged up to now (for merging several windows)."""
        self.fold()
        return self._streams

    def result(self) -> dict[str, Any]:
        """NSQ's ``quantile.Result`` of this window."""
        return e2e_result([self], self.percentiles)


def e2e_result(windows: Sequence[WindowedQuantile], percentiles: Sequence[float]
               ) -> dict[str, Any]:
    """NSQ's ``quantile.Result`` of several windows merged (a topic's channels):
    ``{"count": n, "percentiles": [{"quantile": q, "value": v}, ...]}``, or
    ``{"count": 0, "percentiles": None}`` without percentiles or windows, as NSQ's
    empty result."""
    if not windows or not percentiles:
        return {"count": 0, "percentiles": None}
    count, values = query(chain.from_iterable(w.sketches() for w in windows), percentiles)
    return {"count": count,
            "percentiles": [{"quantile": q, "value": v} for q, v in zip(percentiles, values)]}
