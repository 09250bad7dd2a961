"""nsqd's TCP side: accept a connection, read the protocol magic, hand it to protocol V2.

As nsqd 1.3's ``tcp.go``: the first four bytes select the protocol (only ``"  V2"`` is
spoken; anything else gets ``E_BAD_PROTOCOL`` and the connection closes), and beyond
``--max-connections`` open connections a new one is closed at once.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from client.protocol import MAGIC_V2, encode_error
from internal.directstream import DirectSocketStream
from internal.netaddr import join_host_port

from .client_v2 import OUTPUT_LIMIT_FACTOR, ClientV2
from .errors import BAD_PROTOCOL

if TYPE_CHECKING:
    from .nsqd import NSQD

__all__ = ["TCPServer"]

logger = logging.getLogger(__name__)


class TCPServer:
    """Serves the TCP connections of one nsqd (``trio.serve_listeners(server.handle, ...)``)."""

    def __init__(self, nsqd: NSQD) -> None:
        self.nsqd = nsqd
        self._client_seq = 0

    async def handle(self, stream: trio.SocketStream) -> None:
        """Serve one TCP connection until it closes; never raises for the client's faults."""
        limit = self.nsqd.tcp_limit
        if not limit.admit():
            await trio.aclose_forcefully(stream)
            return
        try:
            peer = stream.socket.getpeername()
            remote = join_host_port(peer[0], peer[1])
        except OSError:
            remote = "?"
        try:
            await self.serve(DirectSocketStream(stream), remote)
        finally:
            limit.release()

    async def serve(self, stream: trio.abc.Stream, remote: str) -> None:
        """Select the protocol by its magic and run it; close ``stream`` at the end."""
        try:
            logger.info("TCP: new client(%s)", remote)
            data = await self._read_magic(stream)
            if data is None:
                return
            magic, rest = data[:4], data[4:]
            logger.info("CLIENT(%s): desired protocol magic '%s'", remote, magic.decode("latin-1"))
            if magic != MAGIC_V2:
                logger.error("client(%s) bad protocol magic '%s'", remote, magic.decode("latin-1"))
                await stream.send_all(encode_error(BAD_PROTOCOL))
                return
            client = self._new_client(remote)
            await self.nsqd.protocol.serve(stream, client, rest)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            logger.debug("TCP: client(%s) connection error: %s", remote, exc)
        except Exception:
            logger.exception("TCP: client(%s) handler failed", remote)
        finally:
            await trio.aclose_forcefully(stream)

    async def _read_magic(self, stream: trio.abc.Stream) -> bytes | None:
        """The first bytes (at least four) within --client-timeout, or None."""
        data = b""
        with trio.move_on_after(self.nsqd.options.client_timeout):
            while len(data) < 4:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    return None
                data += chunk
        return data if len(data) >= 4 else None

    def _new_client(self, remote: str) -> ClientV2:
        opts = self.nsqd.options
        self._client_seq += 1
        client = ClientV2(self._client_seq, remote, msg_timeout=opts.msg_timeout,
                          heartbeat_interval=opts.client_timeout / 2,
                          output_buffer_timeout=opts.output_buffer_timeout,
                          output_limit=OUTPUT_LIMIT_FACTOR * opts.max_output_buffer_size)
        self.nsqd.clients[client.id] = client
        return client
