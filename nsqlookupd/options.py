"""nsqlookupd options: NSQ 1.3's flag names and defaults (``nsqlookupd.NewOptions``)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from internal.logs import parse_level
from internal.netaddr import split_host_port

__all__ = ["Options"]


@dataclass
class Options:
    """Everything nsqlookupd can be configured with (flag > config file > default).

    Durations are float seconds.
    """

    log_level: str = field(default="info", metadata={
        "flag": "log-level", "help": "set log verbosity: debug, info, warn, error, or fatal"})
    log_prefix: str = field(default="[nsqlookupd] ", metadata={
        "flag": "log-prefix", "help": "log message prefix"})
    verbose: bool = field(default=False, metadata={
        "flag": "verbose", "help": "[deprecated] has no effect, use --log-level"})
    tcp_address: str = field(default="0.0.0.0:4160", metadata={
        "flag": "tcp-address", "help": "<addr>:<port> to listen on for TCP clients"})
    http_address: str = field(default="0.0.0.0:4161", metadata={
        "flag": "http-address", "help": "<addr>:<port> to listen on for HTTP clients"})
    max_connections: int = field(default=10000, metadata={
        "flag": "max-connections",
        "help": "maximum open connections per listener; more are closed at once (0 = unlimited)"})
    broadcast_address: str = field(default_factory=socket.gethostname, metadata={
        "flag": "broadcast-address",
        "help": "address of this lookupd node, (default to the OS hostname)"})
    inactive_producer_timeout: float = field(default=300.0, metadata={
        "flag": "inactive-producer-timeout", "duration": True,
        "help": "duration of time a producer will remain in the active list since its last ping"})
    tombstone_lifetime: float = field(default=45.0, metadata={
        "flag": "tombstone-lifetime", "duration": True,
        "help": "duration of time a producer will remain tombstoned if registration remains"})

    def __post_init__(self) -> None:
        parse_level(self.log_level)
        split_host_port(self.tcp_address)
        split_host_port(self.http_address)
