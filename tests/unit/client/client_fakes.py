"""An in-memory nsqd good enough to drive the client: built from the shared codec
(``CommandReader`` + ``encode_response/encode_error/encode_message_frame``) and served
over ``trio.testing.memory_stream_pair`` so tests can run under a MockClock.

It implements IDENTIFY (feature negotiation), SUB, RDY-gated delivery, FIN, REQ (with
delay), TOUCH, CLS/CLOSE_WAIT, NOP, PUB/MPUB/DPUB, heartbeats, and error injection.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import trio
import trio.testing
from trio.lowlevel import ParkingLot

from client.protocol import (
    MAGIC_V2,
    CommandReader,
    MPUBError,
    encode_error,
    encode_message_frame,
    encode_response,
    parse_mpub_body,
)

NON_FATAL = (b"E_FIN_FAILED", b"E_REQ_FAILED", b"E_TOUCH_FAILED")


@dataclass
class FakeMessage:
    id: bytes
    body: bytes
    attempts: int = 0
    timestamp: int = 1_700_000_000_000_000_000


@dataclass
class FakeClient:
    cid: int
    stream: trio.abc.Stream
    rdy: int = 0
    in_flight: dict[bytes, FakeMessage] = field(default_factory=dict)
    subscribed: bool = False
    closing: bool = False
    identify: dict[str, object] = field(default_factory=dict)
    max_rdy_seen: int = 0
    rdy_history: list[int] = field(default_factory=list)
    nops: int = 0
    alive: bool = True
    send_lock: trio.Lock = field(default_factory=trio.Lock)


#: hook(client, name, params, body) -> error frame data to send instead of handling
ErrorHook = Callable[[FakeClient, bytes, list[bytes], "bytes | None"], "bytes | None"]


class FakeNSQD:
    """One fake nsqd: a single topic/channel queue plus a store of published messages."""

    def __init__(
        self,
        *,
        max_rdy_count: int = 2500,
        msg_timeout_ms: int = 60_000,
        heartbeats: bool = True,
        requeue_on_disconnect: bool = True,
        identify_error: bytes | None = None,
    ) -> None:
        self.max_rdy_count = max_rdy_count
        self.msg_timeout_ms = msg_timeout_ms
        self.heartbeats = heartbeats
        self.requeue_on_disconnect = requeue_on_disconnect
        self.identify_error = identify_error
        self.queue: deque[FakeMessage] = deque()
        self.published: dict[str, list[bytes]] = defaultdict(list)
        self.deferred: list[tuple[str, int, bytes]] = []
        self.finished: list[bytes] = []
        self.requeued: list[tuple[bytes, int]] = []
        self.touched: list[bytes] = []
        self.commands: list[tuple[int, bytes, list[bytes]]] = []
        self.clients: list[FakeClient] = []
        self.error_hook: ErrorHook | None = None
        self.response_delay = 0.0
        #: when set, answers to PUB/MPUB/DPUB wait for this event (observe pipelining)
        self.hold: trio.Event | None = None
        #: messages "already in the pipe" when CLS arrives: sent just before CLOSE_WAIT
        self.deliver_on_cls: list[bytes] = []
        self._changed = ParkingLot()
        self._next_id = 0
        self._next_cid = 0
        self._nursery: trio.Nursery | None = None
        self.max_total_in_flight = 0

    # ------------------------------------------------------------------ test controls

    def put(self, body: bytes, attempts: int = 0) -> FakeMessage:
        """Queue a message for delivery to subscribed clients."""
        self._next_id += 1
        msg = FakeMessage(b"%016x" % self._next_id, body, attempts)
        self.queue.append(msg)
        self._changed.unpark_all()
        return msg

    async def force_deliver(self, client: FakeClient, body: bytes) -> None:
        """Send a message ignoring RDY/CLS (nsqd's pump can race a CLS like this)."""
        self._next_id += 1
        msg = FakeMessage(b"%016x" % self._next_id, body, 1)
        client.in_flight[msg.id] = msg
        async with client.send_lock:
            await client.stream.send_all(encode_message_frame(msg.id, msg.timestamp, msg.attempts, msg.body))

    def in_flight_total(self) -> int:
        return sum(len(c.in_flight) for c in self.clients if c.alive)

    async def kill(self) -> None:
        """Drop every client connection at once (a crashed nsqd)."""
        for client in list(self.clients):
            await trio.aclose_forcefully(client.stream)

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (without sleeping blindly) until ``predicate()`` holds."""
        while not predicate():
            await self._changed.park()

    def notify(self) -> None:
        self._changed.unpark_all()

    # ------------------------------------------------------------------ serving

    async def serve(self, stream: trio.abc.Stream) -> None:
        self._next_cid += 1
        client = FakeClient(self._next_cid, stream)
        self.clients.append(client)
        try:
            async with trio.open_nursery() as nursery:
                await self._serve_commands(client, nursery)
                nursery.cancel_scope.cancel()  # stop pump and heartbeats: the connection ends
        except* (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            client.alive = False
            if self.requeue_on_disconnect:
                for msg in client.in_flight.values():
                    self.queue.appendleft(msg)
            client.in_flight.clear()
            self._changed.unpark_all()
            await trio.aclose_forcefully(stream)

    async def _serve_commands(self, client: FakeClient, nursery: trio.Nursery) -> None:
        stream = client.stream
        magic = b""
        while len(magic) < 4:
            data = await stream.receive_some(4 - len(magic))
            if not data:
                return
            magic += data
        assert magic == MAGIC_V2, magic
        nursery.start_soon(self._pump, client)
        reader = CommandReader()
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            reader.feed(data)
            for cmd in reader.commands():
                if cmd.bad_body_size is not None:
                    self.commands.append((client.cid, cmd.name, cmd.params))
                    text = b"E_BAD_MESSAGE %s invalid message body size %d" % (cmd.name, cmd.bad_body_size)
                    await self._send(client, encode_error(text))
                    return
                if not await self._handle(client, nursery, cmd.name, cmd.params, cmd.body):
                    return

    async def _send(self, client: FakeClient, data: bytes) -> None:
        if self.response_delay:
            await trio.sleep(self.response_delay)
        async with client.send_lock:
            await client.stream.send_all(data)

    async def _handle(
        self, client: FakeClient, nursery: trio.Nursery, name: bytes, params: list[bytes], body: bytes | None
    ) -> bool:
        self.commands.append((client.cid, name, params))
        if name in (b"PUB", b"MPUB", b"DPUB") and self.hold is not None:
            await self.hold.wait()
        if self.error_hook is not None:
            err = self.error_hook(client, name, params, body)
            if err is not None:
                await self._send(client, encode_error(err))
                return err.split(b" ", 1)[0] in NON_FATAL
        if name == b"IDENTIFY":
            assert body is not None
            client.identify = json.loads(body)
            if self.identify_error is not None:
                await self._send(client, encode_error(self.identify_error))
                return False
            answer = {
                "max_rdy_count": self.max_rdy_count,
                "version": "1.3.0",
                "max_msg_timeout": 900000,
                "msg_timeout": self.msg_timeout_ms,
                "tls_v1": False,
                "deflate": False,
                "snappy": False,
                "sample_rate": 0,
                "auth_required": False,
                "output_buffer_size": 16384,
                "output_buffer_timeout": 250,
            }
            await self._send(client, encode_response(json.dumps(answer).encode()))
            hb = client.identify.get("heartbeat_interval", 30000)
            if self.heartbeats and isinstance(hb, int) and hb > 0:
                nursery.start_soon(self._heartbeats, client, hb / 1000)
        elif name == b"SUB":
            client.subscribed = True
            await self._send(client, encode_response(b"OK"))
        elif name == b"RDY":
            count = int(params[0])
            if count > self.max_rdy_count:
                await self._send(client, encode_error(b"E_INVALID RDY count out of range"))
                return False
            if not client.closing:
                client.rdy = count
            client.rdy_history.append(count)
            client.max_rdy_seen = max(client.max_rdy_seen, count)
        elif name == b"FIN":
            msg = client.in_flight.pop(params[0], None)
            if msg is None:
                await self._send(client, encode_error(b"E_FIN_FAILED FIN " + params[0] + b" failed"))
            else:
                self.finished.append(msg.body)
        elif name == b"REQ":
            msg = client.in_flight.pop(params[0], None)
            if msg is None:
                await self._send(client, encode_error(b"E_REQ_FAILED REQ " + params[0] + b" failed"))
            else:
                delay_ms = int(params[1])
                self.requeued.append((msg.body, delay_ms))
                if delay_ms:
                    nursery.start_soon(self._requeue_later, msg, delay_ms / 1000)
                else:
                    self.queue.append(msg)
        elif name == b"TOUCH":
            self.touched.append(params[0])
        elif name == b"CLS":
            client.closing = True
            client.rdy = 0
            for late in self.deliver_on_cls:
                await self.force_deliver(client, late)
            await self._send(client, encode_response(b"CLOSE_WAIT"))
        elif name == b"NOP":
            client.nops += 1
        elif name == b"PUB":
            assert body is not None
            self.published[params[0].decode()].append(body)
            await self._send(client, encode_response(b"OK"))
        elif name == b"MPUB":
            assert body is not None
            try:
                bodies = parse_mpub_body(body, 1 << 20, 5 << 20)
            except MPUBError as exc:
                await self._send(client, encode_error(f"{exc.code} {exc}".encode()))
                return False
            self.published[params[0].decode()].extend(bodies)
            await self._send(client, encode_response(b"OK"))
        elif name == b"DPUB":
            assert body is not None
            self.deferred.append((params[0].decode(), int(params[1]), body))
            await self._send(client, encode_response(b"OK"))
        else:
            await self._send(client, encode_error(b"E_INVALID invalid command " + name))
            return False
        self._changed.unpark_all()
        return True

    async def _requeue_later(self, msg: FakeMessage, delay: float) -> None:
        await trio.sleep(delay)
        self.queue.append(msg)
        self._changed.unpark_all()

    async def _heartbeats(self, client: FakeClient, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            await self._send(client, encode_response(b"_heartbeat_"))

    async def _pump(self, client: FakeClient) -> None:
        while True:
            while not (client.subscribed and not client.closing and self.queue and len(client.in_flight) < client.rdy):
                await self._changed.park()
            frames = []
            while self.queue and len(client.in_flight) < client.rdy:
                msg = self.queue.popleft()
                msg.attempts += 1
                client.in_flight[msg.id] = msg
                frames.append(encode_message_frame(msg.id, msg.timestamp, msg.attempts, msg.body))
            self.max_total_in_flight = max(self.max_total_in_flight, self.in_flight_total())
            async with client.send_lock:
                await client.stream.send_all(b"".join(frames))


class FakeNetwork:
    """Routes ``open_stream(host, port)`` to fake nsqds over memory streams."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self.nursery = nursery
        self.nodes: dict[str, FakeNSQD] = {}
        self.dials: list[str] = []

    def add(self, address: str, node: FakeNSQD | None = None) -> FakeNSQD:
        node = node or FakeNSQD()
        self.nodes[address] = node
        return node

    def remove(self, address: str) -> None:
        self.nodes.pop(address, None)

    async def open_stream(self, host: str, port: int) -> trio.abc.Stream:
        address = f"{host}:{port}"
        self.dials.append(address)
        await trio.lowlevel.checkpoint()
        node = self.nodes.get(address)
        if node is None:
            raise ConnectionRefusedError(f"nothing listens on {address}")
        client_side, server_side = trio.testing.memory_stream_pair()
        self.nursery.start_soon(node.serve, server_side)
        return client_side
