"""The V2 handshake: magic, IDENTIFY feature negotiation, TLS/compression upgrades, AUTH.

A :class:`~client.connection.Connection` runs one :class:`Handshake` over the stream it
dialed, before its reader and writer tasks start; the upgrades replace
:attr:`Handshake.stream`, which the connection then goes on with.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any, Final, final

import trio

from .compression import CompressedStream, make_codec, start_tls
from .config import ClientConfig
from .errors import ConnectionClosedError, IdentifyError, ServerError
from .protocol import MAGIC_V2, FrameReader, FrameType, ProtocolError, commands

__all__ = ["AuthResponse", "Handshake", "IdentifyResponse", "RECEIVE_SIZE"]

#: bytes asked of the stream per read
RECEIVE_SIZE: Final = 256 * 1024
_DEFAULT_MAX_FRAME: Final = 64 * 1024 * 1024
_RESPONSE = int(FrameType.RESPONSE)
_ERROR = int(FrameType.ERROR)

_tls_context: ssl.SSLContext | None = None


def _default_tls_context() -> ssl.SSLContext:
    """System CAs with hostname checking, built once (loading CAs is slow)."""
    global _tls_context
    if _tls_context is None:
        _tls_context = ssl.create_default_context()
    return _tls_context


@dataclass(frozen=True, slots=True)
class IdentifyResponse:
    """What nsqd answered to IDENTIFY with ``feature_negotiation`` (durations in seconds)."""

    max_rdy_count: int = 2500
    version: str = ""
    max_msg_timeout: float = 0.0
    msg_timeout: float = 60.0
    tls_v1: bool = False
    deflate: bool = False
    deflate_level: int = 0
    snappy: bool = False
    sample_rate: int = 0
    auth_required: bool = False
    output_buffer_size: int = 0
    output_buffer_timeout: float = 0.0

    @classmethod
    def from_json(cls, data: bytes) -> IdentifyResponse:
        """Parse nsqd's JSON answer (a plain ``OK`` means an nsqd without negotiation).

        Raises:
            IdentifyError: the answer is neither ``OK`` nor a JSON object.
        """
        if not data.startswith(b"{"):
            return cls()
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(
                max_rdy_count=int(raw.get("max_rdy_count", 2500)),
                version=str(raw.get("version", "")),
                max_msg_timeout=int(raw.get("max_msg_timeout", 0)) / 1000,
                msg_timeout=int(raw.get("msg_timeout", 60000)) / 1000,
                tls_v1=bool(raw.get("tls_v1", False)),
                deflate=bool(raw.get("deflate", False)),
                deflate_level=int(raw.get("deflate_level", 0)),
                snappy=bool(raw.get("snappy", False)),
                sample_rate=int(raw.get("sample_rate", 0)),
                auth_required=bool(raw.get("auth_required", False)),
                output_buffer_size=int(raw.get("output_buffer_size", 0)),
                output_buffer_timeout=int(raw.get("output_buffer_timeout", 0)) / 1000,
            )
        except (ValueError, TypeError, AttributeError) as exc:
            raise IdentifyError(f"unparseable IDENTIFY response {data[:200]!r}") from exc


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """What nsqd answered to AUTH: who the auth server says we are."""

    identity: str = ""
    identity_url: str = ""
    permission_count: int = 0

    @classmethod
    def from_json(cls, data: bytes) -> AuthResponse:
        """Parse AUTH's JSON answer.

        Raises:
            IdentifyError: the answer is not the JSON object nsqd sends.
        """
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(identity=str(raw.get("identity", "")),
                       identity_url=str(raw.get("identity_url", "")),
                       permission_count=int(raw.get("permission_count", 0)))
        except (ValueError, TypeError, AttributeError) as exc:
            raise IdentifyError(f"unparseable AUTH response {data[:200]!r}") from exc


@final
class Handshake:
    """Magic + IDENTIFY, the TLS/compression upgrades nsqd agreed to, then AUTH.

    Args:
        stream: the freshly dialed stream to nsqd.
        config: the IDENTIFY fields, ``read_timeout``, TLS context and auth secret.
        address: ``"host:port"`` of nsqd, for error messages.
        host: the host name TLS checks the certificate against.

    Attributes:
        stream: the stream to go on with; the upgrades replace it (also when
            :meth:`run` fails, so the caller closes the outermost layer).
        identify: nsqd's IDENTIFY answer, once it arrived.
        auth: the AUTH answer, when nsqd required AUTH.
        bytes_sent: bytes written during the handshake.
        bytes_received: bytes read during the handshake.
    """

    def __init__(self, stream: trio.abc.Stream, config: ClientConfig, *, address: str, host: str) -> None:
        self.stream = stream
        self.config = config
        self.address = address
        self._host = host
        self.identify: IdentifyResponse | None = None
        self.auth: AuthResponse | None = None
        self.bytes_sent = 0
        self.bytes_received = 0

    def _identify_body(self) -> dict[str, object]:
        config = self.config
        hb = config.heartbeat_interval
        return {
            "client_id": config.client_id,
            "hostname": config.hostname,
            "user_agent": config.user_agent,
            "feature_negotiation": True,
            "heartbeat_interval": -1 if hb is None else int(hb * 1000),
            "sample_rate": config.sample_rate,
            "output_buffer_size": config.output_buffer_size,
            "output_buffer_timeout": int(config.output_buffer_timeout * 1000),
            "msg_timeout": 0 if config.msg_timeout is None else int(config.msg_timeout * 1000),
            "tls_v1": config.tls_v1,
            "deflate": config.deflate,
            "deflate_level": config.deflate_level,
            "snappy": config.snappy,
        }

    async def run(self) -> FrameReader:
        """Run the handshake, reading one frame at a time so that nothing beyond an
        upgrade point is parsed with the wrong layer (as go-nsq).

        Returns:
            The frame reader holding whatever arrived after the last handshake frame.

        Raises:
            IdentifyError: nsqd refused, answered nonsense or too late, or negotiated
                something we did not ask for.
            ConnectionClosedError: the connection ended during the handshake.
        """
        config = self.config
        max_msg = config.max_msg_size
        max_frame = max_msg + 64 if max_msg else _DEFAULT_MAX_FRAME
        reader = FrameReader(max_frame)
        try:
            with trio.fail_after(config.read_timeout):
                await self._send_raw(MAGIC_V2 + commands.identify(self._identify_body()))
                answer = await self._read_response(reader, "IDENTIFY")
                identify = self.identify = IdentifyResponse.from_json(answer)
                if (identify.tls_v1 and not config.tls_v1) or (identify.snappy and not config.snappy) \
                        or (identify.deflate and not config.deflate):
                    raise IdentifyError(f"{self.address} enabled TLS/compression we did not ask for")
                if identify.tls_v1:
                    if reader.buffered:
                        raise IdentifyError(f"{self.address} sent data before the TLS handshake")
                    await self._upgrade_tls()
                    await self._read_response(reader, "TLS upgrade", expect_ok=True)
                if identify.snappy or identify.deflate:
                    codec = make_codec(snappy=identify.snappy, deflate=identify.deflate,
                                       deflate_level=identify.deflate_level or config.deflate_level)
                    assert codec is not None
                    self.stream = CompressedStream(self.stream, codec, initial=reader.take_buffered())
                    reader = FrameReader(max_frame)
                    await self._read_response(reader, "compression upgrade", expect_ok=True)
                if identify.auth_required:
                    if not config.auth_secret:
                        raise IdentifyError(f"{self.address} requires AUTH and no auth_secret is set")
                    await self._send_raw(commands.auth(config.auth_secret))
                    self.auth = AuthResponse.from_json(await self._read_response(reader, "AUTH"))
        except (IdentifyError, ConnectionClosedError):
            raise  # both are OSErrors too
        except trio.TooSlowError as exc:
            raise IdentifyError(f"{self.address} did not answer IDENTIFY/AUTH in time") from exc
        except ServerError as exc:
            raise IdentifyError(f"{self.address} refused IDENTIFY/AUTH: {exc}") from exc
        except ProtocolError as exc:
            raise IdentifyError(f"protocol error from {self.address} during IDENTIFY: {exc}") from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ConnectionClosedError(f"{self.address} closed during IDENTIFY: {exc!r}") from exc
        return reader

    async def _upgrade_tls(self) -> None:
        ctx = self.config.tls_config or _default_tls_context()
        # a custom transport may name no host; then only the context's settings apply
        hostname = self._host if ctx.check_hostname else None
        try:
            self.stream = await start_tls(self.stream, ctx, server_hostname=hostname,
                                          timeout=self.config.read_timeout)
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLError):
                raise IdentifyError(f"TLS handshake with {self.address} failed: {cause}") from exc
            raise

    async def _send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)
        self.bytes_sent += len(data)

    async def _read_response(self, reader: FrameReader, what: str, *, expect_ok: bool = False) -> bytes:
        """The next frame during the handshake: a response's data, or raise its error."""
        while True:
            frame = reader.next_frame()
            if frame is not None:
                break
            data = await self.stream.receive_some(RECEIVE_SIZE)
            if not data:
                raise ConnectionClosedError(f"{self.address} closed the connection during {what}")
            self.bytes_received += len(data)
            reader.feed(data if type(data) is bytes else bytes(data))
        frame_type, data = frame
        if frame_type == _ERROR:
            raise ServerError.from_frame(data)
        if frame_type != _RESPONSE or (expect_ok and data != b"OK"):
            raise IdentifyError(f"unexpected answer to {what} from {self.address}: {data[:100]!r}")
        return data
