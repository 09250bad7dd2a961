"""A channel: one copy of every message of its topic, shared out among its consumers.

Messages wait in a memory deque (then the backend, past ``mem_queue_size``). A consumer
with spare RDY capacity is on the channel's ready list; delivery hands a message to the
next ready consumer in turn, so a channel's consumers share the work by their RDY counts.
Everything here is synchronous: the hot path builds frames into the consumer's output
buffer and its writer task sends them in one write per batch.

In-flight messages are kept per msg-timeout in insertion-ordered maps, which are then
also ordered by deadline, so timeouts are found from the front in O(1) per message.
Deferred messages wait in a heap keyed by due time.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from client.protocol import encode_message_frame

from .backend import Backend, Msg
from .errors import ChannelError

if TYPE_CHECKING:
    from .topic import Topic

__all__ = ["Channel", "Consumer", "InFlight"]

logger = logging.getLogger(__name__)


class Consumer(Protocol):
    """What a channel needs from a subscribed connection (see ``client_v2.ClientV2``)."""

    id: int
    ready_count: int
    in_flight: int
    msg_timeout: float
    message_count: int
    in_ready_list: bool

    def send_frames(self, frames: list[bytes]) -> None: ...
    def message_timed_out(self) -> None: ...
    def close(self) -> None: ...


class InFlight:
    """A delivered message awaiting FIN, REQ or its timeout."""

    __slots__ = ("attempts", "body", "client", "deadline", "group", "id", "timestamp")

    def __init__(self, msg_id: bytes, body: bytes, timestamp: int, attempts: int,
                 client: Consumer, deadline: float,
                 group: collections.OrderedDict[bytes, InFlight]) -> None:
        self.id = msg_id
        self.body = body
        self.timestamp = timestamp
        self.attempts = attempts
        self.client = client
        self.deadline = deadline
        self.group = group

    def as_msg(self) -> Msg:
        return (self.id, self.body, self.timestamp, self.attempts)


class Channel:
    """One channel of a topic. Created and owned by :class:`~nsqd.topic.Topic`."""

    def __init__(self, topic: Topic, name: str, backend: Backend, mem_queue_size: int,
                 ephemeral: bool) -> None:
        self.topic = topic
        self.name = name
        self.backend = backend
        self.mem_queue_size = mem_queue_size
        self.ephemeral = ephemeral
        self.memory: collections.deque[Msg] = collections.deque()
        self.clients: dict[int, Consumer] = {}
        self._ready: list[Consumer] = []
        self._next = 0
        self.in_flight: dict[bytes, InFlight] = {}
        self._groups: dict[float, collections.OrderedDict[bytes, InFlight]] = {}
        self.deferred: list[tuple[float, int, Msg]] = []
        self._deferred_seq = itertools.count()
        self.paused = False
        self.deleted = False
        self.message_count = 0
        self.requeue_count = 0
        self.timeout_count = 0

    # ------------------------------------------------------------------ queries
    def depth(self) -> int:
        """Messages waiting for a consumer (memory + backend)."""
        return len(self.memory) + self.backend.depth()

    def __repr__(self) -> str:
        return f"<Channel {self.topic.name}:{self.name}>"

    # ------------------------------------------------------------------ input
    def put(self, msgs: Iterable[Msg], now: float) -> None:
        """Accept messages from the topic (or a requeue): deliver or queue them."""
        ready = self._ready
        memory = self.memory
        for msg in msgs:
            self.message_count += 1
            if ready and not self.paused:
                # invariant: a consumer is on the ready list only when nothing waits
                self._deliver_next(msg, now)
            elif len(memory) < self.mem_queue_size:
                memory.append(msg)
            else:
                self.backend.put((msg,))

    def _requeue(self, msg: Msg, now: float) -> None:
        if self._ready and not self.paused:
            self._deliver_next(msg, now)
        elif len(self.memory) < self.mem_queue_size:
            self.memory.append(msg)
        else:
            self.backend.put((msg,))

    def _deliver_next(self, msg: Msg, now: float) -> None:
        ready = self._ready
        i = self._next
        if i >= len(ready):
            i = 0
        client = ready[i]
        self._send(client, [msg], now)
        if client.in_flight >= client.ready_count:
            client.in_ready_list = False
            del ready[i]
            self._next = i
        else:
            self._next = i + 1

    def _send(self, client: Consumer, msgs: list[Msg], now: float) -> None:
        timeout = client.msg_timeout
        group = self._groups.get(timeout)
        if group is None:
            group = self._groups[timeout] = collections.OrderedDict()
        deadline = now + timeout
        in_flight = self.in_flight
        frames = []
        for msg_id, body, ts, attempts in msgs:
            attempts += 1
            rec = InFlight(msg_id, body, ts, attempts, client, deadline, group)
            in_flight[msg_id] = rec
            group[msg_id] = rec
            frames.append(encode_message_frame(msg_id, ts, attempts, body))
        client.in_flight += len(frames)
        client.message_count += len(frames)
        client.send_frames(frames)

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

    def remove_client(self, client: Consumer, now: float) -> None:
        """Unsubscribe; its in-flight messages go back to the queue at once."""
        if self.clients.pop(client.id, None) is None:
            return
        self._drop_ready(client)
        owned = [rec for rec in self.in_flight.values() if rec.client is client]
        for rec in owned:
            self._pop_in_flight(rec)
            self.requeue_count += 1
            self._requeue(rec.as_msg(), now)
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
        if client.id not in self.clients:
            return
        spare = client.ready_count - client.in_flight
        if spare <= 0:
            self._drop_ready(client)
            return
        if not self.paused:
            memory = self.memory
            while spare > 0 and (memory or self.backend.depth()):
                if memory:
                    k = min(spare, len(memory))
                    popleft = memory.popleft
                    batch = [popleft() for _ in range(k)]
                else:
                    batch = self.backend.read(spare)
                    if not batch:
                        break
                self._send(client, batch, now)
                spare -= len(batch)
        if spare > 0 and not client.in_ready_list:
            client.in_ready_list = True
            self._ready.append(client)
        elif spare <= 0:
            self._drop_ready(client)

    def refill_all(self, now: float) -> None:
        """Offer waiting messages to every consumer (after unpause or a bulk requeue)."""
        for client in list(self.clients.values()):
            self.fill(client, now)

    # ------------------------------------------------------------------ FIN / REQ / TOUCH
    def _pop_in_flight(self, rec: InFlight) -> None:
        del self.in_flight[rec.id]
        del rec.group[rec.id]

    def _owned(self, client: Consumer, msg_id: bytes) -> InFlight:
        rec = self.in_flight.get(msg_id)
        if rec is None:
            raise ChannelError("ID not in flight")
        if rec.client is not client:
            raise ChannelError("client does not own message")
        return rec

    def finish(self, client: Consumer, msg_id: bytes) -> None:
        """FIN: the message is done. Raises :class:`ChannelError` as NSQ does."""
        rec = self._owned(client, msg_id)
        self._pop_in_flight(rec)
        client.in_flight -= 1

    def requeue(self, client: Consumer, msg_id: bytes, delay: float, now: float) -> None:
        """REQ: back to the queue now, or after ``delay`` seconds."""
        rec = self._owned(client, msg_id)
        self._pop_in_flight(rec)
        client.in_flight -= 1
        self.requeue_count += 1
        if delay <= 0:
            self._requeue(rec.as_msg(), now)
        else:
            self.defer(rec.as_msg(), now + delay)

    def touch(self, client: Consumer, msg_id: bytes, now: float) -> None:
        """TOUCH: restart the message's timeout."""
        rec = self._owned(client, msg_id)
        rec.deadline = now + client.msg_timeout
        group = self._groups.get(client.msg_timeout)
        if group is rec.group:
            group.move_to_end(msg_id)
        else:
            del rec.group[msg_id]
            if group is None:
                group = self._groups[client.msg_timeout] = collections.OrderedDict()
            group[msg_id] = rec
            rec.group = group

    def defer(self, msg: Msg, due: float) -> None:
        """Hold a message until ``due`` (DPUB, REQ with delay)."""
        heapq.heappush(self.deferred, (due, next(self._deferred_seq), msg))

    # ------------------------------------------------------------------ timers
    def process_in_flight(self, now: float) -> int:
        """Requeue every in-flight message whose deadline passed; return how many."""
        count = 0
        for group in self._groups.values():
            while group:
                msg_id = next(iter(group))
                rec = group[msg_id]
                if rec.deadline > now:
                    break
                self._pop_in_flight(rec)
                client = rec.client
                client.in_flight -= 1
                client.message_timed_out()
                self.timeout_count += 1
                self._requeue(rec.as_msg(), now)
                count += 1
                if client.id in self.clients:
                    self.fill(client, now)
        return count

    def process_deferred(self, now: float) -> int:
        """Release every deferred message that is due; return how many."""
        heap = self.deferred
        count = 0
        while heap and heap[0][0] <= now:
            _, _, msg = heapq.heappop(heap)
            self._requeue(msg, now)
            count += 1
        return count

    def next_deadline(self) -> float | None:
        """The earliest in-flight or deferred deadline, if any."""
        best = self.deferred[0][0] if self.deferred else None
        for group in self._groups.values():
            if group:
                d = group[next(iter(group))].deadline
                if best is None or d < best:
                    best = d
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
        self._groups.clear()
        self.deferred.clear()
        self.memory.clear()
        self.backend.empty()
        for client in self.clients.values():
            client.in_flight = 0

    def close_clients(self) -> None:
        """Close every subscribed connection (channel deleted or daemon exiting)."""
        for client in list(self.clients.values()):
            client.close()
