"""nsqadmin's options: NSQ 1.3's flags, config keys and defaults (``nsqadmin/options.go``),
plus the settings of the built-in graphs (NSQ draws its graphs with Graphite instead)."""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass

from internal.logs import parse_level
from internal.netaddr import split_host_port
from internal.options import duration, option

__all__ = ["Options", "normalize_base_path"]


def normalize_base_path(path: str) -> str:
    """NSQ's ``normalizeBasePath``: leading slash, cleaned like Go's ``path.Clean``."""
    if not path:
        return "/"
    if not path.startswith("/"):
        path = "/" + path
    cleaned = posixpath.normpath(path)
    # posixpath keeps a leading "//" (POSIX allows it to be special); Go does not
    return "/" + cleaned.lstrip("/")


@dataclass
class Options:
    """Every nsqadmin setting. Durations are float seconds.

    ``graphite_url``, ``proxy_graphite`` and the ``statsd_*`` options are accepted so
    existing command lines keep working, but nsqadmin draws its graphs from its own
    samples (``graph_sample_interval`` / ``graph_retention``) instead of Graphite.
    """

    log_level: str = option("info", "log-level", "set log verbosity: debug, info, warn, error, or fatal")
    log_prefix: str = option("[nsqadmin] ", "log-prefix", "log message prefix")
    verbose: bool = option(False, "verbose", "[deprecated] has no effect, use --log-level")

    http_address: str = option("0.0.0.0:4171", "http-address", "<addr>:<port> to listen on for HTTP clients")
    base_path: str = option("/", "base-path", "URL base path")
    max_connections: int = option(10000, "max-connections",
                                  "maximum open connections per listener; more are closed at once (0 = unlimited)")
    dev_static_dir: str = option("", "dev-static-dir", "(development use only)")

    graphite_url: str = option("", "graphite-url", "graphite HTTP address (ignored: graphs are built in)")
    proxy_graphite: bool = option(False, "proxy-graphite", "proxy HTTP requests to graphite (ignored)")
    statsd_counter_format: str = option("stats.counters.%s.count", "statsd-counter-format",
                                        "The counter stats key formatting applied by the implementation "
                                        "of statsd (ignored)")
    statsd_gauge_format: str = option("stats.gauges.%s", "statsd-gauge-format",
                                      "The gauge stats key formatting applied by the implementation "
                                      "of statsd (ignored)")
    statsd_prefix: str = option("nsq.%s", "statsd-prefix",
                                "prefix used for keys sent to statsd (ignored)")
    statsd_interval: float = duration(60.0, "statsd-interval",
                                      "time interval nsqd is configured to push to statsd (ignored)")

    graph_sample_interval: float = duration(10.0, "graph-sample-interval",
                                            "how often cluster stats are sampled for the built-in graphs")
    graph_retention: float = duration(3600.0, "graph-retention",
                                      "how much sampled history the built-in graphs keep in memory")
    graph_max_series: int = option(10000, "graph-max-series",
                                   "maximum number of graphed series (topics, channels, topic per "
                                   "node); each keeps 16 bytes per sample of retention")

    notification_http_endpoint: str = option("", "notification-http-endpoint",
                                             "HTTP endpoint (fully qualified) to which POST notifications "
                                             "of admin actions will be sent")

    http_client_connect_timeout: float = duration(2.0, "http-client-connect-timeout", "timeout for HTTP connect")
    http_client_request_timeout: float = duration(5.0, "http-client-request-timeout", "timeout for HTTP request")

    http_client_tls_insecure_skip_verify: bool = option(
        False, "http-client-tls-insecure-skip-verify",
        "configure the HTTP client to skip verification of TLS certificates")
    http_client_tls_root_ca_file: str = option("", "http-client-tls-root-ca-file",
                                               "path to CA file for the HTTP client")
    http_client_tls_cert: str = option("", "http-client-tls-cert", "path to certificate file for the HTTP client")
    http_client_tls_key: str = option("", "http-client-tls-key", "path to key file for the HTTP client")

    allow_config_from_cidr: str = option("127.0.0.1/8", "allow-config-from-cidr",
                                         "A CIDR from which to allow HTTP requests to the /config endpoint")
    acl_http_header: str = option("X-Forwarded-User", "acl-http-header",
                                  "HTTP header to check for authenticated admin users")

    lookupd_http_addresses: list[str] = option([], "lookupd-http-address",
                                               "lookupd HTTP address (may be given multiple times)",
                                               cfg="nsqlookupd_http_addresses")
    nsqd_http_addresses: list[str] = option([], "nsqd-http-address",
                                            "nsqd HTTP address (may be given multiple times)",
                                            cfg="nsqd_http_addresses")
    admin_users: list[str] = option([], "admin-user",
                                    "admin user (may be given multiple times; if specified, only these "
                                    "users will be able to perform privileged actions; acl-http-header "
                                    "is used to determine the authenticated user)", cfg="admin_users")

    def __post_init__(self) -> None:
        """Validate as ``nsqadmin.New`` does.

        Raises:
            ValueError: With NSQ's message for a bad combination or value.
        """
        parse_level(self.log_level)
        self.lookupd_http_addresses = [a for a in self.lookupd_http_addresses if a]
        self.nsqd_http_addresses = [a for a in self.nsqd_http_addresses if a]
        if not self.nsqd_http_addresses and not self.lookupd_http_addresses:
            raise ValueError("--nsqd-http-address or --lookupd-http-address required")
        if self.nsqd_http_addresses and self.lookupd_http_addresses:
            raise ValueError("use --nsqd-http-address or --lookupd-http-address not both")
        if self.http_client_tls_cert and not self.http_client_tls_key:
            raise ValueError("--http-client-tls-key must be specified with --http-client-tls-cert")
        if self.http_client_tls_key and not self.http_client_tls_cert:
            raise ValueError("--http-client-tls-cert must be specified with --http-client-tls-key")
        for flag, addresses in (("--lookupd-http-address", self.lookupd_http_addresses),
                                ("--nsqd-http-address", self.nsqd_http_addresses)):
            for address in addresses:
                try:
                    split_host_port(address)
                except ValueError as exc:
                    raise ValueError(f"failed to resolve {flag} ({address}) - {exc}") from None
        split_host_port(self.http_address)
        if self.allow_config_from_cidr:
            try:
                ipaddress.ip_network(self.allow_config_from_cidr, strict=False)
            except ValueError as exc:
                raise ValueError(f"failed to parse --allow-config-from-cidr "
                                 f"({self.allow_config_from_cidr}) - {exc}") from None
        if self.graph_sample_interval <= 0:
            raise ValueError("--graph-sample-interval must be > 0")
        if self.graph_retention < self.graph_sample_interval:
            raise ValueError("--graph-retention must be >= --graph-sample-interval")
        if self.graph_max_series < 0:
            raise ValueError("--graph-max-series must be >= 0")
        self.base_path = normalize_base_path(self.base_path)

    @property
    def graph_capacity(self) -> int:
        """Number of samples each graphed series keeps."""
        return max(2, round(self.graph_retention / self.graph_sample_interval))
