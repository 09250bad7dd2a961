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

The handshake (IDENTIFY, TLS/compression upgrades, AUTH) is :mod:`client.handshake`.
"""

from __future__ import annotations

import enum
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
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

from .config import DEFAULT_CONFIG, ClientConfig
from .errors import (
    ConnectionClosedError,
    IdentifyError,
    NotConnectedError,
    ServerError,
)
from .handshake import RECEIVE_SIZE, AuthResponse, Handshake, IdentifyResponse
from .protocol import (
    CLOSE_WAIT,
    HEARTBEAT,
    FrameReader,
    FrameType,
    ProtocolError,
    RemoteProtocolError,
    commands,
)

__all__ = ["Connection", "ConnectionState", "OpenStream", "parse_address"]

logger = logging.getLogger(__name__)

#: opens the byte stream to ``(host, port)``; the seam for tests and custom transports
OpenStream = Callable[[str, int], Awaitable[trio.abc.Stream]]

_NOP: Final = commands.nop()
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
            handshake = Handshake(self._stream, self.config, address=self.address, host=self._host)
            with trio.CancelScope() as self._cancel_scope:
                try:
                    reader = await handshake.run()
                except (IdentifyError, ConnectionClosedError) as exc:
                    self.error = exc  # raised below
                else:
                    logger.debug("(%s) IDENTIFY response: %s", self.address, handshake.identify)
                finally:
                    self._stream = handshake.stream
                    self.identify = handshake.identify
                    self.auth = handshake.auth
                    self.bytes_sent += handshake.bytes_sent
                    self.bytes_received += handshake.bytes_received
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
