"""Snapshots of nsqd's topics, channels and connections: frozen records built by their
``statistics()`` methods when stats are asked for (never on the message path), and
rendered as ``/stats`` (JSON and text), ``/metrics`` and statsd lines by
:mod:`nsqd.stats`, :mod:`nsqd.metrics` and :mod:`nsqd.statsd`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from internal.quantile import Result, WindowedQuantile

__all__ = ["NO_LATENCY", "ChannelStatistics", "ClientStatistics", "LatencyStatistics",
           "TopicStatistics"]


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    """A snapshot of one connection's figures (NSQ's ``ClientV2Stats``)."""

    id: int  #: connection number, in connection order
    client_id: str
    hostname: str
    remote_address: str
    user_agent: str
    state: int
    ready_count: int
    in_flight_count: int
    message_count: int
    finish_count: int
    requeue_count: int
    connect_ts: int  #: Unix time, whole seconds
    sample_rate: int
    deflate: bool
    snappy: bool
    authed: bool
    auth_identity: str
    auth_identity_url: str
    pub_counts: tuple[tuple[str, int], ...]  #: (topic, messages published), by topic
    tls: bool
    tls_version: str  #: the TLS fields are empty without TLS
    tls_cipher_suite: str
    tls_negotiated_protocol: str


@dataclass(frozen=True, slots=True)
class LatencyStatistics:
    """Publish→FIN latencies (ns) of a channel, or of a topic's channels merged."""

    count: int  #: latencies in the window
    #: (quantile, value) over the window; None without --e2e-processing-latency-percentile
    percentiles: tuple[tuple[float, float], ...] | None
    total_count: int  #: latencies recorded since start
    total_sum: int
    windows: int  #: latency windows merged (0: none kept)

    @classmethod
    def of(cls, result: Result, windows: Sequence[WindowedQuantile]) -> LatencyStatistics:
        """From a ``quantile.Result`` (:func:`internal.quantile.e2e_result`) of ``windows``."""
        pairs = result["percentiles"]
        return cls(result["count"],
                   None if pairs is None else tuple((p["quantile"], p["value"]) for p in pairs),
                   sum(w.total_count for w in windows), sum(w.total_sum for w in windows),
                   len(windows))


#: a channel or topic without latency windows
NO_LATENCY = LatencyStatistics(0, None, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class ChannelStatistics:
    """A snapshot of one channel's figures (NSQ's ``ChannelStats``)."""

    name: str
    depth: int
    backend_depth: int
    in_flight_count: int
    deferred_count: int
    message_count: int
    requeue_count: int
    timeout_count: int
    client_count: int
    paused: bool
    e2e_processing_latency: LatencyStatistics
    #: the consumers in connection order; None when not asked for
    clients: tuple[ClientStatistics, ...] | None


@dataclass(frozen=True, slots=True)
class TopicStatistics:
    """A snapshot of one topic's figures (NSQ's ``TopicStats``)."""

    name: str
    depth: int
    backend_depth: int
    message_count: int
    message_bytes: int
    paused: bool
    #: its channels' latencies merged (NSQ's ``AggregateChannelE2eProcessingLatency``)
    e2e_processing_latency: LatencyStatistics
    channels: tuple[ChannelStatistics, ...]  #: by name
