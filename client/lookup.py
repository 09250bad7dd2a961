"""nsqlookupd HTTP client: which nsqd produce a topic, which channels it has.

``GET /lookup?topic=`` answers ``{"channels": [...], "producers": [{"broadcast_address",
"tcp_port", ...}]}``; an unknown topic is a 404, which simply means "no producers yet".
Both the NSQ 1.x body and the older ``{"status_code", "data": {...}}`` envelope are read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from .errors import LookupdError

__all__ = ["LookupResult", "PeerInfo", "channels", "lookup", "lookup_url", "nodes"]

logger = logging.getLogger(__name__)

_ACCEPT = {"Accept": "application/vnd.nsq; version=1.0"}


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One nsqd as nsqlookupd describes it."""

    broadcast_address: str
    tcp_port: int
    http_port: int = 0
    hostname: str = ""
    remote_address: str = ""
    version: str = ""

    @property
    def tcp_address(self) -> str:
        """``host:port`` of its TCP listener (IPv6 hosts bracketed)."""
        host = self.broadcast_address
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{host}:{self.tcp_port}"

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> PeerInfo:
        """Build from one entry of ``producers``."""
        return cls(
            broadcast_address=str(raw["broadcast_address"]),
            tcp_port=int(raw["tcp_port"]),
            http_port=int(raw.get("http_port", 0)),
            hostname=str(raw.get("hostname", "")),
            remote_address=str(raw.get("remote_address", "")),
            version=str(raw.get("version", "")),
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


def _unwrap(payload: Any) -> dict[str, Any]:
    if isinstance(payload, dict) and "producers" not in payload and isinstance(payload.get("data"), dict):
        payload = payload["data"]
    if not isinstance(payload, dict):
        raise LookupdError(f"unexpected nsqlookupd answer {payload!r:.200}")
    return payload


#: seconds for the whole request, or an :class:`httpx.Timeout` (e.g. a shorter connect)
Timeout = float | httpx.Timeout


async def _get(client: httpx.AsyncClient, url: str, params: dict[str, str] | None,
               timeout: Timeout) -> httpx.Response:
    try:
        return await client.get(url, params=params, headers=_ACCEPT, timeout=timeout)
    except httpx.HTTPError as exc:
        raise LookupdError(f"GET {url} failed: {exc!r}") from exc


async def lookup(client: httpx.AsyncClient, address: str, topic: str, *,
                 timeout: Timeout = 60.0) -> LookupResult:
    """Ask one nsqlookupd which nsqd produce ``topic``.

    Args:
        client: the HTTP client to use.
        address: the nsqlookupd HTTP address (``host:port`` or a URL).
        topic: the topic name.
        timeout: seconds for the request.

    Returns:
        The producers and channels; empty when nsqlookupd does not know the topic.

    Raises:
        LookupdError: the request failed, or the answer was not understood.

    Cancellation: cancels the HTTP request.
    """
    url = f"{lookup_url(address)}/lookup"
    response = await _get(client, url, {"topic": topic}, timeout)
    if response.status_code == 404:
        return LookupResult()
    if response.status_code != 200:
        raise LookupdError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    try:
        payload = _unwrap(response.json())
        producers = tuple(PeerInfo.from_json(p) for p in payload.get("producers") or ())
        channels = tuple(str(c) for c in payload.get("channels") or ())
    except (ValueError, KeyError, TypeError) as exc:
        raise LookupdError(f"GET {url}: unparseable answer {response.text[:200]!r}") from exc
    return LookupResult(producers, channels)


async def nodes(client: httpx.AsyncClient, address: str, *,
                timeout: Timeout = 60.0) -> tuple[PeerInfo, ...]:
    """Every nsqd registered with one nsqlookupd (``GET /nodes``).

    Raises:
        LookupdError: the request failed, or the answer was not understood.

    Cancellation: cancels the HTTP request.
    """
    url = f"{lookup_url(address)}/nodes"
    response = await _get(client, url, None, timeout)
    if response.status_code != 200:
        raise LookupdError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    try:
        payload = _unwrap(response.json())
        return tuple(PeerInfo.from_json(p) for p in payload.get("producers") or ())
    except (ValueError, KeyError, TypeError) as exc:
        raise LookupdError(f"GET {url}: unparseable answer {response.text[:200]!r}") from exc


async def channels(client: httpx.AsyncClient, address: str, topic: str, *,
                   timeout: Timeout = 60.0) -> tuple[str, ...]:
    """The channels of ``topic`` registered with one nsqlookupd (``GET /channels``).

    Raises:
        LookupdError: the request failed, or the answer was not understood.

    Cancellation: cancels the HTTP request.
    """
    url = f"{lookup_url(address)}/channels"
    response = await _get(client, url, {"topic": topic}, timeout)
    if response.status_code != 200:
        raise LookupdError(f"GET {url} answered {response.status_code}: {response.text[:200]}")
    try:
        names = _unwrap(response.json()).get("channels") or ()
        return tuple(str(c) for c in names)
    except (ValueError, TypeError) as exc:
        raise LookupdError(f"GET {url}: unparseable answer {response.text[:200]!r}") from exc
