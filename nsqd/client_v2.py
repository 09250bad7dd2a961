"""Per-connection state of a V2 client, and its writer task.

Everything the protocol decides is appended to the client's output list; the writer task
joins the list and sends it in one write, and adds a heartbeat every
``heartbeat_interval``. While the writer idles with nothing queued, a batch that would
not wait is written by the task that made it, as far as the socket takes it at once
(responses, message batches under the output limit): no wake-up, no task switch.
The output is bounded in bytes (``output_limit``, a multiple of --max-output-buffer-size):
past it the channel stops delivering to the client until the writer got rid of it, and
the reader stops reading commands at twice that (back-pressure).
"""

from __future__ import annotations

import enum
import logging
import math
import time
from typing import TYPE_CHECKING

import trio

from client.protocol import HEARTBEAT, encode_response
from internal.directstream import DirectSocketStream

from .statistics import ClientStatistics

if TYPE_CHECKING:
    from .auth import AuthState
    from .channel import Channel
    from .tls import TLSInfo

__all__ = ["OUTPUT_LIMIT_FACTOR", "ClientV2", "State"]

logger = logging.getLogger(__name__)

_HEARTBEAT_FRAME = encode_response(HEARTBEAT)
#: a client's output limit in units of --max-output-buffer-size (the largest buffer a
#: client may ask for): room for the write in progress and for delivery batches of a
#: few hundred messages (one of 64 KiB cut consuming at RDY 2500 into 5x more writes)
OUTPUT_LIMIT_FACTOR = 4


class State(enum.IntEnum):
    """NSQ's client states (values as in /stats)."""

    INIT = 0
    DISCONNECTED = 1
    CONNECTED = 2
    SUBSCRIBED = 3
    CLOSING = 4


class ClientV2:
    """One TCP client connection speaking protocol V2."""

    def __init__(self, client_id: int, remote_address: str, *, msg_timeout: float,
                 heartbeat_interval: float, output_buffer_timeout: float,
                 output_limit: int = OUTPUT_LIMIT_FACTOR * 64 * 1024) -> None:
        self.id = client_id
        self.remote_address = remote_address
        host = remote_address.rsplit(":", 1)[0].strip("[]")
        self.client_id = host
        self.hostname = host
        self.user_agent = ""
        self.state = State.INIT
        self.channel: Channel | None = None  # set by SUB
        self.ready_count = 0
        self.in_flight = 0
        self.message_count = 0
        self.finish_count = 0
        self.requeue_count = 0
        self.timeout_count = 0
        self.in_ready_list = False
        self.needs_fill = False
        self.msg_timeout = msg_timeout
        self.heartbeat_interval = heartbeat_interval
        self.output_buffer_size = 16 * 1024
        self.output_buffer_timeout = output_buffer_timeout
        #: how long messages may wait for more before they are written (0: not at all,
        #: unless IDENTIFY asks for NSQ's output buffering)
        self.output_delay = 0.0
        self._flush_at = 0.0
        self._urgent = False  # a response, error or heartbeat is queued
        self.sample_rate = 0
        self.tls = False
        self.snappy = False
        self.deflate = False
        self.auth_identity = ""
        self.auth_identity_url = ""
        self.auth_state: AuthState | None = None  # the auth server's reply, once AUTH succeeded
        self.auth_secret = ""
        self.authed = False
        self.tls_info: TLSInfo | None = None  # once upgraded
        self.tls_version = ""
        self.tls_cipher_suite = ""
        self.tls_negotiated_protocol = ""
        self.pub_counts: dict[str, int] = {}
        self.connect_time = time.time()
        self.cancel_scope: trio.CancelScope | None = None
        self._out: list[bytes] = []
        #: bytes queued in ``_out`` or being written
        self.out_bytes = 0
        #: no message is delivered while ``out_bytes`` is at or over it
        self.output_limit = output_limit
        #: delivery stopped at ``output_limit``: the writer fills the client once drained
        self.output_blocked = False
        #: the reader reads no more commands while ``out_bytes`` is over it
        self.reader_limit = 2 * output_limit
        #: responses of the command batch being run, released after its group commit
        self.held: list[bytes] | None = None
        self._writer_lot = trio.lowlevel.ParkingLot()
        self._drained_lot = trio.lowlevel.ParkingLot()
        self._writer_parked = False
        self._exiting = False
        self._hb_changed = False
        self._stream: trio.abc.SendStream | None = None
        self._hold = False  # a transport upgrade wants the writer idle
        self._held = trio.Event()
        self._resume_lot = trio.lowlevel.ParkingLot()

    def __repr__(self) -> str:
        return self.remote_address

    def statistics(self) -> ClientStatistics:
        """A snapshot of this connection's figures, for /stats, /metrics and statsd."""
        counts = self.pub_counts
        tls = bool(self.tls)
        return ClientStatistics(
            self.id, self.client_id, self.hostname, self.remote_address, self.user_agent,
            int(self.state), self.ready_count, self.in_flight, self.message_count,
            self.finish_count, self.requeue_count, int(self.connect_time), self.sample_rate,
            bool(self.deflate), bool(self.snappy), self.authed, self.auth_identity,
            self.auth_identity_url, tuple((name, counts[name]) for name in sorted(counts)),
            tls, self.tls_version if tls else "", self.tls_cipher_suite if tls else "",
            self.tls_negotiated_protocol if tls else "")

    # ------------------------------------------------------------------ output
    def send(self, frame: bytes) -> None:
        """Queue one frame for the writer (or to :attr:`held` while set)."""
        held = self.held
        if held is not None:
            held.append(frame)
            return
        self._out.append(frame)
        self.out_bytes += len(frame)
        self._urgent = True
        if self._writer_parked:
            self._writer_lot.unpark_all()

    def send_frames(self, frames: list[bytes]) -> None:
        """Queue several response frames for the writer; while it idles with nothing
        queued, what the socket takes at once is written right here (no task switch)."""
        stream = self._stream
        if self._writer_parked and not self._out and isinstance(stream, DirectSocketStream):
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            sent = stream.send_nowait(data)
            if sent == len(data):
                return
            frames = [data[sent:]]
        self._out.extend(frames)
        self.out_bytes += sum(map(len, frames))
        self._urgent = True
        if self._writer_parked:
            self._writer_lot.unpark_all()

    def send_messages(self, parts: list[bytes], nbytes: int) -> None:
        """Queue message frames (``parts``: consecutive pieces, ``nbytes`` long in all).

        Unlike responses they may wait for the output buffer (see :meth:`buffer_output`).
        A batch that would not wait, while the writer idles with nothing queued, is
        written right here as far as the socket takes it at once (no task switch).
        """
        out = self._out
        if not out:
            delay = self.output_delay
            if self._writer_parked and (not delay or nbytes >= self.output_buffer_size
                                        or self.in_flight >= self.ready_count):
                stream = self._stream
                # (a batch that reached the output limit is left to the writer, which
                # lifts the block and fills again once it is sent)
                if isinstance(stream, DirectSocketStream) and not self._hold \
                        and not self.output_blocked:
                    data = b"".join(parts)
                    sent = stream.send_nowait(data)
                    if sent == len(data):
                        return
                    parts = [data[sent:]]
                    nbytes = len(data) - sent
                    delay = 0.0  # the rest goes out as soon as the socket takes it
            if self.output_delay:
                self._flush_at = trio.current_time() + delay
        out.extend(parts)
        self.out_bytes += nbytes
        if self._writer_parked:
            self._writer_lot.unpark_all()

    def buffer_output(self, size: int, timeout: float) -> None:
        """IDENTIFY asked for NSQ's output buffering: messages wait until ``size`` bytes
        are queued, ``timeout`` seconds passed, the client's RDY count is used up or a
        response goes out. ``timeout`` 0: no buffering."""
        self.output_buffer_size = size
        self.output_buffer_timeout = timeout
        self.output_delay = timeout if size > 1 else 0.0

    def _buffering(self) -> bool:
        """Whether the writer lets the queued messages wait for more (NSQ's bufio)."""
        return (not self._urgent and not self._exiting and not self._hold
                and self.out_bytes < self.output_buffer_size
                and self.in_flight < self.ready_count
                and trio.current_time() < self._flush_at)

    async def wait_output_drained(self, timeout: float) -> bool:
        """Back-pressure for the reader: wait while too much output is queued.

        Returns:
            False if the client read too little of it within ``timeout`` seconds.
        """
        with trio.move_on_after(timeout):
            while self.out_bytes > self.reader_limit and not self._exiting:
                await self._drained_lot.park()
            return True
        return False

    def heartbeat_changed(self) -> None:
        """IDENTIFY changed the heartbeat interval: restart the writer's timer."""
        self._hb_changed = True
        if self._writer_parked:
            self._writer_lot.unpark_all()

    async def writer(self, stream: trio.abc.SendStream) -> None:
        """Send queued frames and heartbeats until :meth:`finish_output` (then flush).

        The stream is replaced by :meth:`swap_stream` during a transport upgrade.
        """
        self._stream = stream
        out = self._out
        next_hb = self._next_heartbeat()
        while True:
            if self._hb_changed:
                self._hb_changed = False
                next_hb = self._next_heartbeat()
            buffering = self.output_delay and out and self._buffering()
            if not out or buffering:
                if not out and self._exiting:
                    return
                if not out and self._hold:
                    await self._idle_for_upgrade()
                    if self._stream is None:
                        return
                    continue
                with trio.move_on_at(min(next_hb, self._flush_at) if buffering else next_hb):
                    self._writer_parked = True
                    try:
                        await self._writer_lot.park()
                    finally:
                        self._writer_parked = False
            if trio.current_time() >= next_hb:
                out.append(_HEARTBEAT_FRAME)
                self.out_bytes += len(_HEARTBEAT_FRAME)
                self._urgent = True
                next_hb = self._next_heartbeat()
            if not out or (self.output_delay and self._buffering()):
                continue
            data = b"".join(out) if len(out) > 1 else out[0]
            out.clear()
            self._urgent = False
            await self._stream.send_all(data)
            self._sent(len(data))

    def _sent(self, nbytes: int) -> None:
        """``nbytes`` left: let the reader go on, and the channel deliver again."""
        self.out_bytes -= nbytes
        self._drained_lot.unpark_all()
        if self.output_blocked and self.out_bytes < self.output_limit:
            self.output_blocked = False
            channel = self.channel
            if channel is not None:
                channel.fill(self, trio.current_time())

    async def _idle_for_upgrade(self) -> None:
        self._held.set()
        while self._hold and not self._exiting:
            await self._resume_lot.park()

    async def hold_writer(self) -> None:
        """Wait until everything queued is sent and the writer stays idle (upgrade)."""
        self._hold = True
        self._held = trio.Event()
        self._writer_lot.unpark_all()
        await self._held.wait()

    def swap_stream(self, stream: trio.abc.SendStream | None) -> None:
        """Let the held writer go on with ``stream`` (None: the upgrade failed, stop)."""
        self._stream = stream
        self._hold = False
        self._resume_lot.unpark_all()

    def _next_heartbeat(self) -> float:
        hb = self.heartbeat_interval
        return trio.current_time() + hb if hb > 0 else math.inf

    def finish_output(self) -> None:
        """Ask the writer to flush what is queued and return."""
        self._exiting = True
        self._writer_lot.unpark_all()
        self._drained_lot.unpark_all()
        self._resume_lot.unpark_all()

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Disconnect this client now (channel deleted, daemon exiting)."""
        if self.cancel_scope is not None:
            self.cancel_scope.cancel()

    def start_close(self) -> None:
        """CLS: no more messages (RDY forced to 0), in-flight ones may still be FIN'd."""
        self.ready_count = 0
        self.state = State.CLOSING

    def message_timed_out(self) -> None:
        self.timeout_count += 1
        self.needs_fill = True

    def published(self, topic: str, count: int) -> None:
        self.pub_counts[topic] = self.pub_counts.get(topic, 0) + count
