"""Consumer flow control: RDY distribution and backoff (go-nsq's consumer algorithm).

nsqd sends a connection messages while its in-flight count is below the RDY count the
client last sent. :class:`FlowControl` keeps what the connections may hold within
``max_in_flight``: each connection counts for the larger of its RDY and the messages it
holds unanswered, because lowering a RDY does not take back what nsqd already sent.
(go-nsq counts RDY alone, so a consumer briefly holds more than ``max_in_flight`` while
connections come and go.)


* each connection gets ``max(1, max_in_flight // n)``; a connection that would push
  the total over the limit gets what is left, or a retry a few seconds later;
* with more connections than ``max_in_flight``, RDY 1 rotates: every
  ``rdy_redistribute_interval`` connections idle for ``low_rdy_idle_timeout`` (or
  holding RDY for ``low_rdy_timeout``) give their RDY back and random others get it;
* a failure (requeue with backoff) raises the backoff level: RDY 0 everywhere for
  ``backoff_multiplier * 2**level`` seconds (capped), then RDY 1 on one random
  connection to probe; each success lowers the level, level 0 restores full RDY.

All state is touched from trio tasks only; timers run in the nursery given to
:meth:`FlowControl.start`. Times come from ``trio.current_time()`` (MockClock-friendly).
"""

from __future__ import annotations

import enum
import logging
import math
import random
from typing import Final

import trio

from .config import ClientConfig

__all__ = ["FlowControl", "RdyConn", "RDY_RETRY_DELAY"]

logger = logging.getLogger(__name__)

#: go-nsq retries a RDY that did not fit under max_in_flight after this long
RDY_RETRY_DELAY: Final = 5.0
#: when resuming from backoff is impossible (no connection), try again after this long
_RESUME_RETRY: Final = 1.0


class RdyConn:
    """The flow-control view of one connection; subclasses send the RDY command.

    Attributes:
        address: the nsqd address (for logs).
        rdy: the RDY count last sent.
        max_rdy: nsqd's max_rdy_count for this connection.
        last_msg_time: when the last message arrived (trio time).
        last_rdy_time: when a non-zero RDY was last set.
        in_flight: messages received and not answered yet (kept by the subclass).
    """

    def __init__(self, address: str, max_rdy: int = 2500) -> None:
        self.address = address
        self.rdy = 0
        self.max_rdy = max_rdy
        self.last_msg_time = -math.inf
        self.last_rdy_time = -math.inf
        self.in_flight = 0
        self.rdy_retry: trio.CancelScope | None = None

    @property
    def closing(self) -> bool:
        """True when no RDY may be sent any more."""
        return False

    def write_rdy(self, count: int) -> None:
        """Send ``RDY count`` to nsqd."""
        raise NotImplementedError


class _Signal(enum.Enum):
    RESUME = "resume"
    BACKOFF = "backoff"
    CONTINUE = "continue"


class FlowControl:
    """RDY and backoff state shared by a consumer's connections.

    Args:
        config: the backoff and redistribution settings.
        max_in_flight: the consumer's in-flight limit.
        rng: randomness for picking connections (seed it in tests).
    """

    def __init__(self, config: ClientConfig, max_in_flight: int, rng: random.Random | None = None) -> None:
        self.config = config
        self.max_in_flight = max_in_flight
        self.rng = rng or random.Random()
        self.conns: list[RdyConn] = []
        self.total_rdy = 0
        self.backoff_level = 0
        self.backoff_until: float | None = None  # set while the backoff timer runs
        self.need_redistribute = False
        self.stopping = False
        #: connections at RDY 0 whose RDY did not fit, with the count they asked for
        self.waiting: dict[RdyConn, int] = {}
        self._nursery: trio.Nursery | None = None

    async def start(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the redistribution loop; timers are spawned beside it.

        Cancellation: runs until cancelled, which stops the loop and every timer.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await trio.sleep(self.config.rdy_redistribute_interval)
                self.redistribute()

    # ------------------------------------------------------------------ queries

    @property
    def in_backoff(self) -> bool:
        """True while the backoff level is above zero."""
        return self.backoff_level > 0

    @property
    def in_backoff_timeout(self) -> bool:
        """True while the backoff timer runs (every connection at RDY 0)."""
        return self.backoff_until is not None

    def per_conn_max_in_flight(self) -> int:
        """RDY each connection gets outside redistribution: ``max(1, mif // n)``."""
        n = len(self.conns)
        if n == 0:
            return self.max_in_flight
        return min(max(1, self.max_in_flight // n), self.max_in_flight)

    # ------------------------------------------------------------------ membership

    def add(self, conn: RdyConn) -> None:
        """A connection subscribed: lower the others first, then give it its share."""
        self.conns.append(conn)
        for other in self.conns:
            if other is not conn:
                self.maybe_update_rdy(other)
        self.maybe_update_rdy(conn)

    def remove(self, conn: RdyConn) -> None:
        """A connection ended: take its RDY back and hand it to the others."""
        if conn not in self.conns:
            return
        self.conns.remove(conn)
        had_retry = self._cancel_retry(conn)
        self.waiting.pop(conn, None)
        rdy, conn.rdy = conn.rdy, 0
        self.total_rdy -= rdy
        if (had_retry or rdy > 0) and (len(self.conns) == self.max_in_flight or self.in_backoff):
            self.need_redistribute = True
        # unlike go-nsq, also raise the survivors to their new share at once
        for other in self.conns:
            self.maybe_update_rdy(other)

    def set_max_in_flight(self, max_in_flight: int) -> None:
        """Change the limit (0 pauses the flow) and update every connection."""
        if max_in_flight < 0:
            raise ValueError("max_in_flight must be >= 0")
        if max_in_flight == self.max_in_flight:
            return
        self.max_in_flight = max_in_flight
        for conn in self.conns:
            self.maybe_update_rdy(conn)

    # ------------------------------------------------------------------ RDY

    def maybe_update_rdy(self, conn: RdyConn) -> None:
        """Give ``conn`` its normal share, unless backing off."""
        if self.in_backoff or self.in_backoff_timeout:
            return
        self.update_rdy(conn, self.per_conn_max_in_flight())

    def update_rdy(self, conn: RdyConn, count: int) -> bool:
        """Set ``conn``'s RDY to ``count``, truncated to what ``max_in_flight`` allows.

        Returns:
            False when nothing could be given (a retry is scheduled if the connection
            sits at RDY 0) or the connection is closing.
        """
        if conn.closing:
            return False
        count = min(count, conn.max_rdy)
        self._cancel_retry(conn)
        self.waiting.pop(conn, None)
        max_possible = self.max_in_flight - self._held_by_others(conn)
        if 0 < max_possible < count:
            self.waiting[conn] = count  # raised further as the others answer
            count = max_possible
        if max_possible <= 0 and count > 0:
            self.waiting[conn] = count
            if conn.rdy == 0 and self._nursery is not None and not self.stopping:
                scope = trio.CancelScope()
                conn.rdy_retry = scope
                self._nursery.start_soon(self._retry_rdy, conn, count, scope)
            return False
        self._send_rdy(conn, count)
        return True

    def _held_by_others(self, conn: RdyConn | None) -> int:
        """What the connections but ``conn`` may hold: RDY, or more where more is unanswered."""
        return sum(max(c.rdy, c.in_flight) for c in self.conns if c is not conn)

    def answered_over_rdy(self) -> None:
        """A connection answered a message it held beyond its RDY: room for the waiting.

        Called by connections only while :attr:`waiting` is non-empty: a connection
        whose RDY was cut short gets more at once (not after :data:`RDY_RETRY_DELAY`).
        """
        if self.in_backoff_timeout or self.stopping:
            return
        for conn, count in list(self.waiting.items()):
            if self.max_in_flight - self._held_by_others(conn) > conn.rdy:
                self.update_rdy(conn, count)

    def _send_rdy(self, conn: RdyConn, count: int) -> None:
        if count > 0:
            conn.last_rdy_time = trio.current_time()
        if count == conn.rdy:
            return
        self.total_rdy += count - conn.rdy
        conn.rdy = count
        conn.write_rdy(count)

    def _cancel_retry(self, conn: RdyConn) -> bool:
        scope, conn.rdy_retry = conn.rdy_retry, None
        if scope is None:
            return False
        scope.cancel()
        return True

    async def _retry_rdy(self, conn: RdyConn, count: int, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(RDY_RETRY_DELAY)
            if conn.rdy_retry is scope:
                conn.rdy_retry = None
                self.waiting.pop(conn, None)
                if conn in self.conns and not self.stopping:
                    self.update_rdy(conn, count)

    def redistribute(self) -> None:
        """One redistribution pass (go-nsq's rdyRedistribute)."""
        if self.in_backoff_timeout or not self.conns or self.stopping:
            return
        if len(self.conns) > self.max_in_flight:
            self.need_redistribute = True
        if self.in_backoff and len(self.conns) > 1:
            self.need_redistribute = True
        if not self.need_redistribute:
            return
        self.need_redistribute = False
        now = trio.current_time()
        possible: list[RdyConn] = []
        for conn in self.conns:
            if conn.rdy > 0:
                if now - conn.last_msg_time > self.config.low_rdy_idle_timeout:
                    logger.debug("(%s) idle connection, giving up RDY", conn.address)
                    self.update_rdy(conn, 0)
                elif now - conn.last_rdy_time > self.config.low_rdy_timeout:
                    logger.debug("(%s) RDY timeout, giving up RDY", conn.address)
                    self.update_rdy(conn, 0)
            possible.append(conn)
        available = (1 if self.in_backoff else self.max_in_flight) - self._held_by_others(None)
        while possible and available > 0:
            available -= 1
            conn = possible.pop(self.rng.randrange(len(possible)))
            self.update_rdy(conn, 1)

    # ------------------------------------------------------------------ backoff

    def on_success(self) -> None:
        """A message was finished."""
        if self.backoff_level or self.backoff_until is not None:
            self._signal(_Signal.RESUME)

    def on_failure(self) -> None:
        """A message was requeued with backoff."""
        self._signal(_Signal.BACKOFF)

    def on_continue(self) -> None:
        """A message was requeued without backoff."""
        if self.backoff_level or self.backoff_until is not None:
            self._signal(_Signal.CONTINUE)

    def _signal(self, signal: _Signal) -> None:
        # during the backoff timer, results of messages already in flight do not count,
        # or a burst of failures would jump straight to the maximum
        if self.in_backoff_timeout or self.stopping:
            return
        updated = False
        level = self.backoff_level
        if signal is _Signal.RESUME and level > 0:
            level -= 1
            updated = True
        elif signal is _Signal.BACKOFF:
            limit = self.config.max_backoff_duration
            if limit > 0 and self.config.backoff_duration(level + 1, self.rng) <= limit:
                level += 1
                updated = True
        self.backoff_level = level
        if level == 0 and updated:
            count = self.per_conn_max_in_flight()
            logger.warning("exiting backoff, returning all to RDY %d", count)
            for conn in self.conns:
                self.update_rdy(conn, count)
        elif level > 0:
            duration = min(self.config.backoff_duration(level, self.rng), self.config.max_backoff_duration)
            logger.warning("backing off for %.3fs (backoff level %d), setting all to RDY 0", duration, level)
            for conn in self.conns:
                self.update_rdy(conn, 0)
            self._backoff(duration)

    def _backoff(self, duration: float) -> None:
        self.backoff_until = trio.current_time() + duration
        if self._nursery is not None:
            self._nursery.start_soon(self._resume_after, duration)

    async def _resume_after(self, duration: float) -> None:
        await trio.sleep(duration)
        if self.stopping:
            self.backoff_until = None
            return
        candidates = [c for c in self.conns if not c.closing]
        if not candidates:
            logger.warning("no connection available to resume; backing off for %.1fs", _RESUME_RETRY)
            self._backoff(_RESUME_RETRY)
            return
        choice = candidates[self.rng.randrange(len(candidates))]
        logger.warning("(%s) backoff timeout expired, sending RDY 1", choice.address)
        self.backoff_until = None
        if not self.update_rdy(choice, 1):
            self._backoff(_RESUME_RETRY)
