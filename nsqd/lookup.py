"""nsqd's side of nsqlookupd: keep every lookupd told which topics and channels exist.

:class:`LookupPeers` runs one task per nsqlookupd address (NSQ's ``lookupLoop`` and
``lookupPeer``). Each task connects, sends the ``  V1`` magic and IDENTIFY, registers
everything nsqd has (ephemeral topics and channels included, as NSQ does), then
forwards changes and PINGs every 15 s. A dropped connection is retried with capped
exponential backoff, and the reconnect registers everything again.

It knows nothing of nsqd's internals: it asks ``identity()`` for the IDENTIFY body and
``registrations()`` for the current topics and channels, and is told of changes
through :meth:`LookupPeers.notify`.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import trio

from client.protocol import MAGIC_V1, ResponseReader, commands
from internal.gojson import loads
from internal.netaddr import join_host_port, split_host_port

__all__ = [
    "LookupPeerStatistics",
    "LookupPeers",
    "LookupdInfo",
]

logger = logging.getLogger(__name__)

#: the IDENTIFY body nsqd sends (version, ports, hostname, broadcast address)
Identity = Callable[[], Mapping[str, str | int]]
Registrations = Callable[[], Iterable[tuple[str, str | None]]]
Connector = Callable[[str], Awaitable[trio.abc.Stream]]

PING_INTERVAL: Final = 15.0
QUEUE_SIZE: Final = 1024
IO_TIMEOUT: Final = 5.0
BACKOFF_INITIAL: Final = 1.0
BACKOFF_MAX: Final = 15.0
MAX_RESPONSE_SIZE: Final = 5 * 1024 * 1024
#: commands written before reading their responses (bounded so neither side's
#: socket buffer can fill up while the other waits)
PIPELINE_DEPTH: Final = 256


@dataclass(frozen=True, slots=True)
class LookupdInfo:
    """What a lookupd said about itself in its IDENTIFY response."""

    tcp_port: int
    http_port: int
    version: str
    broadcast_address: str


@dataclass(frozen=True, slots=True)
class LookupPeerStatistics:
    """One peer's state, for stats and tests."""

    address: str
    connected: bool
    queued: int
    max_queue: int
    connects: int
    resyncs: int


class _PeerError(Exception):
    """The lookupd answered something other than what the protocol allows."""


_EXPECTED = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError,
             _PeerError, ValueError)


async def _open_tcp(address: str) -> trio.abc.Stream:
    host, port = split_host_port(address)
    return await trio.open_tcp_stream(host or "localhost", port)


class _Connection:
    """Request/response over one lookupd stream, with timeouts."""

    def __init__(self, stream: trio.abc.Stream, timeout: float, max_response_size: int) -> None:
        self.stream = stream
        self.timeout = timeout
        self.reader = ResponseReader(max_response_size)
        self.pending: collections.deque[bytes] = collections.deque()

    async def _response(self) -> bytes:
        while not self.pending:
            data = await self.stream.receive_some(64 * 1024)
            if not data:
                raise trio.BrokenResourceError("connection closed by lookupd")
            self.reader.feed(bytes(data) if isinstance(data, bytearray) else data)
            self.pending.extend(self.reader.responses())
        return self.pending.popleft()

    async def idle(self, wake: trio.Event, deadline: float) -> None:
        """Wait for ``wake`` or ``deadline`` while watching for the lookupd going away.

        A lookupd never speaks unprompted, so anything it sends now (EOF included)
        ends the session at once instead of at the next PING.
        """
        failure: list[Exception] = []
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                try:
                    data = await self.stream.receive_some(64 * 1024)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as err:
                    failure.append(err)
                else:
                    failure.append(
                        _PeerError(f"unexpected data from lookupd {data[:64]!r}") if data
                        else trio.BrokenResourceError("connection closed by lookupd"))
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            with trio.move_on_at(deadline):
                await wake.wait()
            nursery.cancel_scope.cancel()
        if failure:
            raise failure[0]

    async def roundtrip(self, cmds: Sequence[bytes], prefix: bytes = b"") -> list[bytes]:
        """Write ``prefix`` and the commands at once, then read one response per command."""
        with trio.fail_after(self.timeout):
            await self.stream.send_all(prefix + b"".join(cmds))
            return [await self._response() for _ in cmds]


def _describe(cmd: bytes) -> str:
    return cmd.split(b"\n", 1)[0].decode("ascii", "replace")


class _Peer:
    """One lookupd: its queue of pending commands and its connection task."""

    def __init__(self, owner: LookupPeers, address: str) -> None:
        self.owner = owner
        self.address = address
        self.queue: collections.deque[bytes] = collections.deque()
        self.resync = False
        self.live = False  # changes are queued only once a sync has been snapshotted
        self.connected = False
        self.info: LookupdInfo | None = None
        self.connects = 0
        self.resyncs = 0
        self.cancel_scope = trio.CancelScope()
        self._wake = trio.Event()

    def __str__(self) -> str:
        return self.address

    def push(self, cmd: bytes) -> None:
        if not self.live or self.resync:
            return  # the next (re)connect registers the current state anyway
        if len(self.queue) >= self.owner.queue_size:
            logger.warning("LOOKUPD(%s): queue full (%d), will re-sync", self, len(self.queue))
            self.queue.clear()
            self.resync = True
        else:
            self.queue.append(cmd)
        self._wake.set()

    def statistics(self) -> LookupPeerStatistics:
        return LookupPeerStatistics(self.address, self.connected, len(self.queue),
                                    self.owner.queue_size, self.connects, self.resyncs)

    async def run(self) -> None:
        owner = self.owner
        backoff = owner.backoff_initial
        with self.cancel_scope:
            while True:
                logger.info("LOOKUP connecting to %s", self)
                try:
                    with trio.fail_after(owner.io_timeout):
                        stream = await owner.connect(self.address)
                except _EXPECTED as err:
                    logger.error("LOOKUPD(%s): connect failed - %s", self, err)
                else:
                    self.connects += 1
                    try:
                        async with stream:
                            await self._session(stream)
                    except _EXPECTED as err:
                        logger.error("LOOKUPD(%s): %s", self, err or type(err).__name__)
                    except Exception:  # e.g. a failing identity(): retry, don't kill nsqd
                        logger.exception("LOOKUPD(%s): unexpected error", self)
                    finally:
                        synced = self.connected
                        self.connected = self.live = False
                        self.queue.clear()
                    if self.resync:
                        # reconnect at once: the drop unregisters us, the sync re-registers
                        self.resync = False
                        self.resyncs += 1
                        continue
                    if synced:
                        backoff = owner.backoff_initial
                await trio.sleep(backoff)
                backoff = min(backoff * 2, owner.backoff_max)

    async def _session(self, stream: trio.abc.Stream) -> None:
        """Identify, register everything, then forward changes; returns to re-sync."""
        owner = self.owner
        conn = _Connection(stream, owner.io_timeout, owner.max_response_size)
        cmd = commands.identify(dict(owner.identity()))
        (resp,) = await conn.roundtrip([cmd], prefix=MAGIC_V1)
        if resp.startswith(b"E_"):
            raise _PeerError(f"lookupd returned {resp.decode('latin-1')}")
        try:
            raw = loads(resp)
            self.info = LookupdInfo(int(raw["tcp_port"]), int(raw["http_port"]),
                                    str(raw["version"]), str(raw["broadcast_address"]))
        except (ValueError, TypeError, KeyError) as err:
            raise _PeerError(f"parsing response {resp!r} - {err}") from None
        logger.info("LOOKUPD(%s): peer info %s", self, self.info)
        if not self.info.broadcast_address:
            logger.error("LOOKUPD(%s): no broadcast address", self)

        # snapshot and go live in one synchronous step: later changes land in the queue
        self.queue.clear()
        self.resync = False
        snapshot = [commands.register(topic, channel) for topic, channel in owner.registrations()]
        self.live = True
        for cmd in snapshot:
            logger.info("LOOKUPD(%s): %s", self, _describe(cmd))
        await self._send(conn, snapshot)
        self.connected = True

        next_ping = trio.current_time() + owner.ping_interval
        while True:
            if self.resync:
                return
            if trio.current_time() >= next_ping:
                logger.debug("LOOKUPD(%s): sending heartbeat", self)
                await self._send(conn, [commands.ping()])
                next_ping = trio.current_time() + owner.ping_interval
            elif self.queue:
                n = min(len(self.queue), PIPELINE_DEPTH)
                batch = [self.queue.popleft() for _ in range(n)]
                for cmd in batch:
                    logger.info("LOOKUPD(%s): %s", self, _describe(cmd))
                await self._send(conn, batch)
            else:
                self._wake = trio.Event()
                await conn.idle(self._wake, next_ping)

    @staticmethod
    async def _send(conn: _Connection, cmds: list[bytes]) -> None:
        for start in range(0, len(cmds), PIPELINE_DEPTH):
            chunk = cmds[start : start + PIPELINE_DEPTH]
            for cmd, resp in zip(chunk, await conn.roundtrip(chunk), strict=True):
                if resp != b"OK":
                    raise _PeerError(f"{_describe(cmd)} - {resp.decode('latin-1')}")


class LookupPeers:
    """Registers this nsqd with a set of nsqlookupds and keeps them up to date.

    Args:
        addresses: lookupd TCP addresses (``host:port``); duplicates are ignored.
            An unparseable address is retried and logged like an unreachable one.
        identity: returns the IDENTIFY body: ``broadcast_address``, ``hostname``,
            ``tcp_port``, ``http_port``, ``version``.
        registrations: returns every existing topic as ``(topic, None)`` and channel
            as ``(topic, channel)``, ephemeral ones included.
        ping_interval: seconds between PINGs (lookupd drops nodes silent for its
            ``--inactive-producer-timeout``).
        queue_size: changes buffered per peer; on overflow the peer reconnects and
            registers everything again instead of growing.
        io_timeout: connect and per-round-trip timeout, in seconds.
        backoff_initial, backoff_max: reconnect delay range, doubling per failure.
        connect: opens a stream to an address (a seam for tests).
    """

    def __init__(
        self,
        addresses: Iterable[str],
        *,
        identity: Identity,
        registrations: Registrations,
        ping_interval: float = PING_INTERVAL,
        queue_size: int = QUEUE_SIZE,
        io_timeout: float = IO_TIMEOUT,
        backoff_initial: float = BACKOFF_INITIAL,
        backoff_max: float = BACKOFF_MAX,
        max_response_size: int = MAX_RESPONSE_SIZE,
        connect: Connector = _open_tcp,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.identity = identity
        self.registrations = registrations
        self.ping_interval = ping_interval
        self.queue_size = queue_size
        self.io_timeout = io_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.max_response_size = max_response_size
        self.connect = connect
        self._addresses = list(dict.fromkeys(addresses))
        self._peers: dict[str, _Peer] = {}
        self._nursery: trio.Nursery | None = None

    @property
    def addresses(self) -> list[str]:
        """The configured lookupd TCP addresses, in order."""
        return list(self._addresses)

    async def run(self, *, task_status: trio.TaskStatus[LookupPeers] = trio.TASK_STATUS_IGNORED) -> None:
        """Run one task per peer until cancelled; ``task_status.started(self)`` at once.

        Registration happens in the background; cancelling closes every connection
        (which makes the lookupds drop this nsqd).
        """
        if self._nursery is not None:
            raise RuntimeError("LookupPeers.run() is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._sync_peers()
                task_status.started(self)
                await trio.sleep_forever()
        finally:
            self._nursery = None
            self._peers.clear()
            logger.info("LOOKUP: closing")

    def set_addresses(self, addresses: Iterable[str]) -> None:
        """Replace the lookupd addresses: new ones are connected, missing ones dropped."""
        self._addresses = list(dict.fromkeys(addresses))
        if self._nursery is not None:
            self._sync_peers()

    def _sync_peers(self) -> None:
        assert self._nursery is not None
        wanted = set(self._addresses)
        for address in [a for a in self._peers if a not in wanted]:
            logger.info("LOOKUP(%s): removing peer", address)
            self._peers.pop(address).cancel_scope.cancel()
        for address in self._addresses:
            if address not in self._peers:
                logger.info("LOOKUP(%s): adding peer", address)
                peer = self._peers[address] = _Peer(self, address)
                self._nursery.start_soon(peer.run, name=f"lookup-peer-{address}")

    def notify(
        self, kind: Literal["register", "unregister"], topic: str, channel: str | None = None
    ) -> None:
        """Tell every lookupd that a topic/channel was created or deleted; never blocks.

        Raises:
            ValueError: an unknown ``kind``.
            client.protocol.LocalProtocolError: an invalid topic or channel name.
        """
        if kind == "register":
            cmd = commands.register(topic, channel)
        elif kind == "unregister":
            cmd = commands.unregister(topic, channel)
        else:
            raise ValueError(f"unknown notify kind {kind!r}")
        for peer in self._peers.values():
            peer.push(cmd)

    def lookupd_http_addresses(self) -> list[str]:
        """``broadcast_address:http_port`` of each lookupd that has identified itself."""
        return [
            join_host_port(p.info.broadcast_address, p.info.http_port)
            for p in self._peers.values()
            if p.info is not None and p.info.broadcast_address
        ]

    def statistics(self) -> list[LookupPeerStatistics]:
        """One record per running peer."""
        return [p.statistics() for p in self._peers.values()]
