"""Small helpers shared by the queue framework: retry backoff and a latency window."""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass

__all__ = ["Backoff", "LatencyWindow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff: ``min(maximum, initial * factor ** attempt)`` seconds.

    Args:
        initial: Delay before the first retry, in seconds.
        maximum: Upper bound for any delay, in seconds.
        factor: Growth per attempt (1 gives a constant delay).

    Raises:
        ValueError: If ``initial`` is negative, ``maximum < initial`` or ``factor < 1``.
    """

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.initial < 0 or math.isnan(self.initial):
            raise ValueError(f"initial must be >= 0, got {self.initial!r}")
        if not self.maximum >= self.initial:
            raise ValueError(f"maximum ({self.maximum!r}) must be >= initial ({self.initial!r})")
        if not self.factor >= 1:
            raise ValueError(f"factor must be >= 1, got {self.factor!r}")

    def delay(self, attempt: int) -> float:
        """Return the delay in seconds before retry number ``attempt`` (0-based)."""
        if attempt <= 0:
            return self.initial
        try:
            value = self.initial * self.factor**attempt
        except OverflowError:
            return self.maximum
        return min(self.maximum, value)


class LatencyWindow:
    """The last ``size`` durations, in a fixed ring buffer, with nearest-rank percentiles.

    Args:
        size: How many samples to keep; older samples are overwritten.
    """

    __slots__ = ("_count", "_index", "_samples", "_size")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size!r}")
        self._size = size
        self._samples = array("d", bytes(8 * size))
        self._index = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, duration: float) -> None:
        """Record one duration in seconds."""
        self._samples[self._index] = duration
        self._index = (self._index + 1) % self._size
        if self._count < self._size:
            self._count += 1

    def percentiles(self, *points: float) -> tuple[float, ...]:
        """Return the nearest-rank percentile for each point in ``points`` (0-100).

        Returns zeros when no sample has been recorded.
        """
        if self._count == 0:
            return tuple(0.0 for _ in points)
        ordered = sorted(self._samples[: self._count])
        last = self._count - 1
        result = []
        for point in points:
            if not 0 <= point <= 100:
                raise ValueError(f"percentile must be within [0, 100], got {point!r}")
            rank = max(0, math.ceil(point / 100 * self._count) - 1)
            result.append(ordered[min(rank, last)])
        return tuple(result)
