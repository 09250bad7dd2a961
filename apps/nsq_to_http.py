"""``nsq_to_http``: consume a topic and POST (or GET) each message to HTTP endpoints.

``--n`` requests at most run at once. A message is FIN'd once its request answered
2xx (GET: 200); a transport error, a timeout or another status REQs it with backoff,
so no message is lost. ``--mode`` picks the destination of each request.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote_plus

import trio

from client import Consumer, Message
from internal.version import NSQ_VERSION

from ._cli import UsageError, parse, start, watch_signals
from ._http_client import HTTPClient, HTTPClientError, parse_url
from ._nsq import SourceFlags, check_names, check_sources, consumer_config, flag
from ._select import TimerMetrics, selector

__all__ = ["Options", "main"]

PROG = "nsq_to_http"
_DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass
class Options(SourceFlags):
    """nsq_to_http's flags (NSQ 1.3's names and defaults)."""

    topic: str = flag("topic", "", "nsq topic")
    channel: str = flag("channel", "nsq_to_http", "nsq channel")
    max_in_flight: int = flag("max-in-flight", 200, "max number of messages to allow in flight")
    n: int = flag("n", 100, "number of concurrent publishers")
    mode: str = flag("mode", "hostpool", "the upstream request mode options: round-robin, "
                     "hostpool (default), epsilon-greedy")
    sample: float = flag("sample", 1.0, "% of messages to publish (float b/w 0 -> 1)")
    http_client_connect_timeout: float = flag("http-client-connect-timeout", 2.0,
                                              "timeout for HTTP connect", duration=True)
    http_client_request_timeout: float = flag("http-client-request-timeout", 20.0,
                                              "timeout for HTTP request", duration=True)
    status_every: int = flag("status-every", 250, "the # of requests between logging status "
                             "(per handler), 0 disables")
    content_type: str = flag("content-type", _DEFAULT_CONTENT_TYPE,
                             "the Content-Type used for POST requests")
    max_attempts: int = flag("max-attempts", 0, "give a message up after this many failed "
                             "deliveries (0: never, no message is dropped)")
    post: list[str] = flag("post", [], "HTTP address to make a POST request to.  data will be in "
                           "the body (may be given multiple times)")
    get: list[str] = flag("get", [], "HTTP address to make a GET request to. '%s' will be printf "
                          "replaced with data (may be given multiple times)")
    headers: list[str] = flag("header", [], "Custom header for HTTP requests (may be given multiple times)")


def parse_headers(values: Sequence[str]) -> list[tuple[str, str]]:
    """``Key: value`` flags → header pairs (NSQ's rules: both parts non-empty).

    Raises:
        UsageError: a malformed header.
    """
    headers = []
    for value in values:
        key, sep, val = value.partition(":")
        key, val = key.strip(), val.strip()
        if not sep or not key or not val or "\r" in value or "\n" in value:
            raise UsageError(f"--header value format should be 'key=value' (got {value!r})")
        headers.append((key, val))
    return headers


class Poster:
    """Sends each message to one destination and reports success."""

    def __init__(self, opts: Options, client: HTTPClient) -> None:
        self.client = client
        self.get_mode = bool(opts.get)
        self.addresses = list(opts.get or opts.post)
        self.select = selector(opts.mode, self.addresses)
        self.targets = {a: parse_url(a) for a in self.addresses} if not self.get_mode else {}
        headers = {"User-Agent": f"nsq_to_http v{NSQ_VERSION}"}
        if not self.get_mode:
            headers["Content-Type"] = opts.content_type
        for key, val in parse_headers(opts.headers):
            headers[key] = val  # custom headers win, as in NSQ
        self.headers = b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
        self.sample = opts.sample
        self.metrics = TimerMetrics(opts.status_every, "[aggregate]:")
        self.per_address = {a: TimerMetrics(opts.status_every if len(self.addresses) > 1 else 0, f"[{a}]:")
                            for a in self.addresses}
        self.delivered = 0

    async def handle(self, message: Message) -> None:
        """Deliver one message; raise to have it requeued."""
        if self.sample < 1.0 and random.random() > self.sample:
            return
        start = time.monotonic()
        address = self.select.get()
        try:
            if self.get_mode:
                target = parse_url(address.replace("%s", quote_plus(message.body), 1))
                status = await self.client.request(b"GET", target, self.headers)
                ok = status == 200
            else:
                status = await self.client.request(b"POST", self.targets[address], self.headers, message.body)
                ok = 200 <= status < 300
        except (HTTPClientError, ValueError):
            self.select.mark(address, False)
            raise
        self.select.mark(address, ok)
        if not ok:
            raise HTTPClientError(f"got status code {status}")
        self.delivered += 1
        if self.metrics.every:
            now = time.monotonic()
            self.per_address[address].status(start, now)
            self.metrics.status(start, now)


async def _main(opts: Options, max_attempts: int | None) -> int:
    config = await consumer_config(opts, PROG, opts.max_in_flight)
    client = HTTPClient(opts.http_client_connect_timeout, opts.http_client_request_timeout,
                        max_idle=max(opts.n, 1))
    poster = Poster(opts, client)
    consumer = Consumer(opts.topic, opts.channel, nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
                        lookupd_http_addresses=opts.lookupd_http_addresses, config=config,
                        concurrency=opts.n, max_attempts=max_attempts)
    try:
        async with trio.open_nursery() as nursery, consumer:
            await nursery.start(watch_signals, lambda _signum: consumer.stop())
            await consumer.run(poster.handle)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await client.aclose()
    return 0


def _check(opts: Options) -> None:
    if not opts.topic or not opts.channel:
        raise UsageError("--topic and --channel are required")
    check_names([opts.topic], opts.channel)
    if opts.content_type != _DEFAULT_CONTENT_TYPE:
        if not opts.post:
            raise UsageError("--content-type only used with --post")
        if not opts.content_type:
            raise UsageError("--content-type requires a value when used")
    check_sources(opts.nsqd_tcp_addresses, opts.lookupd_http_addresses)
    if not opts.get and not opts.post:
        raise UsageError("--get or --post required")
    if opts.get and opts.post:
        raise UsageError("use --get or --post not both")
    for address in opts.get:
        if address.count("%s") != 1:
            raise UsageError("invalid GET address - must be a printf string")
    for address in opts.get or opts.post:
        try:
            parse_url(address.replace("%s", "x"))
        except ValueError as exc:
            raise UsageError(f"invalid URL {address!r}: {exc}") from None
    selector(opts.mode, opts.get or opts.post)
    parse_headers(opts.headers)
    if not 0.0 <= opts.sample <= 1.0:
        raise UsageError("--sample must be between 0.0 and 1.0")
    if opts.n < 1:
        raise UsageError("-n must be >= 1")
    if opts.max_in_flight < 1:
        raise UsageError("--max-in-flight must be >= 1")
    if opts.max_attempts < 0:
        raise UsageError("--max-attempts must be >= 0")
    if opts.http_client_connect_timeout <= 0 or opts.http_client_request_timeout <= 0:
        raise UsageError("--http-client-*-timeout should be positive")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``nsq_to_http`` console script."""
    opts, explicit = parse(Options, argv, PROG, "nsq_to_http: deliver NSQ messages to HTTP endpoints")
    # --max-attempts, else --consumer-opt max_attempts, else never give up
    max_attempts: int | None = opts.max_attempts
    if "max_attempts" not in explicit and any(o.partition(",")[0].strip() == "max_attempts"
                                              for o in opts.consumer_opts):
        max_attempts = None
    start(PROG, lambda: _check(opts), _main, opts, max_attempts)


if __name__ == "__main__":
    main()
