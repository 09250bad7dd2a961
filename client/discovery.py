"""Which nsqd a consumer is connected to, and the tasks that keep it so.

Static addresses (``nsqd_tcp_addresses``) are reconnected when they drop, with a
delay doubling from 0.5 s up to ``lookupd_poll_interval`` (go-nsq waits the full
interval every time). Addresses from nsqlookupd are polled: once at start, then after a
random jitter (``lookupd_poll_jitter`` of the interval) every
``lookupd_poll_interval``, and at once when a discovered connection drops. Every
nsqlookupd is asked each time; new producers are connected, and producers that no
successful answer lists any more are retired gracefully (CLS, drain, close). A poll in
which some nsqlookupd failed retires nobody.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Final, final

import httpx
import trio

from . import lookup
from .config import ClientConfig
from .errors import LookupdError, NSQError
from .protocol import commands
from .subscription import ConsumerLink, Subscription

__all__ = ["Discovery"]

logger = logging.getLogger(__name__)

_RECONNECT_MIN: Final = 0.5


@final
class _Address:
    """A connection task's registration (static address or discovered by lookupd)."""

    __slots__ = ("scope", "static", "sub", "wanted")

    def __init__(self, static: bool) -> None:
        self.static = static
        self.wanted = True
        self.sub: Subscription | None = None
        self.scope: trio.CancelScope | None = None

    def new_scope(self) -> trio.CancelScope:
        """A scope for the next connect or reconnect wait; :meth:`give_up` cancels it."""
        scope = self.scope = trio.CancelScope()
        if not self.wanted:
            scope.cancel()
        return scope

    def give_up(self) -> None:
        """Stop connecting (a subscribed connection is closed separately)."""
        self.wanted = False
        if self.scope is not None:
            self.scope.cancel()


@final
class Discovery:
    """Connection tasks for static and discovered nsqd.

    Args:
        owner: the consumer's side: its callbacks and ``accepting`` flag.
        topic: the topic to subscribe to (and to look up).
        channel: the channel to subscribe to.
        config: timeouts and poll settings.
        nsqd_addresses: static nsqd TCP addresses.
        lookupd_addresses: nsqlookupd HTTP addresses.
        http_client: client for nsqlookupd (required with lookupd addresses).
        rng: randomness for the poll jitter.
        retire_timeout: how long a retired connection may drain.
    """

    def __init__(
        self,
        owner: ConsumerLink,
        topic: str,
        channel: str,
        config: ClientConfig,
        *,
        nsqd_addresses: Sequence[str],
        lookupd_addresses: Sequence[str],
        http_client: httpx.AsyncClient | None,
        rng: random.Random,
        retire_timeout: float,
    ) -> None:
        self.owner = owner
        self.topic = topic
        self.channel = channel
        self.config = config
        self.nsqd_addresses = list(nsqd_addresses)
        self.lookupd_addresses = list(lookupd_addresses)
        self.http_client = http_client
        self.rng = rng
        self.retire_timeout = retire_timeout
        self._addresses: dict[str, _Address] = {}
        self._recheck = trio.Event()
        self._nursery: trio.Nursery | None = None

    def start(self, nursery: trio.Nursery) -> None:
        """Start connecting (tasks run in ``nursery``)."""
        self._nursery = nursery
        for address in self.nsqd_addresses:
            self._watch(address, static=True)
        if self.lookupd_addresses:
            nursery.start_soon(self._lookupd_loop)

    def subscriptions(self) -> list[Subscription]:
        """Every subscription currently connected."""
        return [a.sub for a in self._addresses.values() if a.sub is not None]

    def stop(self) -> list[Subscription]:
        """Stop connecting and reconnecting; returns the live subscriptions."""
        for entry in self._addresses.values():
            entry.give_up()
        return self.subscriptions()

    # ------------------------------------------------------------------ per address

    def _watch(self, address: str, *, static: bool) -> None:
        if address in self._addresses or not self.owner.accepting:
            return
        entry = self._addresses[address] = _Address(static)
        assert self._nursery is not None
        self._nursery.start_soon(self._address_task, address, entry)

    async def _address_task(self, address: str, entry: _Address) -> None:
        delay = _RECONNECT_MIN
        try:
            while entry.wanted and self.owner.accepting:
                subscribed = await self._connect_and_serve(address, entry)
                if not entry.wanted or not self.owner.accepting:
                    return
                if not entry.static:
                    if subscribed:
                        self._recheck.set()  # lost: let lookupd say whether it is still there
                    return  # a failed dial is retried by the next periodic poll
                delay = _RECONNECT_MIN if subscribed else min(delay * 2, self.config.lookupd_poll_interval)
                logger.info("(%s) reconnecting in %.1fs", address, delay)
                with entry.new_scope():
                    await trio.sleep(delay)
        finally:
            if self._addresses.get(address) is entry:
                del self._addresses[address]

    async def _connect_and_serve(self, address: str, entry: _Address) -> bool:
        """Connect and subscribe, then serve until the connection ends.

        Returns:
            True if the subscription succeeded (the connection then ran and ended).
        """
        sub = self.owner.new_subscription(address)
        conn = sub.conn
        async with trio.open_nursery() as nursery:
            subscribed = False
            with entry.new_scope():
                try:
                    await nursery.start(conn.run)
                    with trio.fail_after(self.config.read_timeout):
                        await conn.request(commands.sub(self.topic, self.channel))
                    subscribed = True
                except (NSQError, trio.TooSlowError) as exc:
                    logger.warning("(%s) cannot subscribe: %s", address, exc)
            if not subscribed:
                conn.abort()
                return False
            if conn.identify is not None:
                sub.max_rdy = conn.identify.max_rdy_count
            logger.info("(%s) subscribed to %s/%s", address, self.topic, self.channel)
            entry.sub = sub
            try:
                if self.owner.accepting and entry.wanted:
                    self.owner.on_subscribed(sub)
                else:
                    conn.close()
                await conn.wait_closed()
            finally:
                if entry.sub is sub:
                    entry.sub = None
                sub.ended()
                self.owner.on_lost(sub)
        if conn.error is not None:
            logger.warning("(%s) connection lost: %s", address, conn.error)
        return True

    async def _retire(self, address: str, entry: _Address) -> None:
        """An nsqd vanished from lookupd: close its connection gracefully."""
        entry.give_up()
        sub = entry.sub
        if sub is None:
            return
        logger.info("(%s) no longer listed by nsqlookupd; closing", address)
        await sub.drain(self.retire_timeout)
        await sub.conn.aclose()

    # ------------------------------------------------------------------ lookupd

    async def _lookupd_loop(self) -> None:
        config = self.config
        await self._query_lookupd()
        await trio.sleep(self.rng.random() * config.lookupd_poll_jitter * config.lookupd_poll_interval)
        while True:
            with trio.move_on_after(config.lookupd_poll_interval):
                await self._recheck.wait()
            self._recheck = trio.Event()
            await self._query_lookupd()

    async def _query_lookupd(self) -> None:
        """Ask every nsqlookupd; connect to new producers, retire vanished ones."""
        client = self.http_client
        assert client is not None
        found: set[str] = set()
        failures = 0

        async def one(address: str) -> None:
            nonlocal failures
            try:
                result = await lookup.lookup(client, address, self.topic, timeout=self.config.lookupd_poll_timeout)
            except LookupdError as exc:
                logger.warning("error querying nsqlookupd (%s): %s", address, exc)
                failures += 1
                return
            found.update(p.tcp_address for p in result.producers)

        async with trio.open_nursery() as nursery:
            for address in self.lookupd_addresses:
                nursery.start_soon(one, address)
        if not self.owner.accepting:
            return
        for address in sorted(found):
            self._watch(address, static=False)
        if failures == 0:
            assert self._nursery is not None
            for address, entry in list(self._addresses.items()):
                if not entry.static and entry.wanted and address not in found:
                    self._nursery.start_soon(self._retire, address, entry)
