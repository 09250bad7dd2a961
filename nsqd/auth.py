"""Authorization through an external auth server (NSQ's ``internal/auth``).

A client sends ``AUTH <secret>``; nsqd asks one of ``--auth-http-address`` (tried in a
random rotation until one answers) with ``remote_ip``, ``tls``, ``secret`` and
``common_name`` and keeps the reply on the connection for its ``ttl``. Every SUB and
PUB/MPUB/DPUB is then checked against the reply's authorizations; an expired reply is
fetched again first.

The query is bounded by ``--http-client-connect-timeout`` plus
``--http-client-request-timeout`` however the server behaves, so a down or stalled
auth server makes AUTH fail with ``E_AUTH_FAILED`` and nothing else waits on it.
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
import time
from dataclasses import dataclass, field
from typing import NotRequired, TypedDict, Unpack

import httpx
import trio

from internal.gojson import loads

__all__ = ["AuthCache", "AuthError", "AuthState", "Authorization", "parse_auth_response",
           "query_any_authd", "query_authd"]

logger = logging.getLogger(__name__)

_PERMISSIONS = frozenset(("subscribe", "publish"))
_ACCEPT = "application/vnd.nsq; version=1.0"


class AuthError(Exception):
    """The auth server could not be asked, or answered something unusable."""


@dataclass(frozen=True, slots=True)
class Authorization:
    """One grant: topic regex, channel regexes and permissions."""

    topic: str
    channels: tuple[str, ...]
    permissions: frozenset[str]
    topic_re: re.Pattern[str] = field(repr=False, compare=False)
    channel_res: tuple[re.Pattern[str], ...] = field(repr=False, compare=False)

    def is_allowed(self, topic: str, channel: str) -> bool:
        """NSQ's ``Authorization.IsAllowed`` (regexes match anywhere, as Go's MatchString)."""
        if channel:
            if "subscribe" not in self.permissions:
                return False
        elif "publish" not in self.permissions:
            return False
        if self.topic_re.search(topic) is None:
            return False
        return any(r.search(channel) is not None for r in self.channel_res)


@dataclass(frozen=True, slots=True)
class AuthState:
    """The auth server's reply for one client, valid until ``expires`` (``time.time()``)."""

    ttl: int
    identity: str
    identity_url: str
    authorizations: tuple[Authorization, ...]
    expires: float

    def is_allowed(self, topic: str, channel: str) -> bool:
        return any(a.is_allowed(topic, channel) for a in self.authorizations)

    def is_expired(self, now: float | None = None) -> bool:
        return self.expires < (time.time() if now is None else now)


def _compile(pattern: object, what: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise AuthError(f"{what} must be a string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise AuthError(f"unable to compile {what} {json.dumps(pattern)} {exc}") from None


def parse_auth_response(body: bytes, now: float | None = None) -> AuthState:
    """Validate an auth server reply as NSQ's ``QueryAuthd`` does.

    Raises:
        AuthError: not JSON, wrong types, unknown permission, bad regex, ttl <= 0.
    """
    try:
        doc = loads(body)
    except ValueError as exc:
        raise AuthError(f"bad JSON - {exc}") from None
    if not isinstance(doc, dict):
        raise AuthError("response is not an object")
    ttl = doc.get("ttl", 0)
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or ttl != int(ttl):
        raise AuthError("ttl must be an integer")
    identity = doc.get("identity") or ""
    identity_url = doc.get("identity_url") or ""
    if not isinstance(identity, str) or not isinstance(identity_url, str):
        raise AuthError("identity and identity_url must be strings")
    grants = []
    for item in doc.get("authorizations") or []:
        if not isinstance(item, dict):
            raise AuthError("authorization must be an object")
        permissions = item.get("permissions") or []
        if not isinstance(permissions, list):
            raise AuthError("permissions must be a list")
        for p in permissions:
            if p not in _PERMISSIONS:
                raise AuthError(f"unknown permission {p}")
        topic = item.get("topic", "")
        channels = item.get("channels") or []
        if not isinstance(channels, list):
            raise AuthError("channels must be a list")
        topic_re = _compile(topic, "topic")
        channel_res = tuple(_compile(c, "channel") for c in channels)
        grants.append(Authorization(topic, tuple(channels), frozenset(permissions),
                                    topic_re, channel_res))
    if ttl <= 0:
        raise AuthError(f"invalid TTL {int(ttl)} (must be >0)")
    now = time.time() if now is None else now
    return AuthState(int(ttl), identity, identity_url, tuple(grants), now + ttl)


async def query_authd(address: str, *, remote_ip: str, tls: bool, common_name: str, secret: str,
                      ssl_context: ssl.SSLContext | None, connect_timeout: float,
                      request_timeout: float, method: str = "get") -> AuthState:
    """Ask one auth server (``host:port`` → ``http://host:port/auth``, or a full URL).

    Raises:
        AuthError: connection failure, timeout, non-200 status, bad reply.
    """
    params = {"remote_ip": remote_ip, "tls": "true" if tls else "false", "secret": secret,
              "common_name": common_name}
    url = address if "://" in address else f"http://{address}/auth"
    timeout = httpx.Timeout(request_timeout, connect=connect_timeout)
    headers = {"Accept": _ACCEPT}
    try:
        with trio.move_on_after(connect_timeout + request_timeout) as scope:
            async with httpx.AsyncClient(timeout=timeout, verify=ssl_context or True,
                                         trust_env=False) as client:
                if method == "post":
                    # NSQ's POSTV1 marshals url.Values: every value is a list
                    payload = {k: [v] for k, v in params.items()}
                    resp = await client.post(url, json=payload, headers=headers)
                else:
                    resp = await client.get(url, params=params, headers=headers)
        if scope.cancelled_caught:
            raise AuthError(f"timed out after {connect_timeout + request_timeout:g}s")
    except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError, ValueError) as exc:
        # InvalidURL: a secret too long for a URL (GET); ValueError: unencodable input
        raise AuthError(f"{type(exc).__name__}: {str(exc)[:200]}") from None
    if resp.status_code != 200:
        raise AuthError(f"got response {resp.status_code} {resp.text[:200]!r}")
    return parse_auth_response(resp.content)


class AuthQuery(TypedDict):
    """The keyword arguments of :func:`query_authd` (what is asked, and how)."""

    remote_ip: str
    tls: bool
    common_name: str
    secret: str
    ssl_context: ssl.SSLContext | None
    connect_timeout: float
    request_timeout: float
    method: NotRequired[str]


#: what identifies an asker in :class:`AuthCache`: (secret, remote IP, over TLS)
AuthKey = tuple[str, str, bool]


async def query_any_authd(addresses: list[str], **kwargs: Unpack[AuthQuery]) -> AuthState:
    """Try the auth servers from a random one on, until one answers.

    Raises:
        AuthError: every server failed (the message lists each failure).
    """
    errors: list[str] = []
    n = len(addresses)
    start = random.randrange(n) if n else 0
    for i in range(n):
        address = addresses[(start + i) % n]
        try:
            return await query_authd(address, **kwargs)
        except AuthError as exc:
            errors.append(f"failed to auth against {address} - {exc}")
    raise AuthError("; ".join(errors) or "no auth server configured")


class AuthCache:
    """Auth server replies kept for their ttl, for requests without a connection (HTTP).

    Keyed by what identifies the asker (:data:`AuthKey`); at most
    ``max_entries`` are kept (expired ones go first, then the oldest).
    """

    def __init__(self, max_entries: int = 4096) -> None:
        self.max_entries = max_entries
        self._entries: dict[AuthKey, AuthState] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: AuthKey) -> AuthState | None:
        state = self._entries.get(key)
        if state is not None and state.is_expired():
            del self._entries[key]
            return None
        return state

    def put(self, key: AuthKey, state: AuthState) -> None:
        entries = self._entries
        if len(entries) >= self.max_entries:
            now = time.time()
            for k in [k for k, s in entries.items() if s.is_expired(now)]:
                del entries[k]
            while len(entries) >= self.max_entries:
                del entries[next(iter(entries))]
        entries[key] = state
