"""``nsq_tail``: print the bodies of a topic's messages (or several topics') to stdout.

An ephemeral channel by default; ``-n N`` stops after N messages; SIGINT/SIGTERM
close the consumers (unprinted messages go back to nsqd) and exit 0.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import trio

from client import Consumer

from ._cli import ToolError, UsageError, parse, start, watch_signals
from ._nsq import TopicsFlags, check_names, check_sources, consumer_config, ephemeral_channel, flag

__all__ = ["Options", "main"]

PROG = "nsq_tail"
_FLUSH_INTERVAL = 0.1


@dataclass
class Options(TopicsFlags):
    """nsq_tail's flags."""

    channel: str = flag("channel", "", "NSQ channel (default: an ephemeral tailNNNNNN#ephemeral)")
    max_in_flight: int = flag("max-in-flight", 200, "max number of messages to allow in flight")
    n: int = flag("n", 0, "total messages to show (will wait if starved)")
    print_topic: bool = flag("print-topic", False, "print topic name where message was received")


class Tail:
    """Consumes every topic and writes the bodies to ``out``."""

    def __init__(self, opts: Options, out: BinaryIO) -> None:
        self.opts = opts
        self.out = out
        self.shown = 0
        self.consumers: list[Consumer] = []
        self.stopping = False
        self.broken_pipe = False
        self.error: str | None = None

    def stop(self, _signum: int = 0) -> None:
        """Close every consumer (in the background)."""
        self.stopping = True
        for consumer in self.consumers:
            consumer.stop()

    async def tail(self, topic: str, channel: str, consumer: Consumer) -> None:
        prefix = f"{topic} | ".encode() if self.opts.print_topic else b""
        total = self.opts.n
        write = self.out.write
        async with consumer:
            self.consumers.append(consumer)
            if self.stopping:
                consumer.stop()
            async for message in consumer:
                if total and self.shown >= total:
                    await message.requeue(0, backoff=False)
                    continue
                try:
                    if prefix:
                        write(prefix)
                    write(message.body)
                    write(b"\n")
                except OSError as exc:
                    self._write_failed(exc)
                    await message.requeue(0, backoff=False)
                    continue
                self.shown += 1
                await message.finish()
                if total and self.shown >= total:
                    self.stop()

    async def flusher(self) -> None:
        """Flush stdout every 100 ms (one write per burst, yet prompt on a terminal)."""
        while True:
            await trio.sleep(_FLUSH_INTERVAL)
            self.flush()

    def flush(self) -> None:
        if self.broken_pipe or self.error is not None:
            return
        try:
            self.out.flush()
        except OSError as exc:
            self._write_failed(exc)

    def _write_failed(self, exc: OSError) -> None:
        if isinstance(exc, BrokenPipeError):
            self.broken_pipe = True  # the reader went away (| head): a quiet end
        elif self.error is None:
            self.error = f"failed to write to stdout - {exc}"
        self.stop()


async def _main(opts: Options, channel: str) -> int:
    max_in_flight = opts.max_in_flight
    if 0 < opts.n < max_in_flight:
        max_in_flight = opts.n  # don't ask for more messages than we want
    config = await consumer_config(opts, PROG, max_in_flight)
    # our own buffer: sys.stdout.buffer is unbuffered under PYTHONUNBUFFERED / -u
    out = open(sys.stdout.fileno(), "wb", buffering=1 << 16, closefd=False)  # noqa: SIM115, ASYNC230 - wraps an fd, no I/O
    tail = Tail(opts, out)
    async with trio.open_nursery() as nursery:
        await nursery.start(watch_signals, tail.stop)
        nursery.start_soon(tail.flusher)
        async with trio.open_nursery() as consumers:
            for topic in opts.topics:
                consumer = Consumer(topic, channel, nsqd_tcp_addresses=opts.nsqd_tcp_addresses,
                                    lookupd_http_addresses=opts.lookupd_http_addresses, config=config)
                consumers.start_soon(tail.tail, topic, channel, consumer)
        nursery.cancel_scope.cancel()
    tail.flush()
    if tail.error is not None:
        raise ToolError(tail.error)
    if tail.broken_pipe:
        # like a Go program killed by SIGPIPE; keep Python from flushing stdout again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return 0


def _check(opts: Options, channel: str) -> None:
    check_sources(opts.nsqd_tcp_addresses, opts.lookupd_http_addresses)
    if not opts.topics:
        raise UsageError("--topic required")
    check_names(opts.topics, channel)
    if opts.max_in_flight < 1:
        raise UsageError("--max-in-flight must be >= 1")
    if opts.n < 0:
        raise UsageError("-n must be >= 0")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``nsq_tail`` console script."""
    opts, _ = parse(Options, argv, PROG, "nsq_tail: print the messages of NSQ topics to stdout")
    channel = opts.channel or ephemeral_channel()
    start(PROG, lambda: _check(opts, channel), _main, opts, channel)


if __name__ == "__main__":
    main()
