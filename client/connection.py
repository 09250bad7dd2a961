"""One NSQ V2 TCP connection: a trio stream driven through the sans-I/O codec.

A :class:`Connection` owns two tasks while it runs: a reader that decodes frames
(answering heartbeats, matching responses to requests in FIFO order and handing
message frames to a callback) and a writer that sends every queued command with one
shielded ``send_all`` per batch, so a cancellation never leaves half a frame on the
wire. Its owner runs it under a nursery::

    conn = Connection("127.0.0.1:4150")
    async with trio.open_nursery() as nursery:
        await nursery.start(conn.run)        # dial + magic + IDENTIFY
        await conn.request(commands.pub("t", b"x"))
        await conn.aclose()
"""

from __future__ import annotations

import enum
import json
import logging
import math
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, final

import outcome
import trio
from trio.lowlevel import (
    Abort,
    ParkingLot,
    Task,
    cancel_shielded_checkpoint,
    checkpoint_if_cancelled,
    current_task,
    reschedule,
    wait_task_rescheduled,
)

from .compression import CompressedStream, make_codec, start_tls
from .config import DEFAULT_CONFIG, ClientConfig
from .errors import (
    ConnectionClosedError,
    IdentifyError,
    NotConnectedError,
    ServerError,
)
from .protocol import (
    CLOSE_WAIT,
    HEARTBEAT,
    MAGIC_V2,
    FrameReader,
    FrameType,
    ProtocolError,
    RemoteProtocolError,
    commands,
)

__all__ = ["AuthResponse", "Connection", "ConnectionState", "IdentifyResponse", "OpenStream",
           "parse_address"]

logger = logging.getLogger(__name__)

#: opens the byte stream to ``(host, port)``; the seam for tests and custom transports
OpenStream = Callable[[str, int], Awaitable[trio.abc.Stream]]

RECEIVE_SIZE: Final = 256 * 1024
_NOP: Final = commands.nop()
_DEFAULT_MAX_FRAME: Final = 64 * 1024 * 1024
_MESSAGE = int(FrameType.MESSAGE)
_RESPONSE = int(FrameType.RESPONSE)
_ERROR = int(FrameType.ERROR)


def parse_address(address: str) -> tuple[str, int]:
    """Split ``"host:port"`` (or ``"[v6]:port"``) into its parts.

    Raises:
        ValueError: no port, or a port that is not a number.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"address {address!r} is not host:port")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


async def _open_tcp(host: str, port: int) -> trio.abc.Stream:
    return await trio.open_tcp_stream(host, port)


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


class ConnectionState(enum.Enum):
    """Lifecycle of a :class:`Connection`."""

    INIT = "init"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSING = "closing"
    CLOSED = "closed"


@final
class _Pending:
    """A request awaiting its response frame; cheaper than a trio.Event per request."""

    __slots__ = ("result", "task")

    def __init__(self) -> None:
        self.task: Task | None = None
        self.result: outcome.Outcome[bytes] | None = None

    def resolve(self, result: outcome.Outcome[bytes]) -> None:
        self.result = result
        task = self.task
        if task is not None:
            self.task = None
            reschedule(task, result)

    async def wait(self) -> bytes:
        if self.result is not None:
            await cancel_shielded_checkpoint()
            return self.result.unwrap()
        self.task = current_task()

        def abort(_: object) -> Abort:
            self.task = None  # abandoned: the response will still be consumed in order
            return Abort.SUCCEEDED

        value: bytes = await wait_task_rescheduled(abort)
        return value


MessageCallback = Callable[["Connection", bytes], None]
ErrorCallback = Callable[["Connection", ServerError], None]


@final
class Connection:
    """A V2 connection to one nsqd.

    Args:
        address: ``"host:port"`` of nsqd's TCP listener.
        config: timeouts, IDENTIFY fields and the write high-water mark.
        on_message: called from the reader task with each message frame's data; must
            not block (append it somewhere and return).
        on_error: called with non-fatal error frames (E_FIN_FAILED...) and with errors
            that arrive while no request is pending.
        on_close_wait: called when nsqd answers CLS with ``CLOSE_WAIT``.
        open_stream: opens the underlying stream (default: ``trio.open_tcp_stream``).

    Attributes:
        identify: nsqd's IDENTIFY answer, once connected.
        auth: the AUTH answer, when nsqd required AUTH.
        error: why the connection ended, when it did not end by :meth:`close`.
        close_wait: set when nsqd answered CLS with ``CLOSE_WAIT``.
    """

    def __init__(
        self,
        address: str,
        config: ClientConfig | None = None,
        *,
        on_message: MessageCallback | None = None,
        on_error: ErrorCallback | None = None,
        on_close_wait: Callable[[Connection], None] | None = None,
        open_stream: OpenStream | None = None,
    ) -> None:
        self.address = address
        self._host, self._port = parse_address(address)
        self.config = config or DEFAULT_CONFIG
        self._on_message = on_message
        self._on_error = on_error
        self._on_close_wait = on_close_wait
        self._open_stream = open_stream or _open_tcp
        self.state = ConnectionState.INIT
        self.identify: IdentifyResponse | None = None
        self.auth: AuthResponse | None = None
        self.error: BaseException | None = None
        self.close_wait = trio.Event()
        self._closed = trio.Event()
        self._stream: trio.abc.Stream | None = None
        self._cancel_scope: trio.CancelScope | None = None
        self._pending: deque[_Pending] = deque()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._high_water = self.config.write_buffer_high_water
        self._writer_lot = ParkingLot()
        self._drain_lot = ParkingLot()
        self._close_requested = False
        self.bytes_sent = 0
        self.bytes_received = 0
        #: trio time of the last read from nsqd
        self.last_read = -math.inf

    def __repr__(self) -> str:
        return f"<Connection {self.address} {self.state.value}>"

    # ------------------------------------------------------------------ lifecycle

    async def run(self, *, task_status: trio.TaskStatus[Connection] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, handshake, then serve the connection until it closes.

        Reports itself through ``task_status`` once IDENTIFY (and AUTH, when nsqd asks
        for it) succeeded. After that, the end of the connection is not an error: ``run``
        returns and :attr:`error` tells why it ended.

        Raises:
            NotConnectedError: dialing failed or exceeded ``dial_timeout``.
            IdentifyError: the handshake failed (before ``started``).
            ConnectionClosedError: the connection ended during the handshake.

        Cancellation: cancelling ``run`` drops the connection at once (a write in
        progress still completes or times out first).
        """
        if self.state is not ConnectionState.INIT:
            raise RuntimeError("a Connection can only run once")
        self.state = ConnectionState.CONNECTING
        started = False
        try:
            try:
                with trio.fail_after(self.config.dial_timeout):
                    self._stream = await self._open_stream(self._host, self._port)
            except (OSError, trio.TooSlowError) as exc:
                raise NotConnectedError(f"cannot connect to {self.address}: {exc!r}") from exc
            # the handshake reads and writes the stream itself (upgrades replace it);
            # abort() cancels it through the same scope the loops use afterwards
            reader: FrameReader | None = None
            with trio.CancelScope() as self._cancel_scope:
                try:
                    reader = await self._handshake()
                except (IdentifyError, ConnectionClosedError) as exc:
                    self.error = exc  # raised below
            if reader is not None:
                async with trio.open_nursery() as nursery:
                    self._cancel_scope = nursery.cancel_scope
                    nursery.start_soon(self._read_loop, reader)
                    nursery.start_soon(self._write_loop)
                    if not self._close_requested:
                        self.state = ConnectionState.CONNECTED
                    started = True
                    task_status.started(self)
        finally:
            self._finish()
            if self._stream is not None:
                await trio.aclose_forcefully(self._stream)
        if not started:
            raise self.error or ConnectionClosedError(f"{self.address} closed during handshake")

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

    async def _handshake(self) -> FrameReader:
        """Magic + IDENTIFY, the TLS/compression upgrades nsqd agreed to, then AUTH.

        Runs before the reader and writer tasks, reading one frame at a time so that
        nothing beyond an upgrade point is parsed with the wrong layer (as go-nsq).

        Returns:
            The frame reader holding whatever arrived after the last handshake frame.
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
                    assert codec is not None and self._stream is not None
                    self._stream = CompressedStream(self._stream, codec, initial=reader.take_buffered())
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
        logger.debug("(%s) IDENTIFY response: %s", self.address, self.identify)
        return reader

    async def _upgrade_tls(self) -> None:
        assert self._stream is not None
        ctx = self.config.tls_config or _default_tls_context()
        # a custom transport may name no host; then only the context's settings apply
        hostname = self._host if ctx.check_hostname else None
        try:
            self._stream = await start_tls(self._stream, ctx, server_hostname=hostname,
                                           timeout=self.config.read_timeout)
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            if isinstance(cause, ssl.SSLError):
                raise IdentifyError(f"TLS handshake with {self.address} failed: {cause}") from exc
            raise

    async def _send_raw(self, data: bytes) -> None:
        assert self._stream is not None
        await self._stream.send_all(data)
        self.bytes_sent += len(data)

    async def _read_response(self, reader: FrameReader, what: str, *, expect_ok: bool = False) -> bytes:
        """The next frame during the handshake: a response's data, or raise its error."""
        assert self._stream is not None
        while True:
            frame = reader.next_frame()
            if frame is not None:
                break
            data = await self._stream.receive_some(RECEIVE_SIZE)
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

    def _fail(self, exc: BaseException) -> None:
        """End the connection because of ``exc`` (first error wins)."""
        if self.error is None and not (self._close_requested and isinstance(exc, ConnectionClosedError)):
            self.error = exc
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()

    def _finish(self) -> None:
        self.state = ConnectionState.CLOSED
        self._close_requested = True
        err = ConnectionClosedError(f"connection to {self.address} closed")
        if self.error is not None:
            err.__cause__ = self.error
        pending, self._pending = self._pending, deque()
        for p in pending:
            p.resolve(outcome.Error(err))
        self._out.clear()
        self._out_bytes = 0
        self._drain_lot.unpark_all()
        self._closed.set()

    def close(self) -> None:
        """Start a clean close: queued commands are still sent, then the stream ends.

        Pending requests fail with :class:`ConnectionClosedError` unless their answers
        arrive before nsqd closes its side.
        """
        if self._close_requested:
            return
        self._close_requested = True
        if self.state is ConnectionState.CONNECTED:
            self.state = ConnectionState.CLOSING
        elif self.state is ConnectionState.INIT:
            self._finish()
            return
        self._writer_lot.unpark_all()

    def abort(self) -> None:
        """Drop the connection now, without flushing queued commands."""
        self._close_requested = True
        if self._cancel_scope is not None:
            self._cancel_scope.cancel()
        elif self.state is ConnectionState.INIT:
            self._finish()

    async def aclose(self, timeout: float | None = None) -> None:
        """Close cleanly and wait until the connection has ended.

        Args:
            timeout: after this many seconds, :meth:`abort` instead (default:
                ``write_timeout + read_timeout``).

        Cancellation: cancelling the wait aborts the connection.
        """
        self.close()
        if timeout is None:
            timeout = self.config.write_timeout + self.config.read_timeout
        try:
            with trio.move_on_after(timeout):
                await self._closed.wait()
        finally:
            if not self._closed.is_set():
                self.abort()

    async def wait_closed(self) -> None:
        """Wait until the connection has ended (for any reason).

        Cancellation: only the wait is cancelled.
        """
        await self._closed.wait()

    @property
    def is_connected(self) -> bool:
        """True once the handshake succeeded and until a close starts."""
        return self.state is ConnectionState.CONNECTED

    @property
    def closed(self) -> bool:
        """True when the connection has ended."""
        return self._closed.is_set()

    @property
    def pending_requests(self) -> int:
        """Requests written (or queued) whose response has not arrived."""
        return len(self._pending)

    @property
    def buffered_bytes(self) -> int:
        """Bytes of queued commands not yet handed to the stream."""
        return self._out_bytes

    # ------------------------------------------------------------------ writing

    def write(self, data: bytes) -> bool:
        """Queue a command; the writer task sends it with whatever else is queued.

        Never blocks; use :meth:`send` when the caller should feel backpressure.

        Returns:
            True when the queue is over the high-water mark (await :meth:`drain`).

        Raises:
            ConnectionClosedError: the connection is closing or closed.
        """
        if self._close_requested:
            raise ConnectionClosedError(f"connection to {self.address} is closed")
        self._out.append(data)
        self._out_bytes += len(data)
        if self._writer_lot:
            self._writer_lot.unpark_all()
        return self._out_bytes >= self._high_water

    async def send(self, data: bytes) -> None:
        """Queue a command, waiting first while more than the high-water mark is queued.

        Raises:
            ConnectionClosedError: the connection is closing or closed.

        Cancellation: if cancelled, the command was not queued.
        """
        await checkpoint_if_cancelled()
        while self._out_bytes >= self.config.write_buffer_high_water and not self._close_requested:
            await self._drain_lot.park()
        self.write(data)

    async def drain(self) -> None:
        """Wait while queued commands are above the high-water mark.

        Not a checkpoint when there is room (callers checkpoint themselves).

        Cancellation: only the wait is cancelled; queued commands stay queued.
        """
        while self._out_bytes >= self.config.write_buffer_high_water and not self._close_requested:
            await self._drain_lot.park()

    async def request(self, data: bytes) -> bytes:
        """Send a command that nsqd answers, and wait for that answer.

        Answers are matched to requests in order, so many requests may be in flight
        (pipelining).

        Returns:
            The response frame's data (``b"OK"``, or IDENTIFY's JSON).

        Raises:
            ServerError: nsqd answered with an error frame (the subclass for its code).
            ConnectionClosedError: the connection ended before the answer arrived.

        Cancellation: cancelling before the command is queued sends nothing; once it is
            queued it is still sent (and may take effect), its answer is discarded.
        """
        await checkpoint_if_cancelled()
        if self._close_requested:
            raise ConnectionClosedError(f"connection to {self.address} is closed")
        pending = _Pending()
        self._pending.append(pending)
        self.write(data)
        return await pending.wait()

    async def _write_loop(self) -> None:
        out = self._out
        timeout = self.config.write_timeout
        assert self._stream is not None
        stream = self._stream
        try:
            while True:
                if not out:
                    if self._close_requested:
                        break
                    await self._writer_lot.park()
                    continue
                data = out[0] if len(out) == 1 else b"".join(out)
                out.clear()
                self._out_bytes = 0
                # shielded: a cancel must not cut a frame in half; the deadline still applies
                with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout) as scope:
                    await stream.send_all(data)
                if scope.cancelled_caught:
                    self._fail(ConnectionClosedError(f"write to {self.address} timed out"))
                    return
                self.bytes_sent += len(data)
                if self._drain_lot:
                    self._drain_lot.unpark_all()
            # half-close so nsqd's last answers still arrive; under TLS/compression the
            # TCP stream itself is half-closed (nsqd reads that as the end, as from
            # go-nsq, which sends no close_notify either)
            eof_stream: Any = stream
            while not isinstance(eof_stream, trio.abc.HalfCloseableStream) \
                    and hasattr(eof_stream, "transport_stream"):
                eof_stream = eof_stream.transport_stream
            if isinstance(eof_stream, trio.abc.HalfCloseableStream):
                with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout):
                    await eof_stream.send_eof()
            else:
                await stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail(ConnectionClosedError(f"write to {self.address} failed: {exc!r}"))

    # ------------------------------------------------------------------ reading


    async def _read_loop(self, reader: FrameReader) -> None:
        assert self._stream is not None
        stream = self._stream
        on_message = self._on_message
        pending = self._pending
        # nsqd heartbeats every interval, so two silent intervals mean a dead peer; the
        # handshake has its own read_timeout; without heartbeats there is no deadline
        hb = self.config.heartbeat_interval
        silence = math.inf if hb is None else 2 * hb
        try:
            while True:
                # frames first: the handshake may have left some in the reader
                for frame_type, frame_data in reader.frames():
                    if frame_type == _MESSAGE:
                        if on_message is not None:
                            on_message(self, frame_data)
                    elif frame_type == _RESPONSE:
                        if frame_data == HEARTBEAT:
                            if not self._close_requested:
                                self.write(_NOP)
                        elif frame_data == CLOSE_WAIT:
                            self.close_wait.set()
                            if self._on_close_wait is not None:
                                self._on_close_wait(self)
                        elif pending:
                            pending.popleft().resolve(outcome.Value(frame_data))
                        else:
                            logger.warning("(%s) unexpected response %r", self.address, frame_data[:100])
                    elif frame_type == _ERROR:
                        self._handle_error(ServerError.from_frame(frame_data))
                    else:
                        raise RemoteProtocolError(f"unknown frame type {frame_type}")
                with trio.move_on_after(silence) as scope:
                    data = await stream.receive_some(RECEIVE_SIZE)
                if scope.cancelled_caught:
                    self._fail(ConnectionClosedError(f"no data from {self.address} in time"))
                    return
                if not data:
                    if not self._close_requested:
                        self._fail(ConnectionClosedError(f"{self.address} closed the connection"))
                    elif self._cancel_scope is not None:
                        self._cancel_scope.cancel()
                    return
                self.bytes_received += len(data)
                self.last_read = trio.current_time()
                reader.feed(data if type(data) is bytes else bytes(data))
        except ProtocolError as exc:
            self._fail(ConnectionClosedError(f"protocol error from {self.address}: {exc}"))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._fail(ConnectionClosedError(f"read from {self.address} failed: {exc!r}"))

    def _handle_error(self, err: ServerError) -> None:
        if err.fatal and self.error is None:
            self.error = err  # nsqd closes the connection after a fatal error
        if err.fatal and self._pending:
            self._pending.popleft().resolve(outcome.Error(err))
            return
        if self._on_error is not None:
            self._on_error(self, err)
        else:
            logger.error("(%s) error from nsqd: %s", self.address, err)
