"""Upgrading a V2 connection after IDENTIFY: TLS first, then snappy or deflate.

NSQ's order (``protocol_v2.go`` IDENTIFY): the IDENTIFY response goes out on the
current stream; then for each negotiated layer the stream is wrapped and ``OK`` is
sent *through the new layer*. The client's writer task is held idle meanwhile, so no
frame can be written half in one encoding and half in another; afterwards it and the
read loop both continue on the wrapped stream.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from client.compression import CompressedStream, DeflateCodec, SnappyCodec, start_tls
from client.protocol import OK, encode_response

from .tls import TLSInfo

if TYPE_CHECKING:
    from .client_v2 import ClientV2

__all__ = ["UpgradeError", "UpgradePlan", "upgrade_connection"]

logger = logging.getLogger(__name__)

#: NSQ's UpgradeTLS deadline; also bounds flushing the IDENTIFY response first
HANDSHAKE_TIMEOUT = 5.0
_OK_FRAME = encode_response(OK)


class UpgradeError(Exception):
    """The upgrade failed (handshake refused or timed out); the connection must close."""


@dataclass(frozen=True, slots=True)
class UpgradePlan:
    """What IDENTIFY negotiated, plus its response to send before upgrading."""

    response: bytes
    tls: bool
    snappy: bool
    deflate_level: int  # 0: no deflate


async def upgrade_connection(stream: trio.abc.Stream, client: ClientV2, plan: UpgradePlan,
                             tls_context: ssl.SSLContext | None) -> trio.abc.Stream:
    """Flush IDENTIFY's response, wrap ``stream`` as planned, send each ``OK``.

    Returns:
        The stream to read and write from now on (the writer already uses it).

    Raises:
        UpgradeError: the connection cannot continue (the writer has been stopped).
    """
    try:
        with trio.fail_after(HANDSHAKE_TIMEOUT):
            await client.hold_writer()
        if plan.tls:
            assert tls_context is not None
            logger.info("PROTOCOL(V2): [%s] upgrading connection to TLS", client)
            tls_stream = await start_tls(stream, tls_context, server_side=True,
                                         timeout=HANDSHAKE_TIMEOUT)
            stream = tls_stream
            info = client.tls_info = TLSInfo(tls_stream)
            client.tls_version = info.version  # the /stats fields
            client.tls_cipher_suite = info.cipher_suite
            client.tls_negotiated_protocol = info.negotiated_protocol
            client.tls = True
            await stream.send_all(_OK_FRAME)
        if plan.snappy:
            logger.info("PROTOCOL(V2): [%s] upgrading connection to snappy", client)
            stream = CompressedStream(stream, SnappyCodec())
            client.snappy = True
            await stream.send_all(_OK_FRAME)
        elif plan.deflate_level:
            logger.info("PROTOCOL(V2): [%s] upgrading connection to deflate (level %d)",
                        client, plan.deflate_level)
            stream = CompressedStream(stream, DeflateCodec(plan.deflate_level))
            client.deflate = True
            await stream.send_all(_OK_FRAME)
    except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
        client.swap_stream(None)
        cause = exc.__cause__ or exc
        raise UpgradeError(f"IDENTIFY failed {cause or type(exc).__name__}") from exc
    client.swap_stream(stream)
    return stream
