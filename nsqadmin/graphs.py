"""Built-in graphs: a sampler of cluster stats and a bounded in-memory ring buffer.

NSQ's nsqadmin draws its graphs from Graphite, fed by nsqd's statsd output. Here
nsqadmin samples the cluster itself: every ``--graph-sample-interval`` the
:class:`Sampler` reads every nsqd's ``/stats`` (without clients) and records, per
series, the depth and the message counter into a :class:`SeriesStore`.

Series keys:

* ``("topic", topic)``: a topic summed over its nodes;
* ``("topic", topic, node)``: a topic on one node;
* ``("channel", topic, channel)``: a channel summed over its nodes;
* ``("cluster",)``: every channel's messages (the Counter page).

Memory is bounded: all series share one ring of ``capacity`` sample times and each
series owns two preallocated ``array('d')`` rings of the same length (16 bytes per
sample), so a series costs ``16 * capacity`` bytes and at most ``max_series`` exist.
A series that has not been sampled for a whole ring (a deleted topic) is dropped.
Rates are derived when read: the counter's increase between consecutive samples over
the time between them; a decrease (an nsqd restarted, a topic was re-created) or a
gap gives no rate point.
"""

from __future__ import annotations

import logging
import math
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import trio

from .clusterinfo import ClusterError, ClusterInfo
from .stats import Doc

__all__ = ["Point", "Sampler", "SeriesStore", "SeriesKey", "StoreStatistics"]

logger = logging.getLogger(__name__)

SeriesKey = tuple[str, ...]
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class Point:
    """One sample of a series: time (epoch seconds), depth and message rate per second
    (None where it can't be derived)."""

    t: float
    depth: float
    rate: float | None


@dataclass(frozen=True, slots=True)
class StoreStatistics:
    """Size of a :class:`SeriesStore`."""

    series: int
    max_series: int
    capacity: int
    samples_taken: int
    dropped_series: int


class _Series:
    __slots__ = ("count", "depth", "last")

    def __init__(self, capacity: int) -> None:
        self.depth = array("d", [_NAN]) * capacity
        self.count = array("d", [_NAN]) * capacity
        self.last = -1  # last tick written


class SeriesStore:
    """Fixed-size history of (depth, message counter) samples per series.

    Args:
        capacity: Samples kept per series (the ring length).
        max_series: Most series kept; samples of further new series are dropped
            (and counted in :meth:`statistics`).
    """

    def __init__(self, capacity: int, max_series: int) -> None:
        if capacity < 2:
            raise ValueError("capacity must be >= 2")
        self.capacity = capacity
        self.max_series = max_series
        self.times = array("d", [_NAN]) * capacity
        self.tick = -1
        self._series: dict[SeriesKey, _Series] = {}
        self._dropped = 0

    def record(self, t: float, values: Iterable[tuple[SeriesKey, float, float]]) -> None:
        """Store one sample time and the ``(key, depth, message_count)`` values taken then.

        Series without a value at this tick get a gap.
        """
        self.tick += 1
        tick = self.tick
        cap = self.capacity
        slot = tick % cap
        self.times[slot] = t
        series = self._series
        for key, depth, count in values:
            s = series.get(key)
            if s is None:
                if len(series) >= self.max_series:
                    self._dropped += 1
                    continue
                s = series[key] = _Series(cap)
            elif s.last < tick - 1:
                for missed in range(max(s.last + 1, tick - cap + 1), tick):
                    s.depth[missed % cap] = _NAN
                    s.count[missed % cap] = _NAN
            s.depth[slot] = depth
            s.count[slot] = count
            s.last = tick
        if tick % 16 == 0 or len(series) >= self.max_series:
            horizon = tick - cap
            for key in [k for k, s in series.items() if s.last <= horizon]:
                del series[key]

    def points(self, key: SeriesKey, limit: int | None = None) -> list[Point]:
        """The series' samples, oldest first (at most ``limit`` of the newest)."""
        s = self._series.get(key)
        if s is None or self.tick < 0:
            return []
        cap = self.capacity
        first = max(0, self.tick - cap + 1)
        if limit is not None:
            first = max(first, self.tick - limit)  # one extra sample to derive the first rate
        out: list[Point] = []
        prev_t = prev_c = _NAN
        for tick in range(first, self.tick + 1):
            slot = tick % cap
            if tick > s.last:
                depth = count = _NAN
            else:
                depth, count = s.depth[slot], s.count[slot]
            t = self.times[slot]
            rate: float | None = None
            if not (math.isnan(count) or math.isnan(prev_c)) and t > prev_t and count >= prev_c:
                rate = (count - prev_c) / (t - prev_t)
            if not math.isnan(depth):
                out.append(Point(t, depth, rate))
            prev_t, prev_c = t, count
        if limit is not None and len(out) > limit:
            out = out[-limit:]
        return out

    def latest(self, key: SeriesKey) -> Point | None:
        """The series' sample at the newest tick (None if it has none there)."""
        s = self._series.get(key)
        tick = self.tick
        if s is None or s.last != tick:
            return None
        cap = self.capacity
        slot, prev = tick % cap, (tick - 1) % cap
        t, count = self.times[slot], s.count[slot]
        rate: float | None = None
        if tick > 0:
            prev_t, prev_c = self.times[prev], s.count[prev]
            if not math.isnan(prev_c) and t > prev_t and count >= prev_c:
                rate = (count - prev_c) / (t - prev_t)
        return Point(t, s.depth[slot], rate)

    def keys(self) -> list[SeriesKey]:
        """Every stored series key."""
        return list(self._series)

    def statistics(self) -> StoreStatistics:
        """Current size and limits."""
        return StoreStatistics(len(self._series), self.max_series, self.capacity,
                               self.tick + 1, self._dropped)


def sample_values(per_node_topics: Sequence[Doc]) -> list[tuple[SeriesKey, float, float]]:
    """Turn per-node topic stats into ``(key, depth, message_count)`` values."""
    topics: dict[str, list[float]] = {}
    channels: dict[tuple[str, str], list[float]] = {}
    out: list[tuple[SeriesKey, float, float]] = []
    cluster_messages = 0.0
    for t in per_node_topics:
        name = t["topic_name"]
        out.append((("topic", name, t["node"]), float(t["depth"]), float(t["message_count"])))
        total = topics.setdefault(name, [0.0, 0.0])
        total[0] += t["depth"]
        total[1] += t["message_count"]
        for c in t["channels"] or ():
            ctotal = channels.setdefault((name, c["channel_name"]), [0.0, 0.0])
            ctotal[0] += c["depth"]
            ctotal[1] += c["message_count"]
            cluster_messages += c["message_count"]
    out.extend((("topic", name), d, m) for name, (d, m) in topics.items())
    out.extend((("channel", tn, cn), d, m) for (tn, cn), (d, m) in channels.items())
    out.append((("cluster",), 0.0, cluster_messages))
    return out


class Sampler:
    """Samples cluster stats into a :class:`SeriesStore` on an interval.

    Args:
        ci: Cluster queries.
        store: Where samples go.
        interval: Seconds between samples.
        targets: ``() -> (lookupd_addresses, nsqd_addresses)``, read at every sample
            so runtime changes of the lookupd list apply.
        clock: Wall clock for sample times.
    """

    def __init__(self, ci: ClusterInfo, store: SeriesStore, interval: float,
                 targets: Callable[[], tuple[list[str], list[str]]],
                 clock: Callable[[], float]) -> None:
        self.ci = ci
        self.store = store
        self.interval = interval
        self.targets = targets
        self.clock = clock
        self.last_error = ""
        self._sampled = trio.Event()

    async def sample_once(self) -> bool:
        """Take one sample now; returns whether any node answered."""
        lookupd, nsqd = self.targets()
        warnings: list[str] = []
        try:
            stats = await self.ci.all_stats(lookupd, nsqd, warnings)
        except ClusterError as exc:
            self._set_error(str(exc), "sample failed")
            return False
        self._set_error("\n".join(warnings), "partial sample")
        self.store.record(self.clock(), sample_values(stats))
        event, self._sampled = self._sampled, trio.Event()
        event.set()
        return True

    def _set_error(self, error: str, what: str) -> None:
        """Remember the last sampling problem; log it only when it changes."""
        if error and error != self.last_error:
            logger.warning("GRAPHS: %s - %s", what, error)
        elif not error and self.last_error:
            logger.info("GRAPHS: sampling every node again")
        self.last_error = error

    async def wait_sampled(self) -> None:
        """Wait until the next sample has been recorded."""
        await self._sampled.wait()

    async def run(self) -> None:
        """Sample forever, one sample per interval (a slow sample delays the next)."""
        while True:
            deadline = trio.current_time() + self.interval
            with trio.move_on_after(max(self.interval * 2, 1.0)):
                await self.sample_once()
            await trio.sleep_until(deadline)
