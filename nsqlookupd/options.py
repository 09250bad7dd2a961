"""nsqlookupd options: NSQ 1.3's flag names and defaults (``nsqlookupd.NewOptions``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from internal.logs import parse_level
from internal.netaddr import split_host_port
from internal.options import duration, option

__all__ = ["Options"]


@dataclass
class Options:
    """Everything nsqlookupd can be configured with (flag > config file > default).

    Durations are float seconds.
    """

    log_level: str = option("info", "log-level", "set log verbosity: debug, info, warn, error, or fatal")
    log_prefix: str = option("[nsqlookupd] ", "log-prefix", "log message prefix")
    verbose: bool = option(False, "verbose", "[deprecated] has no effect, use --log-level")
    tcp_address: str = option("0.0.0.0:4160", "tcp-address", "<addr>:<port> to listen on for TCP clients")
    http_address: str = option("0.0.0.0:4161", "http-address", "<addr>:<port> to listen on for HTTP clients")
    max_connections: int = option(
        10000, "max-connections",
        "maximum open connections per listener; more are closed at once (0 = unlimited)")
    broadcast_address: str = option(socket.gethostname(), "broadcast-address",
                                    "address of this lookupd node, (default to the OS hostname)")
    inactive_producer_timeout: float = duration(
        300.0, "inactive-producer-timeout",
        "duration of time a producer will remain in the active list since its last ping")
    tombstone_lifetime: float = duration(
        45.0, "tombstone-lifetime",
        "duration of time a producer will remain tombstoned if registration remains")

    def __post_init__(self) -> None:
        parse_level(self.log_level)
        split_host_port(self.tcp_address)
        split_host_port(self.http_address)
