"""internal.quantile: rank accuracy, bounded memory, exact counts, the sliding window."""

from __future__ import annotations

import bisect
import random

import pytest

import internal.quantile
from internal.quantile import Sketch, WindowedQuantile, e2e_result, query

QS = [0.5, 0.9, 0.95, 0.99, 0.999]


@pytest.fixture(autouse=True)
def seeded(monkeypatch: pytest.MonkeyPatch) -> None:
    """The compaction offsets are random: fixed here so a run is repeatable (the bounds
    below hold for every seed tried in 0..59)."""
    monkeypatch.setattr(internal.quantile, "_coin", random.Random(11).getrandbits)


def _rank_errors(values: list[int], sketches: list[Sketch]) -> list[float]:
    ordered = sorted(values)
    count, got = query(sketches, QS)
    assert count == len(values)
    n = len(values)
    # a value holds the ranks from bisect_left to bisect_right (duplicates)
    return [max(0.0, bisect.bisect_left(ordered, v) / n - q, q - bisect.bisect_right(ordered, v) / n)
            for q, v in zip(QS, got, strict=False)]


@pytest.mark.parametrize("shape", ["uniform", "exponential", "descending", "constant-ish"])
def test_rank_error_and_memory_bounded(shape: str) -> None:
    rng = random.Random(7)
    n = 300_000
    if shape == "uniform":
        values = [rng.randrange(10**9) for _ in range(n)]
    elif shape == "exponential":
        values = [int(rng.expovariate(1 / 1e6)) for _ in range(n)]
    elif shape == "descending":
        values = list(range(n, 0, -1))
    else:
        values = [rng.choice((5, 6, 7, 10**6)) for _ in range(n)]
    sketch = Sketch()
    for i in range(0, n, 777):
        sketch.extend(values[i:i + 777])
    assert sketch.count == n
    assert len(sketch) < 3 * sketch.k  # bounded, whatever n
    assert max(_rank_errors(values, [sketch])) < 0.01  # NSQ's perks: epsilon 0.01


def test_small_sets_are_exact() -> None:
    sketch = Sketch()
    sketch.extend([30, 10, 20])
    assert query([sketch], [0.5, 0.99, 1.0, 0.01]) == (3, [20, 30, 30, 10])
    assert query([Sketch()], [0.99]) == (0, [0])


def test_memory_stays_bounded_over_many_batches() -> None:
    sketch = Sketch(k=64)
    sizes = set()
    for i in range(2000):
        sketch.extend(range(i * 100, i * 100 + 100))
        sizes.add(len(sketch))
    assert sketch.count == 200_000
    assert max(sizes) < 3 * 64 + 100  # a batch may sit in level 0 until compacted


def test_query_merges_sketches() -> None:
    rng = random.Random(3)
    a = [rng.randrange(1000) for _ in range(50_000)]
    b = [rng.randrange(1000, 2000) for _ in range(50_000)]
    sa, sb = Sketch(), Sketch()
    sa.extend(a)
    sb.extend(b)
    assert max(_rank_errors(a + b, [sa, sb])) < 0.01
    count, (median,) = query([sa, sb], [0.5])
    assert count == 100_000 and 950 <= median <= 1050


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_window_drops_old_halves() -> None:
    clock = Clock()
    w = WindowedQuantile(10.0, [0.99, 0.5], clock=clock)
    w.add([1000] * 10)
    assert w.result() == {"count": 10, "percentiles": [{"quantile": 0.99, "value": 1000},
                                                       {"quantile": 0.5, "value": 1000}]}
    clock.now += 5.5  # one move: the old half is still in the window
    w.add([3000] * 10)
    res = w.result()
    assert res["count"] == 20 and res["percentiles"][0]["value"] == 3000
    assert res["percentiles"][1]["value"] == 1000
    clock.now += 5.0  # second move: the first half is dropped
    res = w.result()
    assert res["count"] == 10 and res["percentiles"][1]["value"] == 3000
    clock.now += 1e6  # idle for long: everything aged out at once
    assert w.result()["count"] == 0
    assert w.total_count == 20 and w.total_sum == 40_000


def test_base_minus_values() -> None:
    """``add(timestamps, now)`` records ``now - timestamp``, also for large batches."""
    rng = random.Random(5)
    stamps = [10**12 - rng.randrange(10**6) for _ in range(20_000)]
    w = WindowedQuantile(60.0, [0.5, 0.99])
    for i in range(0, len(stamps), 1000):
        w.add(stamps[i:i + 1000], 10**12)
    latencies = [10**12 - t for t in stamps]
    assert w.total_count == 20_000 and w.total_sum == sum(latencies)
    assert max(_rank_errors(latencies, list(w.sketches()))) < 0.01


def test_e2e_result_shapes() -> None:
    assert e2e_result([], [0.99]) == {"count": 0, "percentiles": None}
    w = WindowedQuantile(60.0, [0.99])
    assert e2e_result([w], [0.99]) == {"count": 0, "percentiles": [{"quantile": 0.99, "value": 0}]}
    w2 = WindowedQuantile(60.0, [0.99])
    w.add([5])
    w2.add([7, 9])
    assert e2e_result([w, w2], [0.99]) == {"count": 3,
                                           "percentiles": [{"quantile": 0.99, "value": 9}]}


def test_result_cached_until_something_changes() -> None:
    clock = Clock()
    w = WindowedQuantile(10.0, [0.5], clock=clock)
    w.add([1, 2, 3])
    first = w.result()
    assert w.result() is first
    w.add([10, 10, 10, 10])
    assert w.result()["percentiles"][0]["value"] == 10
    second = w.result()
    clock.now += 11  # the window moved past everything
    assert w.result() is not second and w.result()["count"] == 0
