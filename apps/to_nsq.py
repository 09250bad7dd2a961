"""``to_nsq``: publish each line of stdin (or ``--delimiter``-separated record) to a topic.

Every record goes to every ``--nsqd-tcp-address``, in MPUBs of ``--batch-size`` records
(one per record with ``--rate``). The exit status
is 0 once every record read has been acknowledged; a refused or timed-out publish is
reported on stderr and exits 1. SIGINT/SIGTERM stop reading; what was read is still
published and acknowledged before exiting.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass

import trio

from client import NSQError, Producer

from ._cli import ToolError, UsageError, parse, start, watch_signals
from ._nsq import check_names, check_tcp_addresses, client_config, flag, user_agent
from ._progress import Progress

__all__ = ["Options", "main"]

PROG = "to_nsq"
_READ_SIZE = 1 << 20
_BATCHES_IN_FLIGHT = 8  # MPUBs awaiting their answer, per nsqd


@dataclass
class Options:
    """to_nsq's flags."""

    topic: str = flag("topic", "", "NSQ topic to publish to")
    delimiter: str = flag("delimiter", "\n", "character to split input from stdin")
    nsqd_tcp_addresses: list[str] = flag(
        "nsqd-tcp-address", [], "destination nsqd TCP address (may be given multiple times)")
    producer_opts: list[str] = flag(
        "producer-opt", [], "option to passthrough to the producer (may be given multiple "
        "times, go-nsq Config names, e.g. 'snappy' or 'dial_timeout,5s')")
    rate: int = flag("rate", 0, "Throttle messages to n/second. 0 to disable")
    progress: bool = flag("progress", False,
                          "show progress and rate on stderr (default: when stderr is a terminal)")
    batch_size: int = flag("batch-size", 500, "messages per MPUB at most")


class Publisher:
    """Splits stdin into records and publishes them as MPUB batches on every producer
    (a few batches in flight per nsqd)."""

    def __init__(self, opts: Options, producers: list[tuple[str, Producer]], nursery: trio.Nursery) -> None:
        self.topic = opts.topic
        self.delimiter = opts.delimiter.encode()
        self.rate = opts.rate
        self.batch_size = opts.batch_size
        self.producers = [(address, producer, trio.Semaphore(_BATCHES_IN_FLIGHT))
                          for address, producer in producers]
        self.nursery = nursery
        self.read = 0
        self.error: str | None = None
        self.stopping = False
        self._read_scope: trio.CancelScope | None = None
        self._allowance = 1.0
        self._last = 0.0

    def stop(self, _signum: int = 0) -> None:
        """Stop reading stdin (records already read are still published)."""
        self.stopping = True
        if self._read_scope is not None:
            self._read_scope.cancel()

    async def pump(self, fd: int) -> None:
        """Read ``fd`` to its end (or :meth:`stop`, or a failed publish) and publish every record."""
        tail = b""
        self._last = trio.current_time()
        while not self.stopping:
            with trio.CancelScope() as self._read_scope:
                chunk = await trio.to_thread.run_sync(os.read, fd, _READ_SIZE, abandon_on_cancel=True)
            if self._read_scope.cancelled_caught or not chunk:
                break
            records = (tail + chunk if tail else chunk).split(self.delimiter)
            tail = records.pop()
            await self._publish(records)
        if tail and not self.stopping:
            await self._publish([tail])

    async def _publish(self, records: list[bytes]) -> None:
        if b"" in records:
            records = [record for record in records if record]  # empty records are skipped
        if self.rate:
            for record in records:
                await self._throttle()
                await self._send([record])
        else:
            size = self.batch_size
            for i in range(0, len(records), size):
                await self._send(records[i:i + size])

    async def _send(self, bodies: list[bytes]) -> None:
        if self.error is not None:
            return  # a batch failed: nothing more is sent
        for address, producer, slots in self.producers:
            await slots.acquire()
            self.nursery.start_soon(self._mpub, address, producer, slots, bodies)
        self.read += len(bodies)

    async def _mpub(self, address: str, producer: Producer, slots: trio.Semaphore, bodies: list[bytes]) -> None:
        try:
            if len(bodies) == 1:
                await producer.publish(self.topic, bodies[0])
            else:
                await producer.multi_publish(self.topic, bodies)
        except NSQError as exc:
            if self.error is None:
                self.error = f"failed to publish to {address}: {exc}"
            self.stop()
        finally:
            slots.release()

    async def _throttle(self) -> None:
        now = trio.current_time()
        self._allowance = min(float(self.rate), self._allowance + (now - self._last) * self.rate)
        self._last = now
        if self._allowance < 1.0:
            await trio.sleep((1.0 - self._allowance) / self.rate)
            self._allowance = 1.0
            self._last = trio.current_time()
        self._allowance -= 1.0


async def _main(opts: Options, show_progress: bool) -> int:
    config = client_config(opts.producer_opts, "producer-opt", user_agent=user_agent(PROG))
    async with AsyncExitStack() as stack:
        producers: list[tuple[str, Producer]] = []
        for address in opts.nsqd_tcp_addresses:
            producer = Producer(address, config=config)
            producers.append((address, await stack.enter_async_context(producer)))
        for address, producer in producers:
            try:
                await producer.connect()
            except NSQError as exc:
                raise ToolError(f"failed to connect to nsqd {address} - {exc}") from None
        async with trio.open_nursery() as nursery:
            async with trio.open_nursery() as batches:  # every batch answered when it exits
                publisher = Publisher(opts, producers, batches)
                await nursery.start(watch_signals, publisher.stop)
                progress = Progress(PROG, lambda: publisher.read) if show_progress else None
                if progress is not None:
                    nursery.start_soon(progress.run)
                await publisher.pump(sys.stdin.fileno() if sys.stdin else 0)
            nursery.cancel_scope.cancel()
        if progress is not None:
            progress.done()
        if publisher.error is not None:
            raise ToolError(publisher.error)
    return 0


def _check(opts: Options) -> None:
    if not opts.topic:
        raise UsageError("--topic required")
    check_names([opts.topic])
    if len(opts.delimiter.encode()) != 1:
        raise UsageError("--delimiter must be a single byte")
    if not opts.nsqd_tcp_addresses:
        raise UsageError("--nsqd-tcp-address required")
    check_tcp_addresses(opts.nsqd_tcp_addresses, "nsqd-tcp-address")
    if opts.rate < 0:
        raise UsageError("--rate must be >= 0")
    if opts.batch_size < 1:
        raise UsageError("--batch-size must be >= 1")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``to_nsq`` console script."""
    opts, explicit = parse(Options, argv, PROG, "to_nsq: publish lines of stdin to NSQ")
    show = opts.progress if "progress" in explicit else sys.stderr.isatty()
    start(PROG, lambda: _check(opts), _main, opts, show, client_log_level=logging.ERROR)


if __name__ == "__main__":
    main()
