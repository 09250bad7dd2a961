"""nsqd's options: NSQ 1.3's flags, config keys and defaults (``nsqd/options.go``)."""

from __future__ import annotations

import hashlib
import socket
import zlib
from dataclasses import dataclass

from internal.options import duration, option

from .tls import TLS_NOT_REQUIRED, VERSION_TLS10, parse_tls_min_version, parse_tls_required
from .tls import validate as validate_tls

__all__ = ["Options", "default_node_id"]


def default_node_id() -> int:
    """NSQ's default --node-id: crc32(md5(hostname)) % 1024."""
    digest = hashlib.md5(socket.gethostname().encode()).digest()
    return zlib.crc32(digest) % 1024


@dataclass
class Options:
    """Every nsqd setting. Durations are float seconds; sizes are bytes."""

    node_id: int = option(-1, "node-id", "unique part for message IDs, (int) in range [0,1024) "
                        "(default is hash of hostname)", cfg="id")
    log_level: str = option("info", "log-level", "set log verbosity: debug, info, warn, error, or fatal")
    log_prefix: str = option("[nsqd] ", "log-prefix", "log message prefix")

    tcp_address: str = option("0.0.0.0:4150", "tcp-address", "<addr>:<port> to listen on for TCP clients")
    http_address: str = option("0.0.0.0:4151", "http-address", "<addr>:<port> to listen on for HTTP clients")
    https_address: str = option("0.0.0.0:4152", "https-address",
                                "<addr>:<port> to listen on for HTTPS clients "
                                "(only when --tls-cert and --tls-key are set)")
    broadcast_address: str = option(socket.gethostname(), "broadcast-address",
                                    "address that will be registered with lookupd")
    broadcast_tcp_port: int = option(0, "broadcast-tcp-port",
                                     "TCP port that will be registered with lookupd (default: TCP port)")
    broadcast_http_port: int = option(0, "broadcast-http-port",
                                      "HTTP port that will be registered with lookupd (default: HTTP port)")
    lookupd_tcp_addresses: list[str] = option([], "lookupd-tcp-address",
                                              "lookupd TCP address (may be given multiple times)",
                                              cfg="nsqlookupd_tcp_addresses")
    auth_http_addresses: list[str] = option([], "auth-http-address",
                                            "<addr>:<port> or a full url to query auth server "
                                            "(may be given multiple times)",
                                            cfg="auth_http_addresses")
    auth_http_request_method: str = option("get", "auth-http-request-method",
                                           "HTTP method to use for auth server requests (get or post)")
    http_client_connect_timeout: float = duration(2.0, "http-client-connect-timeout",
                                                  "timeout for HTTP connect")
    http_client_request_timeout: float = duration(5.0, "http-client-request-timeout",
                                                  "timeout for HTTP request")

    data_path: str = option("", "data-path", "path to store disk-backed messages")
    mem_queue_size: int = option(10000, "mem-queue-size",
                                 "number of messages to keep in memory (per topic/channel)")
    max_bytes_per_file: int = option(100 * 1024 * 1024, "max-bytes-per-file",
                                     "number of bytes per diskqueue file before rolling")
    sync_every: int = option(2500, "sync-every", "number of messages per diskqueue fsync")
    sync_timeout: float = duration(2.0, "sync-timeout", "duration of time per diskqueue fsync")

    queue_scan_interval: float = duration(0.1, "queue-scan-interval",
                                          "how often in-flight and deferred timeouts are checked")

    msg_timeout: float = duration(60.0, "msg-timeout", "default duration to wait before auto-requeing a message")
    max_msg_timeout: float = duration(15 * 60.0, "max-msg-timeout",
                                      "maximum duration before a message will timeout")
    max_msg_size: int = option(1024 * 1024, "max-msg-size",
                               "maximum size of a single message in bytes")
    max_body_size: int = option(5 * 1024 * 1024, "max-body-size",
                                "maximum size of a single command body")
    max_req_timeout: float = duration(3600.0, "max-req-timeout", "maximum requeuing timeout for a message")
    client_timeout: float = duration(60.0, "client-timeout",
                                     "client heartbeat timeout (default heartbeat is half of it)")

    max_heartbeat_interval: float = duration(60.0, "max-heartbeat-interval",
                                             "maximum client configurable duration of time between client heartbeats")
    max_rdy_count: int = option(2500, "max-rdy-count", "maximum RDY count for a client")
    max_output_buffer_size: int = option(64 * 1024, "max-output-buffer-size",
                                         "maximum client configurable size (in bytes) for a client output buffer")
    max_output_buffer_timeout: float = duration(
        30.0, "max-output-buffer-timeout",
        "maximum client configurable duration of time between flushing to a client")
    min_output_buffer_timeout: float = duration(
        0.025, "min-output-buffer-timeout",
        "minimum client configurable duration of time between flushing to a client")
    output_buffer_timeout: float = duration(0.25, "output-buffer-timeout",
                                            "default duration of time between flushing data to clients")
    max_connections: int = option(10000, "max-connections",
                                  "maximum open connections per listener (TCP, HTTP, HTTPS); "
                                  "more are closed at once (beyond NSQ)")
    max_channel_consumers: int = option(0, "max-channel-consumers",
                                        "maximum channel consumer connection count per nsqd instance "
                                        "(default 0, i.e., unlimited)")

    deflate: bool = option(True, "deflate", "enable deflate feature negotiation (client compression)")
    max_deflate_level: int = option(
        6, "max-deflate-level",
        "max deflate compression level a client can negotiate (> values == > nsqd CPU usage)")
    snappy: bool = option(True, "snappy", "enable snappy feature negotiation (client compression)")

    tls_cert: str = option("", "tls-cert", "path to certificate file")
    tls_key: str = option("", "tls-key", "path to key file")
    tls_client_auth_policy: str = option("", "tls-client-auth-policy",
                                         "client certificate auth policy ('require' or 'require-verify')")
    tls_root_ca_file: str = option("", "tls-root-ca-file", "path to certificate authority file")
    tls_required: int = option(TLS_NOT_REQUIRED, "tls-required",
                               "require TLS for client connections (true, false, tcp-https)",
                               parse=parse_tls_required, bool_flag=True)
    tls_min_version: int = option(VERSION_TLS10, "tls-min-version",
                                  "minimum SSL/TLS version acceptable ('ssl3.0', 'tls1.0', 'tls1.1', "
                                  "'tls1.2' or 'tls1.3')", parse=parse_tls_min_version)

    statsd_address: str = option("", "statsd-address",
                                 "UDP <addr>:<port> of a statsd daemon for pushing stats")
    statsd_interval: float = duration(60.0, "statsd-interval", "duration between pushing to statsd")
    statsd_mem_stats: bool = option(True, "statsd-mem-stats",
                                    "toggle sending memory and GC stats to statsd")
    statsd_prefix: str = option("nsq.%s", "statsd-prefix",
                                "prefix used for keys sent to statsd (%s for host replacement)")
    statsd_udp_packet_size: int = option(508, "statsd-udp-packet-size",
                                         "the size in bytes of statsd UDP packets")
    statsd_exclude_ephemeral: bool = option(False, "statsd-exclude-ephemeral",
                                            "Skip ephemeral topics and channels when sending "
                                            "stats to statsd")

    e2e_processing_latency_window_time: float = duration(
        600.0, "e2e-processing-latency-window-time",
        "calculate end to end latency quantiles for this duration of time (ie: 60s would "
        "only show quantile calculations from the past 60 seconds)")
    e2e_processing_latency_percentiles: list[float] = option(
        [], "e2e-processing-latency-percentile",
        "message processing time percentiles (as float (0, 1.0]) to track (can be "
        "specified multiple times or comma separated '1.0,0.99,0.95', default none)",
        cfg="e2e_processing_latency_percentiles")

    metrics_per_client: bool = option(False, "metrics-per-client",
                                      "add per-client series (one per connection) to GET /metrics")

    def __post_init__(self) -> None:
        if self.node_id == -1:
            self.node_id = default_node_id()
        if not 0 <= self.node_id < 1024:
            raise ValueError("--node-id must be [0,1024)")
        if not 1 <= self.max_deflate_level <= 9:
            raise ValueError("--max-deflate-level must be [1,9]")
        if self.mem_queue_size < 0:
            raise ValueError("--mem-queue-size must be >= 0")
        if self.max_connections <= 0:
            raise ValueError("--max-connections must be > 0")
        if self.max_rdy_count < 0:
            raise ValueError("--max-rdy-count must be >= 0")
        for name in ("max_msg_size", "max_body_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        self.lookupd_tcp_addresses = [a for a in self.lookupd_tcp_addresses if a]
        self.auth_http_addresses = [a for a in self.auth_http_addresses if a]
        self.auth_http_request_method = self.auth_http_request_method.lower()
        for q in self.e2e_processing_latency_percentiles:
            if not 0 < q <= 1:
                raise ValueError(f"invalid E2E processing latency percentile: {q:g}")
        # NSQ's FloatArray keeps them sorted, highest first
        self.e2e_processing_latency_percentiles = sorted(
            self.e2e_processing_latency_percentiles, reverse=True)
        if self.e2e_processing_latency_window_time <= 0:
            raise ValueError("--e2e-processing-latency-window-time must be > 0")
        if self.statsd_interval <= 0:
            raise ValueError("--statsd-interval must be > 0")
        if self.statsd_udp_packet_size <= 0:
            raise ValueError("--statsd-udp-packet-size must be > 0")
        validate_tls(self)
