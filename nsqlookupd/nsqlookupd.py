"""The nsqlookupd daemon: a TCP server for nsqd registrations and an HTTP query API."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from functools import partial

import trio

from internal.connlimit import ConnectionLimit
from internal.http import serve_http
from internal.netaddr import join_host_port, split_host_port
from internal.startup import listen_failed
from internal.version import NSQ_VERSION, version_string

from .http import LookupdHTTP
from .lookup_protocol_v1 import ServerInfo, handle_connection
from .options import Options
from .registration_db import RegistrationDB

__all__ = ["NSQLookupd"]

logger = logging.getLogger(__name__)


class NSQLookupd:
    """One nsqlookupd: ``await nursery.start(NSQLookupd(options).run)``.

    Args:
        options: the daemon's options (``tcp_address``/``http_address`` may use port 0).
        clock: monotonic seconds; ``trio.current_time`` so tests can use a MockClock.

    Attributes:
        db: the registration database.
        real_tcp_addr, real_http_addr: the bound ``(host, port)`` once started.
    """

    def __init__(self, options: Options, *, clock: Callable[[], float] = trio.current_time) -> None:
        self.options = options
        self.clock = clock
        self.db = RegistrationDB()
        self.real_tcp_addr: tuple[str, int] | None = None
        self.real_http_addr: tuple[str, int] | None = None
        self.info: ServerInfo | None = None
        self._scope: trio.CancelScope | None = None

    async def run(self, *, task_status: trio.TaskStatus[NSQLookupd] = trio.TASK_STATUS_IGNORED) -> None:
        """Bind both ports, serve until cancelled or :meth:`exit`.

        ``task_status.started(self)`` once both listeners are bound; a binding error
        is raised as a plain ``OSError`` (from ``nursery.start``). Cancelling closes
        every connection; the nsqds' registrations go with them.
        """
        opts = self.options
        logger.info(version_string("nsqlookupd"))
        tcp_sock = _bind(opts.tcp_address)
        try:
            http_sock = _bind(opts.http_address)
        except BaseException:
            tcp_sock.close()
            raise
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(tcp_sock))
        tcp_host, tcp_port = tcp_sock.getsockname()[:2]
        http_host, http_port = http_sock.getsockname()[:2]
        self.real_tcp_addr = (tcp_host, tcp_port)
        self.real_http_addr = (http_host, http_port)
        self.info = ServerInfo(tcp_port=tcp_port, http_port=http_port,
                               broadcast_address=opts.broadcast_address,
                               hostname=socket.gethostname(), version=NSQ_VERSION)
        router = LookupdHTTP(self.db, opts, self.clock).router()
        try:
            with trio.CancelScope() as self._scope:
                async with trio.open_nursery() as nursery:
                    await nursery.start(partial(serve_http, router, http_host, http_port,
                                                name="HTTP", sock=http_sock,
                                                max_connections=opts.max_connections))
                    await nursery.start(self._serve_tcp, listener)
                    task_status.started(self)
        finally:
            http_sock.close()
            await trio.aclose_forcefully(listener)

    async def _serve_tcp(self, listener: trio.SocketListener, *,
                         task_status: trio.TaskStatus[object] = trio.TASK_STATUS_IGNORED) -> None:
        assert self.real_tcp_addr is not None and self.info is not None
        shown = join_host_port(*self.real_tcp_addr)
        serve = partial(handle_connection, db=self.db, info=self.info, clock=self.clock)
        limit = ConnectionLimit("TCP", self.options.max_connections, logger)

        async def handler(stream: trio.SocketStream) -> None:
            if not limit.admit():
                await trio.aclose_forcefully(stream)
                return
            try:
                await serve(stream)
            finally:
                limit.release()

        logger.info("TCP: listening on %s", shown)
        try:
            await trio.serve_listeners(handler, [listener], task_status=task_status)
        finally:
            logger.info("TCP: closing %s", shown)

    def exit(self) -> None:
        """Stop serving: :meth:`run` returns once its connections are closed."""
        if self._scope is not None:
            self._scope.cancel()


def _bind(address: str) -> socket.socket:
    """A listening socket for ``host:port`` (an empty host: every interface).

    Raises:
        OSError: the address can't be resolved or bound, as ``listen (addr) failed - ...``.
    """
    host, port = split_host_port(address)
    try:
        if not host:
            if socket.has_dualstack_ipv6():
                return socket.create_server(("::", port), family=socket.AF_INET6,
                                            dualstack_ipv6=True, backlog=socket.SOMAXCONN)
            return socket.create_server(("", port), backlog=socket.SOMAXCONN)
        family, _, _, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        return socket.create_server(sockaddr[:2], family=family, backlog=socket.SOMAXCONN)
    except OSError as err:
        raise listen_failed(address, err) from err
