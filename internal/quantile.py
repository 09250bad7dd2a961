"""Streaming quantiles in bounded memory over a sliding time window.

:class:`Sketch` is a KLL-style stack of compactors: level ``h`` holds values that each
stand for ``2**h`` observations; an over-full level is sorted and every other value
(random offset) moves up a level. Memory stays around ``3 * k`` values whatever the
count, the count stays exact, and a quantile's rank is off by about ``1.5 / k`` of the
count (the ``k=400`` default: well under NSQ's 1 %). Adding a batch is one C-level sort
and a slice, so callers collect values in a plain list and add them in batches.

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
from typing import Any, TypedDict

__all__ = ["FOLD_AT", "Percentile", "Result", "Sketch", "WindowedQuantile", "e2e_result", "query"]

_coin = random.Random().getrandbits
#: smallest capacity of a level
_MIN_CAP = 8
#: batches smaller than this wait in a list until that many values are pending
FOLD_AT = 256


class Sketch:
    """A mergeable rank summary of numbers (KLL compactors)."""

    __slots__ = ("_caps", "count", "k", "levels")

    def __init__(self, k: int = 400) -> None:
        self.k = k
        self.clear()

    def __len__(self) -> int:
        """How many values are held (bounded), not how many were added."""
        return sum(len(level) for level in self.levels)

    def extend(self, values: Sequence[Any], base: Any = None) -> None:
        """Add a batch of observations: ``values``, or ``base - v`` for each v when
        ``base`` is given (then only the values kept are computed).

        A large batch is sorted once and every ``2**j``-th value (random offset) goes
        straight to level ``j``, as ``j`` compactions would have done.
        """
        n = len(values)
        if not n:
            return
        self.count += n
        levels = self.levels
        caps = self._caps
        j = 0
        while j < len(levels) - 1 and (n >> j) > caps[j]:
            j += 1
        if j == 0:
            levels[0].extend(values if base is None else [base - v for v in values])
        else:
            ordered = sorted(values, reverse=base is not None)  # ascending results
            step = 1 << j
            whole = (n >> j) << j
            kept = ordered[_coin(j):whole:step]
            rest = ordered[whole:]  # fewer than 2**j: kept one by one, so counts add up
            if base is not None:
                kept = [base - v for v in kept]
                rest = [base - v for v in rest]
            levels[j].extend(kept)
            levels[0].extend(rest)
        self._compact()

    def clear(self) -> None:
        self.count = 0
        #: level h: values weighing 2**h each (level 0 unsorted)
        self.levels: list[list[Any]] = [[]]
        self._set_caps()

    def _set_caps(self) -> None:
        """Capacities: ``k`` at the top level, 2/3 of the level above below it."""
        top = len(self.levels) - 1
        self._caps = [max(_MIN_CAP, int(self.k * (2 / 3) ** (top - h))) for h in range(top + 1)]

    def _compact(self) -> None:
        levels = self.levels
        caps = self._caps
        h = 0
        while h < len(levels):
            buf = levels[h]
            if len(buf) > caps[h]:
                if h == len(levels) - 1:
                    levels.append([])
                    self._set_caps()
                    caps = self._caps
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
    weights = {weight for _, weight in weighted}
    same = weights.pop() if len(weights) == 1 else 0
    for q in quantiles:
        target = min(count, max(1, math.ceil(q * count)))
        if same:  # one weight (e.g. nothing compacted yet): index directly
            out.append(candidates[-(-target // same) - 1])
            continue
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

    ``total_count`` / ``total_sum`` count every value ever added (for Prometheus).
    """

    __slots__ = ("_cached", "_clock", "_current", "_last_move", "_move", "_pending",
                 "_streams", "percentiles", "total_count", "total_sum", "version")

    def __init__(self, window: float, percentiles: Sequence[float],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.percentiles = list(percentiles)
        self.total_count = 0
        self.total_sum = 0
        self._clock = clock
        self._streams = (Sketch(), Sketch())
        self._current = 0
        self._move = window / 2
        self._last_move = clock()
        #: changes whenever the quantiles may have (a value added, the window moved)
        self.version = 0
        self._cached: tuple[int, Result] | None = None
        #: values of small batches, added to the sketch :data:`FOLD_AT` at a time
        self._pending: list[int] = []

    def add(self, values: Sequence[int], base: int | None = None) -> None:
        """Add values (``base - v`` for each v with ``base``: e.g. now minus timestamps)."""
        self._advance(self._clock())  # pending values are of the current half
        n = len(values)
        self.version += 1
        self.total_count += n
        self.total_sum += sum(values) if base is None else base * n - sum(values)
        if n >= FOLD_AT:
            self._streams[self._current].extend(values, base)
            return
        pending = self._pending
        pending.extend(values if base is None else map(base.__sub__, values))
        if len(pending) >= FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        if self._pending:
            self._streams[self._current].extend(self._pending)
            self._pending = []

    def _advance(self, now: float) -> None:
        move = self._move
        behind = now - self._last_move
        if behind <= move:
            return
        self.version += 1
        self._fold()  # pending values join the half being left (they are older)
        if behind > 2 * move:  # both halves are stale: skip the idle time at once
            for stream in self._streams:
                stream.clear()
            self._last_move = now - behind % move if move > 0 else now
            return
        self._current ^= 1
        self._last_move += move
        self._streams[self._current].clear()

    def sketches(self) -> tuple[Sketch, Sketch]:
        """The two halves, aged up to now (for merging several windows)."""
        self._advance(self._clock())
        self._fold()
        return self._streams

    def result(self) -> Result:
        """NSQ's ``quantile.Result`` of this window (shared while nothing changed: do
        not modify it)."""
        self._advance(self._clock())
        cached = self._cached
        if cached is None or cached[0] != self.version:
            cached = self._cached = (self.version, e2e_result([self], self.percentiles))
        return cached[1]


class Percentile(TypedDict):
    """One entry of :class:`Result`'s ``percentiles``."""

    quantile: float
    value: int


class Result(TypedDict):
    """NSQ's ``quantile.Result`` (its JSON shape)."""

    count: int
    percentiles: list[Percentile] | None


def e2e_result(windows: Sequence[WindowedQuantile], percentiles: Sequence[float]) -> Result:
    """NSQ's ``quantile.Result`` of several windows merged (a topic's channels):
    ``{"count": n, "percentiles": [{"quantile": q, "value": v}, ...]}``, or
    ``{"count": 0, "percentiles": None}`` without percentiles or windows, as NSQ's
    empty result."""
    if not windows or not percentiles:
        return {"count": 0, "percentiles": None}
    count, values = query(chain.from_iterable(w.sketches() for w in windows), percentiles)
    return {"count": count,
            "percentiles": [{"quantile": q, "value": v} for q, v in zip(percentiles, values, strict=True)]}
