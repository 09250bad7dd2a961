"""nsqlookupd HTTP client: its reads (``/lookup``, ``/topics``, ``/channels``, ``/nodes``)
and its writes (create, delete and tombstone topics and channels).

This is the one nsqlookupd client in the tree: consumers find producers with it, nsqd
pre-creates channels with it, nsqadmin reads and administers a cluster with it.

``GET /lookup?topic=`` answers ``{"channels": [...], "producers": [{"broadcast_address",
"tcp_port", ...}]}``; an unknown topic is a 404, which simply means "no producers yet".
Both the NSQ 1.x body and the older ``{"status_code", "data": {...}}`` envelope are read.
Every failure is a :class:`~client.errors.LookupdError` worded as Go NSQ words it (see
:mod:`client.httpapi`); its ``status`` is the HTTP status, or 0 when nothing answered.
Cancellation: every call cancels its HTTP request.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TypeVar

import httpx

from .errors import LookupdError
from .httpapi import JSON, Timeout, get_json, post, query_escape

__all__ = [
    "LookupResult",
    "PeerInfo",
    "Timeout",
    "channels",
    "create_channel",
    "create_topic",
    "delete_channel",
    "delete_topic",
    "lookup",
    "lookup_url",
    "nodes",
    "tombstone_topic_producer",
    "topics",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One nsqd as nsqlookupd describes it.

    ``topics`` and ``tombstones`` (parallel: whether the nsqd is tombstoned for that
    topic) are filled by :func:`nodes` only; ``/lookup`` does not list them.
    """

    broadcast_address: str
    tcp_port: int
    http_port: int = 0
    hostname: str = ""
    remote_address: str = ""
    version: str = ""
    topics: tuple[str, ...] = ()
    tombstones: tuple[bool, ...] = ()

    @property
    def tcp_address(self) -> str:
        """``host:port`` of its TCP listener (IPv6 hosts bracketed)."""
        host = self.broadcast_address
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.tcp_port}"

    @classmethod
    def from_json(cls, raw: dict[str, JSON]) -> PeerInfo:
        """Build from one entry of ``producers``.

        Raises:
            KeyError, TypeError, ValueError: a field is missing or of the wrong type.
        """
        return cls(
            broadcast_address=str(raw["broadcast_address"]),
            tcp_port=int(raw["tcp_port"]),
            http_port=int(raw.get("http_port", 0)),
            hostname=str(raw.get("hostname", "")),
            remote_address=str(raw.get("remote_address", "")),
            version=str(raw.get("version", "")),
            topics=_list_of(raw, "topics", str),
            tombstones=_list_of(raw, "tombstones", bool),
        )


@dataclass(frozen=True, slots=True)
class LookupResult:
    """The answer to one ``/lookup``."""

    producers: tuple[PeerInfo, ...] = ()
    channels: tuple[str, ...] = ()


def lookup_url(address: str) -> str:
    """The base URL of an nsqlookupd given as ``host:port`` or ``http://host:port``."""
    base = address if "://" in address else f"http://{address}"
    return base.rstrip("/")


def _url(address: str, path: str, **query: str) -> str:
    url = f"{lookup_url(address)}/{path}"
    if query:
        url += "?" + "&".join(f"{k}={query_escape(v)}" for k, v in query.items())
    return url


def _list_of(doc: dict[str, JSON], key: str, kind: type[T]) -> tuple[T, ...]:
    """``doc[key]`` as a tuple of ``kind`` (empty when absent or null)."""
    value = doc.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise TypeError(f"{key!r} is not a list of {kind.__name__}")
    return tuple(value)


async def _get_object(client: httpx.AsyncClient, url: str, timeout: Timeout) -> dict[str, JSON]:
    doc = await get_json(client, url, timeout=timeout, error=LookupdError)
    if not isinstance(doc, dict):
        raise LookupdError(f"unexpected answer from {url} - not a JSON object: {str(doc)[:200]}", 200)
    return doc


def _unexpected(url: str, exc: Exception) -> LookupdError:
    return LookupdError(f"unexpected answer from {url} - {exc}", 200)


def _producers(doc: dict[str, JSON], url: str) -> tuple[PeerInfo, ...]:
    try:
        raw = doc.get("producers") or []
        if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
            raise TypeError("'producers' is not a list of objects")
        return tuple(PeerInfo.from_json(p) for p in raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise _unexpected(url, exc) from None


def _names(doc: dict[str, JSON], key: str, url: str) -> tuple[str, ...]:
    try:
        return _list_of(doc, key, str)
    except TypeError as exc:
        raise _unexpected(url, exc) from None


async def lookup(client: httpx.AsyncClient, address: str, topic: str, *,
                 timeout: Timeout = 60.0) -> LookupResult:
    """Ask one nsqlookupd which nsqd produce ``topic`` (``GET /lookup``).

    Args:
        client: the HTTP client to use.
        address: the nsqlookupd HTTP address (``host:port`` or a URL).
        topic: the topic name.
        timeout: seconds for the request.

    Returns:
        The producers and channels; empty when nsqlookupd does not know the topic.

    Raises:
        LookupdError: the request failed, or the answer was not understood.
    """
    url = _url(address, "lookup", topic=topic)
    try:
        doc = await _get_object(client, url, timeout)
    except LookupdError as exc:
        if exc.status == 404:  # TOPIC_NOT_FOUND: nobody produces it (yet)
            return LookupResult()
        raise
    return LookupResult(_producers(doc, url), _names(doc, "channels", url))


async def nodes(client: httpx.AsyncClient, address: str, *,
                timeout: Timeout = 60.0) -> tuple[PeerInfo, ...]:
    """Every nsqd registered with one nsqlookupd, with its topics and tombstones
    (``GET /nodes``).

    Raises:
        LookupdError: the request failed, or the answer was not understood.
    """
    url = _url(address, "nodes")
    return _producers(await _get_object(client, url, timeout), url)


async def topics(client: httpx.AsyncClient, address: str, *,
                 timeout: Timeout = 60.0) -> tuple[str, ...]:
    """Every topic one nsqlookupd knows (``GET /topics``), in its order.

    Raises:
        LookupdError: the request failed, or the answer was not understood.
    """
    url = _url(address, "topics")
    return _names(await _get_object(client, url, timeout), "topics", url)


async def channels(client: httpx.AsyncClient, address: str, topic: str, *,
                   timeout: Timeout = 60.0) -> tuple[str, ...]:
    """The channels of ``topic`` registered with one nsqlookupd (``GET /channels``).

    Raises:
        LookupdError: the request failed, or the answer was not understood.
    """
    url = _url(address, "channels", topic=topic)
    return _names(await _get_object(client, url, timeout), "channels", url)


async def create_topic(client: httpx.AsyncClient, address: str, topic: str, *,
                       timeout: Timeout = 60.0) -> None:
    """Register ``topic`` with one nsqlookupd (``POST /topic/create``).

    Raises:
        LookupdError: the request failed or was refused (e.g. an invalid name).
    """
    await post(client, _url(address, "topic/create", topic=topic), timeout=timeout, error=LookupdError)


async def delete_topic(client: httpx.AsyncClient, address: str, topic: str, *,
                       timeout: Timeout = 60.0) -> None:
    """Forget ``topic`` and its channels on one nsqlookupd (``POST /topic/delete``).

    Raises:
        LookupdError: the request failed or was refused.
    """
    await post(client, _url(address, "topic/delete", topic=topic), timeout=timeout, error=LookupdError)


async def tombstone_topic_producer(client: httpx.AsyncClient, address: str, topic: str,
                                   node: str, *, timeout: Timeout = 60.0) -> None:
    """Tombstone the nsqd ``node`` (its ``broadcast_address:http_port``) for ``topic`` on
    one nsqlookupd, which then stops listing it as a producer of the topic for a while
    (``POST /topic/tombstone``).

    Raises:
        LookupdError: the request failed or was refused (e.g. an unknown node).
    """
    await post(client, _url(address, "topic/tombstone", topic=topic, node=node),
               timeout=timeout, error=LookupdError)


async def create_channel(client: httpx.AsyncClient, address: str, topic: str, channel: str, *,
                         timeout: Timeout = 60.0) -> None:
    """Register ``channel`` of ``topic`` (and the topic) with one nsqlookupd
    (``POST /channel/create``).

    Raises:
        LookupdError: the request failed or was refused.
    """
    await post(client, _url(address, "channel/create", topic=topic, channel=channel),
               timeout=timeout, error=LookupdError)


async def delete_channel(client: httpx.AsyncClient, address: str, topic: str, channel: str, *,
                         timeout: Timeout = 60.0) -> None:
    """Forget ``channel`` of ``topic`` on one nsqlookupd (``POST /channel/delete``).

    Raises:
        LookupdError: the request failed or was refused.
    """
    await post(client, _url(address, "channel/delete", topic=topic, channel=channel),
               timeout=timeout, error=LookupdError)
