"""nsqlookupd's registration database: pure state, no I/O, time passed in.

A :class:`Registration` is a ``(category, key, subkey)`` triple, as in NSQ:

* ``("client", "", "")``: every identified nsqd connection,
* ``("topic", topic, "")``: a topic,
* ``("channel", topic, channel)``: a channel of a topic.

Each registration maps producer ids (the nsqd connection's remote address) to a
:class:`Producer`. As in NSQ, removing the last producer leaves the registration in
place (``/topics`` keeps listing it) until it is deleted over HTTP, or, for
``#ephemeral`` names, by an ``UNREGISTER``.

Lookups with ``"*"`` as key or subkey match anything. Registrations are stored as
``category -> key -> subkey -> producers`` plus a per-producer index, so a lookup
touches only its own category and a disconnect only that producer's registrations.
Times are seconds on a monotonic clock (``trio.current_time()`` in the daemon).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from internal.gojson import go_json

__all__ = [
    "PeerInfo",
    "Producer",
    "Registration",
    "RegistrationDB",
    "filter_by_active",
]

WILDCARD = "*"


class Registration(NamedTuple):
    """A registration key: ``(category, key, subkey)``."""

    category: str
    key: str
    subkey: str


@dataclass(slots=True, eq=False)
class PeerInfo:
    """What an nsqd told us in IDENTIFY; shared by all of its producers.

    Attributes:
        id: unique per connection (the remote address).
        last_update: clock time of the IDENTIFY or the latest PING.
    """

    id: str
    remote_address: str
    hostname: str = ""
    broadcast_address: str = ""
    tcp_port: int = 0
    http_port: int = 0
    version: str = ""
    last_update: float = 0.0
    _json: bytes | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, object]:
        """The producer object of ``/lookup`` (NSQ's PeerInfo JSON)."""
        return {
            "remote_address": self.remote_address,
            "hostname": self.hostname,
            "broadcast_address": self.broadcast_address,
            "tcp_port": self.tcp_port,
            "http_port": self.http_port,
            "version": self.version,
        }

    def json_bytes(self) -> bytes:
        """:meth:`to_json` serialised like Go, cached (only ``last_update`` ever changes)."""
        if self._json is None:
            self._json = go_json(self.to_json())
        return self._json


@dataclass(slots=True, eq=False)
class Producer:
    """One nsqd under one registration; tombstones are per (topic, nsqd)."""

    peer_info: PeerInfo
    tombstoned: bool = False
    tombstoned_at: float = field(default=0.0)

    def tombstone(self, now: float) -> None:
        """Hide this producer from ``/lookup`` for the tombstone lifetime from ``now``."""
        self.tombstoned = True
        self.tombstoned_at = now

    def is_tombstoned(self, lifetime: float, now: float) -> bool:
        """True while a tombstone set less than ``lifetime`` seconds ago is in force."""
        return self.tombstoned and now - self.tombstoned_at < lifetime

    def __str__(self) -> str:
        p = self.peer_info
        return f"{p.broadcast_address} [{p.tcp_port}, {p.http_port}]"


ProducerMap = dict[str, Producer]


def filter_by_active(
    producers: Iterable[Producer], now: float, inactivity_timeout: float, tombstone_lifetime: float
) -> list[Producer]:
    """Producers that pinged within ``inactivity_timeout`` and are not tombstoned."""
    return [
        p
        for p in producers
        if now - p.peer_info.last_update <= inactivity_timeout
        and not p.is_tombstoned(tombstone_lifetime, now)
    ]


class RegistrationDB:
    """Registrations and their producers (NSQ's ``RegistrationDB``)."""

    __slots__ = ("_by_peer", "_map")

    def __init__(self) -> None:
        # category -> key -> subkey -> producer id -> Producer (insertion ordered)
        self._map: dict[str, dict[str, dict[str, ProducerMap]]] = {}
        # producer id -> registrations holding it
        self._by_peer: dict[str, dict[Registration, None]] = {}

    def __len__(self) -> int:
        return sum(len(subs) for keys in self._map.values() for subs in keys.values())

    def _producers(self, k: Registration) -> ProducerMap | None:
        subs = self._map.get(k.category, {}).get(k.key)
        return None if subs is None else subs.get(k.subkey)

    def _ensure(self, k: Registration) -> ProducerMap:
        subs = self._map.setdefault(k.category, {}).setdefault(k.key, {})
        producers = subs.get(k.subkey)
        if producers is None:
            producers = subs[k.subkey] = {}
        return producers

    def add_registration(self, k: Registration) -> None:
        """Create the registration (with no producers) if it does not exist."""
        self._ensure(k)

    def add_producer(self, k: Registration, producer: Producer) -> bool:
        """Add ``producer`` under ``k`` (creating ``k``); False if its id was already there."""
        producers = self._ensure(k)
        pid = producer.peer_info.id
        if pid in producers:
            return False
        producers[pid] = producer
        self._by_peer.setdefault(pid, {})[k] = None
        return True

    def remove_producer(self, k: Registration, pid: str) -> tuple[bool, int]:
        """Remove producer ``pid`` from ``k``; returns (was it there, producers left).

        The registration itself stays, even when empty.
        """
        producers = self._producers(k)
        if producers is None:
            return False, 0
        removed = producers.pop(pid, None) is not None
        if removed:
            self._unindex(pid, k)
        return removed, len(producers)

    def remove_registration(self, k: Registration) -> None:
        """Remove ``k`` and all of its producers."""
        keys = self._map.get(k.category)
        if keys is None:
            return
        subs = keys.get(k.key)
        if subs is None:
            return
        producers = subs.pop(k.subkey, None)
        if not subs:
            del keys[k.key]
            if not keys:
                del self._map[k.category]
        for pid in producers or ():
            self._unindex(pid, k)

    def _unindex(self, pid: str, k: Registration) -> None:
        regs = self._by_peer.get(pid)
        if regs is not None:
            regs.pop(k, None)
            if not regs:
                del self._by_peer[pid]

    def _iter(self, category: str, key: str, subkey: str) -> Iterable[tuple[Registration, ProducerMap]]:
        keys = self._map.get(category)
        if not keys:
            return
        key_items = keys.items() if key == WILDCARD else (((key, keys[key]),) if key in keys else ())
        for k, subs in key_items:
            if subkey == WILDCARD:
                for s, producers in subs.items():
                    yield Registration(category, k, s), producers
            elif subkey in subs:
                yield Registration(category, k, subkey), subs[subkey]

    def find_registrations(self, category: str, key: str, subkey: str) -> list[Registration]:
        """Registrations matching the pattern (``"*"`` as key or subkey matches anything)."""
        return [r for r, _ in self._iter(category, key, subkey)]

    def find_producers(self, category: str, key: str, subkey: str) -> list[Producer]:
        """Producers of the matching registrations, one per producer id."""
        if key != WILDCARD and subkey != WILDCARD:
            producers = self._producers(Registration(category, key, subkey))
            return list(producers.values()) if producers else []
        seen: dict[str, Producer] = {}
        for _, producers in self._iter(category, key, subkey):
            for pid, p in producers.items():
                seen.setdefault(pid, p)
        return list(seen.values())

    def lookup_registrations(self, pid: str) -> list[Registration]:
        """Every registration that holds producer ``pid``."""
        return list(self._by_peer.get(pid, ()))

    def find_producer(self, k: Registration, pid: str) -> Producer | None:
        """The producer ``pid`` of registration ``k``, if any."""
        producers = self._producers(k)
        return None if producers is None else producers.get(pid)

    def items(self) -> list[tuple[Registration, list[Producer]]]:
        """Every registration with its producers (for ``/debug``)."""
        return [
            (Registration(c, k, s), list(producers.values()))
            for c, keys in self._map.items()
            for k, subs in keys.items()
            for s, producers in subs.items()
        ]
