"""Client configuration: go-nsq's ``Config`` as a frozen dataclass.

Names follow go-nsq's option names (``max_in_flight``, ``backoff_multiplier``...);
durations are float seconds instead of Go durations. Build variants with
:func:`dataclasses.replace`::

    config = ClientConfig(max_in_flight=200, heartbeat_interval=5.0)
    slower = dataclasses.replace(config, max_backoff_duration=300.0)
"""

from __future__ import annotations

import dataclasses
import random
import socket
import ssl
from dataclasses import dataclass, field
from typing import Literal

from internal.version import PROJECT_VERSION

__all__ = ["DEFAULT_CONFIG", "ClientConfig", "USER_AGENT", "VERSION"]


#: the trio-nsq version (kept in :mod:`internal.version`, which pyproject.toml reads)
VERSION = PROJECT_VERSION
USER_AGENT = f"trio-nsq/{VERSION}"


def _hostname() -> str:
    return socket.gethostname()


def _short_hostname() -> str:
    return socket.gethostname().split(".", 1)[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """Connection, flow-control and backoff settings shared by producers and consumers.

    Attributes:
        dial_timeout: seconds allowed to open the TCP connection.
        read_timeout: seconds to wait for handshake answers (IDENTIFY, AUTH, SUB).
            Once connected, a connection is declared dead after ``2 * heartbeat_interval``
            without any frame.
        write_timeout: seconds one flush of buffered commands may take.
        heartbeat_interval: seconds between nsqd heartbeats (``None`` disables them;
            consumers need them).
        max_in_flight: messages a consumer allows in flight across all connections.
        max_attempts: a message delivered more often than this is given up (0: never).
        default_requeue_delay: base delay of a requeue without an explicit delay; the
            default policy multiplies it by the message's attempts.
        max_requeue_delay: cap of the default requeue delay.
        backoff_strategy: ``"exponential"`` (``multiplier * 2**level``) or
            ``"full_jitter"`` (uniform in ``[0, multiplier * 2**level]``).
        max_backoff_duration: longest backoff (0 disables backoff).
        backoff_multiplier: unit of backoff time.
        lookupd_poll_interval: seconds between nsqlookupd queries; without lookupd,
            the cap of the reconnect delay.
        lookupd_poll_jitter: fraction of the interval added at random before the first
            periodic poll, so consumers restarted together do not poll together.
        lookupd_poll_timeout: timeout of one nsqlookupd HTTP request.
        low_rdy_idle_timeout: when RDY is redistributed (more connections than
            ``max_in_flight``), a connection idle this long gives its RDY back.
        low_rdy_timeout: ... and one holding RDY this long gives it back regardless.
        rdy_redistribute_interval: period of the RDY redistribution check.
        client_id: sent in IDENTIFY (default: short hostname).
        hostname: sent in IDENTIFY (default: hostname).
        user_agent: sent in IDENTIFY.
        sample_rate: percentage of the channel's messages to receive (0: all).
        output_buffer_size: bytes nsqd buffers before writing to this client.
        output_buffer_timeout: seconds nsqd waits before flushing that buffer.
        msg_timeout: server-side in-flight timeout for this client (``None``: nsqd's).
        max_msg_size: largest frame accepted from nsqd in bytes (0: 64 MiB).
        tls_v1: ask nsqd to upgrade the connection to TLS after IDENTIFY.
        tls_config: the client's TLS settings (CA, client certificate...); ``None``
            means ``ssl.create_default_context()`` (system CAs, hostname checked).
        snappy: ask for snappy compression (after TLS, if both).
        deflate: ask for deflate compression (not together with snappy).
        deflate_level: deflate level 1..9 asked for (nsqd may cap it).
        auth_secret: sent with AUTH when nsqd requires it.
        write_buffer_high_water: bytes of unsent commands above which senders wait.
    """

    dial_timeout: float = 1.0
    read_timeout: float = 60.0
    write_timeout: float = 1.0
    heartbeat_interval: float | None = 30.0
    max_in_flight: int = 1
    max_attempts: int = 5
    default_requeue_delay: float = 90.0
    max_requeue_delay: float = 15 * 60.0
    backoff_strategy: Literal["exponential", "full_jitter"] = "exponential"
    max_backoff_duration: float = 120.0
    backoff_multiplier: float = 1.0
    lookupd_poll_interval: float = 60.0
    lookupd_poll_jitter: float = 0.3
    lookupd_poll_timeout: float = 60.0
    low_rdy_idle_timeout: float = 10.0
    low_rdy_timeout: float = 30.0
    rdy_redistribute_interval: float = 5.0
    client_id: str = field(default_factory=_short_hostname)
    hostname: str = field(default_factory=_hostname)
    user_agent: str = USER_AGENT
    sample_rate: int = 0
    output_buffer_size: int = 16 * 1024
    output_buffer_timeout: float = 0.25
    msg_timeout: float | None = None
    max_msg_size: int = 0
    tls_v1: bool = False
    tls_config: ssl.SSLContext | None = field(default=None, compare=False)
    snappy: bool = False
    deflate: bool = False
    deflate_level: int = 6
    auth_secret: str | None = field(default=None, repr=False)
    write_buffer_high_water: int = 1024 * 1024

    def __post_init__(self) -> None:
        positive = ("dial_timeout", "read_timeout", "write_timeout", "lookupd_poll_interval",
                    "lookupd_poll_timeout", "low_rdy_idle_timeout", "low_rdy_timeout",
                    "rdy_redistribute_interval")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        non_negative = ("max_in_flight", "max_attempts", "default_requeue_delay",
                        "max_requeue_delay", "max_backoff_duration", "backoff_multiplier",
                        "output_buffer_size", "output_buffer_timeout", "max_msg_size",
                        "write_buffer_high_water")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.heartbeat_interval is not None and self.heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0 or None")
        if not 0 <= self.lookupd_poll_jitter <= 1:
            raise ValueError("lookupd_poll_jitter must be within [0, 1]")
        if not 0 <= self.sample_rate <= 99:
            raise ValueError("sample_rate must be within [0, 99]")
        if self.max_attempts > 65535:
            raise ValueError("max_attempts must be <= 65535")
        if self.backoff_strategy not in ("exponential", "full_jitter"):
            raise ValueError(f"unknown backoff_strategy {self.backoff_strategy!r}")
        if self.msg_timeout is not None and self.msg_timeout <= 0:
            raise ValueError("msg_timeout must be > 0 or None")
        if self.snappy and self.deflate:
            raise ValueError("snappy and deflate cannot both be enabled")
        if not 1 <= self.deflate_level <= 9:
            raise ValueError("deflate_level must be within [1, 9]")

    def backoff_duration(self, level: int, rng: random.Random | None = None) -> float:
        """Seconds of backoff at ``level`` (>= 1), before capping at max_backoff_duration."""
        full = self.backoff_multiplier * (2.0**level)
        if self.backoff_strategy == "full_jitter":
            return (rng or random).uniform(0.0, full)
        return full

    def replace(self, **changes: object) -> ClientConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_CONFIG = ClientConfig()
