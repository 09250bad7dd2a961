"""``nsq_stat``: poll ``/stats`` of every nsqd producing a topic and print the channel's
aggregate counters every ``--interval``, in NSQ's column table (or JSON lines).

The nsqd are found through nsqlookupd (``--lookupd-http-address``) or given directly
(``--nsqd-http-address``, those that have the topic are polled). ``--count N`` stops
after N reports; the first poll only sets the baseline of the rates.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from client.errors import LookupdError
from client.lookup import lookup

from ._cli import ToolError, UsageError, parse, start, watch_signals
from ._nsq import check_names, check_tcp_addresses, flag

__all__ = ["ChannelTotals", "Options", "format_header", "format_row", "main"]

PROG = "nsq_stat"
_FIELDS = ("depth", "backend_depth", "in_flight_count", "deferred_count", "requeue_count",
           "timeout_count", "message_count", "client_count")


@dataclass
class Options:
    """nsq_stat's flags (NSQ 1.3's names and defaults, plus --json)."""

    topic: str = flag("topic", "", "NSQ topic")
    channel: str = flag("channel", "", "NSQ channel")
    interval: float = flag("interval", 2.0, "duration of time between polling/printing output",
                           duration=True)
    http_client_connect_timeout: float = flag("http-client-connect-timeout", 2.0,
                                              "timeout for HTTP connect", duration=True)
    http_client_request_timeout: float = flag("http-client-request-timeout", 5.0,
                                              "timeout for HTTP request", duration=True)
    count: int = flag("count", 0, "number of reports")
    nsqd_http_addresses: list[str] = flag(
        "nsqd-http-address", [], "nsqd HTTP address (may be given multiple times)")
    lookupd_http_addresses: list[str] = flag(
        "lookupd-http-address", [], "lookupd HTTP address (may be given multiple times)")
    json: bool = flag("json", False, "print each report as a JSON object (one per line)")


@dataclass(frozen=True)
class ChannelTotals:
    """One channel's counters summed over every nsqd."""

    depth: int = 0
    backend_depth: int = 0
    in_flight_count: int = 0
    deferred_count: int = 0
    requeue_count: int = 0
    timeout_count: int = 0
    message_count: int = 0
    client_count: int = 0

    @property
    def memory_depth(self) -> int:
        return self.depth - self.backend_depth

    @classmethod
    def total(cls, channels: Sequence[dict[str, Any]]) -> ChannelTotals:
        return cls(**{f: sum(int(c.get(f) or 0) for c in channels) for f in _FIELDS})


def format_header() -> str:
    """NSQ's two header lines."""
    return ("------rate------+----------------depth----------------+--------------metadata---------------\n"
            + "%7s %7s | %7s %7s %7s %5s %5s | %7s %7s %12s %7s" % (
                "ingress", "egress", "total", "mem", "disk", "inflt", "def", "req", "t-o", "msgs", "clients"))


def _rates(c: ChannelTotals, o: ChannelTotals, interval: float) -> tuple[int, int]:
    ingress = int((c.message_count - o.message_count) / interval)
    egress = int((c.message_count - o.message_count - (c.depth - o.depth)) / interval)
    return ingress, egress


def format_row(c: ChannelTotals, o: ChannelTotals, interval: float) -> str:
    """One report line: rates since the previous poll, then the counters."""
    ingress, egress = _rates(c, o, interval)
    return "%7d %7d | %7d %7d %7d %5d %5d | %7d %7d %12d %7d" % (
        ingress, egress, c.depth, c.memory_depth, c.backend_depth, c.in_flight_count, c.deferred_count,
        c.requeue_count, c.timeout_count, c.message_count, c.client_count)


def json_row(opts: Options, c: ChannelTotals, o: ChannelTotals, nodes: list[str]) -> str:
    ingress, egress = _rates(c, o, opts.interval)
    return json.dumps({
        "topic": opts.topic, "channel": opts.channel, "ingress": ingress, "egress": egress,
        "depth": c.depth, "memory_depth": c.memory_depth, "backend_depth": c.backend_depth,
        "in_flight": c.in_flight_count, "deferred": c.deferred_count, "requeued": c.requeue_count,
        "timed_out": c.timeout_count, "messages": c.message_count, "clients": c.client_count,
        "nsqd": nodes}, separators=(",", ":"))


class Poller:
    """Finds the topic's nsqd and sums their channel stats."""

    def __init__(self, opts: Options, client: httpx.AsyncClient) -> None:
        self.opts = opts
        self.client = client

    async def producers(self) -> list[str]:
        opts = self.opts
        if opts.lookupd_http_addresses:
            found: dict[str, None] = {}
            errors = []
            for address in opts.lookupd_http_addresses:
                try:
                    result = await lookup(self.client, address, opts.topic,
                                          timeout=opts.http_client_request_timeout)
                except LookupdError as exc:
                    errors.append(str(exc))
                    continue
                for peer in result.producers:
                    host = peer.broadcast_address
                    found[f"[{host}]:{peer.http_port}" if ":" in host else f"{host}:{peer.http_port}"] = None
            if errors and len(errors) == len(opts.lookupd_http_addresses):
                raise ToolError(f"failed to get topic producers - {errors[0]}")
            return list(found)
        nodes = []
        for address in opts.nsqd_http_addresses:
            stats = await self._stats(address, topic_only=True)
            if any(t.get("topic_name") == opts.topic for t in stats.get("topics") or ()):
                nodes.append(address)
        return nodes

    async def _stats(self, address: str, topic_only: bool = False) -> dict[str, Any]:
        params = {"format": "json", "topic": self.opts.topic, "include_clients": "false"}
        if not topic_only:
            params["channel"] = self.opts.channel
        url = f"http://{address}/stats"
        try:
            response = await self.client.get(url, params=params)
            response.raise_for_status()
            payload = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ToolError(f"failed to get nsqd stats - GET {url}: {exc}") from None
        if isinstance(payload, dict) and "topics" not in payload and isinstance(payload.get("data"), dict):
            payload = payload["data"]
        if not isinstance(payload, dict):
            raise ToolError(f"failed to get nsqd stats - unexpected answer from {url}")
        return payload

    async def poll(self) -> tuple[ChannelTotals, list[str]]:
        opts = self.opts
        nodes = await self.producers()
        channels: list[dict[str, Any]] = []
        for address in nodes:
            stats = await self._stats(address)
            for topic in stats.get("topics") or ():
                if topic.get("topic_name") != opts.topic:
                    continue
                channels.extend(c for c in topic.get("channels") or () if c.get("channel_name") == opts.channel)
        if not channels:
            raise ToolError(f"failed to find channel({opts.channel}) in stats metadata for topic({opts.topic})")
        return ChannelTotals.total(channels), nodes


async def _main(opts: Options, counted: bool) -> int:
    timeout = httpx.Timeout(opts.http_client_request_timeout, connect=opts.http_client_connect_timeout)
    out = sys.stdout
    async with httpx.AsyncClient(timeout=timeout) as client, trio.open_nursery() as nursery:
        await nursery.start(watch_signals, lambda _signum: nursery.cancel_scope.cancel())
        poller = Poller(opts, client)
        previous: ChannelTotals | None = None
        start = trio.current_time()
        i = 0
        while not counted or opts.count >= i:
            current, nodes = await poller.poll()
            if i % 25 == 0 and not opts.json:
                out.write(format_header() + "\n")
            if previous is not None:
                out.write((json_row(opts, current, previous, nodes) if opts.json
                           else format_row(current, previous, opts.interval)) + "\n")
            out.flush()
            previous = current
            i += 1
            if counted and i > opts.count:
                break
            await trio.sleep_until(start + i * opts.interval)
        nursery.cancel_scope.cancel()
    return 0


def _check(opts: Options, counted: bool) -> None:
    if not opts.topic or not opts.channel:
        raise UsageError("--topic and --channel are required")
    check_names([opts.topic], opts.channel)
    if opts.interval <= 0:
        raise UsageError("--interval should be positive")
    if opts.http_client_connect_timeout <= 0:
        raise UsageError("--http-client-connect-timeout should be positive")
    if opts.http_client_request_timeout <= 0:
        raise UsageError("--http-client-request-timeout should be positive")
    if counted and opts.count <= 0:
        raise UsageError("--count should be positive")
    if not opts.nsqd_http_addresses and not opts.lookupd_http_addresses:
        raise UsageError("--nsqd-http-address or --lookupd-http-address required")
    if opts.nsqd_http_addresses and opts.lookupd_http_addresses:
        raise UsageError("use --nsqd-http-address or --lookupd-http-address not both")
    for name, addresses in (("nsqd-http-address", opts.nsqd_http_addresses),
                            ("lookupd-http-address", opts.lookupd_http_addresses)):
        if any(a.startswith("http") for a in addresses):
            raise UsageError(f"--{name} error - address should not contain scheme")
        check_tcp_addresses(addresses, name)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``nsq_stat`` console script."""
    opts, explicit = parse(Options, argv, PROG, "nsq_stat: poll /stats of a topic's nsqd and print a "
                           "channel's counters")
    counted = "count" in explicit
    start(PROG, lambda: _check(opts, counted), _main, opts, counted)


if __name__ == "__main__":
    main()
