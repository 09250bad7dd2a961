"""``nsq_to_nsq``: consume topics from one cluster and publish them to other nsqd.

The messages that queue up in the consumer are published together in one MPUB; each
is FIN'd only once its destination acknowledged the batch, and REQ'd (with backoff)
when publishing failed. ``--mode`` picks the destination of
each message; the JSON filters are NSQ's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import trio

from client import BadBodyError, BadMessageError, Consumer, Message, NSQError, Producer

from ._cli import ToolError, UsageError, parse, start, watch_signals
from ._json_filter import JSONFilter
from ._nsq import (
    TopicsFlags,
    check_names,
    check_sources,
    check_tcp_addresses,
    client_config,
    consumer_config,
    flag,
    user_agent,
)
from ._select import Selector, TimerMetrics, selector

__all__ = ["Options", "main"]

PROG = "nsq_to_nsq"

logger = logging.getLogger("apps.nsq_to_nsq")

#: messages per MPUB at most (well under nsqd's default --max-body-size for small messages)
_MAX_BATCH = 500
_MAX_BATCH_BYTES = 1 << 20


@dataclass
class Options(TopicsFlags):
    """nsq_to_nsq's flags (NSQ 1.3's names and defaults)."""

    channel: str = flag("channel", "nsq_to_nsq", "nsq channel")
    destination_topic: str = flag(
        "destination-topic", "", "use this destination topic for all consumed topics "
        "(default is consumed topic name)")
    max_in_flight: int = flag("max-in-flight", 200, "max number of messages to allow in flight")
    status_every: int = flag("status-every", 250, "the # of requests between logging status "
                             "(per destination), 0 disables")
    mode: str = flag("mode", "hostpool", "the upstream request mode options: round-robin, "
                     "hostpool (default), epsilon-greedy")
    destination_nsqd_tcp_addresses: list[str] = flag(
        "destination-nsqd-tcp-address", [], "destination nsqd TCP address (may be given multiple times)")
    whitelist_json_fields: list[str] = flag(
        "whitelist-json-field", [], "for JSON messages: pass this field (may be given multiple times)")
    require_json_field: str = flag("require-json-field", "",
                                   "for JSON messages: only pass messages that contain this field")
    require_json_value: str = flag(
        "require-json-value", "", "for JSON messages: only pass messages in which the required "
        "field has this value")
    producer_opts: list[str] = flag(
        "producer-opt", [], "option to passthrough to the producers (may be given multiple times, "
        "go-nsq Config names)")


class Publisher:
    """Forwards messages in MPUB batches: the messages that queued up in the consumer
    go to one destination together, and are FIN'd once it acknowledged them (REQ'd with
    backoff if it did not)."""

    def __init__(self, opts: Options, producers: dict[str, Producer], select: Selector) -> None:
        self.producers = producers
        self.select = select
        self.single = next(iter(producers.items())) if len(producers) == 1 else None
        self.filter = JSONFilter(opts.require_json_field, opts.require_json_value,
                                 opts.whitelist_json_fields)
        self.batch_size = max(1, min(_MAX_BATCH, opts.max_in_flight // 4))
        self.metrics = TimerMetrics(opts.status_every, "[aggregate]:")
        self.per_address = {a: TimerMetrics(opts.status_every if len(producers) > 1 else 0, f"[{a}]:")
                            for a in producers}
        self.forwarded = 0

    async def forward(self, topic: str, consumer: Consumer) -> None:
        """Forward ``consumer``'s messages to ``topic`` until it closes."""
        filt = self.filter if self.filter.active else None
        limit = self.batch_size
        async with trio.open_nursery() as nursery, consumer:
            async for message in consumer:
                messages: list[Message] = []
                bodies: list[bytes] = []
                size = 0
                while True:
                    body = message.body
                    verdict = "pass"
                    if filt is not None:
                        verdict, body = filt.apply(body)
                    if verdict == "pass":
                        messages.append(message)
                        bodies.append(body)
                        size += len(body)
                    elif verdict == "drop":
                        await message.finish()
                    else:
                        await message.requeue(backoff=True)
                    if len(messages) >= limit or size >= _MAX_BATCH_BYTES or not consumer.buffered:
                        break
                    try:
                        message = await consumer.__anext__()
                    except StopAsyncIteration:
                        break
                if messages:
                    nursery.start_soon(self._publish, topic, messages, bodies)

    async def _publish(self, topic: str, messages: list[Message], bodies: list[bytes]) -> None:
        if self.single is not None:
            address, producer = self.single
        else:
            address = self.select.get()
            producer = self.producers[address]
        start = time.monotonic()
        try:
            if len(bodies) == 1:
                await producer.publish(topic, bodies[0])
            else:
                await producer.multi_publish(topic, bodies)
        except (BadMessageError, BadBodyError) as exc:
            if len(bodies) == 1:
                await self._failed(address, exc, messages)
                return
            # one body the destination refuses: find it by publishing one by one
            async with trio.open_nursery() as nursery:
                for message, body in zip(messages, bodies, strict=True):
                    nursery.start_soon(self._publish, topic, [message], [body])
            return
        except NSQError as exc:
            await self._failed(address, exc, messages)
            return
        self.select.mark(address, True)
        for message in messages:
            await message.finish()
        self.forwarded += len(messages)
        if self.metrics.every:
            now = time.monotonic()
            for _ in messages:
                self.per_address[address].status(start, now)
                self.metrics.status(start, now)

    async def _failed(self, address: str, exc: NSQError, messages: list[Message]) -> None:
        logger.warning("publish of %d message(s) to %s failed: %s", len(messages), address, exc)
        self.select.mark(address, False)
        for message in messages:
            await message.requeue(backoff=True)


async def _main(opts: Options) -> int:
    producer_config = client_config(opts.producer_opts, "producer-opt", user_agent=user_agent(PROG))
    config = await consumer_config(opts, PROG, opts.max_in_flight)
    select = selector(opts.mode, opts.destination_nsqd_tcp_addresses)
    async with AsyncExitStack() as stack:
        producers: dict[str, Producer] = {}
        for address in opts.destination_nsqd_tcp_addresses:
            producer = Producer(address, config=producer_config)
            producers[address] = await stack.enter_async_context(producer)
            try:
                await producer.connect()
            except NSQError as exc:
                raise ToolError(f"failed to connect to destination nsqd {address} - {exc}") from None
        publisher = Publisher(opts, producers, select)
        consumers = [(topic, Consumer(topic, opts.channel, nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
                                      lookupd_http_addresses=opts.lookupd_http_addresses,
                                      config=config))
                     for topic in opts.topics]

        def stop(_signum: int) -> None:
            for _, consumer in consumers:
                consumer.stop()

        async with trio.open_nursery() as nursery:
            await nursery.start(watch_signals, stop)
            async with trio.open_nursery() as pipes:
                for topic, consumer in consumers:
                    pipes.start_soon(publisher.forward, opts.destination_topic or topic, consumer)
            nursery.cancel_scope.cancel()
    return 0


def _check(opts: Options) -> None:
    if not opts.topics or not opts.channel:
        raise UsageError("--topic and --channel are required")
    check_names(opts.topics, opts.channel)
    if opts.destination_topic:
        check_names([opts.destination_topic], topic_flag="destination-topic")
    check_sources(opts.nsqd_tcp_addresses, opts.lookupd_http_addresses)
    if not opts.destination_nsqd_tcp_addresses:
        raise UsageError("--destination-nsqd-tcp-address required")
    check_tcp_addresses(opts.destination_nsqd_tcp_addresses, "destination-nsqd-tcp-address")
    selector(opts.mode, opts.destination_nsqd_tcp_addresses)
    if opts.max_in_flight < 1:
        raise UsageError("--max-in-flight must be >= 1")
    if opts.status_every < 0:
        raise UsageError("--status-every must be >= 0")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``nsq_to_nsq`` console script."""
    opts, _ = parse(Options, argv, PROG, "nsq_to_nsq: republish NSQ topics to other nsqd")
    start(PROG, lambda: _check(opts), _main, opts)


if __name__ == "__main__":
    main()
