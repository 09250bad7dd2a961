"""The nsqadmin daemon (NSQ's ``nsqadmin/nsqadmin.go``): HTTP server, sampler, notifier."""

from __future__ import annotations

import functools
import logging
import ssl
import time

import httpx
import trio

from internal.http import serve_http
from internal.netaddr import split_host_port
from internal.startup import listen_failed
from internal.version import version_string

from .clusterinfo import ClusterInfo
from .graphs import Sampler, SeriesStore
from .notify import Notifier
from .options import Options
from .render import load_templates

__all__ = ["NSQAdmin"]

logger = logging.getLogger(__name__)


def _tls_context(opts: Options) -> ssl.SSLContext | bool:
    if not (opts.http_client_tls_root_ca_file or opts.http_client_tls_cert
            or opts.http_client_tls_insecure_skip_verify):
        return True
    ctx = ssl.create_default_context(cafile=opts.http_client_tls_root_ca_file or None)
    if opts.http_client_tls_insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if opts.http_client_tls_cert:
        try:
            ctx.load_cert_chain(opts.http_client_tls_cert, opts.http_client_tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"failed to LoadX509KeyPair {opts.http_client_tls_cert}, "
                             f"{opts.http_client_tls_key} - {exc}") from None
    return ctx


class NSQAdmin:
    """nsqadmin: a web UI and JSON API over an NSQ cluster.

    Usage::

        admin = NSQAdmin(Options(http_address="127.0.0.1:0",
                                 lookupd_http_addresses=["127.0.0.1:4161"]))
        host, port = await nursery.start(admin.run)

    Attributes:
        options: Current options (replaced, never mutated, by ``PUT /config``).
        store: Sampled history behind the graphs.
        http_address: The bound ``(host, port)`` once running.
    """

    def __init__(self, options: Options) -> None:
        load_templates()
        self.options = options
        self.store = SeriesStore(options.graph_capacity, options.graph_max_series)
        self.http_address: tuple[str, int] | None = None
        self.start_time = time.time()
        self._tls = _tls_context(options)
        self.ci: ClusterInfo | None = None
        self.sampler: Sampler | None = None
        self.notifier: Notifier | None = None

    def swap_options(self, options: Options) -> Options:
        """Replace the options (Go's ``swapOpts``): callers pass a ``dataclasses.replace``
        of :attr:`options`."""
        self.options = options
        return options

    def targets(self) -> tuple[list[str], list[str]]:
        """The current ``(lookupd, nsqd)`` HTTP address lists."""
        opts = self.options
        return opts.lookupd_http_addresses, opts.nsqd_http_addresses

    async def run(self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Serve until cancelled; ``task_status.started((host, port))`` once listening.

        Raises:
            OSError: If the HTTP address can't be bound (``listen (...) failed - ...``).
        """
        from .http import make_router  # http imports this module's type

        opts = self.options
        logger.info("%s", version_string("nsqadmin"))
        timeout = httpx.Timeout(opts.http_client_request_timeout,
                                connect=opts.http_client_connect_timeout)
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=100,
                              keepalive_expiry=60.0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, verify=self._tls,
                                     trust_env=False) as client:
            self.ci = ClusterInfo(client)
            self.notifier = Notifier(client, opts.notification_http_endpoint)
            self.sampler = Sampler(self.ci, self.store, opts.graph_sample_interval,
                                   self.targets, time.time)
            host, port = split_host_port(opts.http_address)
            async with trio.open_nursery() as nursery:
                try:
                    bound = await nursery.start(functools.partial(
                        serve_http, make_router(self), host, port, name="HTTP",
                        max_connections=opts.max_connections))
                except OSError as exc:
                    raise listen_failed(opts.http_address, exc) from None
                self.http_address = bound
                nursery.start_soon(self.notifier.run)
                nursery.start_soon(self.sampler.run)
                task_status.started(bound)
