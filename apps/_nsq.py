"""NSQ settings the tools share: flag fields, go-nsq ``--consumer-opt``/``--producer-opt``
pass-through into :class:`client.ClientConfig`, address and name checks.
"""

from __future__ import annotations

import dataclasses
import random
import ssl
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from client.config import VERSION as CLIENT_VERSION
from client.config import ClientConfig
from client.protocol import is_valid_channel_name, is_valid_topic_name
from internal.netaddr import split_host_port
from internal.options import option, parse_bool, parse_duration
from internal.version import NSQ_VERSION

from ._cli import ToolError, UsageError

__all__ = [
    "SourceFlags",
    "TopicsFlags",
    "check_lookupd_addresses",
    "check_names",
    "check_reachable",
    "check_sources",
    "check_tcp_addresses",
    "client_config",
    "consumer_config",
    "ephemeral_channel",
    "flag",
    "user_agent",
]


T = TypeVar("T")


def flag(name: str, default: T, help: str, **meta: object) -> T:
    """A dataclass field for flag ``name`` (:func:`internal.options.option`, flag first)."""
    return option(default, name, help, **meta)


@dataclasses.dataclass
class SourceFlags:
    """The flags of every consuming tool: where to read from, consumer settings."""

    nsqd_tcp_addresses: list[str] = flag(
        "nsqd-tcp-address", [], "nsqd TCP address (may be given multiple times)")
    lookupd_http_addresses: list[str] = flag(
        "lookupd-http-address", [], "lookupd HTTP address (may be given multiple times)")
    consumer_opts: list[str] = flag(
        "consumer-opt", [], "option to passthrough to the consumer (may be given multiple times, "
        "go-nsq Config names, e.g. 'max_attempts,10')")


@dataclasses.dataclass
class TopicsFlags(SourceFlags):
    """:class:`SourceFlags` and a repeatable ``--topic``."""

    topics: list[str] = flag("topic", [], "nsq topic (may be given multiple times)")


def user_agent(prog: str) -> str:
    """The IDENTIFY user agent, go-nsq's ``<tool>/<version> go-nsq/<version>`` shape."""
    return f"{prog}/{NSQ_VERSION} trio-nsq/{CLIENT_VERSION}"


def ephemeral_channel() -> str:
    """nsq_tail's default channel: ``tail<6 digits>#ephemeral``."""
    return f"tail{random.randrange(999999):06d}#ephemeral"


# --- --consumer-opt / --producer-opt -------------------------------------------------

def _duration_or_none(text: str) -> float | None:
    seconds = parse_duration(text)
    return None if seconds < 0 else seconds


def _int(text: str) -> int:
    return int(text, 10)


_DURATIONS = ("dial_timeout", "read_timeout", "write_timeout", "lookupd_poll_interval",
              "max_requeue_delay", "default_requeue_delay", "max_backoff_duration",
              "backoff_multiplier", "low_rdy_idle_timeout", "low_rdy_timeout",
              "rdy_redistribute_interval", "output_buffer_timeout")
_OPTION_PARSERS: dict[str, Callable[[str], Any]] = {
    **{name: parse_duration for name in _DURATIONS},
    "heartbeat_interval": _duration_or_none,
    "msg_timeout": _duration_or_none,
    "lookupd_poll_jitter": float,
    "max_attempts": _int,
    "sample_rate": _int,
    "deflate_level": _int,
    "output_buffer_size": _int,
    "max_in_flight": _int,
    "tls_v1": parse_bool,
    "deflate": parse_bool,
    "snappy": parse_bool,
    "client_id": str,
    "hostname": str,
    "user_agent": str,
    "auth_secret": str,
    "backoff_strategy": str,
}
_TLS_OPTIONS: dict[str, Callable[[str], Any]] = {"tls_root_ca_file": str, "tls_insecure_skip_verify": parse_bool,
                "tls_cert": str, "tls_key": str, "tls_min_version": str}
_TLS_VERSIONS = {"ssl3.0": ssl.TLSVersion.SSLv3, "tls1.0": ssl.TLSVersion.TLSv1,
                 "tls1.1": ssl.TLSVersion.TLSv1_1, "tls1.2": ssl.TLSVersion.TLSv1_2,
                 "tls1.3": ssl.TLSVersion.TLSv1_3}


def _tls_context(tls: dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.get("tls_root_ca_file") or None)
    if tls.get("tls_insecure_skip_verify"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if tls.get("tls_cert") or tls.get("tls_key"):
        context.load_cert_chain(tls.get("tls_cert", ""), tls.get("tls_key") or None)
    if "tls_min_version" in tls:
        try:
            context.minimum_version = _TLS_VERSIONS[tls["tls_min_version"].lower()]
        except KeyError:
            raise ValueError(f"unknown tls_min_version {tls['tls_min_version']!r}") from None
    return context


def client_config(opts: Iterable[str], flag_name: str, **settings: Any) -> ClientConfig:
    """A :class:`ClientConfig` from go-nsq ``key,value`` options over ``settings``.

    A bare ``key`` means ``key,true``, as go-nsq's ``ConfigFlag`` reads it; durations
    are Go durations (``5s``), a negative heartbeat/msg timeout means none.

    Raises:
        UsageError: an unknown key, a bad value or an invalid combination.
    """
    values = dict(settings)
    tls: dict[str, Any] = {}
    for opt in opts:
        key, sep, text = opt.partition(",")
        key = key.strip()
        if not sep:
            text = "true"
        parser = _OPTION_PARSERS.get(key) or _TLS_OPTIONS.get(key)
        if parser is None:
            raise UsageError(f"--{flag_name} {opt!r}: invalid option {key!r}")
        try:
            value = parser(text)
        except ValueError as exc:
            raise UsageError(f"--{flag_name} {opt!r}: {exc}") from None
        (tls if key in _TLS_OPTIONS else values)[key] = value
    try:
        if tls:
            values["tls_config"] = _tls_context(tls)
        return ClientConfig(**values)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--{flag_name}: {exc}") from None


# --- checks ---------------------------------------------------------------------------

def check_tcp_addresses(addresses: Iterable[str], flag_name: str) -> None:
    """Every address is ``host:port``.

    Raises:
        UsageError: naming the flag and the address.
    """
    for address in addresses:
        try:
            split_host_port(address)
        except ValueError as exc:
            raise UsageError(f"--{flag_name} {address!r}: {exc}") from None


def check_lookupd_addresses(addresses: Iterable[str], flag_name: str) -> None:
    """Every address is ``host:port`` or an ``http(s)://host:port`` URL.

    Raises:
        UsageError: naming the flag and the address.
    """
    for address in addresses:
        netloc = address
        if "://" in address:
            parts = urlsplit(address)
            if parts.scheme not in ("http", "https"):
                raise UsageError(f"--{flag_name} {address!r}: scheme must be http or https")
            netloc = parts.netloc
        try:
            split_host_port(netloc)
        except ValueError as exc:
            raise UsageError(f"--{flag_name} {address!r}: {exc}") from None


def check_sources(nsqd: list[str], lookupd: list[str], nsqd_flag: str = "nsqd-tcp-address",
                  lookupd_flag: str = "lookupd-http-address") -> None:
    """Exactly one of the nsqd or lookupd address lists is given, and well formed.

    Raises:
        UsageError: with NSQ's message.
    """
    if not nsqd and not lookupd:
        raise UsageError(f"--{nsqd_flag} or --{lookupd_flag} required")
    if nsqd and lookupd:
        raise UsageError(f"use --{nsqd_flag} or --{lookupd_flag} not both")
    if nsqd_flag.endswith("tcp-address"):
        check_tcp_addresses(nsqd, nsqd_flag)
    else:
        check_lookupd_addresses(nsqd, nsqd_flag)
    check_lookupd_addresses(lookupd, lookupd_flag)


def check_names(topics: Iterable[str] = (), channel: str | None = None,
                topic_flag: str = "topic") -> None:
    """Topic and channel names are valid NSQ names.

    Raises:
        UsageError: naming the flag.
    """
    for topic in topics:
        if not is_valid_topic_name(topic):
            raise UsageError(f"--{topic_flag} {topic!r} is invalid")
    if channel is not None and not is_valid_channel_name(channel):
        raise UsageError(f"--channel {channel!r} is invalid")


# --- reachability -----------------------------------------------------------------------

async def check_reachable(nsqd: Iterable[str] = (), lookupd: Iterable[str] = (),
                          timeout: float = 2.0, http_client: Any = None) -> None:
    """Fail early, as go-nsq's ``ConnectToNSQD`` does, when an address cannot be reached.

    nsqd addresses must accept a TCP connection; nsqlookupd must answer ``/ping``.
    (Outages after the start are ridden out by the client's reconnects.)

    Raises:
        ToolError: naming the first address that failed.
    """
    import httpx
    import trio

    for address in nsqd:
        host, port = split_host_port(address)
        try:
            with trio.fail_after(timeout):
                stream = await trio.open_tcp_stream(host or "127.0.0.1", port)
            await stream.aclose()
        except (OSError, trio.TooSlowError) as exc:
            raise ToolError(f"failed to connect to nsqd {address} - {_reason(exc)}") from None
    lookupd = list(lookupd)
    if not lookupd:
        return
    client = http_client or httpx.AsyncClient()
    try:
        for address in lookupd:
            url = address if "://" in address else f"http://{address}"
            try:
                response = await client.get(url.rstrip("/") + "/ping", timeout=timeout)
            except httpx.HTTPError as exc:
                raise ToolError(f"failed to reach nsqlookupd {address} - {_reason(exc)}") from None
            if response.status_code != 200:
                raise ToolError(f"nsqlookupd {address} answered /ping with {response.status_code}")
    finally:
        if http_client is None:
            await client.aclose()


async def consumer_config(opts: SourceFlags, prog: str, max_in_flight: int,
                          connect_timeout: float | None = None) -> ClientConfig:
    """The consumer settings of a tool (its ``--consumer-opt`` over ``max_in_flight``),
    once its nsqd/nsqlookupd answered (see :func:`check_reachable`).

    Raises:
        UsageError: a bad ``--consumer-opt``.
        ToolError: an address cannot be reached.
    """
    config = client_config(opts.consumer_opts, "consumer-opt", user_agent=user_agent(prog),
                           max_in_flight=max_in_flight)
    await check_reachable(opts.nsqd_tcp_addresses, opts.lookupd_http_addresses,
                          connect_timeout or config.dial_timeout)
    return config


def _reason(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None:  # the innermost cause says why: "[Errno 111] Connection refused"
        while isinstance(cause, BaseExceptionGroup):
            cause = cause.exceptions[0]
        if cause.__cause__ is None:
            break
        cause = cause.__cause__
    text = str(cause) or str(exc)
    return text or type(exc).__name__
