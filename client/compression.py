"""Stream compression and TLS helpers shared by nsqd and the client.

NSQ upgrades a V2 connection after IDENTIFY: first TLS (when both sides asked for
``tls_v1``), then *one* of snappy or deflate, each upgrade confirmed by the server
with an ``OK`` frame sent through the new layer. This module holds:

* :class:`SnappyCodec` and :class:`DeflateCodec`: sans-I/O, stateful codecs for one
  connection (both directions). ``compress(data)`` returns bytes ready for the wire
  (flushed, so the peer can decode everything sent so far); ``decompress(data,
  max_length)`` returns whatever can be decoded and keeps the rest.
* :class:`CompressedStream`: a :class:`trio.abc.Stream` that runs a codec over
  another stream (a socket or a :class:`trio.SSLStream`).
* :func:`start_tls`: wrap a stream in TLS and complete the handshake in time.

Wire formats, as NSQ 1.3 and go-nsq use them:

* snappy: the `framing format`_ of Google's snappy (stream identifier chunk, then
  compressed/uncompressed chunks of at most 64 KiB with a masked CRC-32C). Chunks are
  compressed by ``cramjam`` (Rust) and decoded by ``cramjam`` too (which checks the CRC).
  Repeated stream identifiers are accepted, as Go's reader does (pynsq starts a new
  snappy stream for every write).
* deflate: raw DEFLATE (no zlib header, ``wbits=-15``), every write ended by a sync
  flush, as Go's ``compress/flate`` writer with ``Flush()``.

The client side of an upgrade, after sending IDENTIFY with ``feature_negotiation``::

    resp = <read IDENTIFY's response frame on the plain stream>
    if resp["tls_v1"]:
        stream = await start_tls(stream, ssl_context, server_hostname=host)
        <read the "OK" frame through the TLS stream>
    codec = make_codec(snappy=resp["snappy"], deflate=resp["deflate"],
                       deflate_level=resp["deflate_level"])
    if codec is not None:
        stream = CompressedStream(stream, codec, initial=<bytes already received
                                  after the last frame read above>)
        <read the "OK" frame through the compressed stream>

The server sends the compressed ``OK`` right after its plain (or TLS) frame without
waiting, so bytes received beyond the last frame read *must* be passed as ``initial``.

.. _framing format: https://github.com/google/snappy/blob/main/framing_format.txt
"""

from __future__ import annotations

import ssl
import zlib
from typing import Protocol

import trio

try:  # snappy is optional: without cramjam nsqd does not offer it
    import cramjam
except ImportError:  # pragma: no cover - cramjam is a dependency
    cramjam = None  # type: ignore[assignment]

__all__ = [
    "SNAPPY_AVAILABLE",
    "Codec",
    "CompressedStream",
    "CompressionError",
    "DeflateCodec",
    "SnappyCodec",
    "make_codec",
    "start_tls",
]

#: whether :class:`SnappyCodec` works here (needs the ``cramjam`` package)
SNAPPY_AVAILABLE = cramjam is not None
#: snappy's stream identifier chunk
SNAPPY_STREAM_HEADER = b"\xff\x06\x00\x00sNaPpY"
#: largest uncompressed data in one snappy chunk
SNAPPY_MAX_BLOCK = 65536
# the largest chunk body a valid stream can carry: the checksum plus snappy's
# MaxEncodedLen(65536) (32 + n + n/6); bigger declared lengths are refused unread
_SNAPPY_MAX_CHUNK = 4 + 32 + SNAPPY_MAX_BLOCK + SNAPPY_MAX_BLOCK // 6
_CHUNK_COMPRESSED = 0x00
_CHUNK_UNCOMPRESSED = 0x01
_CHUNK_STREAM_ID = 0xFF

#: default ``max_length`` of :meth:`CompressedStream.receive_some`
DEFAULT_RECEIVE_SIZE = 256 * 1024


class CompressionError(ValueError):
    """The peer sent data that does not decode (bad framing, checksum, stream)."""


class Codec(Protocol):
    """What :class:`CompressedStream` needs from a codec."""

    @property
    def pending(self) -> bool:
        """Decoded output is waiting (call ``decompress(b"")`` to get it)."""
        ...

    @property
    def eof(self) -> bool:
        """The peer ended its compressed stream (deflate's final block)."""
        ...

    def compress(self, data: bytes) -> bytes:
        """Compress ``data`` and flush: the result decodes completely on its own."""
        ...

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        """Feed received bytes; return at most ``max_length`` (0: all) decoded bytes."""
        ...


class SnappyCodec:
    """NSQ's snappy stream compression for one connection (sans-I/O).

    Received bytes are buffered linearly (pieces are joined only once the next chunk
    is complete), so a peer dribbling a chunk byte by byte costs O(n), not O(n²).

    Example::

        a, b = SnappyCodec(), SnappyCodec()
        assert b.decompress(a.compress(b"hello")) == b"hello"
    """

    __slots__ = ("_buf", "_compressor", "_header_seen", "_more", "_need", "_pending",
                 "_pending_len", "_pos")

    def __init__(self) -> None:
        if cramjam is None:
            raise RuntimeError("snappy compression needs the cramjam package")
        self._compressor = cramjam.snappy.Compressor()
        self._buf = b""
        self._pos = 0
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._need = 4  # bytes from _pos needed before parsing can progress
        self._more = False  # complete chunks were left for the next call (max_length)
        self._header_seen = False

    @property
    def pending(self) -> bool:
        """Complete chunks are buffered but were not decoded (``max_length`` reached)."""
        return self._more

    @property
    def eof(self) -> bool:
        return False

    def compress(self, data: bytes) -> bytes:
        """Frame and compress ``data`` (the first call also emits the stream header)."""
        if not data:
            return b""
        c = self._compressor
        c.compress(data)
        return bytes(c.flush())

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        """Decode every complete chunk received so far (up to about ``max_length``).

        Raises:
            CompressionError: bad chunk type or length, bad checksum, missing stream
                identifier.
        """
        if data:
            self._pending.append(data)
            self._pending_len += len(data)
        buf = self._buf
        pos = self._pos
        if self._pending:
            if len(buf) - pos + self._pending_len < self._need and not self._more:
                return b""
            rest = buf[pos:] if pos < len(buf) else b""
            self._pending.insert(0, rest)
            buf = b"".join(self._pending)
            pos = 0
            self._pending.clear()
            self._pending_len = 0
        limit = max_length // SNAPPY_MAX_BLOCK + 1 if max_length > 0 else 1 << 30
        end = self._scan(buf, pos, limit)
        chunks = buf[pos:end]
        if end >= len(buf):
            self._buf, self._pos = b"", 0
        else:
            self._buf, self._pos = buf, end
        if not chunks:
            return b""
        if not self._header_seen:
            if not chunks.startswith(SNAPPY_STREAM_HEADER):
                raise CompressionError("snappy: stream does not start with the stream identifier")
            self._header_seen = True
        try:
            return bytes(cramjam.snappy.decompress(SNAPPY_STREAM_HEADER + chunks))
        except cramjam.DecompressionError as exc:
            raise CompressionError(str(exc)) from None

    def _scan(self, buf: bytes, pos: int, limit: int) -> int:
        """Offset after the complete chunks from ``pos`` (at most ``limit`` data chunks).

        Sets ``_need`` (bytes to wait for) and ``_more`` (stopped at the limit).
        """
        end = len(buf)
        count = 0
        self._need = 4
        self._more = False
        while end - pos >= 4:
            kind = buf[pos]
            length = buf[pos + 1] | buf[pos + 2] << 8 | buf[pos + 3] << 16
            if length > _SNAPPY_MAX_CHUNK:
                raise CompressionError(f"snappy: chunk of {length} bytes is too long")
            if 0x02 <= kind <= 0x7F:
                raise CompressionError(f"snappy: unsupported chunk type {kind:#x}")
            if end - pos - 4 < length:
                self._need = 4 + length
                break
            if kind <= _CHUNK_UNCOMPRESSED:
                if count == limit:
                    self._more = True
                    break
                count += 1
            pos += 4 + length
        return pos


class DeflateCodec:
    """NSQ's deflate stream compression (raw DEFLATE, sync-flushed writes).

    Args:
        level: compression level 1..9 of what this side sends.
    """

    __slots__ = ("_compressor", "_decompressor", "level")

    def __init__(self, level: int = 6) -> None:
        if not 0 <= level <= 9:
            raise ValueError(f"deflate level {level} out of range 0-9")
        self.level = level
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)

    @property
    def pending(self) -> bool:
        return bool(self._decompressor.unconsumed_tail)

    @property
    def eof(self) -> bool:
        return self._decompressor.eof

    def compress(self, data: bytes) -> bytes:
        """Compress ``data`` and sync-flush, so the peer can decode all of it now."""
        if not data:
            return b""
        c = self._compressor
        return c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)

    def decompress(self, data: bytes, max_length: int = 0) -> bytes:
        """Inflate received bytes; output beyond ``max_length`` waits for the next call.

        Raises:
            CompressionError: the input is not valid DEFLATE.
        """
        d = self._decompressor
        if d.eof:
            return b""
        tail = d.unconsumed_tail
        if tail:
            data = tail + data if data else tail
        try:
            return d.decompress(data, max_length)
        except zlib.error as exc:
            raise CompressionError(f"deflate: {exc}") from None


def make_codec(*, snappy: bool = False, deflate: bool = False, deflate_level: int = 6) -> Codec | None:
    """The codec IDENTIFY negotiated, or None (plain).

    Raises:
        ValueError: both snappy and deflate (NSQ refuses that too).
    """
    if snappy and deflate:
        raise ValueError("cannot enable both deflate and snappy compression")
    if snappy:
        return SnappyCodec()
    if deflate:
        return DeflateCodec(deflate_level)
    return None


class CompressedStream(trio.abc.Stream):
    """A stream that compresses what is sent and decompresses what is received.

    Args:
        transport_stream: the stream underneath (socket or TLS).
        codec: a fresh :class:`SnappyCodec` or :class:`DeflateCodec`.
        initial: bytes already read from ``transport_stream`` that belong to the
            compressed stream (received together with the last plain frame).

    Sending and receiving may run in two tasks at once (as any trio stream); each
    direction is used by one task at a time. Cancelling :meth:`send_all` may leave a
    partial write, as with the underlying stream.
    """

    def __init__(self, transport_stream: trio.abc.Stream, codec: Codec, *,
                 initial: bytes = b"") -> None:
        self.transport_stream = transport_stream
        self.codec = codec
        self._initial = initial

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        out = self.codec.compress(bytes(data))
        if out:
            await self.transport_stream.send_all(out)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Decoded bytes (at most about ``max_bytes``); ``b""`` at end of stream.

        Raises:
            trio.BrokenResourceError: the peer sent data that does not decode.
        """
        codec = self.codec
        limit = max_bytes or DEFAULT_RECEIVE_SIZE
        try:
            if self._initial or codec.pending:
                initial, self._initial = self._initial, b""
                out = codec.decompress(initial, limit)
                if out:
                    return out
            while True:
                if codec.eof:
                    return b""
                data = await self.transport_stream.receive_some(DEFAULT_RECEIVE_SIZE)
                if not data:
                    return b""
                out = codec.decompress(data, limit)  # type: ignore[arg-type]  # bytes in practice
                if out:
                    return out
        except CompressionError as exc:
            raise trio.BrokenResourceError(f"compressed stream: {exc}") from exc

    async def aclose(self) -> None:
        await self.transport_stream.aclose()


async def start_tls(stream: trio.abc.Stream, ssl_context: ssl.SSLContext, *,
                    server_side: bool = False, server_hostname: str | None = None,
                    timeout: float = 5.0) -> trio.SSLStream[trio.abc.Stream]:
    """Wrap ``stream`` in TLS and finish the handshake within ``timeout`` seconds.

    nsqd gives the handshake 5 seconds, as NSQ's ``UpgradeTLS`` does. A peer closing
    the TCP connection without TLS's close_notify (what NSQ clients do) reads as a
    plain end of stream: NSQ frames carry their own lengths, so truncation shows.

    Raises:
        trio.TooSlowError: the handshake took longer than ``timeout``.
        trio.BrokenResourceError: the handshake failed (bad certificate, peer left).
    """
    tls = trio.SSLStream(stream, ssl_context, server_side=server_side,
                         server_hostname=server_hostname, https_compatible=True)
    with trio.fail_after(timeout):
        await tls.do_handshake()
    return tls
