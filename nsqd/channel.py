"""A channel: one copy of every message of its topic, shared out among its consumers.

Messages wait in a memory deque (then the backend, past ``mem_queue_size``). A consumer
with spare RDY capacity is on the channel's ready list; delivery hands a message to the
next ready consumer in turn, so a channel's consumers share the work by their RDY counts.
Everything here is synchronous: the hot path builds frames into the consumer's output
buffer and its writer task sends them in one write per batch. A consumer also needs room
in that buffer (``output_limit`` bytes): one that does not read its socket stops getting
messages, and those it holds time out to the others, as in NSQ.

In-flight messages are kept per consumer in insertion-ordered maps, which are then also
ordered by deadline (see :mod:`nsqd.in_flight`): a FIN is one ``dict.pop``, and timeouts
are found from the front.
Deferred messages wait in a :class:`~nsqd.deferred_store.DeferredStore` (a heap for the
next seconds, time buckets on disk beyond).

Persistence: messages wait in memory while fewer than ``mem_queue_size`` do and nothing
waits in the backend (so the backend's order stays FIFO), the rest go to the backend.
A *write-through* backend (the disk queue with ``--mem-queue-size=0`` or
``--sync-every=1``) takes every message, even one a consumer is ready for; in durable
mode (``--sync-every=1``) it also keeps a delivered message until it is FIN'd, or until
its requeued copy was stored (:meth:`Backend.ack <nsqd.backend.Backend.ack>`).
"""

from __future__ import annotations

import collections
import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import repeat, starmap
from typing import TYPE_CHECKING, Protocol, cast

from client.protocol import MESSAGE_FRAME_HEAD, MESSAGE_FRAME_OVERHEAD, FrameType

from .backend import Backend, BackendError, Entry, Msg
from .deferred_store import DeferredStore
from .errors import ChannelError
from .in_flight import InFlightTable, Record
from .statistics import (
    NO_LATENCY,
    ChannelStatistics,
    ClientStatistics,
    LatencyStatistics,
)

if TYPE_CHECKING:
    from internal.quantile import WindowedQuantile

    from .topic import Topic

__all__ = ["Channel", "Consumer"]

logger = logging.getLogger(__name__)

_FRAME_HEAD = MESSAGE_FRAME_HEAD.pack
_OVERHEAD = MESSAGE_FRAME_OVERHEAD
_MESSAGE = int(FrameType.MESSAGE)
#: bytes of a message frame besides its body
_FRAME_BYTES = 4 + MESSAGE_FRAME_OVERHEAD
#: attempts is a uint16 on the wire; it stops counting there
_MAX_ATTEMPTS = 0xFFFF
#: released deferred messages kept in memory beyond --mem-queue-size before the disk
RELEASE_SLACK = 100_000


class Consumer(Protocol):
    """What a channel needs from a subscribed connection (see ``client_v2.ClientV2``)."""

    id: int
    ready_count: int
    in_flight: int
    msg_timeout: float
    message_count: int
    in_ready_list: bool
    sample_rate: int
    out_bytes: int  # output queued or being written
    output_limit: int  # no delivery while out_bytes is at or over it
    output_blocked: bool  # delivery stopped at output_limit: fill again once drained

    def send_messages(self, parts: list[bytes], nbytes: int) -> None: ...
    def statistics(self) -> ClientStatistics: ...
    def message_timed_out(self) -> None: ...
    def close(self) -> None: ...


def _as_msg(rec: Record) -> Msg:
    """The message to requeue from its in-flight record (attempts counting the delivery)."""
    return (rec[0], rec[1], rec[2], rec[3])


class Channel:
    """One channel of a topic. Created and owned by :class:`~nsqd.topic.Topic`."""

    def __init__(self, topic: Topic, name: str, backend: Backend[Entry], mem_queue_size: int,
                 ephemeral: bool, deferred: DeferredStore | None = None,
                 e2e: WindowedQuantile | None = None) -> None:
        self.topic = topic
        self.name = name
        self.backend = backend
        self.mem_queue_size = mem_queue_size
        self.ephemeral = ephemeral
        self.memory: collections.deque[Msg] = collections.deque()
        self.clients: dict[int, Consumer] = {}
        self._ready: list[Consumer] = []
        self._next = 0
        #: delivered messages awaiting FIN, REQ or their timeout, per consumer
        self.in_flight = InFlightTable()
        self.deferred = deferred if deferred is not None else DeferredStore(None)
        #: every message goes through the backend; it keeps delivered ones until acked
        self._through = backend.write_through
        self._acking = backend.ack_mode
        self.paused = False
        self.deleted = False
        self.message_count = 0
        self.requeue_count = 0
        self.timeout_count = 0
        #: publish→FIN latencies (--e2e-processing-latency-percentile), else None
        self.e2e = e2e
        #: timestamps of the messages FIN'd since the last :meth:`fold_e2e`
        self._fins: list[int] | None = [] if e2e is not None else None
        #: the last :meth:`latency` record and the window result it was made from
        self._latency: tuple[object, LatencyStatistics] | None = None

    # ------------------------------------------------------------------ queries
    def depth(self) -> int:
        """Messages waiting for a consumer (memory + backend)."""
        return len(self.memory) + self.backend.depth()

    def __repr__(self) -> str:
        return f"<Channel {self.topic.name}:{self.name}>"

    def latency(self) -> LatencyStatistics:
        """This channel's publish→FIN latencies (FINs not yet recorded are folded in)."""
        e2e = self.e2e
        if e2e is None:
            return NO_LATENCY
        self.fold_e2e()
        result = e2e.result()  # the same object while the window did not change
        cached = self._latency
        if cached is None or cached[0] is not result:
            cached = self._latency = (result, LatencyStatistics.of(result, (e2e,)))
        return cached[1]

    def statistics(self, *, clients: bool = False) -> ChannelStatistics:
        """A snapshot of this channel's figures; with ``clients``, its consumers' too."""
        subs = None
        if clients:
            subs = tuple(c.statistics()
                         for c in sorted(self.clients.values(), key=lambda c: c.id))
        return ChannelStatistics(
            self.name, self.depth(), self.backend.depth(), len(self.in_flight),
            len(self.deferred), self.message_count, self.requeue_count, self.timeout_count,
            len(self.clients), self.paused, self.latency(), subs)

    # ------------------------------------------------------------------ input
    def put(self, msgs: Iterable[Msg], now: float) -> None:
        """Accept messages from the topic: deliver or queue them.

        Raises:
            BackendError: the backend refused them (write-through: none was taken).
        """
        if self._through:
            msgs = msgs if isinstance(msgs, list) else list(msgs)
            self.backend.put(msgs)
            self.message_count += len(msgs)
            if self._ready and not self.paused:
                self._drain_ready(now)
            return
        self._queue(msgs, now, count=True)

    def _queue(self, msgs: Iterable[Msg], now: float, *, count: bool, slack: int = 0) -> None:
        """Deliver to ready consumers, else keep in memory (``slack`` beyond
        --mem-queue-size), else put on disk."""
        msgs = msgs if isinstance(msgs, list) else list(msgs)
        if count:
            self.message_count += len(msgs)
        i = 0
        if self._ready and not self.paused:
            # invariant: a consumer is on the ready list only when nothing waits
            i = self._deliver_from(msgs, 0, now)
            if i >= len(msgs):
                return
            msgs = msgs[i:]
        memory = self.memory
        room = self.mem_queue_size + slack - len(memory) if not self.backend.depth() else 0
        if room >= len(msgs):
            memory.extend(msgs)
            return
        if room > 0:
            memory.extend(msgs[:room])
            msgs = msgs[room:]
        self.backend.put(msgs)

    def _requeue(self, msg: Msg, now: float) -> None:
        """Queue a message again (timeout, REQ, disconnect): its stored copy is retired."""
        if self._through:
            try:
                self.backend.put([msg])
            except BackendError as exc:
                # keep it (unacked on disk, in memory here) rather than lose it
                logger.error("CHANNEL(%s): failed to requeue a message to disk - %s",
                             self.name, exc)
                self.memory.append(msg)
                return
            if self._acking:
                self.backend.ack(msg[0])
            if self._ready and not self.paused:
                self._drain_ready(now)
            return
        if self._ready and not self.paused and self._deliver_from([msg], 0, now):
            return
        if len(self.memory) < self.mem_queue_size:
            self.memory.append(msg)
        else:
            self.backend.put((msg,))

    def _requeue_released(self, msgs: list[Msg], now: float) -> None:
        """Queue deferred messages that came due."""
        if self._through:
            try:
                self.backend.put(msgs)
            except BackendError as exc:
                logger.error("CHANNEL(%s): failed to queue due messages on disk - %s",
                             self.name, exc)
                self.memory.extend(msgs)
                return
            if self._ready and not self.paused:
                self._drain_ready(now)
            return
        # They were in memory already (the deferred store's lookahead): a burst that
        # outpaces the consumers stays there rather than taking a round trip to disk.
        self._queue(msgs, now, count=False, slack=RELEASE_SLACK)

    def _take(self, n: int) -> list[Msg]:
        """Up to ``n`` waiting messages, memory first."""
        memory = self.memory
        if memory:
            k = min(n, len(memory))
            popleft = memory.popleft
            return [popleft() for _ in range(k)]
        # a channel's backend holds plain messages only (deferred ones live in its store)
        return cast("list[Msg]", self.backend.read(n))

    def _drain_ready(self, now: float) -> None:
        """Write-through: hand what waits in the backend to the consumers on the ready list."""
        ready = self._ready
        while ready and not self.paused:
            spare = sum(c.ready_count - c.in_flight for c in ready)
            if spare <= 0:
                break
            msgs = self._take(spare)
            if not msgs:
                break
            i = self._deliver_from(msgs, 0, now)
            if i < len(msgs):  # consumers went away meanwhile: keep the rest first in line
                self.memory.extendleft(reversed(msgs[i:]))
                break

    def _deliver_from(self, msgs: list[Msg], i: int, now: float) -> int:
        """Hand ``msgs[i:]`` to the ready consumers in turn, an even share each (within
        their spare RDY); return the index of the first message not handed out."""
        ready = self._ready
        n = len(msgs)
        while i < n and ready:
            j = self._next
            if j >= len(ready):
                j = 0
            client = ready[j]
            k = min(client.ready_count - client.in_flight, -(-(n - i) // len(ready)))
            if k > 0:
                i += self._send(client, msgs[i:i + k] if i or k < n else msgs, now)
            if client.in_flight >= client.ready_count or client.output_blocked:
                client.in_ready_list = False
                del ready[j]
                self._next = j
            else:
                self._next = j + 1
        return i

    def _send(self, client: Consumer, msgs: Iterable[Msg], now: float) -> int:
        """Deliver ``msgs`` to ``client`` while its output has room; return how many of
        them were used (sent, or sampled out: NSQ's ``sample_rate`` drops the rest)."""
        room = client.output_limit - client.out_bytes
        if room <= 0:
            client.output_blocked = True
            return 0
        taken: list[int] | None = None
        if self._acking or client.sample_rate:
            taken = [0]
            msgs = self._admitted(client, msgs, taken)
        held = self.in_flight.add_consumer(client.id)
        deadline = now + client.msg_timeout
        parts: list[bytes] = []  # frame head, body, frame head, body...
        append = parts.append
        head = _FRAME_HEAD
        overhead = _OVERHEAD
        message = _MESSAGE
        max_attempts = _MAX_ATTEMPTS
        nbytes = 0
        for msg_id, body, ts, attempts in msgs:
            if attempts < max_attempts:
                attempts += 1
            held[msg_id] = (msg_id, body, ts, attempts, deadline)
            size = overhead + len(body)
            append(head(size, message, ts, attempts, msg_id))
            append(body)
            nbytes += size
            if nbytes >= room:
                client.output_blocked = True
                break
        sent = len(parts) >> 1
        if sent:
            client.in_flight += sent
            client.message_count += sent
            client.send_messages(parts, nbytes + 4 * sent)
        return sent if taken is None else taken[0]

    def _admitted(self, client: Consumer, msgs: Iterable[Msg],
                  taken: list[int]) -> Iterator[Msg]:
        """``msgs`` but durable mode's replayed duplicates and those ``sample_rate``
        drops; ``taken[0]`` counts the messages read from ``msgs`` so far."""
        in_flight = self.in_flight
        acking = self._acking
        sample_rate = client.sample_rate
        for msg in msgs:
            taken[0] += 1
            if acking and msg[0] in in_flight:
                continue  # a replayed duplicate of a message in flight: one FIN for both
            if sample_rate and random.randrange(100) > sample_rate:
                if acking:
                    self.backend.ack(msg[0])
                continue
            yield msg

    # ------------------------------------------------------------------ consumers
    def add_client(self, client: Consumer, max_consumers: int) -> None:
        """Subscribe a consumer (NSQ's AddClient)."""
        if self.deleted:
            raise ChannelError("exiting")
        if client.id in self.clients:
            return
        if max_consumers and len(self.clients) >= max_consumers:
            raise ChannelError(
                f"consumers for {self.topic.name}:{self.name} exceeds limit of {max_consumers}")
        self.clients[client.id] = client
        self.in_flight.add_consumer(client.id)

    def remove_client(self, client: Consumer, now: float) -> None:
        """Unsubscribe; its in-flight messages go back to the queue at once."""
        if self.clients.pop(client.id, None) is None:
            return
        self._drop_ready(client)
        for rec in self.in_flight.remove_consumer(client.id):
            self.requeue_count += 1
            self._requeue(_as_msg(rec), now)
        client.in_flight = 0
        if self.ephemeral and not self.clients:
            self.topic.delete_channel(self.name, reason="last client left")

    def _drop_ready(self, client: Consumer) -> None:
        if client.in_ready_list:
            client.in_ready_list = False
            idx = self._ready.index(client)
            del self._ready[idx]
            if idx < self._next:
                self._next -= 1

    def fill(self, client: Consumer, now: float) -> None:
        """Give a consumer whose capacity grew (RDY, FIN, REQ, timeout) what is waiting."""
        if self._fins:  # after a FIN batch: its latencies, one clock read for all
            self.fold_e2e()
        if client.id not in self.clients:
            return
        spare = client.ready_count - client.in_flight
        if spare <= 0:
            self._drop_ready(client)
            return
        if not self.paused:
            memory = self.memory
            while spare > 0 and not client.output_blocked and (memory or self.backend.depth()):
                if memory:
                    # taken one by one as they are sent: what finds no output room stays
                    k = min(spare, len(memory))
                    if self._send(client, starmap(memory.popleft, repeat((), k)), now) < k:
                        break
                    spare = client.ready_count - client.in_flight
                    continue
                room = client.output_limit - client.out_bytes
                if room <= 0:
                    client.output_blocked = True
                    break
                batch = self._take(min(spare, room // _FRAME_BYTES + 1))
                if not batch:
                    break
                used = self._send(client, batch, now)
                if used < len(batch):  # out of output room: the rest stays first in line
                    memory.extendleft(reversed(batch[used:]))
                    break
                spare = client.ready_count - client.in_flight
        if spare <= 0 or client.output_blocked:
            self._drop_ready(client)
        elif not client.in_ready_list:
            client.in_ready_list = True
            self._ready.append(client)

    def refill_all(self, now: float) -> None:
        """Offer waiting messages to every consumer (after unpause or a bulk requeue)."""
        for client in list(self.clients.values()):
            self.fill(client, now)

    # ------------------------------------------------------------------ FIN / REQ / TOUCH
    def finish(self, client: Consumer, msg_id: bytes) -> None:
        """FIN: the message is done. Raises :class:`ChannelError` as NSQ does."""
        rec = self.in_flight.take(client.id, msg_id)
        client.in_flight -= 1
        if self._acking:
            self.backend.ack(msg_id)
        fins = self._fins
        if fins is not None:
            fins.append(rec[2])

    def finish_many(self, client: Consumer, msg_ids: list[bytes]) -> list[ChannelError | None] | None:
        """FIN each of ``msg_ids`` in turn (a run of FINs from one read).

        Returns None when every one was done, else one entry per ID: None (done) or
        the :class:`ChannelError` its FIN failed with.
        """
        held = self.in_flight.groups.get(client.id)
        if held is None:  # not subscribed (any more)
            return [self.in_flight.not_held(msg_id) for msg_id in msg_ids]
        before = len(held)
        recs = list(map(held.pop, msg_ids, repeat(None)))
        done = before - len(held)
        client.in_flight -= done
        if self._acking:
            ack = self.backend.ack
            for rec in recs:
                if rec is not None:
                    ack(rec[0])
        fins = self._fins
        if fins is not None:
            fins.extend([rec[2] for rec in recs if rec is not None])
        if done == len(msg_ids):
            return None
        not_held = self.in_flight.not_held
        return [None if rec is not None else not_held(msg_id)
                for msg_id, rec in zip(msg_ids, recs, strict=True)]

    def fold_e2e(self) -> None:
        """Record the publish→FIN latency (ns) of the messages FIN'd since last time."""
        fins = self._fins
        if fins and self.e2e is not None:
            self.e2e.add(fins, time.time_ns())
            fins.clear()

    def requeue(self, client: Consumer, msg_id: bytes, delay: float, now: float) -> None:
        """REQ: back to the queue now, or after ``delay`` seconds."""
        msg = _as_msg(self.in_flight.take(client.id, msg_id))
        client.in_flight -= 1
        self.requeue_count += 1
        if delay <= 0:
            self._requeue(msg, now)
            return
        try:
            self.defer(msg, now + delay)
        except BackendError as exc:
            logger.error("CHANNEL(%s): failed to defer a message, requeued now - %s",
                         self.name, exc)
            self._requeue(msg, now)
            return
        if self._acking:
            self.backend.ack(msg_id)

    def touch(self, client: Consumer, msg_id: bytes, now: float) -> None:
        """TOUCH: restart the message's timeout."""
        self.in_flight.touch(client.id, msg_id, now + client.msg_timeout)

    def defer(self, msg: Msg, due: float) -> None:
        """Hold a message until ``due`` (DPUB, REQ with delay).

        Raises:
            BackendError: durable mode and the disk refused it.
        """
        self.deferred.push(msg, due)

    def defer_many(self, msgs: Sequence[Msg], dues: Sequence[float]) -> None:
        """Hold each message until its due time (a run of DPUBs); see :meth:`defer`."""
        self.deferred.push_many(msgs, dues)

    # ------------------------------------------------------------------ timers
    def process_in_flight(self, now: float) -> int:
        """Requeue every in-flight message whose deadline passed; return how many."""
        expired = self.in_flight.expired(now)
        clients = self.clients
        for client_id, rec in expired:
            client = clients.get(client_id)
            if client is not None:
                client.in_flight -= 1
                client.message_timed_out()
            self.timeout_count += 1
            self._requeue(_as_msg(rec), now)
            if client is not None and client_id in clients:
                self.fill(client, now)
        return len(expired)

    def process_deferred(self, now: float) -> int:
        """Release every deferred message that is due; return how many."""
        msgs = self.deferred.pop_due(now)
        if msgs:
            self._requeue_released(msgs, now)
        return len(msgs)

    def next_deadline(self) -> float | None:
        """The earliest in-flight or deferred deadline, if any."""
        best = self.deferred.next_due()
        held = self.in_flight.next_deadline()
        if best is None or (held is not None and held < best):
            return held
        return best

    # ------------------------------------------------------------------ admin
    def pause(self) -> None:
        self.paused = True

    def unpause(self, now: float) -> None:
        self.paused = False
        self.refill_all(now)

    def empty(self) -> None:
        """Drop everything queued, in flight and deferred (NSQ's /channel/empty)."""
        self.in_flight.clear()
        self.deferred.empty()
        self.memory.clear()
        self.backend.empty()
        for client in self.clients.values():
            client.in_flight = 0

    def flush(self) -> None:
        """Shutdown: queue in-flight and in-memory messages on the backend, as NSQ's flush.

        In-flight messages keep their attempts; deferred ones stay in the deferred store
        (closed by the caller), so they keep their due times.
        """
        if self.memory or self.in_flight or self.deferred:
            logger.info("CHANNEL(%s): flushing %d memory %d in-flight %d deferred messages "
                        "to backend", self.name, len(self.memory), len(self.in_flight),
                        len(self.deferred))
        msgs = list(self.memory)
        clients = self.clients
        for client_id, rec in self.in_flight.drain():
            client = clients.get(client_id)
            if client is not None:
                client.in_flight -= 1
            msgs.append(_as_msg(rec))
        if not msgs:
            return
        try:
            self.backend.put(msgs)
        except BackendError as exc:
            logger.error("CHANNEL(%s): failed to write messages to backend - %s", self.name, exc)
            return
        self.memory.clear()
        if self._acking:
            for msg in msgs:
                self.backend.ack(msg[0])

    def close_clients(self) -> None:
        """Close every subscribed connection (channel deleted or daemon exiting)."""
        for client in list(self.clients.values()):
            client.close()
