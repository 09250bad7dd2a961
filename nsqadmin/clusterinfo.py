"""Concurrent queries of nsqlookupd and nsqd, after Go's ``internal/clusterinfo/data.go``.

Every call queries its targets concurrently (one task per node) through one shared
:class:`httpx.AsyncClient` with connect and request timeouts. Failures follow Go's
``PartialErr`` convention:

* when *some* targets fail, the call returns what the others answered and appends one
  message (the failures joined by newlines) to the caller's ``warnings`` list;
* when *every* target fails, it raises :class:`ClusterError`
  (``failed to query any nsqd: ...``), which the HTTP layer answers with 502
  ``UPSTREAM_ERROR: ...``.

A topic that no nsqd produces gives an empty result (the pages say "No producers
exist for this topic"); Go 1.3 answers 502 there, because nsqlookupd's 404
``TOPIC_NOT_FOUND`` and a query over zero nodes both count as "failed to query any".
nsqlookupd is queried and administered through :mod:`client.lookup` (the tree's one
nsqlookupd client), nsqd through :mod:`client.httpapi`; both word errors as Go does.
Cancellation: each call is a plain ``async`` function; cancelling it cancels its
in-flight requests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

import httpx
import trio

from client import lookup
from client.errors import HTTPAPIError
from client.httpapi import JSON, get_json, post
from client.httpapi import query_escape as _q
from internal.netaddr import split_host_port

from .stats import Doc, Producer, topic_from_nsqd

__all__ = ["ClusterError", "ClusterInfo"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class ClusterError(Exception):
    """Every queried node failed (Go's non-partial error)."""


def _all_failed(kind: str, errors: list[str]) -> ClusterError:
    return ClusterError(f"failed to query any {kind}: " + "\n".join(errors))


class ClusterInfo:
    """Queries over a set of nsqlookupd / nsqd HTTP APIs.

    Args:
        client: Shared HTTP client (its timeouts apply to every request).
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        #: the shared client's timeouts, passed on to the nsqlookupd client
        self.timeout = client.timeout

    # ------------------------------------------------------------------ transport
    async def get_json(self, url: str) -> dict[str, JSON]:
        """GET a JSON object from an nsqd's HTTP API (:func:`client.httpapi.get_json`)."""
        doc = await get_json(self.client, url)
        if not isinstance(doc, dict):
            raise HTTPAPIError(f"unexpected answer from {url} - not a JSON object: {str(doc)[:200]}", 200)
        return doc

    @staticmethod
    async def _each(items: Iterable[T], fn: Callable[[T], Awaitable[R]]
                    ) -> tuple[list[tuple[T, R]], list[str]]:
        """Run ``fn`` for every item concurrently; results in item order, plus errors."""
        items = list(items)
        results: list[tuple[T, R] | None] = [None] * len(items)
        errors: list[str | None] = [None] * len(items)

        async def one(i: int, item: T) -> None:
            try:
                results[i] = (item, await fn(item))
            except HTTPAPIError as exc:
                errors[i] = str(exc)

        if len(items) == 1:
            await one(0, items[0])
        else:
            async with trio.open_nursery() as nursery:
                for i, item in enumerate(items):
                    nursery.start_soon(one, i, item)
        return ([r for r in results if r is not None], [e for e in errors if e is not None])

    @staticmethod
    def _check(kind: str, targets: Sequence[object], errors: list[str],
               warnings: list[str]) -> None:
        if not errors:
            return
        if len(errors) == len(targets):
            raise _all_failed(kind, errors)
        warnings.append("\n".join(errors))

    # ------------------------------------------------------------------ lookupd reads
    async def lookupd_topics(self, addrs: Sequence[str], warnings: list[str]) -> list[str] | None:
        """Union of ``/topics`` over every nsqlookupd, sorted (None when empty, as Go)."""
        results, errors = await self._each(
            addrs, lambda addr: lookup.topics(self.client, addr, timeout=self.timeout))
        self._check("nsqlookupd", addrs, errors, warnings)
        topics = sorted({t for _, ts in results for t in ts})
        return topics or None

    async def lookupd_topic_channels(self, topic: str, addrs: Sequence[str],
                                     warnings: list[str]) -> list[str] | None:
        """Union of ``/channels?topic=`` over every nsqlookupd, sorted."""
        results, errors = await self._each(
            addrs, lambda addr: lookup.channels(self.client, addr, topic, timeout=self.timeout))
        self._check("nsqlookupd", addrs, errors, warnings)
        channels = sorted({c for _, cs in results for c in cs})
        return channels or None

    async def lookupd_producers(self, addrs: Sequence[str], warnings: list[str]) -> list[Producer]:
        """Every nsqd known to any nsqlookupd (``/nodes``), merged by TCP address."""
        results, errors = await self._each(
            addrs, lambda addr: lookup.nodes(self.client, addr, timeout=self.timeout))
        self._check("nsqlookupd", addrs, errors, warnings)
        by_addr: dict[str, Producer] = {}
        producers: list[Producer] = []
        for addr, peers in results:
            for peer in peers:
                p = Producer.from_peer(peer)
                known = by_addr.get(p.tcp_address)
                if known is None:
                    if p.topics:
                        p.topics.sort()
                    by_addr[p.tcp_address] = known = p
                    producers.append(p)
                if known.remote_addresses is None:
                    known.remote_addresses = []
                known.remote_addresses.append(f"{addr}/{p.address}")
        if producers:
            newest = max(p.version_key for p in producers)
            for p in producers:
                p.out_of_date = p.version_key < newest
        producers.sort(key=lambda p: p.hostname)
        return producers

    async def lookupd_topic_producers(self, topic: str, addrs: Sequence[str],
                                      warnings: list[str]) -> list[Producer]:
        """The nsqd producing ``topic`` according to any nsqlookupd (``/lookup``; a topic
        a lookupd does not know has no producers there)."""
        results, errors = await self._each(
            addrs, lambda addr: lookup.lookup(self.client, addr, topic, timeout=self.timeout))
        self._check("nsqlookupd", addrs, errors, warnings)
        producers: list[Producer] = []
        seen: set[str] = set()
        for _, found in results:
            for peer in found.producers:
                p = Producer.from_peer(peer)
                if p.http_address not in seen:
                    seen.add(p.http_address)
                    producers.append(p)
        return producers

    # ------------------------------------------------------------------ nsqd reads
    async def _nsqd_producer(self, addr: str, topics: list[tuple[str, bool]] | None) -> Producer:
        info = await self.get_json(f"http://{addr}/info")
        broadcast = str(info.get("broadcast_address") or "")
        http_port = int(info.get("http_port") or 0)
        hostname = str(info.get("hostname") or "")
        if not broadcast:  # pre-1.0 nsqd: use the address we were given
            host, port = split_host_port(addr)
            broadcast, http_port = host, port
        if not hostname:
            hostname = split_host_port(addr)[0]
        return Producer(hostname=hostname, broadcast_address=broadcast,
                        tcp_port=int(info.get("tcp_port") or 0), http_port=http_port,
                        version=str(info.get("version") or ""), topics=topics)

    async def nsqd_topics(self, addrs: Sequence[str], warnings: list[str]) -> list[str] | None:
        """Every topic on the given nsqd (``/stats``), sorted."""
        async def fetch(addr: str) -> list[str]:
            doc = await self.get_json(f"http://{addr}/stats?format=json&include_clients=false")
            return [str(t.get("topic_name")) for t in doc.get("topics") or []]

        results, errors = await self._each(addrs, fetch)
        self._check("nsqd", addrs, errors, warnings)
        topics = sorted({t for _, ts in results for t in ts})
        return topics or None

    async def nsqd_producers(self, addrs: Sequence[str], warnings: list[str]) -> list[Producer]:
        """Producers for the given nsqd (``/info`` + ``/stats``)."""
        async def fetch(addr: str) -> Producer:
            producer = await self._nsqd_producer(addr, None)
            doc = await self.get_json(f"http://{addr}/stats?format=json&include_clients=false")
            producer.topics = [(str(t.get("topic_name")), False)
                               for t in doc.get("topics") or []] or None
            return producer

        results, errors = await self._each(addrs, fetch)
        self._check("nsqd", addrs, errors, warnings)
        return [p for _, p in results]

    async def nsqd_topic_producers(self, topic: str, addrs: Sequence[str],
                                   warnings: list[str]) -> list[Producer]:
        """Producers among the given nsqd that have ``topic``."""
        async def fetch(addr: str) -> Producer | None:
            doc = await self.get_json(
                f"http://{addr}/stats?format=json&topic={_q(topic)}&include_clients=false")
            names = [str(t.get("topic_name")) for t in doc.get("topics") or []]
            if topic not in names:
                return None
            return await self._nsqd_producer(addr, [(n, False) for n in names])

        results, errors = await self._each(addrs, fetch)
        self._check("nsqd", addrs, errors, warnings)
        return [p for _, p in results if p is not None]

    async def nsqd_stats(self, producers: Sequence[Producer], warnings: list[str], *,
                         topic: str = "", channel: str = "", include_clients: bool = True
                         ) -> list[Doc]:
        """Per-node topic stats (Go's ``TopicStats`` shape), sorted by hostname.

        Args:
            producers: The nodes to query.
            warnings: Partial failures are appended here.
            topic: Only this topic (all when empty).
            channel: With ``topic``, only this channel.
            include_clients: Ask nsqd for client lists.
        """
        query = "format=json"
        if topic:
            query += "&topic=" + _q(topic)
            if channel:
                query += "&channel=" + _q(channel)
        if not include_clients:
            query += "&include_clients=false"

        async def fetch(p: Producer) -> list[Doc]:
            addr = p.http_address
            doc = await self.get_json(f"http://{addr}/stats?{query}")
            now = time.time()
            out = []
            for t in doc.get("topics") or []:
                if topic and t.get("topic_name") != topic:
                    continue
                out.append(topic_from_nsqd(t, addr, p.hostname, now))
            return out

        results, errors = await self._each(producers, fetch)
        self._check("nsqd", producers, errors, warnings)
        topics = [t for _, ts in results for t in ts]
        topics.sort(key=lambda t: t["hostname"])
        return topics

    # ------------------------------------------------------------------ either mode
    async def producers(self, lookupd: Sequence[str], nsqd: Sequence[str],
                        warnings: list[str]) -> list[Producer]:
        """Go's ``GetProducers``: from nsqlookupd when configured, else the nsqd list."""
        if lookupd:
            return await self.lookupd_producers(lookupd, warnings)
        return await self.nsqd_producers(nsqd, warnings)

    async def topic_producers(self, topic: str, lookupd: Sequence[str], nsqd: Sequence[str],
                              warnings: list[str]) -> list[Producer]:
        """Go's ``GetTopicProducers``."""
        if lookupd:
            return await self.lookupd_topic_producers(topic, lookupd, warnings)
        return await self.nsqd_topic_producers(topic, nsqd, warnings)

    async def topics(self, lookupd: Sequence[str], nsqd: Sequence[str],
                     warnings: list[str]) -> list[str] | None:
        """Topic names from nsqlookupd when configured, else from the nsqd list."""
        if lookupd:
            return await self.lookupd_topics(lookupd, warnings)
        return await self.nsqd_topics(nsqd, warnings)

    async def all_stats(self, lookupd: Sequence[str], nsqd: Sequence[str], warnings: list[str],
                        *, include_clients: bool = False) -> list[Doc]:
        """Per-node stats of every topic on every producer."""
        producers = await self.producers(lookupd, nsqd, warnings)
        if not producers:
            return []
        return await self.nsqd_stats(producers, warnings, include_clients=include_clients)

    # ------------------------------------------------------------------ writes
    # Each returns the failed requests' messages (Go's PartialErr, answered 200 with a
    # warning). Finding the nodes to act on raises ClusterError when every node fails
    # (answered 502), as in Go.
    async def _post_all(self, urls: Sequence[str]) -> list[str]:
        """POST every nsqd URL concurrently; returns the error messages."""
        async def one(url: str) -> None:
            logger.info("CI: querying nsqd %s", url)
            await post(self.client, url)

        _, errors = await self._each(urls, one)
        return errors

    async def _on_lookupd(self, addrs: Sequence[str], what: str,
                          action: Callable[[str], Awaitable[None]]) -> list[str]:
        """Run one :mod:`client.lookup` write on every nsqlookupd; returns the errors."""
        async def one(addr: str) -> None:
            logger.info("CI: %s on nsqlookupd %s", what, addr)
            await action(addr)

        _, errors = await self._each(addrs, one)
        return errors

    async def tombstone_node_for_topic(self, topic: str, node: str,
                                       lookupd: Sequence[str]) -> list[str]:
        """Tombstone ``node`` for ``topic`` on every nsqlookupd, then delete the topic on
        that node. Returns the errors (Go's ``PartialErr``)."""
        errors = await self._on_lookupd(
            lookupd, f"tombstone {node} for topic {topic}",
            lambda a: lookup.tombstone_topic_producer(self.client, a, topic, node, timeout=self.timeout))
        producers = await self.nsqd_producers([node], errors)
        errors += await self._post_all(
            [f"http://{p.http_address}/topic/delete?topic={_q(topic)}" for p in producers])
        return errors

    async def create_topic_channel(self, topic: str, channel: str,
                                   lookupd: Sequence[str]) -> list[str]:
        """Create the topic (and channel) on every nsqlookupd, and the channel on every
        nsqd producing the topic."""
        errors = await self._on_lookupd(
            lookupd, f"create topic {topic}",
            lambda a: lookup.create_topic(self.client, a, topic, timeout=self.timeout))
        if channel:
            errors += await self._on_lookupd(
                lookupd, f"create channel {topic}/{channel}",
                lambda a: lookup.create_channel(self.client, a, topic, channel, timeout=self.timeout))
            producers = await self.lookupd_topic_producers(topic, lookupd, errors)
            qs = f"topic={_q(topic)}&channel={_q(channel)}"
            errors += await self._post_all(
                [f"http://{p.http_address}/channel/create?{qs}" for p in producers])
        return errors

    async def create_on_nsqd(self, topic: str, channel: str, nsqd: Sequence[str]) -> list[str]:
        """Create the topic (and channel) directly on every given nsqd (no nsqlookupd)."""
        errors = await self._post_all([f"http://{a}/topic/create?topic={_q(topic)}" for a in nsqd])
        if channel:
            qs = f"topic={_q(topic)}&channel={_q(channel)}"
            errors += await self._post_all([f"http://{a}/channel/create?{qs}" for a in nsqd])
        return errors

    async def delete_topic(self, topic: str, lookupd: Sequence[str],
                           nsqd: Sequence[str]) -> list[str]:
        """Delete ``topic`` from every nsqlookupd and every nsqd producing it."""
        errors: list[str] = []
        producers = await self.topic_producers(topic, lookupd, nsqd, errors)
        qs = f"topic={_q(topic)}"
        errors += await self._on_lookupd(
            lookupd, f"delete topic {topic}",
            lambda a: lookup.delete_topic(self.client, a, topic, timeout=self.timeout))
        errors += await self._post_all([f"http://{p.http_address}/topic/delete?{qs}"
                                        for p in producers])
        return errors

    async def delete_channel(self, topic: str, channel: str, lookupd: Sequence[str],
                             nsqd: Sequence[str]) -> list[str]:
        """Delete ``channel`` from every nsqlookupd and every nsqd producing the topic."""
        errors: list[str] = []
        producers = await self.topic_producers(topic, lookupd, nsqd, errors)
        qs = f"topic={_q(topic)}&channel={_q(channel)}"
        errors += await self._on_lookupd(
            lookupd, f"delete channel {topic}/{channel}",
            lambda a: lookup.delete_channel(self.client, a, topic, channel, timeout=self.timeout))
        errors += await self._post_all([f"http://{p.http_address}/channel/delete?{qs}"
                                        for p in producers])
        return errors

    async def node_action(self, uri: str, topic: str, channel: str, lookupd: Sequence[str],
                          nsqd: Sequence[str]) -> list[str]:
        """Go's ``actionHelper``: POST ``/<uri>`` (``topic/pause``, ``channel/empty``...)
        to every nsqd producing ``topic``."""
        errors: list[str] = []
        producers = await self.topic_producers(topic, lookupd, nsqd, errors)
        qs = f"topic={_q(topic)}"
        if channel:
            qs += f"&channel={_q(channel)}"
        errors += await self._post_all([f"http://{p.http_address}/{uri}?{qs}" for p in producers])
        return errors
