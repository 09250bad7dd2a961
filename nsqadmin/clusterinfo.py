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
Cancellation: each call is a plain ``async`` function; cancelling it cancels its
in-flight requests.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import trio

from internal.gojson import loads
from internal.netaddr import split_host_port

from .stats import Doc, Producer, topic_from_nsqd

__all__ = ["ClusterError", "ClusterInfo", "RequestFailed"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

_ACCEPT = {"Accept": "application/vnd.nsq; version=1.0"}


class ClusterError(Exception):
    """Every queried node failed (Go's non-partial error)."""


class RequestFailed(Exception):
    """One HTTP request to a node failed; ``str()`` is a Go-style description.

    Attributes:
        status: The HTTP status when the node answered (0 for transport errors).
    """

    def __init__(self, message: str, status: int = 0) -> None:
        super().__init__(message)
        self.status = status


def _q(value: str) -> str:
    return quote(value, safe="")


def _os_error(exc: BaseException | None, depth: int = 0) -> OSError | None:
    """The first ``OSError`` with an errno in an exception's causes and groups."""
    while exc is not None and depth < 20:
        if isinstance(exc, OSError) and exc.errno:
            return exc
        if isinstance(exc, BaseExceptionGroup):
            for sub in exc.exceptions:
                found = _os_error(sub, depth + 1)
                if found is not None:
                    return found
        exc = exc.__cause__ or exc.__context__
        depth += 1
    return None


_GO_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connect: connection refused",
    errno.EHOSTUNREACH: "connect: no route to host",
    errno.ENETUNREACH: "connect: network is unreachable",
    errno.ECONNRESET: "read: connection reset by peer",
    errno.ETIMEDOUT: "i/o timeout",
}


def _describe(method: str, url: str, exc: Exception) -> str:
    """Describe a transport failure the way Go's ``net/http`` client would, e.g.
    ``Get "http://h:4151/stats": dial tcp h:4151: connect: connection refused``."""
    verb = method.capitalize()
    if isinstance(exc, httpx.TimeoutException):
        return f'{verb} "{url}": context deadline exceeded (Client.Timeout exceeded)'
    if isinstance(exc, httpx.ConnectError):
        host = httpx.URL(url).netloc.decode()
        cause = _os_error(exc)
        if cause is not None:
            text = _GO_ERRNO_TEXT.get(cause.errno or 0) or (cause.strerror or str(cause)).lower()
            return f'{verb} "{url}": dial tcp {host}: {text}'
        return f'{verb} "{url}": dial tcp {host}: {exc}'
    return f'{verb} "{url}": {exc or type(exc).__name__}'


def _all_failed(kind: str, errors: list[str]) -> ClusterError:
    return ClusterError(f"failed to query any {kind}: " + "\n".join(errors))


class ClusterInfo:
    """Queries over a set of nsqlookupd / nsqd HTTP APIs.

    Args:
        client: Shared HTTP client (its timeouts apply to every request).
    """

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    # ------------------------------------------------------------------ transport
    async def get_json(self, url: str) -> Any:
        """GET ``url`` as NSQ's ``GETV1``: 200 or :class:`RequestFailed`; unwraps the
        pre-1.0 ``{"status_code", "data"}`` envelope when the V1 header is absent."""
        logger.debug("CI: querying %s", url)
        try:
            resp = await self.client.get(url, headers=_ACCEPT)
        except httpx.HTTPError as exc:
            raise RequestFailed(_describe("GET", url, exc)) from None
        body = resp.content
        if resp.status_code != 200:
            raise RequestFailed(f"got response {resp.status_code} {resp.reason_phrase} "
                                f"{json.dumps(body.decode('utf-8', 'replace'))}",
                                resp.status_code)
        try:
            doc = loads(body)
        except ValueError as exc:
            raise RequestFailed(f"invalid JSON from {url} - {exc}") from None
        if ("x-nsq-content-type" not in resp.headers and isinstance(doc, dict)
                and "status_code" in doc and "data" in doc):
            doc = doc["data"]
        return doc

    async def post(self, url: str) -> None:
        """POST ``url`` with no body as NSQ's ``POSTV1``: 200 or :class:`RequestFailed`."""
        logger.info("CI: querying %s", url)
        try:
            resp = await self.client.post(url, headers=_ACCEPT)
        except httpx.HTTPError as exc:
            raise RequestFailed(_describe("POST", url, exc)) from None
        if resp.status_code != 200:
            raise RequestFailed(f"got response {resp.status_code} {resp.reason_phrase} "
                                f"{json.dumps(resp.content.decode('utf-8', 'replace'))}")

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
            except RequestFailed as exc:
                errors[i] = str(exc)

        if len(items) == 1:
            await one(0, items[0])
        else:
            async with trio.open_nursery() as nursery:
                for i, item in enumerate(items):
                    nursery.start_soon(one, i, item)
        return ([r for r in results if r is not None], [e for e in errors if e is not None])

    @staticmethod
    def _check(kind: str, targets: Sequence[Any], errors: list[str],
               warnings: list[str]) -> None:
        if not errors:
            return
        if len(errors) == len(targets):
            raise _all_failed(kind, errors)
        warnings.append("\n".join(errors))

    # ------------------------------------------------------------------ lookupd reads
    async def lookupd_topics(self, addrs: Sequence[str], warnings: list[str]) -> list[str] | None:
        """Union of ``/topics`` over every nsqlookupd, sorted (None when empty, as Go)."""
        async def fetch(addr: str) -> list[str]:
            doc = await self.get_json(f"http://{addr}/topics")
            return list(doc.get("topics") or [])

        results, errors = await self._each(addrs, fetch)
        self._check("nsqlookupd", addrs, errors, warnings)
        topics = sorted({t for _, ts in results for t in ts})
        return topics or None

    async def lookupd_topic_channels(self, topic: str, addrs: Sequence[str],
                                     warnings: list[str]) -> list[str] | None:
        """Union of ``/channels?topic=`` over every nsqlookupd, sorted."""
        async def fetch(addr: str) -> list[str]:
            doc = await self.get_json(f"http://{addr}/channels?topic={_q(topic)}")
            return list(doc.get("channels") or [])

        results, errors = await self._each(addrs, fetch)
        self._check("nsqlookupd", addrs, errors, warnings)
        channels = sorted({c for _, cs in results for c in cs})
        return channels or None

    async def lookupd_producers(self, addrs: Sequence[str], warnings: list[str]) -> list[Producer]:
        """Every nsqd known to any nsqlookupd (``/nodes``), merged by TCP address."""
        async def fetch(addr: str) -> list[Producer]:
            doc = await self.get_json(f"http://{addr}/nodes")
            return [Producer.from_lookupd(p) for p in doc.get("producers") or []]

        results, errors = await self._each(addrs, fetch)
        self._check("nsqlookupd", addrs, errors, warnings)
        by_addr: dict[str, Producer] = {}
        producers: list[Producer] = []
        for addr, found in results:
            for p in found:
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
        """The nsqd producing ``topic`` according to any nsqlookupd (``/lookup``)."""
        async def fetch(addr: str) -> list[Producer]:
            try:
                doc = await self.get_json(f"http://{addr}/lookup?topic={_q(topic)}")
            except RequestFailed as exc:
                if exc.status == 404:  # TOPIC_NOT_FOUND: nobody produces it
                    return []
                raise
            return [Producer.from_lookupd(p) for p in doc.get("producers") or []]

        results, errors = await self._each(addrs, fetch)
        self._check("nsqlookupd", addrs, errors, warnings)
        producers: list[Producer] = []
        seen: set[str] = set()
        for _, found in results:
            for p in found:
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
        """POST every URL concurrently; returns the error messages."""
        _, errors = await self._each(urls, self.post)
        return errors

    async def tombstone_node_for_topic(self, topic: str, node: str,
                                       lookupd: Sequence[str]) -> list[str]:
        """Tombstone ``node`` for ``topic`` on every nsqlookupd, then delete the topic on
        that node. Returns the errors (Go's ``PartialErr``)."""
        qs = f"topic={_q(topic)}&node={_q(node)}"
        errors = await self._post_all([f"http://{a}/topic/tombstone?{qs}" for a in lookupd])
        producers = await self.nsqd_producers([node], errors)
        errors += await self._post_all(
            [f"http://{p.http_address}/topic/delete?topic={_q(topic)}" for p in producers])
        return errors

    async def create_topic_channel(self, topic: str, channel: str,
                                   lookupd: Sequence[str]) -> list[str]:
        """Create the topic (and channel) on every nsqlookupd, and the channel on every
        nsqd producing the topic."""
        errors = await self._post_all([f"http://{a}/topic/create?topic={_q(topic)}" for a in lookupd])
        if channel:
            qs = f"topic={_q(topic)}&channel={_q(channel)}"
            errors += await self._post_all([f"http://{a}/channel/create?{qs}" for a in lookupd])
            producers = await self.lookupd_topic_producers(topic, lookupd, errors)
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
        errors += await self._post_all([f"http://{a}/topic/delete?{qs}" for a in lookupd])
        errors += await self._post_all([f"http://{p.http_address}/topic/delete?{qs}"
                                        for p in producers])
        return errors

    async def delete_channel(self, topic: str, channel: str, lookupd: Sequence[str],
                             nsqd: Sequence[str]) -> list[str]:
        """Delete ``channel`` from every nsqlookupd and every nsqd producing the topic."""
        errors: list[str] = []
        producers = await self.topic_producers(topic, lookupd, nsqd, errors)
        qs = f"topic={_q(topic)}&channel={_q(channel)}"
        errors += await self._post_all([f"http://{a}/channel/delete?{qs}" for a in lookupd])
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
